//! Statements: closing a period puts every payable redemption not yet paid on
//! one signed statement, with a signed extract per venue. A closed statement
//! never changes: a reversal after it lands on the next one as a negative
//! line, and so does a venue's negative balance.

pub mod csv;
pub mod live;
pub mod payments;
pub mod pdf;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Integer, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::programs::ProgramRow;
use crate::auth::Role;
use crate::db::schema::{
    organisations, statement_carries, statement_extracts, statement_lines, statements,
};
use crate::http::problem::{ApiError, ProblemType};
use crate::voucher::statement as signature;
pub use csv::Line;
pub use payments::{Payment, PaymentRequest};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// Last day of the period, inclusive; today at the latest.
    #[serde(deserialize_with = "crate::domain::bounds::date")]
    #[schema(pattern = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub period_end: NaiveDate,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VenueSummary {
    pub venue_organisation_id: i64,
    pub venue_name: String,
    pub venue_siret: String,
    pub count: i32,
    pub total_cents: i64,
    pub sha256: String,
    pub signature: String,
    /// `due` (awaiting payment), `paid`, or `carried`: a total of zero or
    /// less is not paid, it is carried to the venue's next extract.
    pub status: VenueStatus,
    pub payment: Option<Payment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VenueStatus {
    Due,
    Paid,
    Carried,
}

/// A statement without its lines.
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub id: i64,
    pub program_id: i32,
    pub number: i32,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub closed_at: DateTime<Utc>,
    pub total_count: i32,
    pub total_cents: i64,
    pub sha256: String,
    /// The statement key's kid, in decimal as in the JWK Set.
    pub kid: String,
    pub signature: String,
    pub venues: Vec<VenueSummary>,
}

#[derive(QueryableByName)]
struct Previous {
    #[diesel(sql_type = Integer)]
    number: i32,
    #[diesel(sql_type = Date)]
    period_end: NaiveDate,
}

/// The lines a statement closing at `period_end` takes: redemptions neither
/// cancelled nor reversed and on no statement yet, held up to that day in the
/// programme's time zone (late offline scans included), and reversals of
/// redemptions already paid.
///
/// Each redemption read is locked for update until the statement commits: a
/// cancel or reversal in flight finishes first and the row is read again (a
/// cancelled one drops out), and one that comes later waits, then finds the
/// redemption on the statement (`redemptions_final_once_paid`).
async fn payable(
    conn: &mut AsyncPgConnection,
    program_id: i32,
    tz: &str,
    period_end: NaiveDate,
) -> QueryResult<Vec<Line>> {
    const COLUMNS: &str = "r.id AS redemption_id, r.redeemed_at, r.venue_organisation_id,
        o.siret::text AS venue_siret, o.name AS venue_name, r.voucher_id, v.position, r.theme, r.held_on";
    const FROM: &str = "FROM redemptions r JOIN vouchers v ON v.id = r.voucher_id
        JOIN organisations o ON o.id = r.venue_organisation_id";
    let paid = diesel::sql_query(format!(
        "SELECT {COLUMNS}, 'redemption' AS kind, r.face_value_cents AS amount_cents {FROM}
          WHERE r.program_id = $1 AND r.cancelled_at IS NULL AND r.reversed_at IS NULL
            AND (r.redeemed_at AT TIME ZONE $2)::date <= $3
            AND NOT EXISTS (SELECT 1 FROM statement_lines l WHERE l.redemption_id = r.id AND l.kind = 'redemption')
          ORDER BY r.id
          FOR UPDATE OF r"
    ));
    let taken_back = diesel::sql_query(format!(
        "SELECT {COLUMNS}, 'reversal' AS kind, -r.face_value_cents AS amount_cents {FROM}
          WHERE r.program_id = $1 AND r.reversed_at IS NOT NULL
            AND (r.reversed_at AT TIME ZONE $2)::date <= $3
            AND EXISTS (SELECT 1 FROM statement_lines l WHERE l.redemption_id = r.id AND l.kind = 'redemption')
            AND NOT EXISTS (SELECT 1 FROM statement_lines l WHERE l.redemption_id = r.id AND l.kind = 'reversal')
          ORDER BY r.id
          FOR UPDATE OF r"
    ));
    let mut lines: Vec<Line> = paid
        .bind::<Integer, _>(program_id)
        .bind::<Text, _>(tz)
        .bind::<Date, _>(period_end)
        .load(conn)
        .await?;
    lines.extend(
        taken_back
            .bind::<Integer, _>(program_id)
            .bind::<Text, _>(tz)
            .bind::<Date, _>(period_end)
            .load::<Line>(conn)
            .await?,
    );
    // The statement's order: by time, then redemption, a payment before its reversal.
    lines.sort_by(|a, b| {
        (a.redeemed_at, a.redemption_id, &a.kind).cmp(&(b.redeemed_at, b.redemption_id, &b.kind))
    });
    Ok(lines)
}

