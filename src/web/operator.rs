//! The operator's pages: organisations, venues' accreditation, users, and
//! the rotation of signing keys.

use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use maud::{html, Markup};
use serde::Deserialize;

use super::errors::PageError;
use super::format;
use super::forms::{self, blank_to_none, FormErrors, Input, NoFields, Posted};
use super::layout::{self, role_label};
use super::session::Session;
use crate::auth::Role;
use crate::domain::organisations::{self, NewOrganisation, Organisation};
use crate::domain::{accounts, paris};
use crate::keys::{KeyStatus, Purpose};
use crate::state::AppState;

const PAGE_SIZE: i64 = 50;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(home))
        .service(
            web::resource("/organisations/nouvelle")
                .get(new_organisation)
                .post(create_organisation),
        )
        .service(web::resource("/organisations/{id}").get(organisation))
        .service(web::resource("/organisations/{id}/habilitation").post(accredit))
        .service(web::resource("/organisations/{id}/habilitation/retrait").post(withdraw))
        .service(web::resource("/organisations/{id}/utilisateurs").post(create_user))
        .service(web::resource("/utilisateurs/{id}/desactiver").post(deactivate_user))
        .service(web::resource("/cles").get(keys))
        .service(web::resource("/cles/rotation").post(rotate));
}

fn organisation_url(id: i64) -> String {
    format!("/operateur/organisations/{id}")
}

/// The kinds, as the filter and the creation form name them.
const KINDS: [(Role, &str, &str); 4] = [
    (Role::Venue, "venue", "Lieux de médiation"),
    (Role::Issuer, "issuer", "Prescripteurs"),
    (Role::Funder, "funder", "Financeurs"),
    (Role::Operator, "operator", "Opérateurs"),
];

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    apres: Option<i64>,
}

fn accreditation(org: &Organisation) -> Markup {
    let today = paris::today();
    html! {
        @if org.role() != Role::Venue {
            "—"
        } @else if org.is_accredited_on(today) {
            span.badge.badge--valid { "Habilité" }
            @if let Some(until) = org.accredited_until { " jusqu'au " (format::date(until)) }
        } @else {
            span.badge.badge--revoked { "Non habilité" }
        }
    }
}

