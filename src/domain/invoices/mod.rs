//! Invoices and credit notes for venues' extracts of closed statements, in
//! Factur-X (EN 16931): what a public funder needs on Chorus Pro to pay.
//!
//! A document is read from the venue's signed extract, so it never says
//! something the signed CSV does not: the workshops paid on it make the
//! invoice, the workshops taken back (reversals) make the credit note, which
//! refers to the invoices of the statements that paid them. A negative
//! balance carried to a later statement was already credited by the credit
//! note of its own statement, so it is on no new document.
//!
//! Documents are issued when first asked for (by the venue or the funder),
//! once: numbered in one sequence per venue, frozen with what they said.

pub mod cii;
pub mod details;
pub mod document;
pub mod identifiers;

use chrono::{Days, NaiveDate};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use utoipa::ToSchema;

use self::details::VatRegime;
use self::document::{Buyer, Invoice, Kind, Party, Reference, Seller, Source, Tax};
use crate::db::schema::{
    invoice_corrections, invoices, organisations, statement_payments, venue_invoicing,
};
use crate::domain::{programs::ProgramRow, statements as statement, themes};
use crate::geo::Communes;
use crate::http::problem::{ApiError, ProblemType};

/// An issued document, as stored.
#[derive(Debug, Clone)]
pub struct Issued {
    pub id: i64,
    pub invoice: Invoice,
    pub xml: Vec<u8>,
}

/// An issued document as the API lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedSummary {
    pub statement_id: i64,
    pub venue_organisation_id: i64,
    /// `invoice` (type 380) or `credit_note` (type 381).
    #[schema(value_type = String)]
    pub kind: Kind,
    pub number: String,
    pub issued_on: NaiveDate,
    /// VAT included.
    pub total_cents: i64,
    /// Invoices: `paid` once the funder recorded the payment of the extract,
    /// else `issued`. Credit notes: `issued`.
    pub status: &'static str,
    pub paid_on: Option<NaiveDate>,
    pub payment_reference: Option<String>,
}

/// The document of `kind` for `venue`'s extract of statement `statement_id`,
/// issued now if it was not yet. The caller has checked it may see the extract.
pub async fn get_or_issue(
    conn: &mut AsyncPgConnection,
    statement_id: i64,
    venue: i64,
    kind: Kind,
) -> Result<Issued, ApiError> {
    if let Some(issued) = find(conn, statement_id, venue, kind).await? {
        return Ok(issued);
    }
    conn.transaction::<_, ApiError, _>(async |conn| {
        let missing = details::missing(conn, venue).await?;
        if !missing.is_empty() {
            return Err(details::missing_problem(venue, &missing));
        }
        // Issuing is serial per venue: its numbers follow each other without gaps.
        venue_invoicing::table
            .find(venue)
            .select(venue_invoicing::organisation_id)
            .for_update()
            .execute(conn)
            .await?;
        issue_locked(conn, statement_id, venue, kind).await
    })
    .await
}

