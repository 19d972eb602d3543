//! The published keys (`GET /.well-known/jwks.json`) and their rotation.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};

use super::auth::Caller;
use super::json::Body;
use super::problem::ApiError;
use crate::auth::Role;
use crate::keys::jwks::Jwks;
use crate::keys::Purpose;
use crate::state::AppState;

/// The JWK Set: voucher keys while their vouchers can still be redeemed,
/// statement keys for ever. Withdrawn keys are absent.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "keys",
    responses((status = 200, body = Jwks))
)]
pub async fn jwks(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let set = state.keys.published().await?;
    Ok(HttpResponse::Ok()
        // Scanners may cache it briefly; withdrawals also reach them through /api/v1/sync.
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(300),
        ]))
        .json(set))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// `voucher`, `statement` or `log` (the transparency log's checkpoints).
    #[schema(schema_with = crate::http::openapi::rotated_purposes)]
    pub purpose: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RotateResponse {
    /// The new active kid, in decimal as in the JWK Set.
    pub kid: String,
}

/// Retires the active key of a purpose (it still verifies) and makes a new one active.
#[utoipa::path(
    post,
    path = "/api/v1/keys/rotate",
    tag = "keys",
    request_body = RotateRequest,
    responses(
        (status = 201, body = RotateResponse),
        (status = 409, description = "`conflict`: all 256 kids are taken (by active keys, keys that signed a voucher or a statement, withdrawn keys)"),
    ),
    security(("bearer" = []))
)]
pub async fn rotate(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<RotateRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator])?;
    let purpose = match body.parse()?.purpose.as_str() {
        "voucher" => Purpose::Voucher,
        "statement" => Purpose::Statement,
        "log" => Purpose::Log,
        _ => {
            return Err(ApiError::invalid_field(
                "purpose",
                "voucher, statement or log",
            ))
        }
    };
    let kid = state.keys.rotate(purpose).await?;
    tracing::info!(%purpose, kid, operator = caller.account.user.id, "key rotated");
    Ok(HttpResponse::Created().json(RotateResponse {
        kid: kid.to_string(),
    }))
}
