//! Signed statements: funders close periods; venues download their extract.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::json::Body;
use super::problem::ApiError;
use crate::auth::Role;
use crate::domain::programs;
use crate::domain::statements::{self, CloseRequest, Summary};
use crate::keys::Purpose;
use crate::state::AppState;

/// Closes a period: every payable redemption up to `period_end` not yet on a
/// statement lands on this one, signed whole and per venue.
#[utoipa::path(post, path = "/api/v1/programs/{id}/statements", tag = "statements", request_body = CloseRequest,
    responses((status = 201, body = Summary)), security(("bearer" = [])))]
pub async fn close(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i32>,
    body: Body<CloseRequest>,
) -> Result<HttpResponse, ApiError> {
    let funder = caller.require(&[Role::Funder])?;
    let mut conn = state.pool.get().await?;
    let program = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
    let request = body.parse()?;
    let signer = state.keys.signer(Purpose::Statement).await?;
    let summary = statements::close(
        &mut conn,
        &program,
        funder.user.id,
        signer,
        request.period_end,
    )
    .await?;
    Ok(HttpResponse::Created().json(summary))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    pub program_id: Option<i32>,
}

/// The funder's statements, or those a venue has an extract on.
#[utoipa::path(get, path = "/api/v1/statements", tag = "statements", params(ListParams),
    responses((status = 200, body = [Summary])), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Funder, Role::Venue])?;
    let mut conn = state.pool.get().await?;
    let items = statements::list(
        &mut conn,
        caller.role(),
        caller.organisation_id(),
        params.program_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items, "next_cursor": null})))
}

/// One statement: the whole for its funder, a venue's own extract for a venue.
#[utoipa::path(get, path = "/api/v1/statements/{id}", tag = "statements",
    responses((status = 200, body = Summary)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Funder, Role::Venue])?;
    let mut conn = state.pool.get().await?;
    let scope =
        statements::viewer_scope(&mut conn, *id, caller.role(), caller.organisation_id()).await?;
    Ok(HttpResponse::Ok().json(statements::summary(&mut conn, *id, scope).await?))
}

/// The signed CSV bytes: the whole for its funder, the extract for a venue.
#[utoipa::path(get, path = "/api/v1/statements/{id}/csv", tag = "statements",
    responses((status = 200, content_type = "text/csv", description = "The signed CSV")), security(("bearer" = [])))]
pub async fn csv(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Funder, Role::Venue])?;
    let mut conn = state.pool.get().await?;
    let scope =
        statements::viewer_scope(&mut conn, *id, caller.role(), caller.organisation_id()).await?;
    let bytes = statements::csv_bytes(&mut conn, *id, scope).await?;
    let name = match scope {
        None => format!("releve-{id}.csv"),
        Some(venue) => format!("releve-{id}-lieu-{venue}.csv"),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .body(bytes))
}