pub async fn home(
    state: web::Data<AppState>,
    session: Session,
    query: forms::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    session.require(Role::Operator)?;
    let kind = query.kind.as_deref().and_then(Role::parse);
    let mut conn = state.pool.get().await?;
    let rows =
        organisations::list(&mut conn, kind, query.apres.unwrap_or(0), PAGE_SIZE + 1).await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    let rows: Vec<_> = rows.into_iter().take(PAGE_SIZE as usize).collect();
    let next = more
        .then(|| rows.last().map(|o| o.id))
        .flatten()
        .map(|last| {
            let mut query = vec![("apres", last.to_string())];
            if let Some(kind) = kind {
                query.push(("type", kind.as_str().to_owned()));
            }
            format!(
                "/operateur/?{}",
                serde_urlencoded::to_string(query).unwrap_or_default()
            )
        });
    let content = html! {
        h1 { "Organisations" }
        div.actions {
            a.button href="/operateur/organisations/nouvelle" { "Ajouter une organisation" }
        }
        nav aria-label="Filtrer par type" {
            ul.actions.filters {
                li { a href="/operateur/" aria-current=[kind.is_none().then_some("page")] { "Toutes" } }
                @for (role, slug, label) in KINDS {
                    li { a href={ "/operateur/?type=" (slug) } aria-current=[(kind == Some(role)).then_some("page")] { (label) } }
                }
            }
        }
        @if rows.is_empty() {
            p.muted { "Aucune organisation." }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-labelledby="orgs-titre" {
                table {
                    caption #orgs-titre { "Organisations inscrites" }
                    thead { tr {
                        th scope="col" { "Nom" }
                        th scope="col" { "Type" }
                        th scope="col" { "SIRET" }
                        th scope="col" { "Département" }
                        th scope="col" { "Habilitation" }
                    } }
                    tbody {
                        @for org in &rows {
                            tr {
                                th scope="row" { a href=(organisation_url(org.id)) { (org.name) } }
                                td { (role_label(org.role())) }
                                td.code { (org.siret.as_deref().unwrap_or("—")) }
                                td { (org.departement.as_deref().unwrap_or("—")) }
                                td { (accreditation(org)) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                p { a href=(next) { "Organisations suivantes" } }
            }
        }
    };
    Ok(layout::ok(layout::page(
        Some(&session),
        "Organisations",
        content,
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct OrganisationForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    siret: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    commune_code: String,
    #[serde(default)]
    latitude: String,
    #[serde(default)]
    longitude: String,
    #[serde(default)]
    phone: String,
}

const ORGANISATION_FIELDS: &[(&str, &str, &str)] = &[
    ("kind", "kind", "Choisissez le type d'organisation."),
    ("name", "name", "Saisissez le nom (1 à 200 caractères)."),
    (
        "siret",
        "siret",
        "Le SIRET compte 14 chiffres et sa clé de contrôle doit être juste.",
    ),
    (
        "address",
        "address",
        "Saisissez l'adresse (1 à 300 caractères).",
    ),
    (
        "postcode",
        "postcode",
        "Ce code postal n'existe pas, ou n'est pas celui de la commune indiquée.",
    ),
    (
        "commune_code",
        "commune_code",
        "Ce code INSEE ne désigne aucune commune actuelle.",
    ),
    (
        "latitude",
        "latitude",
        "Un lieu donne sa latitude (entre −90 et 90), avec sa longitude.",
    ),
    (
        "longitude",
        "longitude",
        "Un lieu donne sa longitude (entre −180 et 180), avec sa latitude.",
    ),
    (
        "phone",
        "phone",
        "Un numéro de téléphone compte 6 à 15 chiffres.",
    ),
];

fn organisation_form_page(
    session: &Session,
    form: &OrganisationForm,
    errors: &FormErrors,
) -> HttpResponse {
    let kinds: Vec<(&str, &str)> = KINDS
        .iter()
        .map(|(role, slug, _)| (*slug, role_label(*role)))
        .collect();
    let content = html! {
        p { a href="/operateur/" { "← Organisations" } }
        h1 { "Ajouter une organisation" }
        (errors.summary())
        form.form method="post" action="/operateur/organisations/nouvelle" novalidate {
            (forms::csrf_field(session))
            (forms::radios("kind", "Type d'organisation", &kinds, &form.kind, errors))
            (Input::text("name", "Nom", &form.name).autocomplete("organization").render(errors))
            (Input::text("siret", "SIRET", &form.siret).numeric("[0-9 ]{14,17}").hint("14 chiffres.").render(errors))
            (Input::text("address", "Adresse", &form.address).autocomplete("street-address").render(errors))
            (Input::text("postcode", "Code postal", &form.postcode).numeric("[0-9]{5}").autocomplete("postal-code").render(errors))
            (Input::text("commune_code", "Code INSEE de la commune", &form.commune_code).hint("5 caractères, par exemple 67482 pour Strasbourg.").render(errors))
            (Input::text("latitude", "Latitude", &form.latitude).optional().hint("Obligatoire pour un lieu de médiation, en degrés décimaux (par exemple 48,5734).").render(errors))
            (Input::text("longitude", "Longitude", &form.longitude).optional().hint("Obligatoire pour un lieu de médiation (par exemple 7,7521).").render(errors))
            (Input::text("phone", "Téléphone", &form.phone).kind("tel").optional().autocomplete("tel").render(errors))
            button.button type="submit" { "Ajouter l'organisation" }
        }
    };
    layout::respond(
        errors.status(),
        layout::page(Some(session), "Ajouter une organisation", content),
    )
}

pub async fn new_organisation(session: Session) -> Result<HttpResponse, PageError> {
    session.require(Role::Operator)?;
    let form = OrganisationForm {
        kind: "venue".into(),
        ..OrganisationForm::default()
    };
    Ok(organisation_form_page(
        &session,
        &form,
        &FormErrors::default(),
    ))
}

/// A decimal number as typed in France (comma or point); `Err` if it is not one.
fn decimal(value: &str) -> Result<Option<f64>, ()> {
    match blank_to_none(value) {
        None => Ok(None),
        Some(v) => v.replace(',', ".").parse().map(Some).map_err(|_| ()),
    }
}

pub async fn create_organisation(
    state: web::Data<AppState>,
    posted: Posted<OrganisationForm>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let operator = session.require(Role::Operator)?;
    let mut errors = FormErrors::default();
    let kind = Role::parse(form.kind.trim());
    if kind.is_none() {
        errors.add("kind", ORGANISATION_FIELDS[0].2);
    }
    let latitude = decimal(&form.latitude).unwrap_or_else(|()| {
        errors.add("latitude", "Saisissez un nombre, par exemple 48,5734.");
        None
    });
    let longitude = decimal(&form.longitude).unwrap_or_else(|()| {
        errors.add("longitude", "Saisissez un nombre, par exemple 7,7521.");
        None
    });
    let Some(kind) = kind.filter(|_| errors.is_empty()) else {
        return Ok(organisation_form_page(&session, &form, &errors));
    };
    let new = NewOrganisation {
        kind,
        name: form.name.clone(),
        siret: form.siret.chars().filter(|c| !c.is_whitespace()).collect(),
        address: form.address.clone(),
        postcode: form.postcode.trim().to_owned(),
        commune_code: form.commune_code.trim().to_owned(),
        latitude,
        longitude,
        phone: blank_to_none(&form.phone),
    };
    let mut conn = state.pool.get().await?;
    match organisations::create(&mut conn, new).await {
        Ok(org) => {
            tracing::info!(
                organisation = org.id,
                operator = operator.user.id,
                "organisation created (page)"
            );
            Ok(layout::see_other(&format!(
                "{}?fait=creee",
                organisation_url(org.id)
            )))
        }
        Err(e) => {
            let errors = FormErrors::from_refusal(e, ORGANISATION_FIELDS)?;
            Ok(organisation_form_page(&session, &form, &errors))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    fait: Option<String>,
}

/// What the organisation page's forms held when shown again with errors.
#[derive(Debug, Default)]
struct OrganisationForms<'a> {
    valid_until: &'a str,
    email: &'a str,
}

pub async fn organisation(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
    query: forms::Query<DoneQuery>,
) -> Result<HttpResponse, PageError> {
    session.require(Role::Operator)?;
    let notice = match query.fait.as_deref() {
        Some("creee") => Some("L'organisation est enregistrée. Ajoutez-lui des utilisateurs."),
        Some("habilitee") => Some("Le lieu est habilité."),
        Some("retiree") => Some("L'habilitation est retirée à partir de maintenant."),
        Some("utilisateur") => Some(
            "Le compte est créé. Transmettez le mot de passe à son titulaire par un autre canal.",
        ),
        Some("desactive") => {
            Some("Le compte est désactivé : ses sessions et ses jetons cessent de fonctionner.")
        }
        _ => None,
    };
    organisation_page(
        &state,
        &session,
        *id,
        notice,
        &OrganisationForms::default(),
        &FormErrors::default(),
    )
    .await
}

async fn organisation_page(
    state: &AppState,
    session: &Session,
    id: i64,
    notice: Option<&str>,
    forms: &OrganisationForms<'_>,
    errors: &FormErrors,
) -> Result<HttpResponse, PageError> {
    let mut conn = state.pool.get().await?;
    let org = organisations::find(&mut conn, id).await?;
    let users = accounts::of_organisation(&mut conn, id).await?;
    let url = organisation_url(id);
    let content = html! {
        p { a href="/operateur/" { "← Organisations" } }
        h1 { (org.name) }
        @if let Some(notice) = notice {
            div.alert.alert--success role="status" { p { (notice) } }
        }
        (errors.summary())
        dl.facts {
            dt { "Type" } dd { (role_label(org.role())) }
            dt { "SIRET" } dd.code { (org.siret.as_deref().unwrap_or("—")) }
            dt { "Adresse" } dd {
                (org.address.as_deref().unwrap_or("—")) " "
                (org.postcode.as_deref().unwrap_or_default())
            }
            dt { "Commune (INSEE)" } dd { (org.commune_code.as_deref().unwrap_or("—")) }
            dt { "Téléphone" } dd { (org.phone.as_deref().unwrap_or("—")) }
        }
        @if org.role() == Role::Venue {
            section aria-labelledby="habilitation-titre" {
                h2 #habilitation-titre { "Habilitation" }
                p { (accreditation(&org)) }
                @if let Some(at) = org.accreditation_withdrawn_at {
                    p.muted { "Habilitation retirée le " (format::instant(at, paris::DEFAULT_TIME_ZONE)) "." }
                }
                form.form method="post" action={ (url) "/habilitation" } novalidate {
                    (forms::csrf_field(session))
                    (Input::text("valid_until", "Habilité jusqu'au", forms.valid_until).kind("date")
                        .hint("Dernier jour inclus. Les coupons sont acceptés par ce lieu jusqu'à cette date.")
                        .render(errors))
                    button.button type="submit" { "Habiliter le lieu" }
                }
                @if org.is_accredited_on(paris::today()) {
                    div.actions {
                        form method="post" action={ (url) "/habilitation/retrait" } {
                            (forms::csrf_field(session))
                            button.button.button--danger type="submit" { "Retirer l'habilitation" }
                        }
                    }
                }
            }
        }
        section aria-labelledby="utilisateurs-titre" {
            h2 #utilisateurs-titre { "Utilisateurs" }
            @if users.is_empty() {
                p.muted { "Aucun utilisateur." }
            } @else {
                div.table-wrap tabindex="0" role="region" aria-labelledby="utilisateurs-legende" {
                    table {
                        caption #utilisateurs-legende { "Comptes de l'organisation" }
                        thead { tr { th scope="col" { "Adresse e-mail" } th scope="col" { "État" } th scope="col" { "Action" } } }
                        tbody {
                            @for user in &users {
                                tr {
                                    th scope="row" { (user.email) }
                                    td {
                                        @if user.is_active() { span.badge.badge--valid { "Actif" } }
                                        @else { span.badge.badge--revoked { "Désactivé" } }
                                    }
                                    td {
                                        @if user.is_active() {
                                            form method="post" action={ "/operateur/utilisateurs/" (user.id) "/desactiver" } {
                                                (forms::csrf_field(session))
                                                button.button.button--secondary.button--small type="submit" {
                                                    "Désactiver" span.visually-hidden { " " (user.email) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Ajouter un utilisateur" }
            form.form method="post" action={ (url) "/utilisateurs" } novalidate {
                (forms::csrf_field(session))
                (Input::text("email", "Adresse e-mail", forms.email).kind("email").autocomplete("off").render(errors))
                (Input::text("password", "Mot de passe initial", "").kind("password").autocomplete("new-password")
                    .hint("Au moins 10 caractères. Transmettez-le par un autre canal que l'adresse e-mail.").render(errors))
                button.button type="submit" { "Créer le compte" }
            }
        }
    };
    Ok(layout::respond(
        errors.status(),
        layout::page(Some(session), &org.name, content),
    ))
}

#[derive(Debug, Deserialize)]
pub struct AccreditForm {
    #[serde(default)]
    valid_until: String,
}

const DATE_MESSAGE: &str = "Saisissez une date qui n'est pas passée (jj/mm/aaaa).";

pub async fn accredit(
    state: web::Data<AppState>,
    posted: Posted<AccreditForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let operator = session.require(Role::Operator)?;
    let mut conn = state.pool.get().await?;
    let venue = organisations::find(&mut conn, *id).await?;
    let typed = NaiveDate::parse_from_str(form.valid_until.trim(), "%Y-%m-%d")
        .ok()
        .filter(|d| crate::domain::bounds::date_in_range(*d));
    let outcome = match typed {
        Some(until) => organisations::accredit(&mut conn, &venue, until)
            .await
            .map(|_| ()),
        None => Err(crate::http::problem::ApiError::invalid_field(
            "valid_until",
            "not a date",
        )),
    };
    match outcome {
        Ok(()) => {
            tracing::info!(
                venue = venue.id,
                operator = operator.user.id,
                "venue accredited (page)"
            );
            Ok(layout::see_other(&format!(
                "{}?fait=habilitee",
                organisation_url(venue.id)
            )))
        }
        Err(e) => {
            let errors =
                FormErrors::from_refusal(e, &[("valid_until", "valid_until", DATE_MESSAGE)])?;
            let forms = OrganisationForms {
                valid_until: &form.valid_until,
                ..OrganisationForms::default()
            };
            organisation_page(&state, &session, venue.id, None, &forms, &errors).await
        }
    }
}

pub async fn withdraw(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let operator = posted.session.require(Role::Operator)?;
    let mut conn = state.pool.get().await?;
    let venue = organisations::find(&mut conn, *id).await?;
    organisations::withdraw_accreditation(&mut conn, &venue).await?;
    tracing::info!(
        venue = venue.id,
        operator = operator.user.id,
        "accreditation withdrawn (page)"
    );
    Ok(layout::see_other(&format!(
        "{}?fait=retiree",
        organisation_url(venue.id)
    )))
}

#[derive(Debug, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn create_user(
    state: web::Data<AppState>,
    posted: Posted<UserForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let operator = session.require(Role::Operator)?;
    let mut conn = state.pool.get().await?;
    let org = organisations::find(&mut conn, *id).await?;
    let new = accounts::NewUser {
        organisation_id: org.id,
        email: form.email.clone(),
        password: form.password,
    };
    match accounts::create(&mut conn, &state.passwords, new).await {
        Ok(user) => {
            tracing::info!(
                user = user.id,
                operator = operator.user.id,
                "user created (page)"
            );
            Ok(layout::see_other(&format!(
                "{}?fait=utilisateur",
                organisation_url(org.id)
            )))
        }
        Err(e) => {
            let conflict = e.kind == crate::http::problem::ProblemType::Conflict;
            let mut errors = FormErrors::from_refusal(
                e,
                &[
                    ("email", "email", forms::EMAIL_INVALID),
                    (
                        "password",
                        "password",
                        "Le mot de passe compte au moins 10 caractères.",
                    ),
                ],
            )?;
            if conflict {
                errors.general = None;
                errors.add("email", "Cette adresse e-mail a déjà un compte.");
            }
            let forms = OrganisationForms {
                email: &form.email,
                ..OrganisationForms::default()
            };
            organisation_page(&state, &session, org.id, None, &forms, &errors).await
        }
    }
}

pub async fn deactivate_user(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let operator = posted.session.require(Role::Operator)?;
    let mut conn = state.pool.get().await?;
    let user = accounts::deactivate(&mut conn, *id).await?;
    state.callers.forget_user(user.id);
    tracing::info!(
        user = user.id,
        operator = operator.user.id,
        "user deactivated (page)"
    );
    Ok(layout::see_other(&format!(
        "{}?fait=desactive",
        organisation_url(user.organisation_id)
    )))
}

fn purpose_label(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Voucher => "Coupons",
        Purpose::Statement => "Relevés",
        Purpose::Login => "Connexions",
        Purpose::Log => "Journal public",
    }
}

fn status_label(status: KeyStatus) -> Markup {
    match status {
        KeyStatus::Active => html! { span.badge.badge--valid { "Active" } },
        KeyStatus::Retired => html! { span.badge { "Retirée (vérifie encore)" } },
        KeyStatus::Withdrawn => html! { span.badge.badge--revoked { "Révoquée" } },
    }
}

pub async fn keys(
    state: web::Data<AppState>,
    session: Session,
    query: forms::Query<DoneQuery>,
) -> Result<HttpResponse, PageError> {
    session.require(Role::Operator)?;
    let keys = state.keys.all_keys().await?;
    let tz = paris::DEFAULT_TIME_ZONE;
    let content = html! {
        h1 { "Clés de signature" }
        @if query.fait.as_deref() == Some("rotation") {
            div.alert.alert--success role="status" {
                p { "La nouvelle clé est active. Les coupons et relevés déjà signés restent vérifiables avec l'ancienne." }
                p { "Copiez le dossier des clés sur chaque instance du service (voir keys/README.md)." }
            }
        }
        p { "Une rotation retire la clé active (elle vérifie encore ce qu'elle a signé) et en crée une nouvelle pour les signatures à venir." }
        div.table-wrap tabindex="0" role="region" aria-labelledby="cles-titre" {
            table {
                caption #cles-titre { "Clés du trousseau" }
                thead { tr {
                    th scope="col" { "Identifiant (kid)" }
                    th scope="col" { "Usage" }
                    th scope="col" { "État" }
                    th scope="col" { "Créée le" }
                    th scope="col" { "Retirée le" }
                } }
                tbody {
                    @for key in keys.iter() {
                        tr {
                            th scope="row" { (key.kid) }
                            td { (purpose_label(key.purpose)) }
                            td { (status_label(key.status)) }
                            td { (format::instant(key.created_at, tz)) }
                            td { (key.retired_at.map(|at| format::instant(at, tz)).unwrap_or_else(|| "—".into())) }
                        }
                    }
                }
            }
        }
        h2 { "Faire une rotation" }
        div.actions {
            @for (purpose, label) in [(Purpose::Voucher, "Nouvelle clé des coupons"), (Purpose::Statement, "Nouvelle clé des relevés")] {
                form method="post" action="/operateur/cles/rotation" {
                    (forms::csrf_field(&session))
                    input type="hidden" name="purpose" value=(purpose.as_str());
                    button.button.button--secondary type="submit" { (label) }
                }
            }
        }
    };
    Ok(layout::ok(layout::page(
        Some(&session),
        "Clés de signature",
        content,
    )))
}

#[derive(Debug, Deserialize)]
pub struct RotateForm {
    purpose: String,
}

pub async fn rotate(
    state: web::Data<AppState>,
    posted: Posted<RotateForm>,
) -> Result<HttpResponse, PageError> {
    let operator = posted.session.require(Role::Operator)?;
    let purpose = match posted.form.purpose.as_str() {
        "voucher" => Purpose::Voucher,
        "statement" => Purpose::Statement,
        _ => return Err(PageError::BadRequest),
    };
    let kid = state.keys.rotate(purpose).await?;
    tracing::info!(%purpose, kid, operator = operator.user.id, "key rotated (page)");
    Ok(layout::see_other("/operateur/cles?fait=rotation"))
}
