//! The invoicing pages: the venue's invoicing details (`/lieu/facturation`)
//! and its invoice and credit note downloads; the funder's buyer details of
//! a programme (`/financeur/programmes/{id}/facturation`). The rules and the
//! checks are the domain's (`domain::invoices`).

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::errors::PageError;
use super::forms::{self, blank_to_none, FormErrors, Input, Posted};
use super::layout;
use super::session::Session;
use crate::auth::Role;
use crate::domain::invoices::details::{
    self, BuyerDetailsRequest, VatRegime, VenueDetailsRequest, VAT_RATES,
};
use crate::domain::invoices::document::Kind;
use crate::domain::invoices::{self, IssuedSummary};
use crate::domain::{organisations, programs, statements};
use crate::geo::Communes;
use crate::render::invoice_pdf;
use crate::state::AppState;

/// The venue's pages of invoicing, under `/lieu`.
pub fn venue_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/facturation")
            .get(venue_details)
            .post(save_venue_details),
    )
    .service(web::resource("/releves/{id}/facture").get(invoice))
    .service(web::resource("/releves/{id}/avoir").get(credit_note));
}

/// The funder's page of a programme's buyer details, under `/financeur`.
pub fn funder_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/programmes/{id}/facturation")
            .get(buyer_details)
            .post(save_buyer_details),
    );
}

/// `?enregistre=1` after a form was saved.
#[derive(Debug, Deserialize)]
pub struct SavedQuery {
    enregistre: Option<String>,
}

/// The names the details form posts, as the API's fields.
#[derive(Debug, Default, Deserialize)]
pub struct VenueForm {
    #[serde(default)]
    legal_name: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    vat_regime: String,
    #[serde(default)]
    vat_exemption_reason: String,
    #[serde(default)]
    vat_number: String,
    #[serde(default)]
    vat_rate: String,
    #[serde(default)]
    iban: String,
    #[serde(default)]
    bic: String,
}

/// What a venue fills in before its first invoice, in French, for the
/// statements page and the 409 of a download.
pub fn what_to_fill(missing: &[&str]) -> Vec<&'static str> {
    missing
        .iter()
        .filter_map(|field| {
            Some(match *field {
                "legal_name" => "la raison sociale",
                "address" => "l'adresse de facturation",
                "postcode" => "le code postal",
                "city" => "la commune",
                "vat_regime" => "le régime de TVA (exonéré, avec sa mention, ou assujetti, avec le numéro de TVA et le taux)",
                "iban" => "l'IBAN du compte à payer",
                "siret" => "le SIRET du lieu (l'opérateur le renseigne)",
                _ => return None,
            })
        })
        .collect()
}

/// The box that says what is missing, linking to the form.
pub fn missing_notice(missing: &[&str]) -> Markup {
    html! {
        div.alert.alert--warning role="status" {
            h2.alert__title { "Vos factures attendent vos coordonnées de facturation" }
            p { "Pour que chaque relevé vous donne sa facture, prête à déposer sur Chorus Pro, renseignez :" }
            ul { @for item in what_to_fill(missing) { li { (item) } } }
            p { a href="/lieu/facturation" { "Renseigner mes coordonnées de facturation" } }
        }
    }
}

pub async fn venue_details(
    state: web::Data<AppState>,
    session: Session,
    query: forms::Query<SavedQuery>,
) -> Result<HttpResponse, PageError> {
    let venue = session.require(Role::Venue)?;
    let mut conn = state.pool.get().await?;
    let form = match details::venue_details(&mut conn, venue.organisation.id).await? {
        Some(stored) => VenueForm {
            legal_name: stored.legal_name,
            address: stored.address,
            postcode: stored.postcode,
            city: stored.city,
            vat_regime: match stored.vat_regime.0 {
                VatRegime::Exempt => "exempt".into(),
                VatRegime::Vat => "vat".into(),
            },
            vat_exemption_reason: stored.vat_exemption_reason.unwrap_or_default(),
            vat_number: stored.vat_number.unwrap_or_default(),
            vat_rate: stored
                .vat_rate_basis_points
                .map(|r| r.to_string())
                .unwrap_or_default(),
            iban: stored.iban,
            bic: stored.bic.unwrap_or_default(),
        },
        // A first visit starts from the organisation as registered.
        None => {
            let org = organisations::find(&mut conn, venue.organisation.id).await?;
            VenueForm {
                legal_name: org.name,
                address: org.address.unwrap_or_default(),
                postcode: org.postcode.unwrap_or_default(),
                city: org
                    .commune_code
                    .and_then(|code| {
                        Communes::shared()
                            .commune(&code)
                            .map(|c| c.name().to_owned())
                    })
                    .unwrap_or_default(),
                ..VenueForm::default()
            }
        }
    };
    let notice = query.enregistre.is_some().then_some(
        "Vos coordonnées de facturation sont enregistrées : vos factures les reprendront.",
    );
    Ok(venue_details_page(
        &session,
        &form,
        notice,
        &FormErrors::default(),
    ))
}

