//! The funder's pages: programmes with their money, allocations, closing a
//! programme, statements (close a period, download, record payments), and
//! the conflicts of offline scans to resolve.

mod conflicts;
mod programs;
mod statements;
mod usage;

use actix_web::web;
use chrono::NaiveDate;
use maud::{html, Markup};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(programs::home))
        .service(
            web::resource("/programmes/nouveau")
                .get(programs::new_program)
                .post(programs::create_program),
        )
        .service(web::resource("/programmes/{id}").get(programs::program))
        .service(web::resource("/programmes/{id}/utilisation").get(usage::usage))
        .service(web::resource("/programmes/{id}/dotations").post(programs::allocate))
        .service(web::resource("/programmes/{id}/cloture").post(programs::close_program))
        .service(web::resource("/programmes/{id}/releves").post(programs::close_statement))
        .service(web::resource("/releves/{id}").get(statements::statement))
        .service(web::resource("/releves/{id}/csv").get(statements::statement_csv))
        .service(web::resource("/releves/{id}/pdf").get(statements::statement_pdf))
        .service(web::resource("/releves/{id}/paiements").post(statements::pay))
        .service(web::resource("/conflits").get(conflicts::conflicts))
        .service(web::resource("/conflits/{id}").post(conflicts::resolve));
}

fn program_url(id: i32) -> String {
    format!("/financeur/programmes/{id}")
}

fn statement_url(id: i64) -> String {
    format!("/financeur/releves/{id}")
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    fait: Option<String>,
}

fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = text {
            div.alert.alert--success role="status" { p { (text) } }
        }
    }
}

fn date(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").ok()
}