/// The venues' negative balances on earlier statements, not carried yet.
async fn uncarried(conn: &mut AsyncPgConnection, program_id: i32) -> QueryResult<Vec<Carried>> {
    diesel::sql_query(
        "SELECT e.statement_id AS from_statement_id, s.number, s.period_end, e.venue_organisation_id,
                o.siret::text AS venue_siret, o.name AS venue_name, e.total_cents
           FROM statement_extracts e JOIN statements s ON s.id = e.statement_id
                JOIN organisations o ON o.id = e.venue_organisation_id
          WHERE s.program_id = $1 AND e.total_cents < 0
            AND NOT EXISTS (SELECT 1 FROM statement_carries c
                             WHERE c.from_statement_id = e.statement_id
                               AND c.venue_organisation_id = e.venue_organisation_id)
          ORDER BY s.number, e.venue_organisation_id",
    )
    .bind::<Integer, _>(program_id)
    .load(conn)
    .await
}

/// A venue's negative balance on an earlier statement.
#[derive(QueryableByName)]
struct Carried {
    #[diesel(sql_type = BigInt)]
    from_statement_id: i64,
    #[diesel(sql_type = Integer)]
    number: i32,
    #[diesel(sql_type = Date)]
    period_end: NaiveDate,
    #[diesel(sql_type = BigInt)]
    venue_organisation_id: i64,
    #[diesel(sql_type = Text)]
    venue_siret: String,
    #[diesel(sql_type = Text)]
    venue_name: String,
    #[diesel(sql_type = BigInt)]
    total_cents: i64,
}

impl Carried {
    /// Its line on the next statement: no redemption, voucher or time of its
    /// own; the theme cell says where it comes from, `held_on` when that period ended.
    fn line(&self) -> Line {
        Line {
            redemption_id: None,
            kind: "carry".into(),
            redeemed_at: None,
            venue_organisation_id: self.venue_organisation_id,
            venue_siret: self.venue_siret.clone(),
            venue_name: self.venue_name.clone(),
            voucher_id: None,
            position: None,
            theme: format!("report du relevé {}", self.number),
            held_on: self.period_end,
            amount_cents: self.total_cents,
        }
    }
}

/// One venue's part of the next statement, were it closed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewVenue {
    pub venue_name: String,
    pub count: usize,
    pub total_cents: i64,
}

