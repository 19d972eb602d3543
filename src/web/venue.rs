//! The venue's pages (`/lieu/…`): scanning vouchers. Built by issue #11; until
//! then, the page a venue user lands on says where scanning is done today.

use actix_web::{web, HttpResponse};
use maud::html;

use super::errors::PageError;
use super::layout;
use super::session::Session;
use crate::auth::Role;

pub async fn home(session: Session) -> Result<HttpResponse, PageError> {
    session.require(Role::Venue)?;
    Ok(layout::ok(layout::page(
        Some(&session),
        "Scanner un coupon",
        html! {
            h1 { "Scanner un coupon" }
            p { "La page de scan des coupons arrive bientôt. En attendant, votre application de scan enregistre les ateliers." }
        },
    )))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(home));
}