pub async fn save_venue_details(
    state: web::Data<AppState>,
    posted: Posted<VenueForm>,
) -> Result<HttpResponse, PageError> {
    let venue = posted.session.require(Role::Venue)?;
    let form = &posted.form;
    let mut errors = FormErrors::default();
    let vat_regime = match form.vat_regime.as_str() {
        "exempt" => Some(VatRegime::Exempt),
        "vat" => Some(VatRegime::Vat),
        _ => {
            errors.add("vat_regime", "Choisissez votre régime de TVA.");
            None
        }
    };
    let vat_rate = match (vat_regime, form.vat_rate.trim()) {
        (Some(VatRegime::Vat), rate) => rate.parse().ok(),
        _ => None,
    };
    let Some(vat_regime) = vat_regime else {
        return Ok(venue_details_page(&posted.session, form, None, &errors));
    };
    let exempt = vat_regime == VatRegime::Exempt;
    let request = VenueDetailsRequest {
        legal_name: form.legal_name.clone(),
        address: form.address.clone(),
        postcode: form.postcode.clone(),
        city: form.city.clone(),
        vat_regime,
        // The fields of the other regime are kept in the form, not sent.
        vat_exemption_reason: blank_to_none(&form.vat_exemption_reason).filter(|_| exempt),
        vat_number: blank_to_none(&form.vat_number),
        vat_rate_basis_points: vat_rate,
        iban: form.iban.clone(),
        bic: blank_to_none(&form.bic),
    };
    let mut conn = state.pool.get().await?;
    match details::save_venue_details(&mut conn, venue.organisation.id, venue.user.id, request)
        .await
    {
        Ok(_) => Ok(layout::see_other("/lieu/facturation?enregistre=1")),
        Err(e) => {
            // The domain's messages are in French already: shown as they are.
            let french: Vec<String> = e.errors.iter().map(|f| sentence(&f.message)).collect();
            let mut errors = FormErrors::from_refusal(e, FIELDS)?;
            if errors.fields.len() == french.len() {
                for ((_, message), french) in errors.fields.iter_mut().zip(french) {
                    *message = french;
                }
            }
            Ok(venue_details_page(&posted.session, form, None, &errors))
        }
    }
}

/// The API's fields and the form's (the rate is `vat_rate` on the form).
const FIELDS: &[(&str, &str, &str)] = &[
    ("legal_name", "legal_name", "Indiquez la raison sociale."),
    ("address", "address", "Indiquez l'adresse."),
    ("postcode", "postcode", "Indiquez le code postal."),
    ("city", "city", "Indiquez la commune."),
    (
        "vat_exemption_reason",
        "vat_exemption_reason",
        "Indiquez la mention d'exonération.",
    ),
    ("vat_number", "vat_number", "Vérifiez le numéro de TVA."),
    (
        "vat_rate_basis_points",
        "vat_rate",
        "Choisissez le taux de TVA.",
    ),
    ("iban", "iban", "Vérifiez l'IBAN."),
    ("bic", "bic", "Vérifiez le BIC."),
    (
        "siret",
        "legal_name",
        "Le SIRET du lieu manque : demandez à l'opérateur de le renseigner.",
    ),
];

fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let first: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    crate::render::typeset::sentence(&format!("{first}{}", chars.as_str()))
}

