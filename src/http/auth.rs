//! The caller of a request: a valid login token of an active user. Each
//! handler then states the roles it admits with [`Caller::require`].

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use super::problem::{ApiError, ProblemType};
use crate::auth::{token, Role};
use crate::domain::accounts::Account;
use crate::domain::devices::{Scanner, TOKEN_PREFIX};
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
}

impl Caller {
    /// 403 `forbidden` unless the caller's role is one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<&Account, ApiError> {
        if roles.contains(&self.account.role()) {
            Ok(&self.account)
        } else {
            Err(ApiError::new(
                ProblemType::Forbidden,
                format!("A {} account cannot do this.", self.account.role()),
            ))
        }
    }

    pub fn role(&self) -> Role {
        self.account.role()
    }

    pub fn organisation_id(&self) -> i64 {
        self.account.organisation.id
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(ProblemType::Unauthorized, detail)
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned())
}

fn state_of(req: &HttpRequest) -> Option<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>().cloned()
}

/// The user a login token stands for (401 when there is none).
async fn user_of(state: &AppState, bearer: &str) -> Result<Account, ApiError> {
    let claims = token::verify(&state.keys, bearer)
        .await
        .map_err(|e| match e {
            token::TokenError::Keys(e) => ApiError::from(e),
            other => unauthorized(&format!("The token is refused: {other}.")),
        })?;
    let user_id: i64 = claims
        .sub
        .parse()
        .map_err(|_| unauthorized("The token names no user."))?;
    state
        .callers
        .account(&state.pool, user_id)
        .await?
        .filter(|a| a.user.is_active() && a.organisation.id == claims.org)
        .ok_or_else(|| unauthorized("This account is no longer active."))
}

/// The device a scanner token stands for (401 when unknown or revoked).
async fn device_of(state: &AppState, bearer: &str) -> Result<Scanner, ApiError> {
    state
        .callers
        .device(&state.pool, bearer)
        .await?
        .ok_or_else(|| unauthorized("This device token is unknown or revoked."))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (state, bearer) = (state_of(req), bearer(req));
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("no application state"))?;
            let bearer = bearer
                .ok_or_else(|| unauthorized("Log in first: send Authorization: Bearer <token>."))?;
            if bearer.starts_with(TOKEN_PREFIX) {
                device_of(&state, &bearer).await?;
                return Err(ApiError::new(
                    ProblemType::Forbidden,
                    "A scanner device token can only check, redeem, batch and sync.",
                ));
            }
            Ok(Caller {
                account: user_of(&state, &bearer).await?,
            })
        })
    }
}

/// Who may scan for a venue: a venue user's login token, or one of the
/// venue's device tokens. Only the scanning endpoints take it.
impl FromRequest for Scanner {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (state, bearer) = (state_of(req), bearer(req));
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("no application state"))?;
            let bearer = bearer
                .ok_or_else(|| unauthorized("Log in first: send Authorization: Bearer <token>."))?;
            if bearer.starts_with(TOKEN_PREFIX) {
                return device_of(&state, &bearer).await;
            }
            let caller = Caller {
                account: user_of(&state, &bearer).await?,
            };
            let account = caller.require(&[Role::Venue])?;
            Ok(Scanner {
                venue: account.organisation.clone(),
                user_id: Some(account.user.id),
                device_id: None,
            })
        })
    }
}
