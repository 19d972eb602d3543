//! The national directory on the web pages: the operator's reports of
//! `passnum venues import`, and a venue completing its own details (opening
//! hours, accessibility, phone), which the beneficiary's page shows and later
//! imports leave alone.

use actix_web::{web, HttpResponse};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use maud::html;
use serde::Deserialize;

use super::errors::PageError;
use super::forms::{self, FormErrors, Input, Posted};
use super::layout;
use super::session::Session;
use crate::auth::Role;
use crate::domain::{directory, paris};
use crate::state::AppState;

pub fn operator_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/imports").get(imports));
}

pub fn venue_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/mon-lieu").get(details).post(save_details));
}

/// The latest imports of the national file, with the rows they refused.
pub async fn imports(
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    session.require(Role::Operator)?;
    let mut conn = state.pool.get().await?;
    let runs = directory::recent_imports(&mut conn, 20).await?;
    let tz = paris::DEFAULT_TIME_ZONE;
    let content = html! {
        h1 { "Imports des lieux" }
        p { "Les lieux de médiation numérique de la base nationale sont importés avec " code { "passnum venues import FICHIER" } ". Ils sont « répertoriés » : ils ne prennent pas les coupons tant qu'ils ne sont pas habilités." }
        @if runs.is_empty() {
            p { "Aucun import pour l'instant." }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-labelledby="imports-titre" {
                table {
                    caption #imports-titre { "Les 20 derniers imports" }
                    thead { tr {
                        th scope="col" { "Fichier" }
                        th scope="col" { "Terminé le" }
                        th scope="col" class="num" { "Lignes" }
                        th scope="col" class="num" { "Créés" }
                        th scope="col" class="num" { "Mis à jour" }
                        th scope="col" class="num" { "Inchangés" }
                        th scope="col" class="num" { "Refusées" }
                    } }
                    tbody {
                        @for run in &runs {
                            tr {
                                th scope="row" { (run.file_name) }
                                td { (super::format::instant(run.finished_at, tz)) }
                                td.num { (run.rows_read) }
                                td.num { (run.created) }
                                td.num { (run.updated) }
                                td.num { (run.unchanged) }
                                td.num { (run.rejected) }
                            }
                        }
                    }
                }
            }
            @for run in runs.iter().filter(|r| r.rejected > 0) {
                @let rows = run.rejections.as_array().cloned().unwrap_or_default();
                details {
                    summary { "Lignes refusées de " (run.file_name) " (" (run.rejected) ")" }
                    ul {
                        @for r in &rows {
                            li {
                                "Ligne " (r["line"]) " (" (r["id"].as_str().unwrap_or("sans id")) ") : "
                                (r["reason"].as_str().unwrap_or_default())
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::ok(layout::page(
        Some(&session),
        "Imports des lieux",
        content,
    )))
}

/// What the venue says about itself.
#[derive(Debug, Default, Deserialize)]
pub struct DetailsForm {
    #[serde(default)]
    opening_hours: String,
    #[serde(default)]
    accessibility: String,
    #[serde(default)]
    phone: String,
}

async fn current(conn: &mut AsyncPgConnection, venue: i64) -> Result<DetailsForm, PageError> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Text>)]
        opening_hours: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        accessibility: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        phone: Option<String>,
    }
    let row: Row = diesel::sql_query(
        "SELECT d.opening_hours, d.accessibility, o.phone
           FROM organisations o LEFT JOIN venue_details d ON d.organisation_id = o.id WHERE o.id = $1",
    )
    .bind::<BigInt, _>(venue)
    .get_result(conn)
    .await?;
    Ok(DetailsForm {
        opening_hours: row.opening_hours.unwrap_or_default(),
        accessibility: row.accessibility.unwrap_or_default(),
        phone: row.phone.unwrap_or_default(),
    })
}

pub async fn details(
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let venue = session.require(Role::Venue)?.organisation.id;
    let mut conn = state.pool.get().await?;
    let form = current(&mut conn, venue).await?;
    Ok(details_page(&session, &form, &FormErrors::default(), false))
}

fn details_page(
    session: &Session,
    form: &DetailsForm,
    errors: &FormErrors,
    saved: bool,
) -> HttpResponse {
    let preview = super::carnet::opening_hours_fr(&form.opening_hours);
    let content = html! {
        h1 { "Mon lieu" }
        @if saved {
            div.alert.alert--success role="status" { p { "Vos informations sont enregistrées. Les bénéficiaires les voient sur leur page." } }
        }
        (errors.summary())
        p { "Ces informations sont montrées aux bénéficiaires sur leur page. L'import de la base nationale ne les remplace plus une fois que vous les avez complétées." }
        form.form method="post" action="/lieu/mon-lieu" novalidate {
            (forms::csrf_field(session))
            (Input::text("opening_hours", "Horaires d'ouverture", &form.opening_hours)
                .hint("Au format OpenStreetMap, par exemple : Mo-Fr 09:00-12:00,14:00-17:30; Sa 09:00-12:00")
                .optional().render(errors))
            @if !preview.is_empty() {
                p { "Les bénéficiaires liront : " }
                ul { @for line in &preview { li { (line) } } }
            }
            (Input::text("accessibility", "Accessibilité", &form.accessibility)
                .hint("L'adresse de votre fiche acceslibre, ou une phrase : « Accès de plain-pied, toilettes adaptées ».")
                .optional().render(errors))
            (Input::text("phone", "Téléphone", &form.phone).kind("tel")
                .hint("Par exemple : 03 88 00 11 22").optional().render(errors))
            button.button type="submit" { "Enregistrer" }
        }
    };
    layout::respond(
        errors.status(),
        layout::page(Some(session), "Mon lieu", content),
    )
}

/// A French or international phone number, kept as `+33…` digits.
fn normalise_phone(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let kept: String = phone.chars().filter(|c| !" .-".contains(*c)).collect();
    if kept.starts_with('+')
        && kept[1..].chars().all(|c| c.is_ascii_digit())
        && (8..=15).contains(&digits.len())
    {
        Some(kept)
    } else if kept.chars().all(|c| c.is_ascii_digit())
        && digits.len() == 10
        && digits.starts_with('0')
    {
        Some(format!("+33{}", &digits[1..]))
    } else {
        None
    }
}

pub async fn save_details(
    state: web::Data<AppState>,
    posted: Posted<DetailsForm>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let venue = session.require(Role::Venue)?.organisation.id;
    let mut errors = FormErrors::default();
    let trimmed = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let (hours, accessibility) = (trimmed(&form.opening_hours), trimmed(&form.accessibility));
    for (field, value) in [("opening_hours", &hours), ("accessibility", &accessibility)] {
        if value.as_deref().is_some_and(|v| v.chars().count() > 500) {
            errors.add(field, "500 caractères au plus.");
        }
    }
    let phone = match trimmed(&form.phone) {
        None => None,
        Some(p) => match normalise_phone(&p) {
            Some(p) => Some(p),
            None => {
                errors.add(
                    "phone",
                    "Saisissez un numéro de téléphone, par exemple 03 88 00 11 22.",
                );
                None
            }
        },
    };
    if !errors.is_empty() {
        return Ok(details_page(&session, &form, &errors, false));
    }
    let mut conn = state.pool.get().await?;
    diesel::sql_query(
        "WITH phone AS (UPDATE organisations SET phone = $4 WHERE id = $1 AND kind = 'venue')
         INSERT INTO venue_details (organisation_id, opening_hours, accessibility, self_edited_at)
         VALUES ($1, $2, $3, now())
         ON CONFLICT (organisation_id) DO UPDATE SET opening_hours = EXCLUDED.opening_hours,
             accessibility = EXCLUDED.accessibility, self_edited_at = now()",
    )
    .bind::<BigInt, _>(venue)
    .bind::<Nullable<Text>, _>(&hours)
    .bind::<Nullable<Text>, _>(&accessibility)
    .bind::<Nullable<Text>, _>(&phone)
    .execute(&mut conn)
    .await?;
    let form = current(&mut conn, venue).await?;
    Ok(details_page(&session, &form, &FormErrors::default(), true))
}

#[cfg(test)]
mod tests {
    use super::normalise_phone;

    #[test]
    fn phones_are_kept_in_international_form() {
        assert_eq!(
            normalise_phone("03 88 00 11 22").as_deref(),
            Some("+33388001122")
        );
        assert_eq!(
            normalise_phone("+33 3 88 00 11 22").as_deref(),
            Some("+33388001122")
        );
        assert_eq!(
            normalise_phone("0262.26.00.11").as_deref(),
            Some("+33262260011")
        );
        assert_eq!(normalise_phone("03 88 00 11 2"), None);
        assert_eq!(
            normalise_phone("+262 262 00 11 22").as_deref(),
            Some("+262262001122")
        );
        assert_eq!(normalise_phone("appelez-nous"), None);
    }
}
