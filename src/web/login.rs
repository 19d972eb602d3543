//! Logging in and out of the pages, with the accounts of the API.
//!
//! The login form has no session yet to hold its anti-forgery token: the
//! token goes in a cookie of its own and in the form, and both must match.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::errors::PageError;
use super::forms::{self, FormErrors, Input, NoFields, Posted};
use super::layout;
use super::session::{self, Session, SESSION_COOKIE};
use crate::domain::accounts;
use crate::http::problem::ProblemType;
use crate::state::AppState;

const LOGIN_COOKIE: &str = "passnum_login";

/// The login page, bringing the user back to `next` afterwards.
pub fn login_url(next: &str) -> String {
    if next.is_empty() || next == "/" {
        return "/connexion".to_owned();
    }
    match serde_urlencoded::to_string([("suite", next)]) {
        Ok(query) => format!("/connexion?{query}"),
        Err(_) => "/connexion".to_owned(),
    }
}

/// Only a path of this site is a place to go back to, never another site.
/// Visible ASCII only: browsers drop tabs and line breaks from a `Location`,
/// so `/<TAB>/evil.example` would become `//evil.example`, another site; and
/// a header cannot hold other bytes (a path is percent-encoded anyway).
fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n.starts_with("/\\")
            && n.bytes().all(|b| b.is_ascii_graphic())
    })
}

/// `/`: the user's home, or the login page.
pub async fn home(session: Option<Session>) -> HttpResponse {
    match session {
        Some(session) => layout::see_other(layout::home_of(session.role())),
        None => layout::see_other("/connexion"),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    suite: Option<String>,
    deconnecte: Option<String>,
}

pub async fn form(
    state: web::Data<AppState>,
    session: Option<Session>,
    query: forms::Query<LoginQuery>,
) -> HttpResponse {
    if let Some(session) = session {
        return layout::see_other(layout::home_of(session.role()));
    }
    let notice = query.deconnecte.is_some().then_some(LOGGED_OUT);
    login_page(
        &state,
        StatusCode::OK,
        "",
        safe_next(query.suite.as_deref()),
        notice,
        &FormErrors::default(),
    )
}

const LOGGED_OUT: &str = "Vous êtes déconnecté.";

fn login_page(
    state: &AppState,
    status: StatusCode,
    email: &str,
    next: Option<&str>,
    notice: Option<&str>,
    errors: &FormErrors,
) -> HttpResponse {
    let token = session::random_token();
    // After a logout, the page forgets the scan page cached for offline use.
    let scripts: &[&str] = match notice {
        Some(LOGGED_OUT) => &["forget-scan-page.js"],
        _ => &[],
    };
    let mut response = layout::respond(
        status,
        layout::page_with_scripts(
            None,
            "Connexion",
            login_markup(&token, email, next, notice, errors),
            scripts,
        ),
    );
    let _ = response.add_cookie(&session::cookie(&state.config, LOGIN_COOKIE, token));
    response
}

fn login_markup(
    token: &str,
    email: &str,
    next: Option<&str>,
    notice: Option<&str>,
    errors: &FormErrors,
) -> Markup {
    html! {
        div.narrow {
            h1 { "Connexion" }
            p.lead { "Connectez-vous avec le compte que l'opérateur du Pass numérique vous a ouvert." }
            @if let Some(notice) = notice {
                div.alert.alert--info role="status" { p { (notice) } }
            }
            (errors.summary())
            form.form method="post" action="/connexion" novalidate {
                (forms::token_field(token))
                @if let Some(next) = next {
                    input type="hidden" name="suite" value=(next);
                }
                (Input::text("email", "Adresse e-mail", email).kind("email").autocomplete("username")
                    .hint("Par exemple : prenom.nom@organisme.fr").render(errors))
                (Input::text("password", "Mot de passe", "").kind("password").autocomplete("current-password").render(errors))
                button.button type="submit" { "Se connecter" }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    suite: Option<String>,
}

pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let expected = req
        .cookie(&session::cookie_name(&state.config, LOGIN_COOKIE))
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if !forms::carries_token(&body, &expected) {
        return Err(PageError::Csrf);
    }
    let login: LoginForm = forms::read(&body)?;
    let next = safe_next(login.suite.as_deref());
    let mut errors = FormErrors::default();
    if login.email.trim().is_empty() {
        errors.add("email", "Saisissez votre adresse e-mail.");
    }
    if login.password.is_empty() {
        errors.add("password", "Saisissez votre mot de passe.");
    }
    if !errors.is_empty() {
        return Ok(login_page(
            &state,
            errors.status(),
            &login.email,
            next,
            None,
            &errors,
        ));
    }
    let client = crate::http::client::address(&req, &state.config.trusted_proxies)
        .ok_or(PageError::BadRequest)?;
    let outcome = accounts::authenticate(
        &state.pool,
        &state.passwords,
        &state.throttle,
        &login.email,
        login.password,
        client,
    )
    .await;
    let account = match outcome {
        Ok(account) => account,
        Err(e) if matches!(e.kind, ProblemType::Unauthorized | ProblemType::RateLimited) => {
            let message = match (e.kind, e.retry_after_secs) {
                (ProblemType::RateLimited, Some(secs)) => format!(
                    "Trop de tentatives : patientez {} avant de réessayer.",
                    crate::web::format::wait(secs)
                ),
                _ => "Adresse e-mail ou mot de passe incorrect.".to_owned(),
            };
            let errors = FormErrors::general(message, e.kind);
            let mut page = login_page(&state, errors.status(), &login.email, next, None, &errors);
            if let Some(secs) = e.retry_after_secs {
                page.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(secs),
                );
            }
            return Ok(page);
        }
        Err(e) => return Err(e.into()),
    };
    let mut conn = state.pool.get().await?;
    let token = session::open(&mut conn, account.user.id).await?;
    tracing::info!(user = account.user.id, "web session opened");
    let mut response = layout::see_other(next.unwrap_or(layout::home_of(account.role())));
    let _ = response.add_cookie(&session::cookie(&state.config, SESSION_COOKIE, token));
    let _ = response.add_cookie(&session::removal(&state.config, LOGIN_COOKIE));
    Ok(response)
}

pub async fn logout(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    let mut conn = state.pool.get().await?;
    session::close(&mut conn, &posted.session).await?;
    let mut response = layout::see_other("/connexion?deconnecte=1");
    let _ = response.add_cookie(&session::removal(&state.config, SESSION_COOKIE));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_a_path_of_this_site_is_followed_after_login() {
        for ok in ["/", "/prescripteur/carnets?q=R-7", "/lieu/%C3%A9"] {
            assert_eq!(safe_next(Some(ok)), Some(ok));
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/é",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
    }
}
