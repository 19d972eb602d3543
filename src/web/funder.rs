//! The funder's pages: programmes with their money, allocations, closing a
//! programme, statements (close a period, download, record payments), and
//! the conflicts of offline scans to resolve.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use diesel_async::AsyncPgConnection;
use maud::{html, Markup};
use serde::Deserialize;

use super::charts::{self, ISSUED, OUTSTANDING, REDEEMED};
use super::errors::PageError;
use super::format;
use super::forms::{self, blank_to_none, FormErrors, Input, Posted};
use super::layout;
use super::session::Session;
use crate::auth::Role;
use crate::domain::batch::{self, Resolution};
use crate::domain::organisations;
use crate::domain::programs::{self, NewAllocation, NewProgram, Program, ProgramRow, Territory};
use crate::domain::redemptions::ConflictKind;
use crate::domain::statements::payments::{self, PaymentRequest};
use crate::domain::statements::{self, Summary, VenueStatus};
use crate::domain::{paris, stats, themes};
use crate::http::problem::ApiError;
use crate::keys::Purpose;
use crate::state::AppState;
use crate::voucher::typed_code;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(home))
        .service(
            web::resource("/programmes/nouveau")
                .get(new_program)
                .post(create_program),
        )
        .service(web::resource("/programmes/{id}").get(program))
        .service(web::resource("/programmes/{id}/utilisation").get(usage))
        .service(web::resource("/programmes/{id}/dotations").post(allocate))
        .service(web::resource("/programmes/{id}/cloture").post(close_program))
        .service(web::resource("/programmes/{id}/releves").post(close_statement))
        .service(web::resource("/releves/{id}").get(statement))
        .service(web::resource("/releves/{id}/csv").get(statement_csv))
        .service(web::resource("/releves/{id}/pdf").get(statement_pdf))
        .service(web::resource("/releves/{id}/paiements").post(pay))
        .service(web::resource("/conflits").get(conflicts))
        .service(web::resource("/conflits/{id}").post(resolve))
        .configure(super::invoicing::funder_routes);
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

fn status_of(program: &Program) -> Markup {
    html! {
        @if program.closed_at.is_some() { span.badge.badge--revoked { "Clos" } }
        @else { span.badge.badge--valid { "Ouvert" } }
    }
}

/// The time zones of the French territories the communes data covers, named
/// as their people say them; the domain still checks what is posted.
const FRENCH_TIME_ZONES: &[(&str, &str)] = &[
    (
        "Europe/Paris",
        "France métropolitaine et Corse (Europe/Paris)",
    ),
    ("America/Guadeloupe", "Guadeloupe (America/Guadeloupe)"),
    ("America/Martinique", "Martinique (America/Martinique)"),
    ("America/Cayenne", "Guyane (America/Cayenne)"),
    ("Indian/Reunion", "La Réunion (Indian/Reunion)"),
    ("Indian/Mayotte", "Mayotte (Indian/Mayotte)"),
    (
        "America/Miquelon",
        "Saint-Pierre-et-Miquelon (America/Miquelon)",
    ),
];

/// "La Réunion (Indian/Reunion)", or the name itself for a zone of no French territory.
fn time_zone_label(tz: &str) -> &str {
    FRENCH_TIME_ZONES
        .iter()
        .find(|(name, _)| *name == tz)
        .map_or(tz, |(_, label)| label)
}

fn time_zone_choices() -> Vec<(String, String)> {
    FRENCH_TIME_ZONES
        .iter()
        .map(|(tz, label)| ((*tz).to_owned(), (*label).to_owned()))
        .collect()
}

/// The money of a programme, each figure with its meaning. `usage_rate` is
/// the usage page's (`stats`): one definition everywhere.
fn money(program: &Program, usage_rate: f64) -> Markup {
    html! {
        dl.figures {
            div.figure { dt { "Budget" } dd { (format::euros(program.budget_cents)) } }
            div.figure { dt { "Alloué aux prescripteurs" } dd { (format::euros(program.allocated_cents)) } }
            div.figure { dt { "Reste à allouer" } dd { (format::euros(program.budget_cents - program.allocated_cents)) } }
            div.figure { dt { "Engagé (coupons émis)" } dd { (format::euros(program.committed_cents)) } }
            div.figure { dt { "Consommé (ateliers)" } dd { (format::euros(program.redeemed_cents)) } }
            div.figure { dt { "Taux d'utilisation" } dd { (format::percent(usage_rate)) } }
        }
        (definitions())
    }
}

