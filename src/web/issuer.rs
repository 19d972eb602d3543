//! The social worker's pages: issue a book, print or email it, follow the
//! organisation's books, revoke and replace a lost one.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use diesel_async::AsyncPgConnection;
use maud::{html, Markup};
use serde::Deserialize;

use super::errors::PageError;
use super::format;
use super::forms::{self, blank_to_none, FormErrors, Input, Posted};
use super::layout;
use super::session::Session;
use crate::auth::Role;
use crate::domain::books::{
    self, Beneficiary, BeneficiaryProblem, Book, BookRow, NewBook, ReferenceFilter, VoucherStatus,
};
use crate::domain::carnet;
use crate::domain::printing;
use crate::domain::programs::{self, Program};
use crate::geo::GeoError;
use crate::http::problem::ProblemType;
use crate::keys::Purpose;
use crate::state::AppState;

const PAGE_SIZE: i64 = 25;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(home))
        .service(web::resource("/carnets/nouveau").get(new_book).post(issue))
        .service(web::resource("/carnets/{id}").get(book))
        .service(web::resource("/carnets/{id}/pdf").get(pdf))
        .service(web::resource("/carnets/{id}/envoyer").post(send))
        .service(web::resource("/carnets/{id}/revoquer").post(revoke))
        .service(web::resource("/carnets/{id}/remplacer").post(replace))
        .service(web::resource("/carnets/{id}/lien").post(renew_link));
}

fn book_url(id: i64) -> String {
    format!("/prescripteur/carnets/{id}")
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    reference: Option<String>,
    avant: Option<i64>,
}

/// The organisation's books, newest first, with their progress; searchable
/// by the beneficiary's reference.
pub async fn home(
    state: web::Data<AppState>,
    session: Session,
    query: forms::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let issuer = session.require(Role::Issuer)?;
    let mut conn = state.pool.get().await?;
    let reference = query.reference.as_deref().and_then(blank_to_none);
    let rows = books::list_newest(
        &mut conn,
        issuer.organisation.id,
        reference
            .as_deref()
            .map_or(ReferenceFilter::Any, ReferenceFilter::Containing),
        query.avant,
        PAGE_SIZE + 1,
    )
    .await?;
    let allocations = open_allocations(&mut conn, issuer.organisation.id).await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    let mut shown = Vec::new();
    for row in rows.into_iter().take(PAGE_SIZE as usize) {
        shown.push(books::present(&mut conn, row, &state.config.public_url, false).await?);
    }
    let older = more
        .then(|| shown.last().map(|b| b.id))
        .flatten()
        .map(|last| {
            let mut query = vec![("avant", last.to_string())];
            if let Some(r) = &reference {
                query.push(("reference", r.clone()));
            }
            format!(
                "/prescripteur/?{}",
                serde_urlencoded::to_string(query).unwrap_or_default()
            )
        });
    let content = html! {
        h1 { "Carnets de l'organisation" }
        @if !allocations.is_empty() {
            ul.cards {
                @for (program, left) in &allocations {
                    li.card {
                        h2.card__title { (program.name) }
                        p { strong { (format::number(*left)) } " coupons restants dans votre dotation" }
                        p.muted { "Émission possible jusqu'au " (format::date(program.issue_until)) }
                    }
                }
            }
        }
        div.actions {
            a.button href="/prescripteur/carnets/nouveau" { "Émettre un carnet" }
        }
        form.inline-form method="get" action="/prescripteur/" role="search" aria-label="Rechercher un carnet" {
            (Input::text("reference", "Référence du bénéficiaire", reference.as_deref().unwrap_or_default())
                .optional()
                .hint("Tout ou partie de votre numéro de dossier, en majuscules ou en minuscules.")
                .render(&FormErrors::default()))
            button.button.button--secondary type="submit" { "Rechercher" }
            @if reference.is_some() {
                a href="/prescripteur/" { "Voir tous les carnets" }
            }
        }
        @if shown.is_empty() {
            p.muted {
                @if let Some(r) = &reference { "Aucun carnet n'a de référence contenant « " (r) " »." }
                @else { "Aucun carnet n'a encore été émis." }
            }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-labelledby="carnets-titre" {
                table {
                    caption #carnets-titre {
                        @if let Some(r) = &reference { "Carnets dont la référence contient « " (r) " »" }
                        @else { "Carnets, du plus récent au plus ancien" }
                    }
                    thead { tr {
                        th scope="col" { "Carnet" }
                        th scope="col" { "Référence" }
                        th scope="col" { "Émis le" }
                        th scope="col" { "Valable jusqu'au" }
                        th scope="col" { "Coupons utilisés" }
                        th scope="col" { "État" }
                    } }
                    tbody {
                        @for b in &shown {
                            tr {
                                th scope="row" { a href=(book_url(b.id)) { "N° " (b.id) } }
                                td { (b.reference.as_deref().unwrap_or("—")) }
                                td { (format::date(b.issued_on)) }
                                td { (format::date(b.expires_on)) }
                                td { (progress(b)) }
                                td { (book_state(b)) }
                            }
                        }
                    }
                }
            }
            @if let Some(older) = older {
                p { a href=(older) { "Carnets plus anciens" } }
            }
        }
    };
    Ok(layout::ok(layout::page(Some(&session), "Carnets", content)))
}

