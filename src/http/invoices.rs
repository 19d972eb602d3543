//! Invoices: the details a venue and a programme's buyer record, and the
//! Factur-X invoice and credit note of each venue's extract of a statement.

use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::auth::Caller;
use super::json::Body;
use super::pagination::Page;
use super::problem::ApiError;
use super::statements::attachment;
use crate::auth::Role;
use crate::db::schema::statement_extracts;
use crate::domain::invoices::details::{
    self, BuyerDetails, BuyerDetailsRequest, VenueDetails, VenueDetailsRequest,
};
use crate::domain::invoices::document::Kind;
use crate::domain::invoices::{self, IssuedSummary};
use crate::domain::{organisations, programs, statements};
use crate::render::invoice_pdf;
use crate::state::AppState;

/// A venue's invoicing details: the venue itself, or the operator.
#[utoipa::path(get, path = "/api/v1/organisations/{id}/invoicing", tag = "invoices",
    responses((status = 200, body = VenueDetails),
        (status = 404, description = "`not-found`: no venue the caller sees has this id, or it has recorded no invoicing details yet")),
    security(("bearer" = [])))]
pub async fn venue_details(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Venue, Role::Operator])?;
    let mut conn = state.pool.get().await?;
    own_venue(&mut conn, &caller, *id).await?;
    let stored = details::venue_details(&mut conn, *id)
        .await?
        .ok_or_else(|| {
            let missing = [
                "legal_name",
                "address",
                "postcode",
                "city",
                "vat_regime",
                "iban",
            ];
            ApiError::not_found(format!(
                "Venue {} has recorded no invoicing details yet: {}.",
                *id,
                missing.join(", ")
            ))
        })?;
    Ok(HttpResponse::Ok().json(stored))
}

/// Records or replaces the venue's invoicing details (the venue only).
#[utoipa::path(put, path = "/api/v1/organisations/{id}/invoicing", tag = "invoices",
    request_body = VenueDetailsRequest, responses((status = 200, body = VenueDetails),
        (status = 404, description = "`not-found`: the caller is not this venue")),
    security(("bearer" = [])))]
pub async fn save_venue_details(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<VenueDetailsRequest>,
) -> Result<HttpResponse, ApiError> {
    let venue = caller.require(&[Role::Venue])?;
    let mut conn = state.pool.get().await?;
    own_venue(&mut conn, &caller, *id).await?;
    let request = body.parse()?;
    let saved = details::save_venue_details(&mut conn, *id, venue.user.id, request).await?;
    Ok(HttpResponse::Ok().json(saved))
}

/// A venue user reaches its own organisation only; the operator any venue.
async fn own_venue(
    conn: &mut crate::db::Connection,
    caller: &Caller,
    id: i64,
) -> Result<(), ApiError> {
    let not_found = || ApiError::not_found(format!("No venue {id}."));
    match caller.role() {
        Role::Venue if caller.organisation_id() == id => Ok(()),
        Role::Operator => {
            let org = organisations::find(conn, id).await?;
            (org.role() == Role::Venue)
                .then_some(())
                .ok_or_else(not_found)
        }
        _ => Err(not_found()),
    }
}

/// What a programme's invoices say of the public buyer (its funder).
#[utoipa::path(get, path = "/api/v1/programs/{id}/invoicing", tag = "invoices",
    responses((status = 200, body = BuyerDetails)), security(("bearer" = [])))]
pub async fn buyer_details(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let funder = caller.require(&[Role::Funder])?;
    let mut conn = state.pool.get().await?;
    let program = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
    Ok(HttpResponse::Ok().json(details::buyer_details(&mut conn, &program).await?))
}

/// Records the buyer's SIRET, Chorus Pro code service and engagement number.
#[utoipa::path(put, path = "/api/v1/programs/{id}/invoicing", tag = "invoices",
    request_body = BuyerDetailsRequest, responses((status = 200, body = BuyerDetails)), security(("bearer" = [])))]
pub async fn save_buyer_details(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i32>,
    body: Body<BuyerDetailsRequest>,
) -> Result<HttpResponse, ApiError> {
    let funder = caller.require(&[Role::Funder])?;
    let mut conn = state.pool.get().await?;
    let program = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
    let request = body.parse()?;
    let saved = details::save_buyer_details(&mut conn, &program, funder.user.id, request).await?;
    Ok(HttpResponse::Ok().json(saved))
}

/// The invoices and credit notes issued on a statement: all for its funder,
/// its own for a venue, each with its payment once recorded.
#[utoipa::path(get, path = "/api/v1/statements/{id}/invoices", tag = "invoices",
    responses((status = 200, body = Page<IssuedSummary>)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Funder, Role::Venue])?;
    let mut conn = state.pool.get().await?;
    let scope =
        statements::viewer_scope(&mut conn, *id, caller.role(), caller.organisation_id()).await?;
    let items = invoices::list(&mut conn, *id, scope).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: None,
    }))
}

