//! A closed statement: its venues and payments, its downloads.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use diesel_async::AsyncPgConnection;
use maud::html;

use super::{date, notice, program_url, statement_url, DoneQuery};
use crate::auth::Role;
use crate::domain::programs::{self, ProgramRow};
use crate::domain::statements::payments::{self, PaymentRequest};
use crate::domain::statements::{self, Summary, VenueStatus};
use crate::http::problem::ApiError;
use crate::http::statements::{attachment, file_stem};
use crate::state::AppState;
use crate::web::errors::PageError;
use crate::web::format;
use crate::web::forms::{self, FormErrors, Input, Posted};
use crate::web::layout;
use crate::web::session::Session;

/// The statement if `session`'s organisation runs its programme, else 404.
async fn own_statement(
    conn: &mut AsyncPgConnection,
    session: &Session,
    id: i64,
) -> Result<(Summary, ProgramRow), PageError> {
    let funder = session.require(Role::Funder)?;
    statements::viewer_scope(conn, id, Role::Funder, funder.organisation.id).await?;
    let summary = statements::summary(conn, id, None).await?;
    let program = programs::find_own(conn, summary.program_id, funder.organisation.id).await?;
    Ok((summary, program))
}

pub async fn statement(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, PageError> {
    let text = match query.fait.as_deref() {
        Some("clos") => Some("Le relevé est clos et signé. Téléchargez-le pour payer les lieux."),
        Some("paye") => Some("Le paiement est enregistré."),
        _ => None,
    };
    statement_page(
        &state,
        &session,
        *id,
        text,
        &PaymentForm::default(),
        &FormErrors::default(),
    )
    .await
}

/// What a payment form held when it is shown again with errors.
#[derive(Debug, Default)]
struct PaymentForm<'a> {
    venue: i64,
    paid_on: &'a str,
    reference: &'a str,
}

