//! The web pages, in French, on the same server as the API. Each area has its
//! module; every page calls the same domain functions as the API.

pub mod assets;
pub mod carnet;
pub mod charts;
pub mod directory;
pub mod errors;
pub mod format;
pub mod forms;
pub mod funder;
pub mod invoicing;
pub mod issuer;
pub mod journal;
pub mod layout;
pub mod legal;
pub mod login;
pub mod operator;
pub mod session;
pub mod venue;

use actix_web::web;

use errors::PageError;

/// Every page route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(login::home))
        .service(
            web::resource("/connexion")
                .get(login::form)
                .post(login::submit),
        )
        .service(web::resource("/deconnexion").post(login::logout))
        .service(web::resource("/journal").get(journal::page))
        .configure(legal::routes)
        .service(web::resource("/static/{path:.*}").get(assets::serve))
        .configure(carnet::routes)
        .service(pages("/prescripteur").configure(issuer::routes))
        .service(pages("/financeur").configure(funder::routes))
        .service(
            pages("/operateur")
                .configure(operator::routes)
                .configure(directory::operator_routes),
        )
        .service(
            pages("/lieu")
                .configure(venue::routes)
                .configure(directory::venue_routes),
        );
}

/// A scope of pages: a path that names no object of the user's answers the
/// HTML "not found" page.
fn pages(path: &str) -> actix_web::Scope {
    web::scope(path)
        .app_data(web::PathConfig::default().error_handler(|_, _| PageError::NotFound.into()))
}