/// The venue's invoice for its extract: a Factur-X PDF (PDF/A-3b, EN 16931),
/// issued on the first request. 409 while the venue lacks invoicing details.
#[utoipa::path(get, path = "/api/v1/statements/{id}/invoices/{venue_organisation_id}", tag = "invoices",
    responses((status = 200, content_type = "application/pdf", description = "The Factur-X invoice"),
        (status = 404, description = "`not-found`: no such statement, the venue has no extract on it, or its extract calls for no invoice"),
        (status = 409, description = "`conflict`: the venue has not recorded the invoicing details an invoice needs; `missing` names them")),
    security(("bearer" = [])))]
pub async fn invoice_pdf(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    pdf(&state, &caller, *path, Kind::Invoice).await
}

/// The invoice's CII XML alone, as embedded in its PDF.
#[utoipa::path(get, path = "/api/v1/statements/{id}/invoices/{venue_organisation_id}/invoice.xml", tag = "invoices",
    responses((status = 200, content_type = "application/xml", description = "The CII XML (Factur-X EN 16931)"),
        (status = 404, description = "`not-found`: no such statement, the venue has no extract on it, or its extract calls for no such document"),
        (status = 409, description = "`conflict`: the venue has not recorded the invoicing details an invoice needs; `missing` names them")),
    security(("bearer" = [])))]
pub async fn invoice_xml(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    xml(&state, &caller, *path, Kind::Invoice).await
}

/// The venue's credit note for the workshops its extract takes back
/// (reversals of workshops paid on earlier statements), as Factur-X PDF.
#[utoipa::path(get, path = "/api/v1/statements/{id}/credit-notes/{venue_organisation_id}", tag = "invoices",
    responses((status = 200, content_type = "application/pdf", description = "The Factur-X credit note"),
        (status = 404, description = "`not-found`: no such statement, the venue has no extract on it, or its extract takes nothing back"),
        (status = 409, description = "`conflict`: the venue has not recorded the invoicing details a credit note needs; `missing` names them")),
    security(("bearer" = [])))]
pub async fn credit_note_pdf(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    pdf(&state, &caller, *path, Kind::CreditNote).await
}

/// The credit note's CII XML alone.
#[utoipa::path(get, path = "/api/v1/statements/{id}/credit-notes/{venue_organisation_id}/credit-note.xml", tag = "invoices",
    responses((status = 200, content_type = "application/xml", description = "The CII XML (Factur-X EN 16931)"),
        (status = 404, description = "`not-found`: no such statement, the venue has no extract on it, or its extract calls for no such document"),
        (status = 409, description = "`conflict`: the venue has not recorded the invoicing details an invoice needs; `missing` names them")),
    security(("bearer" = [])))]
pub async fn credit_note_xml(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    xml(&state, &caller, *path, Kind::CreditNote).await
}

async fn pdf(
    state: &AppState,
    caller: &Caller,
    (id, venue): (i64, i64),
    kind: Kind,
) -> Result<HttpResponse, ApiError> {
    let issued = issued(state, caller, id, venue, kind).await?;
    let bytes = invoice_pdf::render(&issued.invoice, &issued.xml)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(attachment(
        "application/pdf",
        &format!("{}.pdf", invoices::file_stem(&issued.invoice)),
        bytes,
    ))
}

async fn xml(
    state: &AppState,
    caller: &Caller,
    (id, venue): (i64, i64),
    kind: Kind,
) -> Result<HttpResponse, ApiError> {
    let issued = issued(state, caller, id, venue, kind).await?;
    Ok(attachment(
        "application/xml",
        &format!("{}.xml", invoices::file_stem(&issued.invoice)),
        issued.xml,
    ))
}

/// The document, once the caller is known to see `venue`'s extract of
/// statement `id`: the venue itself, or the programme's funder.
async fn issued(
    state: &AppState,
    caller: &Caller,
    id: i64,
    venue: i64,
    kind: Kind,
) -> Result<invoices::Issued, ApiError> {
    caller.require(&[Role::Funder, Role::Venue])?;
    let mut conn = state.pool.get().await?;
    let scope =
        statements::viewer_scope(&mut conn, id, caller.role(), caller.organisation_id()).await?;
    let not_found =
        || ApiError::not_found(format!("Venue {venue} has no extract on statement {id}."));
    match scope {
        Some(own) if own != venue => return Err(not_found()),
        Some(_) => {}
        None => {
            let on_it: bool = diesel::select(diesel::dsl::exists(
                statement_extracts::table.find((id, venue)),
            ))
            .get_result(&mut conn)
            .await?;
            if !on_it {
                return Err(not_found());
            }
        }
    }
    invoices::get_or_issue(&mut conn, id, venue, kind).await
}
