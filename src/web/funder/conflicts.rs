//! Offline scans of a voucher another venue had used: the funder decides.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use maud::html;

use super::{notice, DoneQuery};
use crate::auth::Role;
use crate::domain::batch::{self, Resolution};
use crate::domain::organisations;
use crate::domain::programs;
use crate::domain::themes;
use crate::state::AppState;
use crate::voucher::typed_code;
use crate::web::errors::PageError;
use crate::web::format;
use crate::web::forms::{self, FormErrors, Input, Posted};
use crate::web::layout;
use crate::web::session::Session;

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
    query: web::Query<DoneQuery>,
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
        p { "Un conflit naît quand un lieu, hors connexion, a scanné un coupon qu'un autre lieu avait déjà utilisé. Décidez s'il faut payer aussi cet atelier." }
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
