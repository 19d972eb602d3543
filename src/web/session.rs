//! Web sessions: a random token in an HttpOnly, SameSite=Strict cookie; its
//! SHA-256, the user and the form token in PostgreSQL, so that every instance
//! knows every session.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::errors::PageError;
use crate::auth::Role;
use crate::config::Config;
use crate::db::schema::web_sessions;
use crate::domain::accounts::{self, Account};
use crate::http::problem::ApiError;
use crate::state::AppState;

/// A session ends after this long without a request…
const IDLE: Duration = Duration::hours(2);
/// …and in any case this long after logging in.
const LIFETIME: Duration = Duration::hours(12);
/// Sliding the idle deadline costs a write: once a minute is enough.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// The logged-in user of a page request.
#[derive(Debug, Clone)]
pub struct Session {
    pub account: Account,
    /// The token every form of this session sends back (CSRF protection).
    pub csrf_token: String,
    token_hash: Vec<u8>,
    /// The path of the page being asked for: the menu marks where the user is.
    pub path: String,
}

impl Session {
    pub fn role(&self) -> Role {
        self.account.role()
    }

    /// A 403 page unless the user's role is `role`.
    pub fn require(&self, role: Role) -> Result<&Account, PageError> {
        if self.role() == role {
            Ok(&self.account)
        } else {
            Err(PageError::Forbidden)
        }
    }

    pub fn organisation_id(&self) -> i64 {
        self.account.organisation.id
    }
}

/// A fresh random token, URL-safe: session cookies, form tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Opens a session for a user who just logged in; returns the cookie's value.
/// Expired sessions of everyone are deleted on the way.
pub async fn open(conn: &mut AsyncPgConnection, user_id: i64) -> Result<String, ApiError> {
    let token = random_token();
    let now = Utc::now();
    diesel::delete(web_sessions::table.filter(web_sessions::expires_at.lt(now)))
        .execute(conn)
        .await?;
    diesel::insert_into(web_sessions::table)
        .values((
            web_sessions::token_hash.eq(hash(&token)),
            web_sessions::user_id.eq(user_id),
            web_sessions::csrf_token.eq(random_token()),
            web_sessions::expires_at.eq(now + IDLE),
        ))
        .execute(conn)
        .await?;
    Ok(token)
}

/// The live session of a cookie's value, its deadline slid forward; `None`
/// when it is unknown, expired, or its user was deactivated.
pub async fn find(
    conn: &mut AsyncPgConnection,
    token: &str,
    path: &str,
) -> Result<Option<Session>, ApiError> {
    let token_hash = hash(token);
    let now = Utc::now();
    let row: Option<(i64, String, DateTime<Utc>, DateTime<Utc>)> = web_sessions::table
        .filter(web_sessions::token_hash.eq(&token_hash))
        .filter(web_sessions::expires_at.gt(now))
        .select((
            web_sessions::user_id,
            web_sessions::csrf_token,
            web_sessions::created_at,
            web_sessions::last_seen_at,
        ))
        .first(conn)
        .await
        .optional()?;
    let Some((user_id, csrf_token, created_at, last_seen_at)) = row else {
        return Ok(None);
    };
    let Some(account) = accounts::account(conn, user_id)
        .await?
        .filter(|a| a.user.is_active())
    else {
        return Ok(None);
    };
    if now - last_seen_at > TOUCH_EVERY {
        diesel::update(web_sessions::table.find(&token_hash))
            .set((
                web_sessions::last_seen_at.eq(now),
                web_sessions::expires_at.eq((now + IDLE).min(created_at + LIFETIME)),
            ))
            .execute(conn)
            .await?;
    }
    Ok(Some(Session {
        account,
        csrf_token,
        token_hash,
        path: path.to_owned(),
    }))
}

/// Ends a session (logging out).
pub async fn close(conn: &mut AsyncPgConnection, session: &Session) -> Result<(), ApiError> {
    diesel::delete(web_sessions::table.find(&session.token_hash))
        .execute(conn)
        .await?;
    Ok(())
}

/// Cookies are `Secure` when users reach the service over HTTPS; the
/// `__Host-` prefix then also pins them to this host and path `/`.
fn is_secure(config: &Config) -> bool {
    config.public_url.starts_with("https://")
}

pub fn cookie_name(config: &Config, stem: &'static str) -> String {
    if is_secure(config) {
        format!("__Host-{stem}")
    } else {
        stem.to_owned()
    }
}

/// An HttpOnly, SameSite=Strict cookie for path `/`, ending with the browser session.
pub fn cookie(config: &Config, stem: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(cookie_name(config, stem), value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(is_secure(config))
        .finish()
}

/// The same cookie, told to go away.
pub fn removal(config: &Config, stem: &'static str) -> Cookie<'static> {
    let mut gone = cookie(config, stem, String::new());
    gone.make_removal();
    gone
}

pub const SESSION_COOKIE: &str = "passnum_session";

/// The session of a page request, looked up once per request. Without one,
/// the user is sent to the login page and brought back afterwards.
impl FromRequest for Session {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let cached = req.extensions().get::<Session>().cloned();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            if let Some(session) = cached {
                return Ok(session);
            }
            let state = state.ok_or_else(|| ApiError::internal("no application state"))?;
            // Back to the page after logging in; a form's action is no page
            // (it answers POST only), so a form sent too late leads home.
            let login_required = || PageError::LoginRequired {
                next: match *req.method() {
                    Method::GET => req
                        .uri()
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    _ => String::new(),
                },
            };
            let token = req
                .cookie(&cookie_name(&state.config, SESSION_COOKIE))
                .map(|c| c.value().to_owned())
                .ok_or_else(login_required)?;
            let mut conn = state.pool.get().await?;
            let session = find(&mut conn, &token, req.path())
                .await?
                .ok_or_else(login_required)?;
            req.extensions_mut().insert(session.clone());
            Ok(session)
        })
    }
}
