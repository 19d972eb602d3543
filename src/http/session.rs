//! Logging in (`POST /api/v1/auth/token`) and who am I (`GET /api/v1/me`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::json::Json;
use super::problem::ApiError;
use crate::auth::{token, Role};
use crate::domain::accounts;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 1024)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

/// Exchanges an email and password for a short-lived bearer token.
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    tag = "accounts",
    request_body = TokenRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "`unauthorized`: wrong email or password"),
        (status = 429, description = "`rate-limited`: too many failures for this account or this address lately; wait `Retry-After` seconds"),
        (status = 503, description = "`unavailable`: too many logins at once, or the database cannot be reached; try again after `Retry-After` seconds"),
    )
)]
pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let Json(login) = body;
    let client = super::client::address(&req, &state.config.trusted_proxies)
        .ok_or_else(|| ApiError::internal("a request without a peer address"))?;
    let account = accounts::authenticate(
        &state.pool,
        &state.passwords,
        &state.throttle,
        &login.email,
        login.password,
        client,
    )
    .await?;
    let (access_token, expires_in) = token::issue(
        &state.keys,
        account.user.id,
        account.organisation.id,
        account.role(),
        state.config.token_ttl_secs,
    )
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: MeUser,
    pub organisation: MeOrganisation,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeUser {
    pub id: i64,
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeOrganisation {
    pub id: i64,
    pub kind: Role,
    pub name: String,
}

/// The calling user and their organisation.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", responses((status = 200, body = Me)), security(("bearer" = [])))]
pub async fn me(caller: Caller) -> Result<HttpResponse, ApiError> {
    let account = caller.require(&Role::ALL)?;
    Ok(HttpResponse::Ok().json(Me {
        user: MeUser {
            id: account.user.id,
            email: account.user.email.clone(),
        },
        organisation: MeOrganisation {
            id: account.organisation.id,
            kind: account.role(),
            name: account.organisation.name.clone(),
        },
    }))
}
