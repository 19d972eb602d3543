//! Venues check and redeem vouchers; funders reverse; the operator reads the audit trail.

use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::json::{self, Body};
use super::pagination::{Page, PageParams};
use super::problem::ApiError;
use super::query::Query;
use crate::auth::Role;
use crate::domain::devices::Scanner;
use crate::domain::idempotency;
use crate::domain::redemptions::{
    self, AuditEvent, CheckAnswer, Idempotency, Receipt, RedeemRequest, Redemption,
};
use crate::domain::themes::{Theme, THEMES};
use crate::domain::Reason;
use crate::state::AppState;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The workshop themes, with their French labels.
#[utoipa::path(get, path = "/api/v1/themes", tag = "redemptions",
    responses((status = 200, body = [Theme])), security(("bearer" = [])))]
pub async fn themes(caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(&crate::auth::Role::ALL)?;
    Ok(HttpResponse::Ok().json(THEMES))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The QR text (`PN1:…`) or the typed code.
    pub code: String,
}

/// Says whether the voucher can be redeemed here now, and why not; stores nothing.
#[utoipa::path(post, path = "/api/v1/vouchers/check", tag = "redemptions", request_body = CheckRequest,
    responses((status = 200, body = CheckAnswer),
        (status = 404, description = "`not-found`: a typed code that matches no voucher"),
        (status = 422, description = "`malformed-code`, `invalid-signature`, `unknown-key`: not a genuine voucher; `validation-error`: the body")),
    security(("bearer" = [])))]
pub async fn check(
    state: web::Data<AppState>,
    scanner: Scanner,
    body: Body<CheckRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.parse()?;
    let code = redemptions::read_code(&state.keys, &request.code).await?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(redemptions::check(&mut conn, &scanner, &code).await?))
}

/// Redeems a voucher: records the workshop, exactly once. Send an
/// `Idempotency-Key` to retry safely.
#[utoipa::path(post, path = "/api/v1/redemptions", tag = "redemptions", request_body = RedeemRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays within 24 h return the first answer", min_length = 1, max_length = 255, pattern = r"^[!-~]+$")),
    responses((status = 201, body = Receipt),
        (status = 403, description = "`venue-not-accredited`, `venue-out-of-territory`; `forbidden`: not a venue"),
        (status = 404, description = "`not-found`: a typed code that matches no voucher"),
        (status = 409, description = "`already-redeemed`, with `redeemed_at` (and `redemption_id` for the venue that made it)"),
        (status = 410, description = "`voucher-expired`, `voucher-revoked`, `program-closed`"),
        (status = 422, description = "`malformed-code`, `invalid-signature`, `unknown-key`; `idempotency-conflict`: this key was used with another body; `validation-error`")),
    security(("bearer" = [])))]
pub async fn redeem(
    req: HttpRequest,
    state: web::Data<AppState>,
    scanner: Scanner,
    body: Body<RedeemRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_bytes()?;
    let request: RedeemRequest = json::parse(&body)?;
    let key = match req.headers().get(IDEMPOTENCY_KEY) {
        Some(value) => {
            let key = value
                .to_str()
                .map_err(|_| ApiError::invalid_field("Idempotency-Key", "printable ASCII only"))?;
            idempotency::check_key(key)?;
            Some(key.to_owned())
        }
        None => None,
    };
    redemptions::check_workshop(&request.workshop)?;
    // Pure: read and verify the code before any database access.
    let code = redemptions::read_code(&state.keys, &request.code).await?;
    let idem = key.as_deref().map(|key| Idempotency {
        key,
        hash: idempotency::request_hash("POST", req.path(), &body),
    });
    let answer = redemptions::redeem(
        &state.pool,
        state.group_commit.as_ref(),
        &scanner,
        &code,
        &request.workshop,
        idem.as_ref(),
    )
    .await?;
    let status = StatusCode::from_u16(answer.recorded.status).unwrap_or(StatusCode::CREATED);
    let mut response = HttpResponse::build(status);
    response.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
    if answer.replayed {
        response.insert_header((IDEMPOTENT_REPLAYED, HeaderValue::from_static("true")));
    }
    Ok(response.body(answer.recorded.body))
}