/// The open programmes the organisation may issue from, with the vouchers
/// left in its allocation.
async fn open_allocations(
    conn: &mut AsyncPgConnection,
    issuer: i64,
) -> Result<Vec<(Program, i64)>, PageError> {
    let mut out = Vec::new();
    for program in programs::list(conn, Role::Issuer, issuer, 0, 100).await? {
        if program.closed_at.is_some() {
            continue;
        }
        let left = programs::allocation(conn, program.id, issuer)
            .await?
            .map_or(0, |a| i64::from(a.vouchers - a.used_vouchers));
        out.push((program, left));
    }
    Ok(out)
}

fn progress(b: &Book) -> Markup {
    html! {
        span.progress {
            meter min="0" max=(b.size) value=(b.used) aria-hidden="true" {}
            span { (b.used) " / " (b.size) }
        }
    }
}

fn book_state(b: &Book) -> Markup {
    html! {
        @if b.replaced_by_book_id.is_some() { span.badge.badge--revoked { "Remplacé" } }
        @else if b.revoked_at.is_some() { span.badge.badge--revoked { "Révoqué" } }
        @else if b.used == i64::from(b.size) { span.badge.badge--redeemed { "Entièrement utilisé" } }
        @else { span.badge.badge--valid { "Actif" } }
    }
}

/// What the issuing form holds, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct IssueForm {
    #[serde(default)]
    program_id: String,
    #[serde(default)]
    size: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    commune_code: String,
    #[serde(default)]
    email: String,
}

/// The fields the domain may refuse, and what the form says then.
const ISSUE_FIELDS: &[(&str, &str, &str)] = &[
    ("program_id", "program_id", "Choisissez un programme dans lequel vous avez une dotation."),
    ("size", "size", "Choisissez un carnet de 5 ou de 10 coupons."),
    ("beneficiary.reference", "reference", "Saisissez votre numéro de dossier (1 à 64 caractères), jamais le nom de la personne."),
    ("beneficiary.postcode", "postcode", "Ce code postal est inconnu, ou hors du territoire du programme."),
    ("beneficiary.commune_code", "commune_code", "Ce code postal couvre plusieurs communes : saisissez le code INSEE de la commune (5 caractères)."),
    ("beneficiary.email", "email", forms::EMAIL_INVALID),
];

pub async fn new_book(
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let form = IssueForm {
        size: "10".into(),
        ..IssueForm::default()
    };
    issue_page(&state, &session, &form, &FormErrors::default()).await
}