/// What "Consommé" and "Taux d'utilisation" mean, said wherever they are shown.
fn definitions() -> Markup {
    html! {
        p.muted.definitions {
            strong { "Consommé" } " : la valeur des ateliers enregistrés, ni annulés par le lieu ni contestés par vous, payés ou à payer (un conflit que vous avez payé compte deux fois). "
            strong { "Taux d'utilisation" } " : la part des coupons émis qui ont servi à un atelier, contesté ou non (un coupon remplacé compte une fois)."
        }
    }
}

/// The usage rate of a programme, as its usage page counts it.
async fn usage_rate(conn: &mut AsyncPgConnection, row: &ProgramRow) -> Result<f64, PageError> {
    Ok(stats::of_program(conn, row).await?.usage_rate)
}

pub async fn home(state: web::Data<AppState>, session: Session) -> Result<HttpResponse, PageError> {
    let funder = session.require(Role::Funder)?;
    let mut conn = state.pool.get().await?;
    let programs = programs::list(&mut conn, Role::Funder, funder.organisation.id, 0, 200).await?;
    let mut rates = Vec::with_capacity(programs.len());
    for p in &programs {
        let row = programs::find_own(&mut conn, p.id, funder.organisation.id).await?;
        rates.push(usage_rate(&mut conn, &row).await?);
    }
    let content = html! {
        h1 { "Programmes" }
        div.actions {
            a.button href="/financeur/programmes/nouveau" { "Créer un programme" }
            a.button.button--secondary href="/financeur/conflits" { "Conflits à arbitrer" }
        }
        @if programs.is_empty() {
            p.muted { "Vous n'avez encore aucun programme." }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-labelledby="programmes-titre" {
                table {
                    caption #programmes-titre { "Vos programmes et leur budget" }
                    thead { tr {
                        th scope="col" { "Programme" }
                        th scope="col" { "État" }
                        th scope="col" class="num" { "Budget" }
                        th scope="col" class="num" { "Engagé" }
                        th scope="col" class="num" { "Consommé" }
                        th scope="col" class="num" { "Utilisation" }
                    } }
                    tbody {
                        @for (p, rate) in programs.iter().zip(&rates) {
                            tr {
                                th scope="row" { a href=(program_url(p.id)) { (p.name) } }
                                td { (status_of(p)) }
                                td.num { (format::euros(p.budget_cents)) }
                                td.num { (format::euros(p.committed_cents)) }
                                td.num { (format::euros(p.redeemed_cents)) }
                                td.num { (format::percent(*rate)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::ok(layout::page(
        Some(&session),
        "Programmes",
        content,
    )))
}

/// Euros as typed in France (`20`, `20,50`, `1 500`) into cents.
fn cents(value: &str) -> Option<i64> {
    let compact: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{202f}' && *c != '€')
        .collect();
    let (whole, fraction) = match compact.split_once([',', '.']) {
        Some((w, f)) => (w, f),
        None => (compact.as_str(), ""),
    };
    if whole.is_empty() || !whole.chars().all(|c| c.is_ascii_digit()) || fraction.len() > 2 {
        return None;
    }
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let fraction = format!("{fraction:0<2}");
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(fraction.parse::<i64>().ok()?)
}

/// A date typed in a form, within the bounds every date of the service keeps.
fn date(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .ok()
        .filter(|d| crate::domain::bounds::date_in_range(*d))
}

#[derive(Debug, Default, Deserialize)]
pub struct ProgramForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    face_value: String,
    #[serde(default)]
    budget: String,
    #[serde(default)]
    issue_until: String,
    #[serde(default)]
    validity_days: String,
    #[serde(default)]
    departements: String,
    #[serde(default)]
    time_zone: String,
}

const PROGRAM_FIELDS: &[(&str, &str, &str)] = &[
    (
        "name",
        "name",
        "Saisissez le nom du programme (1 à 200 caractères).",
    ),
    (
        "face_value_cents",
        "face_value",
        "Saisissez la valeur d'un coupon en euros, par exemple 20.",
    ),
    (
        "budget_cents",
        "budget",
        "Saisissez le budget en euros, par exemple 50 000.",
    ),
    (
        "issue_until",
        "issue_until",
        "Saisissez une date qui n'est pas passée.",
    ),
    (
        "voucher_validity_days",
        "validity_days",
        "Un coupon est valable de 1 à 3 650 jours.",
    ),
    (
        "territory.departements",
        "departements",
        "Indiquez au moins un code de département existant (par exemple 67, 68, 2A).",
    ),
    (
        "time_zone",
        "time_zone",
        "Ce fuseau horaire est inconnu (par exemple Europe/Paris, America/Cayenne).",
    ),
];

fn program_form_page(session: &Session, form: &ProgramForm, errors: &FormErrors) -> HttpResponse {
    let content = html! {
        p { a href="/financeur/" { "← Programmes" } }
        h1 { "Créer un programme" }
        (errors.summary())
        form.form method="post" action="/financeur/programmes/nouveau" novalidate {
            (forms::csrf_field(session))
            (Input::text("name", "Nom du programme", &form.name).hint("Les bénéficiaires le liront sur leur carnet.").render(errors))
            (Input::text("face_value", "Valeur d'un coupon (€)", &form.face_value).hint("Le montant payé au lieu pour un atelier, par exemple 20.").render(errors))
            (Input::text("budget", "Budget (€)", &form.budget).hint("Les dotations aux prescripteurs ne pourront pas le dépasser.").render(errors))
            (Input::text("issue_until", "Émission possible jusqu'au", &form.issue_until).kind("date").hint("Dernier jour inclus où un carnet peut être émis.").render(errors))
            (Input::text("validity_days", "Durée de validité d'un coupon (jours)", &form.validity_days).numeric("[0-9]*").hint("Comptée à partir du jour d'émission, par exemple 365.").render(errors))
            (Input::text("departements", "Territoire : départements", &form.departements).hint("Codes séparés par des virgules, par exemple : 67, 68.").render(errors))
            (forms::select("time_zone", "Fuseau horaire du programme", &time_zone_choices(), if form.time_zone.trim().is_empty() { paris::DEFAULT_TIME_ZONE.name() } else { form.time_zone.trim() }, errors))
            button.button type="submit" { "Créer le programme" }
        }
    };
    layout::respond(
        errors.status(),
        layout::page(Some(session), "Créer un programme", content),
    )
}

pub async fn new_program(session: Session) -> Result<HttpResponse, PageError> {
    session.require(Role::Funder)?;
    let form = ProgramForm {
        validity_days: "365".into(),
        ..ProgramForm::default()
    };
    Ok(program_form_page(&session, &form, &FormErrors::default()))
}

pub async fn create_program(
    state: web::Data<AppState>,
    posted: Posted<ProgramForm>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let funder = session.require(Role::Funder)?;
    let mut errors = FormErrors::default();
    let face_value = cents(&form.face_value);
    let budget = cents(&form.budget);
    let issue_until = date(&form.issue_until);
    let validity = form.validity_days.trim().parse::<i32>().ok();
    for (missing, field) in [
        (face_value.is_none(), 1),
        (budget.is_none(), 2),
        (issue_until.is_none(), 3),
        (validity.is_none(), 4),
    ] {
        if missing {
            let (_, name, message) = PROGRAM_FIELDS[field];
            errors.add(name, message);
        }
    }
    let (Some(face_value), Some(budget), Some(issue_until), Some(validity)) =
        (face_value, budget, issue_until, validity)
    else {
        return Ok(program_form_page(&session, &form, &errors));
    };
    let new = NewProgram {
        name: form.name.clone(),
        face_value_cents: face_value,
        budget_cents: budget,
        issue_until,
        voucher_validity_days: validity,
        territory: Territory {
            departements: form
                .departements
                .split([',', ';', ' '])
                .map(|d| d.trim().to_uppercase())
                .filter(|d| !d.is_empty())
                .collect(),
        },
        time_zone: blank_to_none(&form.time_zone),
    };
    let mut conn = state.pool.get().await?;
    match programs::create(&mut conn, funder.organisation.id, new).await {
        Ok(program) => {
            tracing::info!(
                program = program.id,
                funder = funder.organisation.id,
                "programme created (page)"
            );
            Ok(layout::see_other(&format!(
                "{}?fait=cree",
                program_url(program.id)
            )))
        }
        Err(e) => {
            let errors = FormErrors::from_refusal(e, PROGRAM_FIELDS)?;
            Ok(program_form_page(&session, &form, &errors))
        }
    }
}

/// What the programme page's forms held when shown again with errors.
#[derive(Debug, Default)]
struct ProgramForms<'a> {
    issuer: &'a str,
    vouchers: &'a str,
    period_end: &'a str,
}

pub async fn program(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i32>,
    query: forms::Query<DoneQuery>,
) -> Result<HttpResponse, PageError> {
    let funder = session.require(Role::Funder)?;
    let mut conn = state.pool.get().await?;
    let row = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
    let text = match query.fait.as_deref() {
        Some("cree") => Some("Le programme est créé. Allouez maintenant des coupons aux prescripteurs."),
        Some("dotation") => Some("La dotation est enregistrée."),
        Some("clos") => Some("Le programme est clos : plus aucun carnet ne peut être émis, et ses coupons sont refusés."),
        _ => None,
    };
    program_page(
        &mut conn,
        &session,
        row,
        text,
        &ProgramForms::default(),
        &FormErrors::default(),
    )
    .await
}

async fn program_page(
    conn: &mut AsyncPgConnection,
    session: &Session,
    row: ProgramRow,
    text: Option<&str>,
    forms: &ProgramForms<'_>,
    errors: &FormErrors,
) -> Result<HttpResponse, PageError> {
    let tz = row.tz();
    let today = row.today();
    let allocations = programs::allocations_of(conn, row.id).await?;
    let issuers = organisations::list(conn, Some(Role::Issuer), 0, 1000).await?;
    let statements =
        statements::list(conn, Role::Funder, session.organisation_id(), Some(row.id)).await?;
    let rate = usage_rate(conn, &row).await?;
    let preview = statements::preview(conn, &row, today).await?;
    let program = programs::present(conn, row).await?;
    let url = program_url(program.id);
    let open = program.closed_at.is_none();
    let issuer_choices: Vec<(String, String)> = issuers
        .iter()
        .map(|o| (o.id.to_string(), o.name.clone()))
        .collect();
    let content = html! {
        p { a href="/financeur/" { "← Programmes" } }
        h1 { (program.name) }
        (notice(text))
        (errors.summary())
        p { (status_of(&program)) }
        (money(&program, rate))
        div.actions {
            a.button.button--secondary href={ (url) "/utilisation" } { "Voir l'utilisation en détail" }
            a.button.button--secondary href={ (url) "/facturation" } { "Facturation (Chorus Pro)" }
        }
        dl.facts {
            dt { "Valeur d'un coupon" } dd { (format::euros(program.face_value_cents)) }
            dt { "Territoire" } dd { "Départements " (program.territory.departements.join(", ")) }
            dt { "Émission jusqu'au" } dd { (format::date(program.issue_until)) " inclus" }
            dt { "Validité d'un coupon" } dd { (program.voucher_validity_days) " jours" }
            dt { "Fuseau horaire" } dd { (time_zone_label(&program.time_zone)) }
            @if let Some(at) = program.closed_at {
                dt { "Clos le" } dd { (format::instant(at, tz)) }
            }
        }
        section aria-labelledby="dotations-titre" {
            h2 #dotations-titre { "Dotations des prescripteurs" }
            @if allocations.is_empty() {
                p.muted { "Aucune dotation pour l'instant." }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-labelledby="dotations-legende" {
                    table {
                        caption #dotations-legende { "Coupons alloués et émis, par prescripteur" }
                        thead { tr {
                            th scope="col" { "Prescripteur" }
                            th scope="col" class="num" { "Alloués" }
                            th scope="col" class="num" { "Émis" }
                            th scope="col" class="num" { "Restants" }
                        } }
                        tbody {
                            @for (allocation, name) in &allocations {
                                tr {
                                    th scope="row" { (name) }
                                    td.num { (format::number(allocation.vouchers.into())) }
                                    td.num { (format::number(allocation.used_vouchers.into())) }
                                    td.num { (format::number((allocation.vouchers - allocation.used_vouchers).into())) }
                                }
                            }
                        }
                    }
                }
            }
            @if open {
                h3 { "Allouer des coupons" }
                form.form method="post" action={ (url) "/dotations" } novalidate {
                    (forms::csrf_field(session))
                    (forms::select("issuer", "Prescripteur", &issuer_choices, forms.issuer, errors))
                    (Input::text("vouchers", "Nombre de coupons à ajouter", forms.vouchers).numeric("[0-9]*")
                        .hint(&format!("Chaque coupon engage {} du budget.", format::euros(program.face_value_cents))).render(errors))
                    button.button type="submit" { "Allouer" }
                }
            }
        }
        section aria-labelledby="releves-titre" {
            h2 #releves-titre { "Relevés" }
            p { "Un relevé arrête les ateliers d'une période, signé, pour payer les lieux. Un relevé clos ne change plus." }
            @if statements.is_empty() {
                p.muted { "Aucun relevé pour l'instant." }
            } @else {
                (statement_table(&statements))
            }
            @if open || !preview.is_empty() {
                h3 { "Prochain relevé, s'il était clos aujourd'hui" }
                @if preview.is_empty() {
                    p.muted { "Aucun atelier à payer pour l'instant." }
                } @else {
                    div.table-wrap tabindex="0" role="region" aria-labelledby="apercu-legende" {
                        table {
                            caption #apercu-legende { "Aperçu du prochain relevé, par lieu (rien n'est encore clos)" }
                            thead { tr {
                                th scope="col" { "Lieu" }
                                th scope="col" class="num" { "Lignes" }
                                th scope="col" class="num" { "Montant" }
                            } }
                            tbody {
                                @for v in &preview {
                                    tr {
                                        th scope="row" { (v.venue_name) }
                                        td.num { (format::number(v.count as i64)) }
                                        td.num { (format::euros(v.total_cents)) }
                                    }
                                }
                            }
                            tfoot { tr {
                                th scope="row" { "Total" }
                                td.num { (format::number(preview.iter().map(|v| v.count as i64).sum())) }
                                td.num { (format::euros(preview.iter().map(|v| v.total_cents).sum())) }
                            } }
                        }
                    }
                }
            }
            h3 { "Clore une période" }
            form.form method="post" action={ (url) "/releves" } novalidate {
                (forms::csrf_field(session))
                @let value = if forms.period_end.is_empty() { today.format("%Y-%m-%d").to_string() } else { forms.period_end.to_owned() };
                (Input::text("period_end", "Fin de la période", &value).kind("date")
                    .hint("Dernier jour inclus, aujourd'hui au plus tard. La période commence le lendemain du relevé précédent.").render(errors))
                button.button type="submit" { "Clore et signer le relevé" }
            }
        }
        @if open {
            section aria-labelledby="cloture-titre" {
                h2 #cloture-titre { "Clore le programme" }
                p { "Plus aucun carnet ne pourra être émis, et les coupons non utilisés seront refusés par les lieux. C'est définitif." }
                form.form method="post" action={ (url) "/cloture" } novalidate {
                    (forms::csrf_field(session))
                    @let error = errors.field("confirm");
                    div.field.field--error[error.is_some()] {
                        @if let Some(error) = error {
                            p.field__error #confirm-erreur { span.visually-hidden { "Erreur : " } (error) }
                        }
                        div.radio {
                            input #confirm type="checkbox" name="confirm" value="oui" required
                                aria-describedby=[error.map(|_| "confirm-erreur")];
                            label for="confirm" { "Je confirme la clôture définitive de ce programme." }
                        }
                    }
                    button.button.button--danger type="submit" { "Clore le programme" }
                }
            }
        }
    };
    Ok(layout::respond(
        errors.status(),
        layout::page(Some(session), &program.name, content),
    ))
}

fn statement_table(statements: &[Summary]) -> Markup {
    html! {
        div.table-wrap tabindex="0" role="region" aria-labelledby="releves-legende" {
            table {
                caption #releves-legende { "Relevés clos" }
                thead { tr {
                    th scope="col" { "Relevé" }
                    th scope="col" { "Période" }
                    th scope="col" class="num" { "Ateliers" }
                    th scope="col" class="num" { "Montant" }
                } }
                tbody {
                    @for s in statements.iter().rev() {
                        tr {
                            th scope="row" { a href=(statement_url(s.id)) { "N° " (s.number) } }
                            td { "du " (format::date(s.period_start)) " au " (format::date(s.period_end)) }
                            td.num { (format::number(s.total_count.into())) }
                            td.num { (format::euros(s.total_cents)) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct AllocationForm {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    vouchers: String,
}

pub async fn allocate(
    state: web::Data<AppState>,
    posted: Posted<AllocationForm>,
    id: web::Path<i32>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let funder = session.require(Role::Funder)?;
    let mut conn = state.pool.get().await?;
    let row = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
    let outcome = match (form.issuer.trim().parse(), form.vouchers.trim().parse()) {
        (Ok(issuer), Ok(vouchers)) => programs::allocate(
            &mut conn,
            &row,
            NewAllocation {
                issuer_organisation_id: issuer,
                vouchers,
            },
        )
        .await
        .map(|_| ()),
        (Err(_), _) => Err(ApiError::invalid_field(
            "issuer_organisation_id",
            "not an id",
        )),
        (_, Err(_)) => Err(ApiError::invalid_field("vouchers", "not a number")),
    };
    match outcome {
        Ok(()) => Ok(layout::see_other(&format!(
            "{}?fait=dotation",
            program_url(row.id)
        ))),
        Err(e) => {
            let errors = FormErrors::from_refusal(
                e,
                &[
                    (
                        "issuer_organisation_id",
                        "issuer",
                        "Choisissez un prescripteur.",
                    ),
                    (
                        "vouchers",
                        "vouchers",
                        "Saisissez un nombre entier de coupons, supérieur à zéro.",
                    ),
                ],
            )?;
            let forms = ProgramForms {
                issuer: &form.issuer,
                vouchers: &form.vouchers,
                ..ProgramForms::default()
            };
            program_page(&mut conn, &session, row, None, &forms, &errors).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CloseProgramForm {
    confirm: Option<String>,
}

pub async fn close_program(
    state: web::Data<AppState>,
    posted: Posted<CloseProgramForm>,
    id: web::Path<i32>,
) -> Result<HttpResponse, PageError> {
    let funder = posted.session.require(Role::Funder)?;
    let mut conn = state.pool.get().await?;
    let row = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
    if posted.form.confirm.as_deref() != Some("oui") {
        let mut errors = FormErrors::default();
        errors.add(
            "confirm",
            "Cochez la case pour confirmer la clôture : elle est définitive.",
        );
        return program_page(
            &mut conn,
            &posted.session,
            row,
            None,
            &ProgramForms::default(),
            &errors,
        )
        .await;
    }
    match programs::close(&mut conn, &row).await {
        Ok(_) => Ok(layout::see_other(&format!(
            "{}?fait=clos",
            program_url(row.id)
        ))),
        Err(e) => {
            let errors = FormErrors::from_refusal(e, &[])?;
            let row = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
            program_page(
                &mut conn,
                &posted.session,
                row,
                None,
                &ProgramForms::default(),
                &errors,
            )
            .await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PeriodForm {
    #[serde(default)]
    period_end: String,
}

pub async fn close_statement(
    state: web::Data<AppState>,
    posted: Posted<PeriodForm>,
    id: web::Path<i32>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let funder = session.require(Role::Funder)?;
    let mut conn = state.pool.get().await?;
    let row = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
    let outcome = match date(&form.period_end) {
        Some(period_end) => {
            let signer = state.keys.signer(Purpose::Statement).await?;
            statements::close(&mut conn, &row, funder.user.id, signer, period_end).await
        }
        None => Err(ApiError::invalid_field("period_end", "not a date")),
    };
    match outcome {
        Ok(summary) => {
            tracing::info!(
                statement = summary.id,
                program = row.id,
                "statement closed (page)"
            );
            Ok(layout::see_other(&format!(
                "{}?fait=clos",
                statement_url(summary.id)
            )))
        }
        Err(e) => {
            let errors = FormErrors::from_refusal(
                e,
                &[(
                    "period_end",
                    "period_end",
                    "Saisissez une date qui n'est pas dans le futur.",
                )],
            )?;
            let forms = ProgramForms {
                period_end: &form.period_end,
                ..ProgramForms::default()
            };
            program_page(&mut conn, &session, row, None, &forms, &errors).await
        }
    }
}

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
    query: forms::Query<DoneQuery>,
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
                    h3 #{ (prefix) "-titre" } { "Enregistrer le paiement : " (v.venue_name) }
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
    let program = programs::present(&mut conn, row.clone()).await?;
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
            div.figure { dt { "Consommé (ateliers)" } dd { (format::euros(program.redeemed_cents)) } }
        }
        (definitions())
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

/// The signed CSV, byte for byte.
pub async fn statement_csv(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let mut conn = state.pool.get().await?;
    let (summary, _) = own_statement(&mut conn, &session, *id).await?;
    let bytes = statements::csv_bytes(&mut conn, summary.id, None).await?;
    Ok(layout::statement_download(
        summary.id,
        None,
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
    Ok(layout::statement_download(
        summary.id,
        None,
        "application/pdf",
        "pdf",
        bytes,
    ))
}

/// What the conflicts page's forms held when shown again with errors.
#[derive(Debug, Default)]
struct ConflictForm<'a> {
    id: i64,
    decision: &'a str,
    reason: &'a str,
}

pub async fn conflicts(
    state: web::Data<AppState>,
    session: Session,
    query: forms::Query<DoneQuery>,
) -> Result<HttpResponse, PageError> {
    let text = match query.fait.as_deref() {
        Some("paye") => {
            Some("Le conflit est arbitré : l'atelier sera payé sur le prochain relevé.")
        }
        Some("rejete") => Some("Le conflit est arbitré : l'atelier ne sera pas payé."),
        _ => None,
    };
    conflicts_page(
        &state,
        &session,
        text,
        &ConflictForm::default(),
        &FormErrors::default(),
    )
    .await
}

async fn conflicts_page(
    state: &AppState,
    session: &Session,
    text: Option<&str>,
    form: &ConflictForm<'_>,
    errors: &FormErrors,
) -> Result<HttpResponse, PageError> {
    let funder = session.require(Role::Funder)?;
    let mut conn = state.pool.get().await?;
    let all = batch::list_conflicts(&mut conn, funder.organisation.id, 0, 500).await?;
    let (open, decided): (Vec<_>, Vec<_>) = all.into_iter().partition(|c| c.decision.is_none());
    let mut venue_names = HashMap::new();
    let mut time_zones = HashMap::new();
    for c in open.iter().chain(&decided) {
        if let Entry::Vacant(e) = venue_names.entry(c.venue_organisation_id) {
            e.insert(
                organisations::find(&mut conn, c.venue_organisation_id)
                    .await?
                    .name,
            );
        }
        if let Entry::Vacant(e) = time_zones.entry(c.program_id) {
            e.insert(
                programs::find_own(&mut conn, c.program_id, funder.organisation.id)
                    .await?
                    .tz(),
            );
        }
    }
    let tz_of = |program: i32| {
        time_zones
            .get(&program)
            .copied()
            .unwrap_or(crate::domain::paris::DEFAULT_TIME_ZONE)
    };
    let typed =
        |voucher: i64| typed_code::encode(voucher as u64).unwrap_or_else(|_| voucher.to_string());
    let content = html! {
        h1 { "Conflits à arbitrer" }
        (notice(text))
        p { "Un conflit naît quand un lieu, hors connexion, a scanné un coupon qu'un autre lieu avait déjà utilisé, ou un coupon d'un carnet remplacé depuis. Décidez s'il faut payer cet atelier. Un coupon remplacé n'est jamais payé en plus de son remplaçant : le payer utilise sa place dans le carnet." }
        @if open.is_empty() {
            p.muted { "Aucun conflit en attente." }
        }
        @for c in &open {
            @let prefix = format!("c{}", c.id);
            @let mine = form.id == c.id;
            @let empty = FormErrors::default();
            @let errs = if mine { errors } else { &empty };
            article.card aria-labelledby={ (prefix) "-titre" } {
                h2 #{ (prefix) "-titre" } { "Coupon " span.code { (typed(c.voucher_id)) } }
                dl.facts {
                    dt { "Motif du conflit" } dd { (conflict_kind(&c.kind)) }
                    dt { "Lieu" } dd { (venue_names.get(&c.venue_organisation_id).map(String::as_str).unwrap_or("—")) }
                    dt { "Scanné le" } dd { (format::instant(c.scanned_at, tz_of(c.program_id))) }
                    dt { "Atelier" } dd { (themes::label(&c.theme).unwrap_or(&c.theme)) ", le " (format::date(c.held_on)) }
                    dt { "Montant" } dd { (format::euros(c.face_value_cents)) }
                }
                @if mine { (errors.summary()) }
                form.form method="post" action={ "/financeur/conflits/" (c.id) } novalidate {
                    (forms::csrf_field(session))
                    (forms::radios(&format!("{prefix}-decision"), "Décision", &[("pay", "Payer cet atelier"), ("reject", "Ne pas le payer")],
                        if mine { form.decision } else { "" }, errs))
                    (Input::text(&format!("{prefix}-reason"), "Motif", if mine { form.reason } else { "" }).render(errs))
                    button.button type="submit" { "Enregistrer la décision" }
                }
            }
        }
        @if !decided.is_empty() {
            h2 { "Conflits arbitrés" }
            div.table-wrap tabindex="0" role="region" aria-labelledby="arbitres-legende" {
                table {
                    caption #arbitres-legende { "Décisions prises" }
                    thead { tr {
                        th scope="col" { "Coupon" }
                        th scope="col" { "Lieu" }
                        th scope="col" { "Décision" }
                        th scope="col" { "Motif" }
                    } }
                    tbody {
                        @for c in &decided {
                            tr {
                                th scope="row" .code { (typed(c.voucher_id)) }
                                td { (venue_names.get(&c.venue_organisation_id).map(String::as_str).unwrap_or("—")) }
                                td { @if c.decision.as_deref() == Some("pay") { "Payé" } @else { "Rejeté" } }
                                td { (c.decision_reason.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::respond(
        errors.status(),
        layout::page(Some(session), "Conflits à arbitrer", content),
    ))
}

/// Why a scan came to the funder, in the funder's words.
fn conflict_kind(kind: &str) -> &'static str {
    if kind == ConflictKind::Replaced.as_str() {
        "coupon d'un carnet remplacé depuis"
    } else {
        "coupon déjà utilisé dans un autre lieu"
    }
}

pub async fn resolve(
    state: web::Data<AppState>,
    posted: Posted<HashMap<String, String>>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let funder = session.require(Role::Funder)?;
    let mut conn = state.pool.get().await?;
    let conflict = batch::find_conflict(&mut conn, *id, funder.organisation.id).await?;
    let prefix = format!("c{}", conflict.id);
    let field = |name: &str| {
        form.get(&format!("{prefix}-{name}"))
            .cloned()
            .unwrap_or_default()
    };
    let (decision, reason) = (field("decision"), field("reason"));
    let resolution = Resolution {
        decision: decision.clone(),
        reason: reason.clone(),
    };
    match batch::resolve(&mut conn, &conflict, funder.user.id, resolution).await {
        Ok(_) => {
            let done = if decision == "pay" { "paye" } else { "rejete" };
            Ok(layout::see_other(&format!(
                "/financeur/conflits?fait={done}"
            )))
        }
        Err(e) => {
            let decision_field = format!("{prefix}-decision");
            let reason_field = format!("{prefix}-reason");
            let errors = FormErrors::from_refusal(
                e,
                &[
                    ("decision", &decision_field, "Choisissez de payer ou non."),
                    (
                        "reason",
                        &reason_field,
                        "Indiquez le motif (1 à 500 caractères).",
                    ),
                ],
            )?;
            let form = ConflictForm {
                id: conflict.id,
                decision: &decision,
                reason: &reason,
            };
            conflicts_page(&state, &session, None, &form, &errors).await
        }
    }
}