async fn statement_page(
    state: &AppState,
    session: &Session,
    id: i64,
    text: Option<&str>,
    form: &PaymentForm<'_>,
    errors: &FormErrors,
) -> Result<HttpResponse, PageError> {
    let mut conn = state.pool.get().await?;
    let (summary, program) = own_statement(&mut conn, session, id).await?;
    let tz = program.tz();
    let today = program.today().format("%Y-%m-%d").to_string();
    let title = format!("Relevé n° {} — {}", summary.number, program.name);
    let url = statement_url(summary.id);
    let content = html! {
        p { a href=(program_url(program.id)) { "← " (program.name) } }
        h1 { "Relevé n° " (summary.number) }
        (notice(text))
        dl.facts {
            dt { "Programme" } dd { (program.name) }
            dt { "Période" } dd { "du " (format::date(summary.period_start)) " au " (format::date(summary.period_end)) " inclus" }
            dt { "Clos le" } dd { (format::instant(summary.closed_at, tz)) }
            dt { "Ateliers" } dd { (format::number(summary.total_count.into())) }
            dt { "Montant total" } dd { (format::euros(summary.total_cents)) }
            dt { "Empreinte SHA-256 du CSV" } dd.code { (summary.sha256) }
            dt { "Clé de signature (kid)" } dd { (summary.kid) }
        }
        div.actions {
            a.button href={ (url) "/pdf" } download { "Télécharger le PDF" }
            a.button.button--secondary href={ (url) "/csv" } download { "Télécharger le CSV signé" }
        }
        h2 { "Par lieu" }
        @if summary.venues.is_empty() {
            p.muted { "Aucun atelier sur cette période." }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-labelledby="lieux-legende" {
                table {
                    caption #lieux-legende { "Montant dû à chaque lieu, et paiements" }
                    thead { tr {
                        th scope="col" { "Lieu" }
                        th scope="col" { "SIRET" }
                        th scope="col" class="num" { "Ateliers" }
                        th scope="col" class="num" { "Montant" }
                        th scope="col" { "Paiement" }
                    } }
                    tbody {
                        @for v in &summary.venues {
                            tr {
                                th scope="row" { (v.venue_name) }
                                td.code { (v.venue_siret) }
                                td.num { (format::number(v.count.into())) }
                                td.num { (format::euros(v.total_cents)) }
                                td {
                                    @match (&v.status, &v.payment) {
                                        (_, Some(p)) => {
                                            span.badge.badge--valid { "Payé" }
                                            " le " (format::date(p.paid_on)) ", réf. " span.code { (p.reference) }
                                        }
                                        (VenueStatus::Carried, None) => { span.badge { "Reporté au relevé suivant" } }
                                        _ => { span.badge.badge--expired { "À payer" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @for v in summary.venues.iter().filter(|v| v.status == VenueStatus::Due && v.payment.is_none()) {
                @let prefix = format!("v{}", v.venue_organisation_id);
                @let mine = form.venue == v.venue_organisation_id;
                @let empty = FormErrors::default();
                @let errs = if mine { errors } else { &empty };
                section.card aria-labelledby={ (prefix) "-titre" } {
                    h3 #{ (prefix) "-titre" } { "Enregistrer le paiement de " (v.venue_name) }
                    p { "Montant dû : " strong { (format::euros(v.total_cents)) } "." }
                    @if mine { (errors.summary()) }
                    form.form method="post" action={ (url) "/paiements" } novalidate {
                        (forms::csrf_field(session))
                        input type="hidden" name="venue" value=(v.venue_organisation_id);
                        input type="hidden" name="amount_cents" value=(v.total_cents);
                        (Input::text(&format!("{prefix}-paid_on"), "Date du virement", if mine { form.paid_on } else { &today }).kind("date").render(errs))
                        (Input::text(&format!("{prefix}-reference"), "Référence du virement", if mine { form.reference } else { "" })
                            .hint("Telle qu'elle figure sur l'ordre de virement (140 caractères au plus).").render(errs))
                        button.button type="submit" { "Enregistrer le paiement" }
                    }
                }
            }
        }
    };
    Ok(layout::respond(
        errors.status(),
        layout::page(Some(session), &title, content),
    ))
}

pub async fn pay(
    state: web::Data<AppState>,
    posted: Posted<HashMap<String, String>>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let funder = session.require(Role::Funder)?;
    let mut conn = state.pool.get().await?;
    let (summary, program) = own_statement(&mut conn, &session, *id).await?;
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let venue: i64 = field("venue").parse().map_err(|_| PageError::BadRequest)?;
    let amount_cents: i64 = field("amount_cents")
        .parse()
        .map_err(|_| PageError::BadRequest)?;
    let prefix = format!("v{venue}");
    let (paid_on, reference) = (
        field(&format!("{prefix}-paid_on")),
        field(&format!("{prefix}-reference")),
    );
    let outcome = match date(&paid_on) {
        Some(day) => {
            let request = PaymentRequest {
                venue_organisation_id: venue,
                amount_cents,
                paid_on: day,
                reference: reference.clone(),
            };
            payments::pay(&mut conn, &program, summary.id, funder.user.id, request).await
        }
        None => Err(ApiError::invalid_field("paid_on", "not a date")),
    };
    match outcome {
        Ok(_) => {
            tracing::info!(statement = summary.id, venue, "payment recorded (page)");
            Ok(layout::see_other(&format!(
                "{}?fait=paye",
                statement_url(summary.id)
            )))
        }
        Err(e) => {
            let paid_on_field = format!("{prefix}-paid_on");
            let reference_field = format!("{prefix}-reference");
            let errors = FormErrors::from_refusal(
                e,
                &[
                    (
                        "paid_on",
                        &paid_on_field,
                        "Saisissez la date du virement, entre la clôture du relevé et aujourd'hui.",
                    ),
                    (
                        "reference",
                        &reference_field,
                        "Saisissez la référence du virement (1 à 140 caractères, sur une ligne).",
                    ),
                    (
                        "amount_cents",
                        &reference_field,
                        "Le montant a changé : rechargez la page.",
                    ),
                    (
                        "venue_organisation_id",
                        &reference_field,
                        "Ce lieu n'est pas sur ce relevé.",
                    ),
                ],
            )?;
            let form = PaymentForm {
                venue,
                paid_on: &paid_on,
                reference: &reference,
            };
            statement_page(&state, &session, summary.id, None, &form, &errors).await
        }
    }
}

/// The signed CSV, byte for byte.
pub async fn statement_csv(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let mut conn = state.pool.get().await?;
    let (summary, _) = own_statement(&mut conn, &session, *id).await?;
    let bytes = statements::csv_bytes(&mut conn, summary.id, None).await?;
    Ok(download(
        summary.id,
        "text/csv; charset=utf-8",
        "csv",
        bytes,
    ))
}

/// The statement, printable, in French.
pub async fn statement_pdf(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let mut conn = state.pool.get().await?;
    let (summary, _) = own_statement(&mut conn, &session, *id).await?;
    let bytes = statements::pdf::render(&mut conn, summary.id, None).await?;
    Ok(download(summary.id, "application/pdf", "pdf", bytes))
}

/// The whole statement as a file named as the API names it, never cached
/// (it holds the programme's money).
fn download(id: i64, content_type: &str, extension: &str, bytes: Vec<u8>) -> HttpResponse {
    let name = format!("{}.{extension}", file_stem(id, None));
    let mut response = attachment(content_type, &name, bytes);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