async fn issue_page(
    state: &AppState,
    session: &Session,
    form: &IssueForm,
    errors: &FormErrors,
) -> Result<HttpResponse, PageError> {
    let issuer = session.require(Role::Issuer)?;
    let mut conn = state.pool.get().await?;
    let choices: Vec<(String, String)> = open_allocations(&mut conn, issuer.organisation.id)
        .await?
        .into_iter()
        .map(|(program, left)| {
            let label = format!(
                "{} ({} coupons restants)",
                program.name,
                format::number(left)
            );
            (program.id.to_string(), label)
        })
        .collect();
    let selected = if form.program_id.is_empty() {
        choices
            .first()
            .map(|(id, _)| id.clone())
            .unwrap_or_default()
    } else {
        form.program_id.clone()
    };
    let content = html! {
        h1 { "Émettre un carnet" }
        @if choices.is_empty() {
            div.alert.alert--warning {
                p { "Votre organisation n'a de dotation dans aucun programme ouvert. Demandez-en une au financeur." }
            }
        } @else {
            p.lead { "Le carnet est émis tout de suite ; vous pourrez ensuite l'imprimer ou l'envoyer par e-mail." }
            (errors.summary())
            form.form method="post" action="/prescripteur/carnets/nouveau" novalidate {
                (forms::csrf_field(session))
                (forms::select("program_id", "Programme", &choices, &selected, errors))
                (forms::radios("size", "Nombre de coupons", &[("5", "5 coupons"), ("10", "10 coupons")], &form.size, errors))
                (Input::text("reference", "Référence du bénéficiaire", &form.reference)
                    .hint("Votre numéro de dossier pour cette personne. N'écrivez jamais son nom.")
                    .autocomplete("off")
                    .render(errors))
                (Input::text("postcode", "Code postal du bénéficiaire", &form.postcode)
                    .hint("5 chiffres. Il sert à indiquer les lieux d'ateliers les plus proches.")
                    .numeric("[0-9]{5}")
                    .autocomplete("off")
                    .render(errors))
                (Input::text("commune_code", "Code INSEE de la commune", &form.commune_code)
                    .optional()
                    .hint("Seulement si le code postal couvre des communes de plusieurs départements.")
                    .autocomplete("off")
                    .render(errors))
                (Input::text("email", "Adresse e-mail du bénéficiaire", &form.email)
                    .kind("email")
                    .optional()
                    .hint("Pour lui envoyer le carnet. L'adresse est effacée dès l'envoi.")
                    .autocomplete("off")
                    .render(errors))
                button.button type="submit" { "Émettre le carnet" }
            }
        }
    };
    Ok(layout::respond(
        errors.status(),
        layout::page(Some(session), "Émettre un carnet", content),
    ))
}

pub async fn issue(
    state: web::Data<AppState>,
    posted: Posted<IssueForm>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let issuer = session.require(Role::Issuer)?;
    let mut conn = state.pool.get().await?;
    // Every mistake at once, each in its own words, before the domain is asked.
    let mut errors = FormErrors::default();
    let program = match form.program_id.trim().parse::<i32>() {
        Ok(id) => programs::find_visible(&mut conn, id, Role::Issuer, issuer.organisation.id)
            .await
            .ok(),
        Err(_) => None,
    };
    if program.is_none() {
        errors.add("program_id", ISSUE_FIELDS[0].2);
    }
    let size = form
        .size
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|s| *s == 5 || *s == 10);
    if size.is_none() {
        errors.add("size", ISSUE_FIELDS[1].2);
    }
    let beneficiary = Beneficiary {
        reference: form.reference.clone(),
        postcode: form.postcode.trim().to_owned(),
        commune_code: blank_to_none(&form.commune_code),
        email: blank_to_none(&form.email),
    };
    let territory = program.as_ref().map(|p| p.territory.clone());
    if let Err(problems) =
        books::check_beneficiary(&beneficiary, territory.as_deref().unwrap_or(&[]))
    {
        for problem in &problems {
            // Without a programme there is no territory to be outside of.
            if program.is_none() && matches!(problem, BeneficiaryProblem::OutsideTerritory { .. }) {
                continue;
            }
            let (field, message) = in_french(problem);
            errors.add(field, message);
        }
    }
    let (Some(program), Some(size), true) = (program, size, errors.is_empty()) else {
        drop(conn);
        return issue_page(&state, &session, &form, &errors).await;
    };
    let new = NewBook {
        program_id: program.id,
        size,
        beneficiary,
    };
    let signer = state.keys.signer(Purpose::Voucher).await?;
    match books::issue(&mut conn, issuer, signer, new, &state.config.public_url).await {
        Ok(book) => {
            tracing::info!(
                book = book.id,
                program = book.program_id,
                size = book.size,
                "book issued (page)"
            );
            Ok(layout::see_other(&format!(
                "{}?fait=emis",
                book_url(book.id)
            )))
        }
        Err(e) => {
            let errors = FormErrors::from_refusal(e, ISSUE_FIELDS)?;
            drop(conn);
            issue_page(&state, &session, &form, &errors).await
        }
    }
}