/// What closing the period up to `period_end` would put on the next
/// statement now, per venue (by name): the very lines `close` gathers
/// (payable redemptions, reversals of paid ones, balances carried), read
/// without locking or writing anything.
pub async fn preview(
    conn: &mut AsyncPgConnection,
    program: &ProgramRow,
    period_end: NaiveDate,
) -> Result<Vec<PreviewVenue>, ApiError> {
    let mut lines = payable(conn, program.id, &program.time_zone, period_end).await?;
    lines.extend(uncarried(conn, program.id).await?.iter().map(Carried::line));
    let mut venues: Vec<PreviewVenue> = Vec::new();
    for line in &lines {
        match venues.iter_mut().find(|v| v.venue_name == line.venue_name) {
            Some(v) => {
                v.count += 1;
                v.total_cents += line.amount_cents;
            }
            None => venues.push(PreviewVenue {
                venue_name: line.venue_name.clone(),
                count: 1,
                total_cents: line.amount_cents,
            }),
        }
    }
    venues.sort_by(|a, b| a.venue_name.cmp(&b.venue_name));
    Ok(venues)
}

/// Closes a period: in one transaction, every payable line lands on exactly
/// one statement, numbered in sequence per programme, signed whole and per venue.
pub async fn close(
    conn: &mut AsyncPgConnection,
    program: &ProgramRow,
    user_id: i64,
    signer: (u8, SigningKey),
    period_end: NaiveDate,
) -> Result<Summary, ApiError> {
    if period_end > program.today() {
        return Err(ApiError::invalid_field(
            "period_end",
            "a period ends today at the latest",
        ));
    }
    let (kid, key) = signer;
    let (program_id, tz) = (program.id, program.time_zone.clone());
    let first_day = program.first_day();
    let id = conn
        .transaction::<_, ApiError, _>(async |conn| {
            // Statements of a programme are closed one at a time.
            diesel::sql_query("SELECT id FROM programs WHERE id = $1 FOR UPDATE")
                .bind::<Integer, _>(program_id)
                .execute(conn)
                .await?;
            let previous: Option<Previous> = diesel::sql_query(
                "SELECT number, period_end FROM statements WHERE program_id = $1 ORDER BY number DESC LIMIT 1",
            )
            .bind::<Integer, _>(program_id)
            .get_result(conn)
            .await
            .optional()?;
            let number = previous.as_ref().map_or(1, |p| p.number + 1);
            let period_start = previous.as_ref().map_or(first_day.min(period_end), |p| p.period_end.succ_opt().unwrap_or(p.period_end));
            if period_end < period_start {
                return Err(ApiError::new(
                    ProblemType::Conflict,
                    format!("The programme's statements already run up to {}.", period_start.pred_opt().unwrap_or(period_start)),
                ));
            }
            let mut lines = payable(conn, program_id, &tz, period_end).await?;
            let carried = uncarried(conn, program_id).await?;
            lines.extend(carried.iter().map(Carried::line));
            let bytes = csv::csv(number, &lines);
            let digest = signature::digest(&bytes);
            let total_cents: i64 = lines.iter().map(|l| l.amount_cents).sum();
            let id: i64 = diesel::insert_into(statements::table)
                .values((
                    statements::program_id.eq(program_id),
                    statements::number.eq(number),
                    statements::period_start.eq(period_start),
                    statements::period_end.eq(period_end),
                    statements::closed_by_user_id.eq(user_id),
                    statements::total_count.eq(lines.len() as i32),
                    statements::total_cents.eq(total_cents),
                    statements::csv.eq(&bytes),
                    statements::sha256.eq(signature::digest_hex(&digest)),
                    statements::kid.eq(i16::from(kid)),
                    statements::signature.eq(signature::sign(&digest, &key)),
                ))
                .returning(statements::id)
                .get_result(conn)
                .await?;
            for chunk in lines.chunks(1000) {
                let rows: Vec<_> = chunk
                    .iter()
                    .filter_map(|l| Some((l.redemption_id?, l)))
                    .map(|(redemption_id, l)| {
                        (
                            statement_lines::statement_id.eq(id),
                            statement_lines::redemption_id.eq(redemption_id),
                            statement_lines::kind.eq(l.kind.clone()),
                            statement_lines::amount_cents.eq(l.amount_cents),
                        )
                    })
                    .collect();
                diesel::insert_into(statement_lines::table).values(rows).execute(conn).await?;
            }
            let mut venues: Vec<i64> = lines.iter().map(|l| l.venue_organisation_id).collect();
            venues.sort_unstable();
            venues.dedup();
            for venue in venues {
                let mine: Vec<Line> = lines.iter().filter(|l| l.venue_organisation_id == venue).cloned().collect();
                let bytes = csv::csv(number, &mine);
                let digest = signature::digest(&bytes);
                diesel::insert_into(statement_extracts::table)
                    .values((
                        statement_extracts::statement_id.eq(id),
                        statement_extracts::venue_organisation_id.eq(venue),
                        statement_extracts::line_count.eq(mine.len() as i32),
                        statement_extracts::total_cents.eq(mine.iter().map(|l| l.amount_cents).sum::<i64>()),
                        statement_extracts::csv.eq(&bytes),
                        statement_extracts::sha256.eq(signature::digest_hex(&digest)),
                        statement_extracts::signature.eq(signature::sign(&digest, &key)),
                    ))
                    .execute(conn)
                    .await?;
            }
            for c in &carried {
                diesel::insert_into(statement_carries::table)
                    .values((
                        statement_carries::from_statement_id.eq(c.from_statement_id),
                        statement_carries::venue_organisation_id.eq(c.venue_organisation_id),
                        statement_carries::statement_id.eq(id),
                        statement_carries::amount_cents.eq(c.total_cents),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok(id)
        })
        .await?;
    summary(conn, id, None).await
}

#[derive(Queryable)]
struct StatementRow {
    id: i64,
    program_id: i32,
    number: i32,
    period_start: NaiveDate,
    period_end: NaiveDate,
    closed_at: DateTime<Utc>,
    total_count: i32,
    total_cents: i64,
    sha256: String,
    kid: i16,
    signature: String,
}

/// A statement as `viewer` may see it: the whole (funder) or one venue's
/// extract (`Some(venue)`), in which case totals and signature are the extract's.
pub async fn summary(
    conn: &mut AsyncPgConnection,
    id: i64,
    venue: Option<i64>,
) -> Result<Summary, ApiError> {
    let row: StatementRow = statements::table
        .find(id)
        .select((
            statements::id,
            statements::program_id,
            statements::number,
            statements::period_start,
            statements::period_end,
            statements::closed_at,
            statements::total_count,
            statements::total_cents,
            statements::sha256,
            statements::kid,
            statements::signature,
        ))
        .first(conn)
        .await?;
    let mut query = statement_extracts::table
        .inner_join(organisations::table)
        .filter(statement_extracts::statement_id.eq(id))
        .into_boxed();
    if let Some(venue) = venue {
        query = query.filter(statement_extracts::venue_organisation_id.eq(venue));
    }
    let extracts: Vec<Extract> = query
        .select((
            statement_extracts::venue_organisation_id,
            organisations::name,
            organisations::siret,
            statement_extracts::line_count,
            statement_extracts::total_cents,
            statement_extracts::sha256,
            statement_extracts::signature,
        ))
        .order(statement_extracts::venue_organisation_id)
        .load(conn)
        .await?;
    let mut paid = payments::of_statement(conn, id).await?;
    let mut summary = Summary {
        id: row.id,
        program_id: row.program_id,
        number: row.number,
        period_start: row.period_start,
        period_end: row.period_end,
        closed_at: row.closed_at,
        total_count: row.total_count,
        total_cents: row.total_cents,
        sha256: row.sha256,
        kid: row.kid.to_string(),
        signature: row.signature,
        venues: Vec::new(),
    };
    summary.venues = extracts
        .into_iter()
        .map(|e| {
            let payment = paid.remove(&e.0);
            let status = match (&payment, e.4) {
                (Some(_), _) => VenueStatus::Paid,
                (None, total) if total > 0 => VenueStatus::Due,
                (None, _) => VenueStatus::Carried,
            };
            VenueSummary {
                venue_organisation_id: e.0,
                venue_name: e.1,
                venue_siret: e.2.unwrap_or_default(),
                count: e.3,
                total_cents: e.4,
                sha256: e.5,
                signature: e.6,
                status,
                payment,
            }
        })
        .collect();
    if venue.is_some() {
        let [mine] = summary.venues.as_slice() else {
            return Err(ApiError::not_found(format!("No statement {id}.")));
        };
        summary.total_count = mine.count;
        summary.total_cents = mine.total_cents;
        summary.sha256 = mine.sha256.clone();
        summary.signature = mine.signature.clone();
    }
    Ok(summary)
}

/// A venue's extract as read for a summary.
type Extract = (i64, String, Option<String>, i32, i64, String, String);

/// The programme a statement belongs to.
pub async fn program_of(conn: &mut AsyncPgConnection, id: i64) -> Result<ProgramRow, ApiError> {
    use crate::db::schema::programs;
    Ok(statements::table
        .inner_join(programs::table)
        .filter(statements::id.eq(id))
        .select(ProgramRow::as_select())
        .first(conn)
        .await?)
}

/// Which part of statement `id` the caller may see: the whole for the
/// programme's funder, its extract for a venue on it; else not found.
pub async fn viewer_scope(
    conn: &mut AsyncPgConnection,
    id: i64,
    role: Role,
    org: i64,
) -> Result<Option<i64>, ApiError> {
    let not_found = || ApiError::not_found(format!("No statement {id}."));
    let program_id: i32 = statements::table
        .find(id)
        .select(statements::program_id)
        .first(conn)
        .await
        .optional()?
        .ok_or_else(not_found)?;
    match role {
        Role::Funder => {
            if super::programs::runs(conn, program_id, org).await? {
                Ok(None)
            } else {
                Err(not_found())
            }
        }
        Role::Venue => {
            let on_it: bool = diesel::select(diesel::dsl::exists(
                statement_extracts::table
                    .filter(statement_extracts::statement_id.eq(id))
                    .filter(statement_extracts::venue_organisation_id.eq(org)),
            ))
            .get_result(conn)
            .await?;
            if on_it {
                Ok(Some(org))
            } else {
                Err(not_found())
            }
        }
        _ => Err(not_found()),
    }
}

/// The exact CSV bytes that were signed: the whole, or one venue's extract.
pub async fn csv_bytes(
    conn: &mut AsyncPgConnection,
    id: i64,
    venue: Option<i64>,
) -> Result<Vec<u8>, ApiError> {
    Ok(match venue {
        None => {
            statements::table
                .find(id)
                .select(statements::csv)
                .first(conn)
                .await?
        }
        Some(venue) => {
            statement_extracts::table
                .find((id, venue))
                .select(statement_extracts::csv)
                .first(conn)
                .await?
        }
    })
}

/// The statements of a programme (funder) or those a venue has an extract on.
pub async fn list(
    conn: &mut AsyncPgConnection,
    role: Role,
    org: i64,
    program_id: Option<i32>,
) -> Result<Vec<Summary>, ApiError> {
    use crate::db::schema::programs;
    let mut query = statements::table
        .select(statements::id)
        .order(statements::id)
        .into_boxed();
    if let Some(program_id) = program_id {
        query = query.filter(statements::program_id.eq(program_id));
    }
    query = match role {
        Role::Funder => query.filter(
            statements::program_id.eq_any(
                programs::table
                    .filter(programs::funder_organisation_id.eq(org))
                    .select(programs::id),
            ),
        ),
        _ => query.filter(
            statements::id.eq_any(
                statement_extracts::table
                    .filter(statement_extracts::venue_organisation_id.eq(org))
                    .select(statement_extracts::statement_id),
            ),
        ),
    };
    let ids: Vec<i64> = query.limit(1000).load(conn).await?;
    let venue = (role == Role::Venue).then_some(org);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(summary(conn, id, venue).await?);
    }
    Ok(out)
}
