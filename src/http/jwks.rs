//! `GET /.well-known/jwks.json`: the public keys that verify vouchers and statements.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};

use super::problem::ApiError;
use crate::keys::jwks::{self, Jwks};
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
    let keys = state.keys.all_keys().await?;
    let set = jwks::published(&keys, |_| true);
    Ok(HttpResponse::Ok()
        // Scanners may cache it briefly; withdrawals also reach them through /api/v1/sync.
        .insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(300)]))
        .json(set))
}