fn venue_details_page(
    session: &Session,
    form: &VenueForm,
    notice: Option<&str>,
    errors: &FormErrors,
) -> HttpResponse {
    let rates: Vec<(String, String)> = VAT_RATES
        .iter()
        .map(|r| {
            let label = format!(
                "{} %",
                crate::domain::invoices::cii::percent(*r).replace('.', ",")
            );
            (r.to_string(), label)
        })
        .collect();
    let content = html! {
        p { a href="/lieu/releves" { "← Relevés" } }
        h1 { "Coordonnées de facturation" }
        p.lead { "Chaque relevé clos vous donne sa facture, au format Factur-X que Chorus Pro accepte. Elle reprend ces coordonnées telles qu'elles sont le jour où elle est émise." }
        @if let Some(notice) = notice {
            div.alert.alert--success role="status" { p { (notice) } }
        }
        (errors.summary())
        form.form method="post" action="/lieu/facturation" novalidate {
            (forms::csrf_field(session))
            h2 { "Le lieu" }
            (Input::text("legal_name", "Raison sociale", &form.legal_name)
                .hint("Le nom officiel, tel qu'il figure au répertoire SIRENE.")
                .autocomplete("organization").render(errors))
            (Input::text("address", "Adresse de facturation", &form.address).autocomplete("street-address").render(errors))
            (Input::text("postcode", "Code postal", &form.postcode).numeric("[0-9]{5}").autocomplete("postal-code").render(errors))
            (Input::text("city", "Commune", &form.city).autocomplete("address-level2").render(errors))
            h2 { "TVA" }
            (forms::radios("vat_regime", "Régime de TVA", &[
                ("exempt", "Exonéré ou non assujetti (association, franchise, collectivité)"),
                ("vat", "Assujetti à la TVA"),
            ], &form.vat_regime, errors))
            (Input::text("vat_exemption_reason", "Mention d'exonération (si exonéré)", &form.vat_exemption_reason)
                .hint("Imprimée sur chaque facture : « TVA non applicable, art. 261-7-1° b du CGI » pour une association, « TVA non applicable, art. 293 B du CGI » en franchise, « TVA non applicable, art. 256 B du CGI » pour une collectivité.")
                .optional().render(errors))
            (Input::text("vat_number", "Numéro de TVA intracommunautaire", &form.vat_number)
                .hint("FR, deux caractères de clé, puis votre SIREN. Obligatoire si vous êtes assujetti.")
                .optional().render(errors))
            div.field.field--error[errors.field("vat_rate").is_some()] {
                label.field__label for="vat_rate" { "Taux de TVA (si assujetti)" }
                @if let Some(error) = errors.field("vat_rate") {
                    p.field__error id="vat_rate-erreur" { span.visually-hidden { "Erreur : " } (error) }
                }
                select.field__input #vat_rate name="vat_rate"
                    aria-describedby=[errors.field("vat_rate").map(|_| "vat_rate-erreur")] {
                    option value="" { "—" }
                    @for (value, label) in &rates {
                        option value=(value) selected[*value == form.vat_rate] { (label) }
                    }
                }
            }
            h2 { "Le compte à payer" }
            (Input::text("iban", "IBAN", &form.iban).hint("Tel qu'il figure sur votre RIB ; les espaces sont permis.").render(errors))
            (Input::text("bic", "BIC", &form.bic).optional().render(errors))
            button.button type="submit" { "Enregistrer" }
        }
    };
    layout::respond(
        errors.status(),
        layout::page(Some(session), "Coordonnées de facturation", content),
    )
}

/// The invoice of the venue's extract, issued on the first download.
pub async fn invoice(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    download(&state, &session, *id, Kind::Invoice).await
}

/// The credit note of the venue's extract.
pub async fn credit_note(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    download(&state, &session, *id, Kind::CreditNote).await
}

