//! Programmes and allocations (funders; issuers read the programmes they issue from).

use actix_web::{web, HttpResponse};

use super::auth::Caller;
use super::json::Body;
use super::pagination::{Page, PageParams};
use super::problem::ApiError;
use super::query::Query;
use crate::auth::Role;
use crate::domain::programs::{self, Allocation, NewAllocation, NewProgram, Program};
use crate::domain::stats::{self, Stats};
use crate::state::AppState;

/// Creates a programme with its budget and territory (funders).
#[utoipa::path(post, path = "/api/v1/programs", tag = "programs", request_body = NewProgram,
    responses((status = 201, body = Program)), security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<NewProgram>,
) -> Result<HttpResponse, ApiError> {
    let funder = caller.require(&[Role::Funder])?;
    let new = body.parse()?;
    let mut conn = state.pool.get().await?;
    let program = programs::create(&mut conn, funder.organisation.id, new).await?;
    Ok(HttpResponse::Created().json(program))
}

/// The caller's programmes: those a funder runs, those an issuer has an allocation in.
#[utoipa::path(get, path = "/api/v1/programs", tag = "programs", params(PageParams),
    responses((status = 200, body = Page<Program>)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Funder, Role::Issuer])?;
    let page = params.request()?;
    let mut conn = state.reader().await?;
    let rows = programs::list(
        &mut conn,
        caller.role(),
        caller.organisation_id(),
        page.after,
        page.fetch(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page, |p: &Program| i64::from(p.id))))
}

/// One programme with its committed and redeemed amounts.
#[utoipa::path(get, path = "/api/v1/programs/{id}", tag = "programs",
    responses((status = 200, body = Program)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Funder, Role::Issuer])?;
    let mut conn = state.pool.get().await?;
    let row =
        programs::find_visible(&mut conn, *id, caller.role(), caller.organisation_id()).await?;
    Ok(HttpResponse::Ok().json(programs::present(&mut conn, row).await?))
}

/// Gives an issuer vouchers of the programme, within its budget (its funder).
#[utoipa::path(post, path = "/api/v1/programs/{id}/allocations", tag = "programs", request_body = NewAllocation,
    responses((status = 201, body = Allocation),
        (status = 409, description = "`budget-exceeded`: allocations times the face value would pass the budget"),
        (status = 410, description = "`program-closed`")),
    security(("bearer" = [])))]
pub async fn allocate(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i32>,
    body: Body<NewAllocation>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Funder])?;
    let mut conn = state.pool.get().await?;
    let program = programs::find_own(&mut conn, *id, caller.organisation_id()).await?;
    let new = body.parse()?;
    let allocation = programs::allocate(&mut conn, &program, new).await?;
    Ok(HttpResponse::Created().json(allocation))
}

/// Closes the programme: no more books, and its vouchers are refused (its funder).
#[utoipa::path(post, path = "/api/v1/programs/{id}/close", tag = "programs",
    responses((status = 200, body = Program),
        (status = 409, description = "`conflict`: the programme is closed already")),
    security(("bearer" = [])))]
pub async fn close(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Funder])?;
    let mut conn = state.pool.get().await?;
    let program = programs::find_own(&mut conn, *id, caller.organisation_id()).await?;
    Ok(HttpResponse::Ok().json(programs::close(&mut conn, &program).await?))
}

/// The programme's usage: vouchers by state, and by issuer, venue, theme,
/// département and month (its funder).
#[utoipa::path(get, path = "/api/v1/programs/{id}/stats", tag = "programs",
    responses((status = 200, body = Stats)), security(("bearer" = [])))]
pub async fn stats(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let funder = caller.require(&[Role::Funder])?;
    let org = funder.organisation.id;
    let (mut conn, program) = super::on_reader(&state, async |conn| {
        programs::find_own(conn, *id, org).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(stats::of_program(&mut conn, &program).await?))
}
