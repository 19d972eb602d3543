//! The frame of every page: head, header with the user's menu, main content,
//! footer; and the headers every page is served with.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::forms;
use super::session::Session;
use crate::auth::Role;
use crate::http::statements::{attachment, file_stem};

/// Pages load scripts, styles and images from this origin only, and no inline
/// script or style at all; no other site may frame them.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub const SERVICE_NAME: &str = "Pass numérique";

/// Where each role lands after logging in.
pub fn home_of(role: Role) -> &'static str {
    match role {
        Role::Issuer => "/prescripteur/",
        Role::Funder => "/financeur/",
        Role::Operator => "/operateur/",
        Role::Venue => "/lieu/",
    }
}

/// The entries of each role's menu.
fn menu_of(role: Role) -> &'static [(&'static str, &'static str)] {
    match role {
        Role::Issuer => &[
            ("/prescripteur/", "Carnets"),
            ("/prescripteur/carnets/nouveau", "Émettre un carnet"),
        ],
        Role::Funder => &[
            ("/financeur/", "Programmes"),
            ("/financeur/conflits", "Conflits"),
        ],
        Role::Operator => &[
            ("/operateur/", "Organisations"),
            ("/operateur/cles", "Clés de signature"),
            ("/operateur/imports", "Imports des lieux"),
        ],
        Role::Venue => &[
            ("/lieu/", "Scanner un coupon"),
            ("/lieu/ateliers", "Ateliers"),
            ("/lieu/releves", "Relevés"),
            ("/lieu/facturation", "Facturation"),
            ("/lieu/appareils", "Appareils"),
            ("/lieu/mon-lieu", "Mon lieu"),
        ],
    }
}

pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::Issuer => "Prescripteur",
        Role::Funder => "Financeur",
        Role::Operator => "Opérateur",
        Role::Venue => "Lieu de médiation",
    }
}

/// A whole page. `title` is the page's own title (its `h1`, usually).
pub fn page(session: Option<&Session>, title: &str, content: Markup) -> Markup {
    page_with_scripts(session, title, content, &[])
}

/// A page that loads scripts of its own from `static/`.
pub fn page_with_scripts(
    session: Option<&Session>,
    title: &str,
    content: Markup,
    scripts: &[&str],
) -> Markup {
    page_with_head(session, title, html! {}, content, scripts)
}

/// A page with more in its `head` (a stylesheet, a web app manifest) and
/// scripts of its own from `static/`.
pub fn page_with_head(
    session: Option<&Session>,
    title: &str,
    head: Markup,
    content: Markup,
    scripts: &[&str],
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="fr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (SERVICE_NAME) }
                link rel="stylesheet" href=(assets::url("app.css"));
                link rel="icon" href=(assets::url("favicon.svg")) type="image/svg+xml";
                (head)
                @for script in scripts {
                    script type="module" src=(assets::url(script)) {}
                }
            }
            body {
                a.skip-link href="#contenu" { "Aller au contenu" }
                header.site-header {
                    div.container.site-header__bar {
                        a.brand href="/" {
                            span.brand__mark aria-hidden="true" { "P" }
                            span.brand__name { (SERVICE_NAME) }
                        }
                        @if let Some(session) = session {
                            div.account {
                                p.account__who {
                                    span.account__email { (session.account.user.email) }
                                    span.account__org {
                                        (role_label(session.role())) " · " (session.account.organisation.name)
                                    }
                                }
                                form method="post" action="/deconnexion" {
                                    (forms::csrf_field(session))
                                    button.button.button--secondary.button--small type="submit" { "Se déconnecter" }
                                }
                            }
                        }
                    }
                    @if let Some(session) = session {
                        @let menu = menu_of(session.role());
                        @let here = menu.iter().map(|(href, _)| *href).filter(|href| session.path.starts_with(href)).max_by_key(|href| href.len());
                        nav.site-nav aria-label="Menu principal" {
                            ul.container {
                                @for (href, label) in menu {
                                    li { a href=(href) aria-current=[(here == Some(*href)).then_some("page")] { (label) } }
                                }
                            }
                        }
                    }
                }
                main #contenu.container tabindex="-1" {
                    (content)
                }
                footer.site-footer {
                    div.container {
                        p {
                            (SERVICE_NAME) " : des ateliers numériques financés, pour celles et ceux qui en ont besoin."
                        }
                        ul.site-footer__links aria-label="Informations sur le service" {
                            @for (href, label) in super::legal::FOOTER_LINKS {
                                li { a href=(href) { (label) } }
                            }
                            li { a href="/api/docs/" { "API" } }
                        }
                    }
                }
            }
        }
    }
}

/// An HTML answer with the headers every page carries: never cached (pages
/// show personal and changing data), strict CSP, no sniffing, no framing.
pub fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    respond_with_policy(status, markup, CONTENT_SECURITY_POLICY)
}

/// [`respond`] for a page that needs a content security policy of its own.
pub fn respond_with_policy(status: StatusCode, markup: Markup, policy: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, policy))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(markup.into_string())
}

pub fn ok(markup: Markup) -> HttpResponse {
    respond(StatusCode::OK, markup)
}

/// After a successful form: go to `location` (POST, redirect, GET).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A statement (`venue`: its extract) as a file to save, named as the API
/// names it and never cached: it holds money.
pub fn statement_download(
    id: i64,
    venue: Option<i64>,
    content_type: &str,
    extension: &str,
    bytes: Vec<u8>,
) -> HttpResponse {
    let name = format!("{}.{extension}", file_stem(id, venue));
    let mut response = attachment(content_type, &name, bytes);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
