//! The OpenAPI document (`/api/openapi.json`) and its Swagger UI (`/api/docs`).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    books, health, invoices, keys, offline, organisations, pagination, problem, programs,
    redemptions, session, statements, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "passnum API",
        description = "Signed workshop vouchers for the pass numérique: issue, redeem, reconcile. \
                       Every error is application/problem+json (RFC 9457)."
    ),
    paths(
        health::healthz,
        health::readyz,
        keys::jwks,
        keys::rotate,
        session::token,
        session::me,
        organisations::create,
        organisations::list,
        organisations::accredit,
        organisations::withdraw,
        users::create,
        users::deactivate,
        programs::create,
        programs::list,
        programs::get,
        programs::allocate,
        programs::close,
        programs::stats,
        books::issue,
        books::list,
        books::get,
        books::revoke,
        books::replace,
        books::pdf,
        books::send,
        books::renew_page_link,
        books::qr_svg,
        books::qr_png,
        redemptions::themes,
        redemptions::check,
        redemptions::redeem,
        redemptions::list,
        redemptions::cancel,
        redemptions::reverse,
        redemptions::audit_trail,
        offline::register,
        offline::list_devices,
        offline::revoke_device,
        offline::sync,
        offline::batch,
        offline::conflicts,
        offline::resolve,
        statements::close,
        statements::list,
        statements::get,
        statements::csv,
        statements::live,
        statements::pay,
        statements::pdf,
        invoices::venue_details,
        invoices::save_venue_details,
        invoices::buyer_details,
        invoices::save_buyer_details,
        invoices::list,
        invoices::invoice_pdf,
        invoices::invoice_xml,
        invoices::credit_note_pdf,
        invoices::credit_note_xml,
    ),
    components(schemas(problem::Problem, problem::FieldError, pagination::Page<crate::domain::organisations::Organisation>,
        pagination::Page<crate::domain::programs::Program>, pagination::Page<crate::domain::books::Book>,
        pagination::Page<crate::domain::redemptions::Redemption>, pagination::Page<crate::domain::redemptions::AuditEvent>,
        pagination::Page<crate::domain::devices::Device>, pagination::Page<crate::domain::batch::Conflict>)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "keys", description = "The published signing keys"),
        (name = "accounts", description = "Logging in and user accounts"),
        (name = "organisations", description = "Operator, funders, issuers and venues"),
        (name = "programs", description = "Funders' programmes and allocations"),
        (name = "books", description = "Books of signed vouchers"),
        (name = "redemptions", description = "Checking and redeeming vouchers at venues"),
        (name = "offline", description = "Scanner devices, sync, offline batches and conflicts"),
        (name = "statements", description = "Signed statements for funders and venues"),
        (name = "invoices", description = "Factur-X invoices and credit notes drawn from venues' extracts")
    )
)]
pub struct ApiDoc;

/// Declares the bearer token the protected endpoints take.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}
