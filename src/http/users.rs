//! User accounts (operator only).

use actix_web::{web, HttpResponse};

use super::auth::Caller;
use super::json::Body;
use super::problem::ApiError;
use crate::auth::Role;
use crate::domain::accounts::{self, NewUser, User};
use crate::state::AppState;

/// Creates a user in an organisation; the organisation's kind is their role.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "accounts",
    request_body = NewUser,
    responses(
        (status = 201, body = User),
        (status = 409, description = "`conflict`: the email is taken"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<NewUser>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator])?;
    let new = body.parse()?;
    let mut conn = state.pool.get().await?;
    let user = accounts::create(&mut conn, &state.passwords, new).await?;
    Ok(HttpResponse::Created().json(user))
}

/// Deactivates a user; their tokens stop working at once.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/deactivate",
    tag = "accounts",
    responses((status = 200, body = User)),
    security(("bearer" = []))
)]
pub async fn deactivate(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator])?;
    let mut conn = state.pool.get().await?;
    let user = accounts::deactivate(&mut conn, *id).await?;
    state.callers.forget_user(user.id);
    tracing::info!(
        user = user.id,
        operator = caller.account.user.id,
        "user deactivated"
    );
    Ok(HttpResponse::Ok().json(user))
}
