//! The HTTP layer: routes, extractors, problem+json, telemetry.

pub mod auth;
pub mod books;
pub mod client;
pub mod health;
pub mod invoices;
pub mod json;
pub mod keys;
pub mod log;
pub mod metrics;
pub mod offline;
pub mod openapi;
pub mod organisations;
pub mod pagination;
pub mod problem;
pub mod programs;
pub mod query;
pub mod redemptions;
pub mod request_log;
pub mod session;
pub mod statements;
pub mod text;
pub mod users;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{web, ResponseError};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::db;
use crate::state::AppState;
use problem::{ApiError, ProblemType, PROBLEM_JSON};

/// Runs `lookup` on a reader (`AppState::reader`); when a standby does not
/// have the object yet (replication lag: it was made a moment ago), on the
/// primary. Returns the connection it was found on, for the reads that follow.
pub async fn on_reader<T>(
    state: &AppState,
    lookup: impl AsyncFn(&mut db::Connection) -> Result<T, ApiError>,
) -> Result<(db::Connection, T), ApiError> {
    let mut conn = state.reader().await?;
    match lookup(&mut conn).await {
        Err(e) if e.kind == ProblemType::NotFound && state.has_standby() => {
            let mut conn = state.pool.get().await?;
            let found = lookup(&mut conn).await?;
            Ok((conn, found))
        }
        found => found.map(|found| (conn, found)),
    }
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsRoute {
    /// On the main port, to loopback clients only.
    LoopbackOnly,
    /// On a listener of its own.
    Elsewhere,
}

/// Every route of the API on the main listener (the pages are in `crate::web`).
pub fn routes(cfg: &mut web::ServiceConfig, metrics: MetricsRoute) {
    cfg.app_data(web::PayloadConfig::new(json::BODY_LIMIT))
        .app_data(
            web::PathConfig::default().error_handler(|e, _| {
                ApiError::not_found(format!("No such resource: {e}.")).into()
            }),
        )
        .app_data(
            web::QueryConfig::default()
                .error_handler(|e, _| ApiError::invalid_field("query", e.to_string()).into()),
        )
        .service(web::resource("/healthz").get(health::healthz))
        .service(web::resource("/readyz").get(health::readyz))
        .service(web::resource("/.well-known/jwks.json").get(keys::jwks))
        .service(web::resource("/log/checkpoint").get(log::checkpoint))
        .service(web::resource("/log/key").get(log::key))
        .service(web::resource("/log/tile/{path:.*}").get(log::tile))
        .service(
            web::scope("/api/v1")
                .service(web::resource("/auth/token").post(session::token))
                .service(web::resource("/me").get(session::me))
                .service(
                    web::resource("/organisations")
                        .get(organisations::list)
                        .post(organisations::create),
                )
                .service(
                    web::resource("/organisations/{id}/accreditation")
                        .post(organisations::accredit)
                        .delete(organisations::withdraw),
                )
                .service(web::resource("/users").post(users::create))
                .service(web::resource("/users/{id}/deactivate").post(users::deactivate))
                .service(web::resource("/keys/rotate").post(keys::rotate))
                .service(
                    web::resource("/programs")
                        .get(programs::list)
                        .post(programs::create),
                )
                .service(web::resource("/programs/{id}").get(programs::get))
                .service(web::resource("/programs/{id}/allocations").post(programs::allocate))
                .service(web::resource("/programs/{id}/close").post(programs::close))
                .service(web::resource("/programs/{id}/stats").get(programs::stats))
                .service(web::resource("/books").get(books::list).post(books::issue))
                .service(web::resource("/books/{id}").get(books::get))
                .service(web::resource("/books/{id}/pdf").get(books::pdf))
                .service(web::resource("/books/{id}/send").post(books::send))
                .service(web::resource("/books/{id}/page-link").post(books::renew_page_link))
                .service(web::resource("/vouchers/{voucher_id}/qr.svg").get(books::qr_svg))
                .service(web::resource("/vouchers/{voucher_id}/qr.png").get(books::qr_png))
                .service(web::resource("/books/{id}/revoke").post(books::revoke))
                .service(web::resource("/books/{id}/replace").post(books::replace))
                .service(web::resource("/themes").get(redemptions::themes))
                .service(web::resource("/vouchers/check").post(redemptions::check))
                .service(
                    web::resource("/redemptions")
                        .get(redemptions::list)
                        .post(redemptions::redeem),
                )
                .service(
                    web::resource("/log/alarms")
                        .get(log::alarms)
                        .post(log::raise_alarm),
                )
                .service(web::resource("/redemptions/{id}/cancel").post(redemptions::cancel))
                .service(web::resource("/redemptions/{id}/reverse").post(redemptions::reverse))
                .service(web::resource("/audit-events").get(redemptions::audit_trail))
                .service(
                    web::resource("/redemptions/batch")
                        .app_data(web::PayloadConfig::new(json::BATCH_BODY_LIMIT))
                        .post(offline::batch),
                )
                // After `/redemptions/batch`: a resource matched by path
                // answers 405 to another method rather than falling through.
                .service(web::resource("/redemptions/{id}").get(redemptions::get))
                .service(web::resource("/sync").get(offline::sync))
                .service(
                    web::resource("/devices")
                        .get(offline::list_devices)
                        .post(offline::register),
                )
                .service(web::resource("/devices/{id}/revoke").post(offline::revoke_device))
                .service(web::resource("/conflicts").get(offline::conflicts))
                .service(web::resource("/conflicts/{id}/resolve").post(offline::resolve))
                .service(web::resource("/programs/{id}/statements").post(statements::close))
                .service(web::resource("/statements").get(statements::list))
                .service(web::resource("/statements/{id}").get(statements::get))
                .service(web::resource("/programs/{id}/statement").get(statements::live))
                .service(web::resource("/statements/{id}/csv").get(statements::csv))
                .service(web::resource("/statements/{id}/pdf").get(statements::pdf))
                .service(web::resource("/statements/{id}/payments").post(statements::pay))
                .service(
                    web::resource("/organisations/{id}/invoicing")
                        .get(invoices::venue_details)
                        .put(invoices::save_venue_details),
                )
                .service(
                    web::resource("/programs/{id}/invoicing")
                        .get(invoices::buyer_details)
                        .put(invoices::save_buyer_details),
                )
                .service(web::resource("/statements/{id}/invoices").get(invoices::list))
                .service(
                    web::resource("/statements/{id}/invoices/{venue_organisation_id}")
                        .get(invoices::invoice_pdf),
                )
                .service(
                    web::resource("/statements/{id}/invoices/{venue_organisation_id}/invoice.xml")
                        .get(invoices::invoice_xml),
                )
                .service(
                    web::resource("/statements/{id}/credit-notes/{venue_organisation_id}")
                        .get(invoices::credit_note_pdf),
                )
                .service(
                    web::resource(
                        "/statements/{id}/credit-notes/{venue_organisation_id}/credit-note.xml",
                    )
                    .get(invoices::credit_note_xml),
                ),
        )
        .service(web::redirect("/api/docs", "/api/docs/"))
        .service(
            SwaggerUi::new("/api/docs/{_:.*}").url("/api/openapi.json", openapi::ApiDoc::openapi()),
        );
    if metrics == MetricsRoute::LoopbackOnly {
        cfg.route("/metrics", web::get().to(metrics::loopback_only));
    }
}

/// Anything no route matched: the "not found" page for a browser, else a problem.
pub async fn no_route(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    if crate::web::errors::wants_html(&req) {
        return crate::web::errors::PageError::NotFound.error_response();
    }
    ApiError::not_found(format!("No resource at {}.", req.path())).error_response()
}

/// Refuses a declared body over the limit before anything reads it.
pub async fn body_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limit = if req.path() == "/api/v1/redemptions/batch" {
        json::BATCH_BODY_LIMIT
    } else {
        json::BODY_LIMIT
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        let problem = ApiError::new(
            ProblemType::PayloadTooLarge,
            format!(
                "The request body is larger than this endpoint accepts ({} KiB).",
                limit / 1024
            ),
        );
        return Ok(req
            .into_response(problem.error_response())
            .map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Turns every error answer that is not yet a problem (a wrong method, an
/// extractor's refusal, …) into problem+json, so clients see one error format;
/// a browser outside the API gets the matching HTML page instead.
pub fn ensure_problem<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // Problems, and the error pages of the web pages, are already what they should be.
    let is_final = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()) || v.as_bytes().starts_with(b"text/html")
    });
    if is_final {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    if crate::web::errors::wants_html(res.request()) {
        let page = crate::web::errors::PageError::page_for_status(status);
        let (req, _) = res.into_parts();
        let res = ServiceResponse::new(req, page.map_into_boxed_body());
        return Ok(ErrorHandlerResponse::Response(res.map_into_right_body()));
    }
    let kind = ProblemType::for_status(status);
    let detail = match kind {
        ProblemType::MethodNotAllowed => format!(
            "{} is not allowed on {}.",
            res.request().method(),
            res.request().path()
        ),
        ProblemType::NotFound => format!("No resource at {}.", res.request().path()),
        _ => res
            .response()
            .error()
            .map(|e| e.to_string())
            .filter(|_| status.is_client_error())
            .unwrap_or_else(|| kind.title().to_owned()),
    };
    let mut problem = ApiError::new(kind, detail).error_response();
    // Keep the status the framework chose, even where our type maps it elsewhere.
    *problem.status_mut() = status;
    // RFC 9110: a 405 names the methods the resource takes.
    let allowed = (kind == ProblemType::MethodNotAllowed)
        .then(|| res.request().match_pattern())
        .flatten()
        .and_then(|pattern| openapi::allowed_methods(&pattern));
    if let Some(methods) = allowed {
        problem
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(methods));
    }
    let (req, _) = res.into_parts();
    let res = ServiceResponse::new(req, problem.map_into_boxed_body());
    Ok(ErrorHandlerResponse::Response(res.map_into_right_body()))
}
