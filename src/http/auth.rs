//! The caller of a request: a valid login token of an active user. Each
//! handler then states the roles it admits with [`Caller::require`].

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use super::problem::{ApiError, ProblemType};
use crate::auth::{token, Role};
use crate::domain::accounts::{self, Account};
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

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("no application state"))?;
            let bearer = bearer
                .ok_or_else(|| unauthorized("Log in first: send Authorization: Bearer <token>."))?;
            let claims = token::verify(&state.keys, &bearer)
                .await
                .map_err(|e| match e {
                    token::TokenError::Keys(e) => ApiError::from(e),
                    other => unauthorized(&format!("The token is refused: {other}.")),
                })?;
            let user_id: i64 = claims
                .sub
                .parse()
                .map_err(|_| unauthorized("The token names no user."))?;
            let mut conn = state.pool.get().await?;
            let account = accounts::account(&mut conn, user_id)
                .await?
                .filter(|a| a.user.is_active() && a.organisation.id == claims.org)
                .ok_or_else(|| unauthorized("This account is no longer active."))?;
            Ok(Caller { account })
        })
    }
}