/// Issues the document under the venue's lock, unless a rival did first;
/// a credit note first issues the invoices it corrects.
async fn issue_locked(
    conn: &mut AsyncPgConnection,
    statement_id: i64,
    venue: i64,
    kind: Kind,
) -> Result<Issued, ApiError> {
    if let Some(issued) = find(conn, statement_id, venue, kind).await? {
        return Ok(issued);
    }
    let rows = statement::csv::read(&statement::csv_bytes(conn, statement_id, Some(venue)).await?);
    let tally = document::tally(&rows, kind);
    if tally.is_empty() {
        return Err(ApiError::not_found(match kind {
            Kind::Invoice => format!(
                "Venue {venue}'s extract of statement {statement_id} has no workshop to invoice."
            ),
            Kind::CreditNote => format!(
                "Venue {venue}'s extract of statement {statement_id} takes back no workshop: it has no credit note."
            ),
        }));
    }
    let mut corrects = Vec::new();
    let mut corrected_ids = Vec::new();
    if kind == Kind::CreditNote {
        for paid_on in statements_that_paid(conn, &rows).await? {
            let invoice = Box::pin(issue_locked(conn, paid_on, venue, Kind::Invoice)).await?;
            corrected_ids.push(invoice.id);
            corrects.push(Reference {
                number: invoice.invoice.number,
                issued_on: invoice.invoice.issued_on,
            });
        }
    }
    let program = statement::program_of(conn, statement_id).await?;
    let summary = statement::summary(conn, statement_id, Some(venue)).await?;
    let stored = details::venue_details(conn, venue)
        .await?
        .ok_or_else(|| details::missing_problem(venue, &["legal_name"]))?;
    let venue_siret: Option<String> = organisations::table
        .find(venue)
        .select(organisations::siret)
        .first(conn)
        .await?;
    let tax = match stored.vat_regime.0 {
        VatRegime::Exempt => Tax::Exempt {
            reason: stored.vat_exemption_reason.clone().unwrap_or_default(),
        },
        VatRegime::Vat => Tax::Standard {
            rate_basis_points: stored.vat_rate_basis_points.unwrap_or_default(),
        },
    };
    let (lines, totals) = document::price(&tally, theme_label, &tax);
    let sequence: i32 = invoices::table
        .filter(invoices::venue_organisation_id.eq(venue))
        .select(diesel::dsl::max(invoices::sequence))
        .first::<Option<i32>>(conn)
        .await?
        .unwrap_or(0)
        + 1;
    let issued_on = program.today();
    let invoice = Invoice {
        kind,
        number: format!("PN-{sequence:06}"),
        issued_on,
        due_on: (kind == Kind::Invoice)
            .then(|| issued_on.checked_add_days(Days::new(document::PAYMENT_DAYS)))
            .flatten(),
        source: Source {
            statement_id,
            statement_number: summary.number,
            program_name: program.name.clone(),
            period_start: summary.period_start,
            period_end: summary.period_end,
            sha256: summary.sha256.clone(),
            extract_total_cents: summary.total_cents,
        },
        seller: Seller {
            party: Party {
                name: stored.legal_name,
                siret: venue_siret.unwrap_or_default(),
                address: stored.address,
                postcode: stored.postcode,
                city: stored.city,
            },
            vat_number: stored.vat_number,
            iban: stored.iban,
            bic: stored.bic,
        },
        buyer: buyer(conn, &program).await?,
        tax,
        lines,
        totals,
        corrects,
    };
    let xml = cii::xml(&invoice);
    let document = serde_json::to_value(&invoice)
        .map_err(|e| ApiError::internal(format!("invoice not serialisable: {e}")))?;
    let id: i64 = diesel::insert_into(invoices::table)
        .values((
            invoices::statement_id.eq(statement_id),
            invoices::venue_organisation_id.eq(venue),
            invoices::type_code.eq(kind.type_code()),
            invoices::sequence.eq(sequence),
            invoices::number.eq(&invoice.number),
            invoices::issued_on.eq(issued_on),
            invoices::total_cents.eq(invoice.totals.due_cents()),
            invoices::document.eq(document),
            invoices::xml.eq(&xml),
        ))
        .returning(invoices::id)
        .get_result(conn)
        .await?;
    for invoice_id in corrected_ids {
        diesel::insert_into(invoice_corrections::table)
            .values((
                invoice_corrections::credit_note_id.eq(id),
                invoice_corrections::invoice_id.eq(invoice_id),
            ))
            .execute(conn)
            .await?;
    }
    Ok(Issued { id, invoice, xml })
}

