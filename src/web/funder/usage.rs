//! Where the passes go: a programme's usage, in figures and charts.

use actix_web::{web, HttpResponse};
use maud::html;

use super::program_url;
use crate::auth::Role;
use crate::domain::programs;
use crate::domain::stats;
use crate::state::AppState;
use crate::web::charts::{self, ISSUED, OUTSTANDING, REDEEMED};
use crate::web::errors::PageError;
use crate::web::format;
use crate::web::layout;
use crate::web::session::Session;

/// Where the passes go: figures, then charts by month, issuer, venue,
/// theme and département, each with its table.
pub async fn usage(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i32>,
) -> Result<HttpResponse, PageError> {
    let funder = session.require(Role::Funder)?;
    let mut conn = state.pool.get().await?;
    let row = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
    let usage = stats::of_program(&mut conn, &row).await?;
    let v = &usage.vouchers;
    let figure = |label: &str, f: &stats::Figure| {
        html! {
            div.figure {
                dt { (label) }
                dd { (format::number(f.count)) }
                dd.muted { (format::euros(f.cents)) }
            }
        }
    };
    let months: Vec<(String, Vec<i64>)> = usage
        .by_month
        .iter()
        .map(|m| {
            (
                month_label(&m.month),
                vec![m.issued.count, m.redeemed.count],
            )
        })
        .collect();
    let issuers: Vec<(String, Vec<i64>)> = usage
        .by_issuer
        .iter()
        .map(|i| {
            let figures = vec![i.issued.count, i.redeemed.count, i.outstanding.count];
            (i.name.clone(), figures)
        })
        .collect();
    let venues: Vec<(String, Vec<i64>)> = usage
        .by_venue
        .iter()
        .map(|v| (v.name.clone(), vec![v.redeemed.count]))
        .collect();
    let themes: Vec<(String, Vec<i64>)> = usage
        .by_theme
        .iter()
        .map(|t| (t.label.clone(), vec![t.redeemed.count]))
        .collect();
    let departements: Vec<(String, Vec<i64>)> = usage
        .by_departement
        .iter()
        .map(|d| {
            (
                format!("Département {}", d.departement),
                vec![d.issued.count, d.redeemed.count, d.outstanding.count],
            )
        })
        .collect();
    let title = format!("Utilisation — {}", row.name);
    let content = html! {
        p { a href=(program_url(row.id)) { "← " (row.name) } }
        h1 { "Utilisation du programme" }
        p.lead {
            (format::number(usage.books_issued))
            @if usage.books_issued > 1 { " carnets émis ; " } @else { " carnet émis ; " }
            (format::percent(usage.usage_rate)) " des coupons émis ont servi."
        }
        dl.figures {
            (figure("Coupons émis", &v.issued))
            (figure("Utilisés", &v.redeemed))
            (figure("En circulation", &v.outstanding))
            (figure("Expirés sans servir", &v.expired))
            (figure("Révoqués", &v.revoked))
        }
        (charts::bars("mois", "Coupons émis et utilisés par mois", &[&ISSUED, &REDEEMED], &months))
        (charts::bars("prescripteurs", "Par prescripteur", &[&ISSUED, &REDEEMED, &OUTSTANDING], &issuers))
        (charts::bars("lieux", "Ateliers par lieu", &[&REDEEMED], &venues))
        (charts::bars("thematiques", "Ateliers par thème", &[&REDEEMED], &themes))
        (charts::bars("departements", "Par département du bénéficiaire", &[&ISSUED, &REDEEMED, &OUTSTANDING], &departements))
    };
    Ok(layout::ok(layout::page(Some(&session), &title, content)))
}

/// `2026-11` → `novembre 2026`.
fn month_label(month: &str) -> String {
    const NAMES: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    match month.split_once('-').map(|(y, m)| (y, m.parse::<usize>())) {
        Some((year, Ok(m))) if (1..=12).contains(&m) => format!("{} {year}", NAMES[m - 1]),
        _ => month.to_owned(),
    }
}
