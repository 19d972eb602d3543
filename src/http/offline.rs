//! Offline scanners: devices, sync, batches of scans, and conflicts.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::json::Body;
use super::pagination::{Page, PageParams};
use super::problem::ApiError;
use super::query::Query;
use crate::auth::Role;
use crate::domain::batch::{self, BatchAnswer, BatchRequest, Conflict, Resolution};
use crate::domain::devices::{self, Device, NewDevice, RegisteredDevice, Scanner};
use crate::domain::sync::{self, SyncAnswer};
use crate::state::AppState;

/// Registers a scanner device for the caller's venue; its token is shown once.
#[utoipa::path(post, path = "/api/v1/devices", tag = "offline", request_body = NewDevice,
    responses((status = 201, body = RegisteredDevice)), security(("bearer" = [])))]
pub async fn register(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<NewDevice>,
) -> Result<HttpResponse, ApiError> {
    let venue = caller.require(&[Role::Venue])?;
    let new = body.parse()?;
    let mut conn = state.pool.get().await?;
    let device = devices::register(&mut conn, venue.organisation.id, venue.user.id, new).await?;
    Ok(HttpResponse::Created().json(device))
}

/// The venue's devices (the operator sees every venue's).
#[utoipa::path(get, path = "/api/v1/devices", tag = "offline", params(PageParams),
    responses((status = 200, body = Page<Device>)), security(("bearer" = [])))]
pub async fn list_devices(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Venue, Role::Operator])?;
    let page = params.request()?;
    let mut conn = state.pool.get().await?;
    let rows = devices::list(
        &mut conn,
        caller.role(),
        caller.organisation_id(),
        page.after,
        page.fetch(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page, |d: &Device| d.id)))
}

/// Revokes a device: its token stops working at once (the venue or the operator).
#[utoipa::path(post, path = "/api/v1/devices/{id}/revoke", tag = "offline",
    responses((status = 200, body = Device)), security(("bearer" = [])))]
pub async fn revoke_device(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Venue, Role::Operator])?;
    let mut conn = state.pool.get().await?;
    let device = devices::revoke(&mut conn, *id, caller.role(), caller.organisation_id()).await?;
    state.callers.forget_device(device.id);
    Ok(HttpResponse::Ok().json(device))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SyncParams {
    /// The `cursor` of the previous sync; empty or missing: from the start.
    #[param(pattern = r"^ *([0-9]{1,18})? *$")]
    pub since: Option<String>,
}

/// What changed for the venue's programmes since the cursor, so a scanner
/// can refuse offline what the server would refuse.
#[utoipa::path(get, path = "/api/v1/sync", tag = "offline", params(SyncParams),
    responses((status = 200, body = SyncAnswer)), security(("bearer" = [])))]
pub async fn sync(
    state: web::Data<AppState>,
    scanner: Scanner,
    params: Query<SyncParams>,
) -> Result<HttpResponse, ApiError> {
    let since = match params
        .since
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .ok()
                .filter(|v| *v >= 0 && s.len() <= 18)
                .ok_or_else(|| {
                    ApiError::invalid_field("since", "this cursor was not given by the API")
                })?,
        ),
    };
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(sync::changes(&mut conn, &scanner.venue, since).await?))
}

/// Uploads offline scans (at most 500): each one is judged at its scan time.
#[utoipa::path(post, path = "/api/v1/redemptions/batch", tag = "offline", request_body = BatchRequest,
    responses((status = 200, body = BatchAnswer)), security(("bearer" = [])))]
pub async fn batch(
    state: web::Data<AppState>,
    scanner: Scanner,
    body: Body<BatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.parse()?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(batch::process(&mut conn, &state.keys, &scanner, request).await?))
}

/// The offline conflicts of the funder's programmes.
#[utoipa::path(get, path = "/api/v1/conflicts", tag = "offline", params(PageParams),
    responses((status = 200, body = Page<Conflict>)), security(("bearer" = [])))]
pub async fn conflicts(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let funder = caller.require(&[Role::Funder])?;
    let page = params.request()?;
    let mut conn = state.pool.get().await?;
    let rows =
        batch::list_conflicts(&mut conn, funder.organisation.id, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page, |c: &Conflict| c.id)))
}

/// Decides a conflict: `pay` (at most once) or `reject`, with a reason.
#[utoipa::path(post, path = "/api/v1/conflicts/{id}/resolve", tag = "offline", request_body = Resolution,
    responses((status = 200, body = Conflict),
        (status = 409, description = "`conflict`: decided already")),
    security(("bearer" = [])))]
pub async fn resolve(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<Resolution>,
) -> Result<HttpResponse, ApiError> {
    let funder = caller.require(&[Role::Funder])?;
    let mut conn = state.pool.get().await?;
    let conflict = batch::find_conflict(&mut conn, *id, funder.organisation.id).await?;
    let resolution = body.parse()?;
    Ok(HttpResponse::Ok()
        .json(batch::resolve(&mut conn, &conflict, funder.user.id, resolution).await?))
}
