//! The statement PDF, read from the signed CSV bytes and the summary.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{csv, csv_bytes, program_of, summary, VenueStatus, VenueSummary};
use crate::db::schema::{organisations, redemptions};
use crate::domain::themes;
use crate::http::problem::ApiError;
use crate::render::statement_pdf::{self, euros, Line, Section, StatementPdf};
use crate::render::typeset::french_date;

/// The PDF of statement `id`: the whole, or `venue`'s extract.
pub async fn render(
    conn: &mut AsyncPgConnection,
    id: i64,
    venue: Option<i64>,
) -> Result<Vec<u8>, ApiError> {
    let summary = summary(conn, id, venue).await?;
    let program = program_of(conn, id).await?;
    let funder_name: String = organisations::table
        .find(program.funder_organisation_id)
        .select(organisations::name)
        .first(conn)
        .await?;
    let rows = csv::read(&csv_bytes(conn, id, venue).await?);
    // A conflict the funder paid makes a second line for its coupon: marked.
    let ids: Vec<i64> = rows.iter().filter_map(|c| c.get(1)?.parse().ok()).collect();
    let second_payments: Vec<i64> = redemptions::table
        .filter(redemptions::id.eq_any(&ids))
        .filter(redemptions::second_payment.eq(true))
        .select(redemptions::id)
        .load(conn)
        .await?;
    let sections = summary
        .venues
        .iter()
        .map(|v| Section {
            venue_name: &v.venue_name,
            venue_siret: &v.venue_siret,
            total_cents: v.total_cents,
            status: status(v),
            lines: rows
                .iter()
                .filter(|cells| cells[3] == v.venue_siret && cells[4] == v.venue_name)
                .filter_map(|cells| line(cells, &second_payments))
                .collect(),
        })
        .collect();
    let pdf = StatementPdf {
        program_name: &program.name,
        funder_name: &funder_name,
        number: summary.number,
        period_start: summary.period_start,
        period_end: summary.period_end,
        closed_at: summary.closed_at,
        tz: program.tz(),
        extract_of: venue.and(
            summary
                .venues
                .as_slice()
                .first()
                .map(|v| v.venue_name.as_str()),
        ),
        sections,
        total_count: summary.total_count,
        total_cents: summary.total_cents,
        sha256: &summary.sha256,
        kid: &summary.kid,
        signature: &summary.signature,
    };
    statement_pdf::render(&pdf).map_err(|e| ApiError::internal(e.to_string()))
}

fn status(venue: &VenueSummary) -> String {
    match (&venue.payment, venue.status) {
        (Some(p), _) => format!(
            "Payé le {}, virement {}",
            french_date(p.paid_on),
            p.reference
        ),
        (None, VenueStatus::Due) => format!("À payer : {}", euros(venue.total_cents)),
        (None, _) if venue.total_cents < 0 => format!(
            "Rien à payer : le solde de {} est reporté sur le relevé suivant",
            euros(venue.total_cents)
        ),
        (None, _) => "Rien à payer".to_owned(),
    }
}

/// One CSV line as printed: the theme's label (first marked "2e paiement"
/// for a conflict the funder decided to pay), the amount in euros.
fn line(cells: &[String], second_payments: &[i64]) -> Option<Line> {
    let [_, redemption_id, redeemed_at, _, _, voucher_id, position, theme, held_on, amount] = cells
    else {
        return None;
    };
    let label = themes::label(theme).map_or_else(|| capitalised(theme), str::to_owned);
    let second = redemption_id
        .parse::<i64>()
        .is_ok_and(|id| second_payments.contains(&id));
    Some(Line {
        redeemed_at: DateTime::parse_from_rfc3339(redeemed_at)
            .ok()
            .map(|at| at.with_timezone(&Utc)),
        voucher_id: voucher_id.clone(),
        position: position.clone(),
        theme: if second {
            format!("{SECOND_PAYMENT} · {label}")
        } else {
            label
        },
        held_on: held_on.parse::<NaiveDate>().ok()?,
        amount_cents: amount.parse().ok()?,
    })
}

/// The mark of a second payment, printed first so that a narrow column keeps it.
pub const SECOND_PAYMENT: &str = "2e paiement (conflit payé)";

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