/// A venue's own redemptions, or those of a funder's programmes.
#[utoipa::path(get, path = "/api/v1/redemptions", tag = "redemptions", params(PageParams),
    responses((status = 200, body = Page<Redemption>)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Venue, Role::Funder])?;
    let page = params.request()?;
    let mut conn = state.reader().await?;
    let rows = redemptions::list(
        &mut conn,
        caller.role(),
        caller.organisation_id(),
        page.after,
        page.fetch(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page, |r: &Redemption| r.id)))
}

/// A redemption with its entries in the transparency log.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct LoggedRedemption {
    #[serde(flatten)]
    pub redemption: Redemption,
    /// The log index of its `redeemed` (or `conflict_paid`) entry; `null`
    /// for the few seconds before the sequencer gives it one.
    pub log_index: Option<i64>,
    /// Every entry of it in the log (its redemption, then its cancellation
    /// or reversal), in order.
    pub log: Vec<crate::log::store::LoggedEvent>,
}

/// One redemption: the venue's own, or one of the funder's programmes.
#[utoipa::path(get, path = "/api/v1/redemptions/{id}", tag = "redemptions",
    responses((status = 200, body = LoggedRedemption)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let account = caller.require(&[Role::Venue, Role::Funder])?;
    let org = account.organisation.id;
    let (mut conn, redemption) = super::on_reader(&state, async |conn| match account.role() {
        Role::Venue => redemptions::find_for_venue(conn, *id, org).await,
        _ => redemptions::find_for_funder(conn, *id, org).await,
    })
    .await?;
    let log = crate::log::store::redemption_entries(&mut conn, redemption.id).await?;
    let log_index = log
        .iter()
        .find(|e| e.kind == "redeemed" || e.kind == "conflict_paid")
        .and_then(|e| e.log_index);
    Ok(HttpResponse::Ok().json(LoggedRedemption {
        redemption,
        log_index,
        log,
    }))
}

/// The venue that redeemed takes it back, within the cancel window and while
/// on no closed statement: the voucher is usable again.
#[utoipa::path(post, path = "/api/v1/redemptions/{id}/cancel", tag = "redemptions", request_body = Reason,
    responses((status = 200, body = Redemption),
        (status = 409, description = "`not-cancellable`: past the cancel window, on a closed statement, or cancelled or reversed already")),
    security(("bearer" = [])))]
pub async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<Reason>,
) -> Result<HttpResponse, ApiError> {
    let venue = caller.require(&[Role::Venue])?;
    let mut conn = state.pool.get().await?;
    let redemption = redemptions::find_for_venue(&mut conn, *id, venue.organisation.id).await?;
    let reason = body.parse()?.reason;
    let window = chrono::Duration::hours(state.config.cancel_window_hours);
    let cancelled = redemptions::cancel(&mut conn, venue, &redemption, &reason, window).await?;
    Ok(HttpResponse::Ok().json(cancelled))
}

/// The programme's funder disputes a redemption, at any time.
#[utoipa::path(post, path = "/api/v1/redemptions/{id}/reverse", tag = "redemptions", request_body = Reason,
    responses((status = 200, body = Redemption),
        (status = 409, description = "`conflict`: cancelled or reversed already")),
    security(("bearer" = [])))]
pub async fn reverse(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<Reason>,
) -> Result<HttpResponse, ApiError> {
    let funder = caller.require(&[Role::Funder])?;
    let mut conn = state.pool.get().await?;
    let redemption = redemptions::find_for_funder(&mut conn, *id, funder.organisation.id).await?;
    let reason = body.parse()?.reason;
    Ok(HttpResponse::Ok()
        .json(redemptions::reverse(&mut conn, funder, &redemption, &reason).await?))
}

/// The append-only trail of redemptions, cancellations and reversals (operator).
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "redemptions", params(PageParams),
    responses((status = 200, body = Page<AuditEvent>)), security(("bearer" = [])))]
pub async fn audit_trail(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator])?;
    let page = params.request()?;
    let mut conn = state.reader().await?;
    let rows = redemptions::audit_trail(&mut conn, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page, |e: &AuditEvent| e.id)))
}