async fn download(
    state: &AppState,
    session: &Session,
    id: i64,
    kind: Kind,
) -> Result<HttpResponse, PageError> {
    let venue = session.require(Role::Venue)?;
    let mut conn = state.pool.get().await?;
    statements::viewer_scope(&mut conn, id, Role::Venue, venue.organisation.id).await?;
    let missing = details::missing(&mut conn, venue.organisation.id).await?;
    if !missing.is_empty() {
        return Ok(layout::see_other("/lieu/facturation"));
    }
    let issued = invoices::get_or_issue(&mut conn, id, venue.organisation.id, kind).await?;
    let pdf = invoice_pdf::render(&issued.invoice, &issued.xml)
        .map_err(|e| PageError::from(crate::http::problem::ApiError::internal(e.to_string())))?;
    let mut response = crate::http::statements::attachment(
        "application/pdf",
        &format!("{}.pdf", invoices::file_stem(&issued.invoice)),
        pdf,
    );
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// The documents column of one statement on the venue's page: what can be
/// downloaded, and what was paid.
pub fn documents(
    statement_id: i64,
    number: i32,
    available: Option<&(bool, bool)>,
    issued: &[IssuedSummary],
) -> Markup {
    let (invoiceable, credited) = available.copied().unwrap_or((false, false));
    let issued_of = |kind: Kind| {
        issued
            .iter()
            .find(|i| i.statement_id == statement_id && i.kind == kind)
    };
    html! {
        @if invoiceable {
            li { a href={ "/lieu/releves/" (statement_id) "/facture" } download {
                "Télécharger la facture (Factur-X)"
                @if let Some(i) = issued_of(Kind::Invoice) { " n° " (i.number) }
                span.visually-hidden { " du relevé n° " (number) }
            } }
        }
        @if credited {
            li { a href={ "/lieu/releves/" (statement_id) "/avoir" } download {
                "Télécharger l'avoir (ateliers repris)"
                @if let Some(i) = issued_of(Kind::CreditNote) { " n° " (i.number) }
                span.visually-hidden { " du relevé n° " (number) }
            } }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct BuyerForm {
    #[serde(default)]
    buyer_siret: String,
    #[serde(default)]
    service_code: String,
    #[serde(default)]
    engagement_number: String,
}

pub async fn buyer_details(
    state: web::Data<AppState>,
    session: Session,
    id: web::Path<i32>,
    query: forms::Query<SavedQuery>,
) -> Result<HttpResponse, PageError> {
    let funder = session.require(Role::Funder)?;
    let mut conn = state.pool.get().await?;
    let program = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
    let stored = details::buyer_details(&mut conn, &program).await?;
    let form = BuyerForm {
        buyer_siret: stored.buyer_siret,
        service_code: stored.service_code.unwrap_or_default(),
        engagement_number: stored.engagement_number.unwrap_or_default(),
    };
    let notice = query
        .enregistre
        .is_some()
        .then_some("C'est enregistré : les prochaines factures des lieux le reprendront.");
    Ok(buyer_page(
        &session,
        &program,
        &form,
        notice,
        &FormErrors::default(),
    ))
}

pub async fn save_buyer_details(
    state: web::Data<AppState>,
    posted: Posted<BuyerForm>,
    id: web::Path<i32>,
) -> Result<HttpResponse, PageError> {
    let funder = posted.session.require(Role::Funder)?;
    let mut conn = state.pool.get().await?;
    let program = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
    let form = &posted.form;
    let request = BuyerDetailsRequest {
        buyer_siret: form.buyer_siret.clone(),
        service_code: blank_to_none(&form.service_code),
        engagement_number: blank_to_none(&form.engagement_number),
    };
    match details::save_buyer_details(&mut conn, &program, funder.user.id, request).await {
        Ok(_) => Ok(layout::see_other(&format!(
            "/financeur/programmes/{}/facturation?enregistre=1",
            program.id
        ))),
        Err(e) => {
            let errors = FormErrors::from_refusal(
                e,
                &[
                    (
                        "buyer_siret",
                        "buyer_siret",
                        "Ce SIRET n'est pas valide : 14 chiffres, clé de contrôle comprise.",
                    ),
                    (
                        "service_code",
                        "service_code",
                        "Le code service compte au plus 100 caractères.",
                    ),
                    (
                        "engagement_number",
                        "engagement_number",
                        "Le numéro d'engagement compte au plus 50 caractères.",
                    ),
                ],
            )?;
            Ok(buyer_page(&posted.session, &program, form, None, &errors))
        }
    }
}

fn buyer_page(
    session: &Session,
    program: &programs::ProgramRow,
    form: &BuyerForm,
    notice: Option<&str>,
    errors: &FormErrors,
) -> HttpResponse {
    let url = format!("/financeur/programmes/{}/facturation", program.id);
    let content = html! {
        p { a href={ "/financeur/programmes/" (program.id) } { "← " (program.name) } }
        h1 { "Facturation sur Chorus Pro" }
        p.lead { "Les lieux reçoivent, pour chaque relevé, une facture Factur-X adressée à l'acheteur public ci-dessous. Renseignez ce que votre service financier exige sur Chorus Pro avant que les lieux ne téléchargent leurs factures : une facture émise ne change plus." }
        @if let Some(notice) = notice {
            div.alert.alert--success role="status" { p { (notice) } }
        }
        (errors.summary())
        form.form method="post" action=(url) novalidate {
            (forms::csrf_field(session))
            (Input::text("buyer_siret", "SIRET de l'acheteur public", &form.buyer_siret)
                .hint("Celui de la structure destinataire des factures sur Chorus Pro ; par défaut, le vôtre.")
                .numeric("[0-9]{14}").render(errors))
            (Input::text("service_code", "Code service", &form.service_code)
                .hint("Si votre structure l'exige sur Chorus Pro : il oriente la facture vers le bon service.")
                .optional().render(errors))
            (Input::text("engagement_number", "Numéro d'engagement", &form.engagement_number)
                .hint("Si votre structure l'exige : le numéro du bon de commande ou de l'engagement juridique.")
                .optional().render(errors))
            button.button type="submit" { "Enregistrer" }
        }
    };
    layout::respond(
        errors.status(),
        layout::page(Some(session), "Facturation sur Chorus Pro", content),
    )
}