/// What the issuing form says of a problem with the beneficiary, and the field it is tied to.
fn in_french(problem: &BeneficiaryProblem) -> (&'static str, String) {
    match problem {
        BeneficiaryProblem::ReferenceMissing => (
            "reference",
            forms::required("la référence du bénéficiaire (votre numéro de dossier)"),
        ),
        BeneficiaryProblem::ReferenceTooLong => (
            "reference",
            "La référence du bénéficiaire a au plus 64 caractères.".into(),
        ),
        BeneficiaryProblem::PostcodeMissing => (
            "postcode",
            forms::required("le code postal du bénéficiaire"),
        ),
        BeneficiaryProblem::Place(GeoError::MalformedPostcode { .. }) => (
            "postcode",
            "Le code postal s'écrit avec 5 chiffres, par exemple 67100.".into(),
        ),
        BeneficiaryProblem::Place(GeoError::UnknownPostcode { postcode }) => (
            "postcode",
            format!("Aucune commune n'a le code postal {postcode} : vérifiez-le."),
        ),
        BeneficiaryProblem::Place(GeoError::UnknownCommune { .. }) => (
            "commune_code",
            "Ce code INSEE ne désigne aucune commune actuelle : vérifiez-le (5 caractères, par exemple 68066).".into(),
        ),
        BeneficiaryProblem::Place(GeoError::PostcodeNotOfCommune { postcode, name, .. }) => (
            "postcode",
            format!("{postcode} n'est pas un code postal de la commune {name} : vérifiez le code postal ou le code INSEE."),
        ),
        BeneficiaryProblem::Place(GeoError::AmbiguousPostcode { postcode, departements }) => {
            let list: Vec<&str> = departements.iter().map(|d| d.as_str()).collect();
            (
                "commune_code",
                format!(
                    "Le code postal {postcode} couvre des communes de plusieurs départements ({}) : saisissez le code INSEE de la commune.",
                    list.join(", ")
                ),
            )
        }
        BeneficiaryProblem::Place(GeoError::UnknownDepartement { .. }) => (
            "postcode",
            "Ce code postal ne correspond à aucun département.".into(),
        ),
        BeneficiaryProblem::OutsideTerritory {
            departement,
            territory,
        } => (
            "postcode",
            format!(
                "Ce code postal est dans le département {departement}, hors du territoire du programme ({}).",
                territory.join(", ")
            ),
        ),
        BeneficiaryProblem::EmailInvalid => ("email", forms::EMAIL_INVALID.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct BookQuery {
    fait: Option<String>,
}

/// What a form of the book page held when it is shown again with errors.
#[derive(Debug, Default)]
struct BookForms<'a> {
    email: &'a str,
    revoke_reason: &'a str,
    replace_reason: &'a str,
    /// The revocation asked for, awaiting its confirmation.
    confirm_revoke: bool,
}

pub async fn book(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
    query: forms::Query<BookQuery>,
) -> Result<HttpResponse, PageError> {
    let issuer = session.require(Role::Issuer)?;
    let mut conn = state.pool.get().await?;
    let row = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let notice = match query.fait.as_deref() {
        Some("emis") => Some("Le carnet est émis. Imprimez-le ou envoyez-le par e-mail."),
        Some("envoye") => Some("Le carnet a été envoyé par e-mail. L'adresse a été effacée."),
        // The revocation box says it all (when, why): no second banner.
        Some("revoque") => None,
        Some("remplace") => Some("Voici le carnet de remplacement. L'ancien carnet est révoqué."),
        _ => None,
    };
    book_page(
        &state,
        &mut conn,
        &session,
        row,
        notice,
        &BookForms::default(),
        &FormErrors::default(),
    )
    .await
}

async fn book_page(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    session: &Session,
    row: BookRow,
    notice: Option<&str>,
    forms: &BookForms<'_>,
    errors: &FormErrors,
) -> Result<HttpResponse, PageError> {
    let program = programs::find_visible(
        conn,
        row.program_id,
        Role::Issuer,
        session.organisation_id(),
    )
    .await?;
    let tz = program.tz();
    let live_links = carnet::live_links(conn, row.id).await?;
    let b = books::present(conn, row, &state.config.public_url, true).await?;
    let sent = printing::sent_at(conn, b.id).await?;
    let unused = i64::from(b.size) - b.used;
    let title = format!("Carnet n° {}", b.id);
    let url = book_url(b.id);
    let usable = b.revoked_at.is_none();
    let content = html! {
        p { a href="/prescripteur/" { "← Tous les carnets" } }
        h1 { (title) }
        @if let Some(notice) = notice {
            div.alert.alert--success role="status" { p { (notice) } }
        }
        (errors.summary())
        @if let Some(at) = b.revoked_at {
            div.alert.alert--warning role="status" {
                h2.alert__title { "Carnet révoqué" }
                p {
                    "Révoqué le " (format::instant(at, tz))
                    @if let Some(reason) = &b.revoked_reason { " : « " (reason) " »" }
                    ". Ses coupons non utilisés ne sont plus acceptés."
                }
                @if let Some(new) = b.replaced_by_book_id {
                    p { "Remplacé par le " a href=(book_url(new)) { "carnet n° " (new) } "." }
                }
            }
        }
        @if let Some(old) = b.replaces_book_id {
            p { "Ce carnet remplace le " a href=(book_url(old)) { "carnet n° " (old) } "." }
        }
        dl.facts {
            dt { "Programme" } dd { (program.name) }
            dt { "Référence du bénéficiaire" } dd { (b.reference.as_deref().unwrap_or("— (effacée)")) }
            dt { "Code postal" } dd { (b.postcode.as_deref().unwrap_or("—")) }
            dt { "Émis le" } dd { (format::date(b.issued_on)) }
            dt { "Valable jusqu'au" } dd { (format::date(b.expires_on)) " inclus" }
            dt { "Coupons utilisés" } dd { (b.used) " sur " (b.size) }
            dt { "Envoi par e-mail" }
            dd {
                @if sent.is_empty() { "Pas encore envoyé" }
                @else {
                    @for (i, at) in sent.iter().enumerate() {
                        @if i > 0 { br; }
                        "Envoyé le " (format::instant(*at, tz))
                    }
                }
            }
        }
        @if usable {
            div.actions {
                a.button href={ (url) "/pdf" } { "Imprimer (PDF)" }
            }
            section aria-labelledby="envoi-titre" {
                h2 #envoi-titre { "Envoyer par e-mail" }
                form.form method="post" action={ (url) "/envoyer" } novalidate {
                    (forms::csrf_field(session))
                    @let hint = if b.email_pending {
                        "Laissez vide pour utiliser l'adresse saisie à l'émission. L'adresse est effacée dès l'envoi."
                    } else {
                        "Le carnet est envoyé en PDF. L'adresse est effacée dès l'envoi."
                    };
                    @let input = Input::text("email", "Adresse e-mail du bénéficiaire", forms.email).kind("email").hint(hint).autocomplete("off");
                    (if b.email_pending { input.optional() } else { input }.render(errors))
                    button.button.button--secondary type="submit" { "Envoyer par e-mail" }
                }
            }
        }
        @if usable { (page_link_section(session, &url, live_links)) }
        @if let Some(vouchers) = &b.vouchers {
            h2 { "Coupons" }
            div.table-wrap tabindex="0" role="region" aria-labelledby="coupons-titre" {
                table {
                    caption #coupons-titre { "Les " (b.size) " coupons du carnet" }
                    thead { tr {
                        th scope="col" { "N°" }
                        th scope="col" { "Code à saisir" }
                        th scope="col" class="num" { "Valeur" }
                        th scope="col" { "État" }
                    } }
                    tbody {
                        @for v in vouchers {
                            tr {
                                th scope="row" { (v.position) }
                                td.code { (v.typed_code) }
                                td.num { (format::euros(v.face_value_cents)) }
                                td { (status_badge(v.status)) }
                            }
                        }
                    }
                }
            }
        }
        @if b.replaced_by_book_id.is_none() {
            section aria-labelledby="perte-titre" {
                h2 #perte-titre { "Carnet perdu ou volé ?" }
                p { "Remplacer le carnet le révoque et en émet un nouveau pour les coupons non utilisés, avec la même date de fin, sans consommer votre dotation." }
                form.form method="post" action={ (url) "/remplacer" } novalidate {
                    (forms::csrf_field(session))
                    (Input::text("replace_reason", "Motif du remplacement", forms.replace_reason)
                        .hint("Par exemple : carnet perdu.").render(errors))
                    button.button type="submit" { "Remplacer le carnet" }
                }
                @if usable && forms.confirm_revoke {
                    div.alert.alert--warning.alert--confirm #confirmer-revocation role="alert" tabindex="-1" autofocus {
                        h3.alert__title { "Révoquer le carnet n° " (b.id) " ?" }
                        p {
                            @if unused == 1 { "Son coupon non utilisé ne sera plus accepté" }
                            @else { "Ses " (unused) " coupons non utilisés ne seront plus acceptés" }
                            ", et aucun carnet ne les remplacera. Cela ne peut pas être défait."
                        }
                        p { "Motif : « " (forms.revoke_reason.trim()) " »" }
                        form method="post" action={ (url) "/revoquer" } {
                            (forms::csrf_field(session))
                            input type="hidden" name="revoke_reason" value=(forms.revoke_reason);
                            input type="hidden" name="confirm" value="oui";
                            div.actions {
                                button.button.button--danger type="submit" { "Oui, révoquer le carnet" }
                                a.button.button--secondary href=(url) { "Non, garder le carnet" }
                            }
                        }
                    }
                } @else if usable {
                    p { "Révoquer seulement : les coupons non utilisés ne seront plus acceptés, et aucun carnet ne les remplace." }
                    form.form method="post" action={ (url) "/revoquer" } novalidate {
                        (forms::csrf_field(session))
                        (Input::text("revoke_reason", "Motif de la révocation", forms.revoke_reason)
                            .hint("Par exemple : carnet remis par erreur. Une confirmation vous sera demandée.").render(errors))
                        button.button.button--danger type="submit" { "Révoquer le carnet" }
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

fn status_badge(status: VoucherStatus) -> Markup {
    let (class, label) = match status {
        VoucherStatus::Valid => ("badge badge--valid", "Valable"),
        VoucherStatus::Redeemed => ("badge badge--redeemed", "Utilisé"),
        VoucherStatus::Expired => ("badge badge--expired", "Expiré"),
        VoucherStatus::Revoked => ("badge badge--revoked", "Révoqué"),
    };
    html! { span class=(class) { (label) } }
}

/// The printable book, shown by the browser (to print, or to save).
pub async fn pdf(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let issuer = session.require(Role::Issuer)?;
    let mut conn = state.pool.get().await?;
    let row = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let rendered = printing::print_book(
        &mut conn,
        &row,
        issuer.user.id,
        &state.config.privacy_contact,
        &state.config.public_url,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"pass-numerique-{}.pdf\"", row.id),
        ))
        .body(rendered.pdf))
}

#[derive(Debug, Deserialize)]
pub struct SendForm {
    #[serde(default)]
    email: String,
}

pub async fn send(
    state: web::Data<AppState>,
    posted: Posted<SendForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let issuer = session.require(Role::Issuer)?;
    let mut conn = state.pool.get().await?;
    let row = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let outcome = printing::send_book(
        &mut conn,
        &state.mailer,
        &row,
        issuer.user.id,
        blank_to_none(&form.email),
        &state.config.privacy_contact,
        &state.config.public_url,
    )
    .await;
    let errors = match outcome {
        Ok(_) => return Ok(layout::see_other(&format!("{}?fait=envoye", book_url(row.id)))),
        // The mail server failed: the book stays issued, the user may retry.
        Err(e) if e.kind == ProblemType::Unavailable => FormErrors::general(
            "L'e-mail n'a pas pu être envoyé (serveur de messagerie indisponible). Le carnet reste émis : réessayez plus tard, ou imprimez-le.",
            e.kind,
        ),
        Err(e) => {
            let message = if form.email.trim().is_empty() {
                forms::required("l'adresse e-mail du bénéficiaire")
            } else {
                forms::EMAIL_INVALID.to_owned()
            };
            FormErrors::from_refusal(e, &[("email", "email", message.as_str())])?
        }
    };
    let forms = BookForms {
        email: &form.email,
        ..BookForms::default()
    };
    book_page(&state, &mut conn, &session, row, None, &forms, &errors).await
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    revoke_reason: String,
    /// "oui" once the user confirmed; without it the page asks.
    #[serde(default)]
    confirm: String,
}

pub async fn revoke(
    state: web::Data<AppState>,
    posted: Posted<RevokeForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let issuer = session.require(Role::Issuer)?;
    let mut conn = state.pool.get().await?;
    let row = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let reason_given = !form.revoke_reason.trim().is_empty();
    if reason_given && form.confirm != "oui" && row.revoked_at.is_none() {
        // Nothing is revoked yet: the page asks first, the reason kept.
        let forms = BookForms {
            revoke_reason: &form.revoke_reason,
            confirm_revoke: true,
            ..BookForms::default()
        };
        return book_page(
            &state,
            &mut conn,
            &session,
            row,
            None,
            &forms,
            &FormErrors::default(),
        )
        .await;
    }
    match books::revoke(&mut conn, &row, &form.revoke_reason).await {
        Ok(()) => Ok(layout::see_other(&format!(
            "{}?fait=revoque",
            book_url(row.id)
        ))),
        Err(e) => {
            let errors = FormErrors::from_refusal(
                e,
                &[(
                    "reason",
                    "revoke_reason",
                    "Indiquez le motif (1 à 500 caractères).",
                )],
            )?;
            let forms = BookForms {
                revoke_reason: &form.revoke_reason,
                ..BookForms::default()
            };
            book_page(&state, &mut conn, &session, row, None, &forms, &errors).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ReplaceForm {
    #[serde(default)]
    replace_reason: String,
}

pub async fn replace(
    state: web::Data<AppState>,
    posted: Posted<ReplaceForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let issuer = session.require(Role::Issuer)?;
    let mut conn = state.pool.get().await?;
    let row = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let signer = state.keys.signer(Purpose::Voucher).await?;
    let outcome = books::replace(
        &mut conn,
        &row,
        issuer,
        signer,
        &form.replace_reason,
        &state.config.public_url,
    )
    .await;
    match outcome {
        Ok(new) => {
            tracing::info!(old = row.id, new = new.id, "book replaced (page)");
            Ok(layout::see_other(&format!(
                "{}?fait=remplace",
                book_url(new.id)
            )))
        }
        Err(e) => {
            let errors = FormErrors::from_refusal(
                e,
                &[(
                    "reason",
                    "replace_reason",
                    "Indiquez le motif (1 à 500 caractères).",
                )],
            )?;
            let forms = BookForms {
                replace_reason: &form.replace_reason,
                ..BookForms::default()
            };
            book_page(&state, &mut conn, &session, row, None, &forms, &errors).await
        }
    }
}

/// The beneficiary's own page: how many links lead to it, and renewing them
/// (a lost phone, a shared e-mail).
fn page_link_section(session: &Session, url: &str, live_links: i64) -> Markup {
    html! {
        section aria-labelledby="lien-titre" {
            h2 #lien-titre { "Page personnelle du bénéficiaire" }
            p {
                "Le carnet imprimé et l'e-mail donnent un lien secret vers une page où le bénéficiaire voit ses coupons sur son téléphone. "
                @if live_links == 0 {
                    "Aucun lien ne mène à cette page pour l'instant."
                } @else {
                    (live_links) " " (if live_links > 1 { "liens mènent" } else { "lien mène" }) " à cette page."
                }
            }
            p { "Renouveler le lien arrête tous les anciens liens (téléphone perdu, e-mail partagé). Imprimez ou envoyez ensuite le carnet à nouveau." }
            form.form method="post" action={ (url) "/lien" } {
                (forms::csrf_field(session))
                button.button.button--secondary type="submit" { "Renouveler le lien" }
            }
        }
    }
}

/// Renews the links to the beneficiary's page; the new one is shown once,
/// on this answer (never in an address, so never in a history or a log).
pub async fn renew_link(
    state: web::Data<AppState>,
    posted: Posted<forms::NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, .. } = posted;
    let issuer = session.require(Role::Issuer)?;
    let mut conn = state.pool.get().await?;
    let row = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let (secret, killed) = carnet::renew(&mut conn, &row, issuer.user.id).await?;
    let notice = format!(
        "Nouveau lien : {} — {}. Donnez-le au bénéficiaire, ou imprimez ou envoyez le carnet à nouveau.",
        carnet::page_url(&state.config.public_url, &secret),
        match killed {
            0 => "aucun ancien lien n'existait".to_owned(),
            1 => "l'ancien lien ne marche plus".to_owned(),
            n => format!("les {n} anciens liens ne marchent plus"),
        }
    );
    book_page(
        &state,
        &mut conn,
        &session,
        row,
        Some(&notice),
        &BookForms::default(),
        &FormErrors::default(),
    )
    .await
}
