//! The funder's pages.

use actix_web::{web, HttpResponse};
use maud::html;

use super::errors::PageError;
use super::layout;
use super::session::Session;
use crate::auth::Role;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(home));
}

pub async fn home(session: Session) -> Result<HttpResponse, PageError> {
    session.require(Role::Funder)?;
    Ok(layout::ok(layout::page(
        Some(&session),
        "Programmes",
        html! { h1 { "Programmes" } },
    )))
}