/// The statements on which the workshops this extract takes back were
/// paid, oldest first.
async fn statements_that_paid(
    conn: &mut AsyncPgConnection,
    rows: &[Vec<String>],
) -> Result<Vec<i64>, ApiError> {
    let taken_back: Vec<i64> = rows
        .iter()
        .filter(|cells| cells.get(9).is_some_and(|amount| amount.starts_with('-')))
        .filter_map(|cells| cells.get(1)?.parse().ok())
        .collect();
    #[derive(QueryableByName)]
    struct Paid {
        #[diesel(sql_type = BigInt)]
        statement_id: i64,
    }
    let paid: Vec<Paid> = diesel::sql_query(
        "SELECT DISTINCT statement_id FROM statement_lines
          WHERE kind = 'redemption' AND redemption_id = ANY($1) ORDER BY statement_id",
    )
    .bind::<Array<BigInt>, _>(taken_back)
    .load(conn)
    .await?;
    Ok(paid.into_iter().map(|p| p.statement_id).collect())
}

/// The buyer: the programme's funder, with the SIRET, code service and
/// engagement number the funder recorded for the programme.
async fn buyer(conn: &mut AsyncPgConnection, program: &ProgramRow) -> Result<Buyer, ApiError> {
    let required = details::buyer_details(conn, program).await?;
    if required.buyer_siret.is_empty() {
        return Err(ApiError::new(
            ProblemType::Conflict,
            format!(
                "Programme {} has no buyer SIRET: its funder records one with PUT /api/v1/programs/{}/invoicing.",
                program.id, program.id
            ),
        )
        .with("missing", vec!["buyer_siret"]));
    }
    let (name, address, postcode, commune): (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = organisations::table
        .find(program.funder_organisation_id)
        .select((
            organisations::name,
            organisations::address,
            organisations::postcode,
            organisations::commune_code,
        ))
        .first(conn)
        .await?;
    let city = commune
        .and_then(|code| {
            Communes::shared()
                .commune(&code)
                .map(|c| c.name().to_owned())
        })
        .unwrap_or_default();
    Ok(Buyer {
        party: Party {
            name,
            siret: required.buyer_siret,
            address: address.unwrap_or_default(),
            postcode: postcode.unwrap_or_default(),
            city,
        },
        service_code: required.service_code,
        engagement_number: required.engagement_number,
    })
}

fn theme_label(code: &str) -> String {
    themes::label(code).map_or_else(|| code.to_owned(), str::to_owned)
}

/// The issued document of `kind` for the extract, if any.
async fn find(
    conn: &mut AsyncPgConnection,
    statement_id: i64,
    venue: i64,
    kind: Kind,
) -> Result<Option<Issued>, ApiError> {
    let row: Option<(i64, serde_json::Value, Vec<u8>)> = invoices::table
        .filter(invoices::statement_id.eq(statement_id))
        .filter(invoices::venue_organisation_id.eq(venue))
        .filter(invoices::type_code.eq(kind.type_code()))
        .select((invoices::id, invoices::document, invoices::xml))
        .first(conn)
        .await
        .optional()?;
    row.map(|(id, document, xml)| {
        let invoice = serde_json::from_value(document)
            .map_err(|e| ApiError::internal(format!("stored invoice {id} unreadable: {e}")))?;
        Ok(Issued { id, invoice, xml })
    })
    .transpose()
}

/// The documents issued on statement `statement_id`: all (its funder) or
/// one venue's, with the payment that settled each invoice.
pub async fn list(
    conn: &mut AsyncPgConnection,
    statement_id: i64,
    venue: Option<i64>,
) -> Result<Vec<IssuedSummary>, ApiError> {
    let mut query = invoices::table
        .filter(invoices::statement_id.eq(statement_id))
        .into_boxed();
    if let Some(venue) = venue {
        query = query.filter(invoices::venue_organisation_id.eq(venue));
    }
    let rows: Vec<Row> = query
        .select(ROW)
        .order((invoices::venue_organisation_id, invoices::type_code))
        .load(conn)
        .await?;
    summaries(conn, rows).await
}

/// Every document issued to a venue, by statement: for its statements page.
pub async fn of_venue(
    conn: &mut AsyncPgConnection,
    venue: i64,
) -> Result<Vec<IssuedSummary>, ApiError> {
    let rows: Vec<Row> = invoices::table
        .filter(invoices::venue_organisation_id.eq(venue))
        .select(ROW)
        .order(invoices::sequence)
        .load(conn)
        .await?;
    summaries(conn, rows).await
}

type Row = (i64, i64, i16, String, NaiveDate, i64);
const ROW: (
    invoices::statement_id,
    invoices::venue_organisation_id,
    invoices::type_code,
    invoices::number,
    invoices::issued_on,
    invoices::total_cents,
) = (
    invoices::statement_id,
    invoices::venue_organisation_id,
    invoices::type_code,
    invoices::number,
    invoices::issued_on,
    invoices::total_cents,
);

async fn summaries(
    conn: &mut AsyncPgConnection,
    rows: Vec<Row>,
) -> Result<Vec<IssuedSummary>, ApiError> {
    let mut out = Vec::with_capacity(rows.len());
    for (statement_id, venue, type_code, number, issued_on, total_cents) in rows {
        let kind = Kind::from_type_code(type_code)
            .ok_or_else(|| ApiError::internal(format!("invoice type {type_code}")))?;
        let payment: Option<(NaiveDate, String)> = match kind {
            Kind::Invoice => statement_payments::table
                .find((statement_id, venue))
                .select((statement_payments::paid_on, statement_payments::reference))
                .first(conn)
                .await
                .optional()?,
            Kind::CreditNote => None,
        };
        out.push(IssuedSummary {
            statement_id,
            venue_organisation_id: venue,
            kind,
            number,
            issued_on,
            total_cents,
            status: if payment.is_some() { "paid" } else { "issued" },
            paid_on: payment.as_ref().map(|p| p.0),
            payment_reference: payment.map(|p| p.1),
        });
    }
    Ok(out)
}

/// What a venue's extract can give: an invoice (workshops paid on it) and a
/// credit note (workshops taken back), by statement.
pub async fn available(
    conn: &mut AsyncPgConnection,
    venue: i64,
) -> QueryResult<std::collections::HashMap<i64, (bool, bool)>> {
    #[derive(QueryableByName)]
    struct Has {
        #[diesel(sql_type = BigInt)]
        statement_id: i64,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        paid: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        taken_back: bool,
    }
    let rows: Vec<Has> = diesel::sql_query(
        "SELECT l.statement_id, bool_or(l.kind = 'redemption') AS paid, bool_or(l.kind = 'reversal') AS taken_back
           FROM statement_lines l JOIN redemptions r ON r.id = l.redemption_id
          WHERE r.venue_organisation_id = $1 GROUP BY l.statement_id",
    )
    .bind::<BigInt, _>(venue)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|h| (h.statement_id, (h.paid, h.taken_back)))
        .collect())
}

/// The file name of a document: `facture-PN-000012`, `avoir-PN-000013`.
pub fn file_stem(invoice: &Invoice) -> String {
    let prefix = match invoice.kind {
        Kind::Invoice => "facture",
        Kind::CreditNote => "avoir",
    };
    format!("{prefix}-{}", invoice.number)
}

/// The programme's name and its funder's, for each statement a venue has
/// an extract on.
pub async fn programmes_of_venue(
    conn: &mut AsyncPgConnection,
    venue: i64,
) -> QueryResult<std::collections::HashMap<i64, (String, String)>> {
    #[derive(QueryableByName)]
    struct Named {
        #[diesel(sql_type = BigInt)]
        statement_id: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        program: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        funder: String,
    }
    let rows: Vec<Named> = diesel::sql_query(
        "SELECT s.id AS statement_id, p.name AS program, o.name AS funder
           FROM statement_extracts e JOIN statements s ON s.id = e.statement_id
                JOIN programs p ON p.id = s.program_id JOIN organisations o ON o.id = p.funder_organisation_id
          WHERE e.venue_organisation_id = $1",
    )
    .bind::<BigInt, _>(venue)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|n| (n.statement_id, (n.program, n.funder)))
        .collect())
}
