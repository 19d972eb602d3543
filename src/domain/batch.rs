//! Offline scans sent in batches: each judged at its scan time, each nonce
//! stored once, and a voucher another venue redeemed first kept as a conflict
//! for the funder to decide.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::devices::Scanner;
use super::redemptions::{self as r, ScannedCode, Workshop};
use crate::db::schema::{conflicts, redemptions, scan_nonces};
use crate::http::problem::{ApiError, ProblemType};
use crate::keys::KeyRing;

pub const MAX_ITEMS: usize = 500;
/// How old a scan may be when it is uploaded.
pub const MAX_AGE_DAYS: i64 = 7;
/// Phones' clocks drift: a scan a little in the future is allowed.
pub const CLOCK_SKEW_SECS: i64 = 300;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    #[schema(max_items = 500)]
    pub items: Vec<BatchItem>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    /// Chosen by the device, unique per venue: a resent nonce stores nothing new.
    pub nonce: String,
    pub code: String,
    /// When the voucher was scanned: it decides expiry, accreditation,
    /// revocation and closure, and becomes the redemption's `redeemed_at`.
    pub scanned_at: DateTime<Utc>,
    /// As for a redemption; a theme or duration the server refuses makes
    /// this item `rejected`, not the batch.
    #[schema(value_type = crate::http::openapi::OfflineWorkshop)]
    pub workshop: Workshop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Redeemed,
    Duplicate,
    Conflict,
    Rejected,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Redeemed => "redeemed",
            Outcome::Duplicate => "duplicate",
            Outcome::Conflict => "conflict",
            Outcome::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    pub nonce: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redemption_id: Option<i64>,
    /// For `rejected`: the problem slug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    pub results: Vec<BatchResult>,
}

fn result(
    nonce: &str,
    outcome: Outcome,
    redemption_id: Option<i64>,
    problem: Option<&ApiError>,
) -> BatchResult {
    BatchResult {
        nonce: nonce.to_owned(),
        outcome,
        redemption_id,
        problem: problem.map(|p| p.kind.slug().to_owned()),
    }
}

/// Judges every item; one transaction each, so one bad scan spoils nothing.
pub async fn process(
    conn: &mut AsyncPgConnection,
    keys: &KeyRing,
    scanner: &Scanner,
    request: BatchRequest,
) -> Result<BatchAnswer, ApiError> {
    if request.items.len() > MAX_ITEMS {
        return Err(ApiError::invalid_field(
            "items",
            format!("at most {MAX_ITEMS} scans per batch"),
        ));
    }
    let mut results = Vec::with_capacity(request.items.len());
    for item in &request.items {
        results.push(process_item(conn, keys, scanner, item).await?);
    }
    Ok(BatchAnswer { results })
}

/// Everything about an item that needs no database.
async fn judge_alone(
    keys: &KeyRing,
    item: &BatchItem,
    now: DateTime<Utc>,
) -> Result<ScannedCode, ApiError> {
    if item.scanned_at > now + Duration::seconds(CLOCK_SKEW_SECS) {
        return Err(ApiError::invalid_field(
            "scanned_at",
            "the scan time is in the future",
        ));
    }
    if item.scanned_at < now - Duration::days(MAX_AGE_DAYS) {
        return Err(ApiError::invalid_field(
            "scanned_at",
            "scans are uploaded within 7 days",
        ));
    }
    r::check_workshop(&item.workshop)?;
    r::read_code(keys, &item.code).await
}

async fn process_item(
    conn: &mut AsyncPgConnection,
    keys: &KeyRing,
    scanner: &Scanner,
    item: &BatchItem,
) -> Result<BatchResult, ApiError> {
    let nonce = item.nonce.as_str();
    if nonce.is_empty() || nonce.chars().count() > 100 {
        let e = ApiError::invalid_field("nonce", "1 to 100 characters");
        return Ok(result(nonce, Outcome::Rejected, None, Some(&e)));
    }
    let judged = judge_alone(keys, item, Utc::now()).await;
    let venue = scanner.venue.id;
    conn.transaction::<_, ApiError, _>(async |conn| {
        // The nonce first: a resent one (even by a batch running right now)
        // waits here, then finds it taken.
        let fresh = diesel::insert_into(scan_nonces::table)
            .values((
                scan_nonces::venue_organisation_id.eq(venue),
                scan_nonces::nonce.eq(nonce),
                scan_nonces::outcome.eq("pending"),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if fresh == 0 {
            let stored: Option<i64> = scan_nonces::table
                .find((venue, nonce))
                .select(scan_nonces::redemption_id)
                .first(conn)
                .await?;
            return Ok(result(nonce, Outcome::Duplicate, stored, None));
        }
        let outcome = match &judged {
            Err(problem) => result(nonce, Outcome::Rejected, None, Some(problem)),
            Ok(code) => judge(conn, scanner, code, item).await?,
        };
        diesel::update(scan_nonces::table.find((venue, nonce)))
            .set((
                scan_nonces::outcome.eq(outcome.outcome.as_str()),
                scan_nonces::redemption_id.eq(outcome.redemption_id),
                scan_nonces::problem.eq(&outcome.problem),
            ))
            .execute(conn)
            .await?;
        Ok(outcome)
    })
    .await
}

/// The voucher's fate at the scan time, inside the item's transaction.
async fn judge(
    conn: &mut AsyncPgConnection,
    scanner: &Scanner,
    code: &ScannedCode,
    item: &BatchItem,
) -> Result<BatchResult, ApiError> {
    let nonce = item.nonce.as_str();
    let rejected = |e: &ApiError| result(nonce, Outcome::Rejected, None, Some(e));
    let facts = match r::find_voucher(conn, code).await {
        Ok(facts) => facts,
        Err(e) if e.kind == ProblemType::NotFound => return Ok(rejected(&e)),
        Err(e) => return Err(e),
    };
    let at = item.scanned_at;
    let scan_day = at.with_timezone(&facts.tz()).date_naive();
    if let Err(e) = r::check_held_on(item.workshop.held_on, scan_day) {
        return Ok(rejected(&e));
    }
    for _ in 0..2 {
        match r::live_redemption(conn, facts.voucher_id).await? {
            Some((id, _, by)) if by == scanner.venue.id => {
                return Ok(result(nonce, Outcome::Duplicate, Some(id), None))
            }
            Some((id, _, _)) => {
                record_conflict(conn, scanner, &facts, item, id).await?;
                return Ok(result(nonce, Outcome::Conflict, None, None));
            }
            None => {}
        }
        if let Some(problem) = r::refusal(&facts, None, &scanner.venue, at) {
            return Ok(rejected(&problem));
        }
        if let Some((id, _)) = r::insert(conn, &facts, scanner, &item.workshop, at).await? {
            r::audit(
                conn,
                "redeemed",
                id,
                facts.voucher_id,
                scanner.actor(),
                scanner.venue.id,
                None,
            )
            .await?;
            return Ok(result(nonce, Outcome::Redeemed, Some(id), None));
        }
        // Another redemption committed meanwhile: look again.
    }
    Err(ApiError::new(
        ProblemType::Conflict,
        "The voucher keeps changing; send the batch again.",
    ))
}

async fn record_conflict(
    conn: &mut AsyncPgConnection,
    scanner: &Scanner,
    facts: &r::Facts,
    item: &BatchItem,
    existing: i64,
) -> QueryResult<()> {
    diesel::insert_into(conflicts::table)
        .values((
            conflicts::voucher_id.eq(facts.voucher_id),
            conflicts::program_id.eq(facts.program_id),
            conflicts::venue_organisation_id.eq(scanner.venue.id),
            conflicts::device_id.eq(scanner.device_id),
            conflicts::user_id.eq(scanner.user_id),
            conflicts::scanned_at.eq(item.scanned_at),
            conflicts::theme.eq(&item.workshop.theme),
            conflicts::held_on.eq(item.workshop.held_on),
            conflicts::duration_minutes.eq(item.workshop.duration_minutes),
            conflicts::face_value_cents.eq(facts.face_value_cents),
            conflicts::existing_redemption_id.eq(existing),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// An offline scan of a voucher another venue had redeemed.
#[derive(Debug, Serialize, Queryable, Selectable, ToSchema)]
#[diesel(table_name = conflicts)]
pub struct Conflict {
    pub id: i64,
    #[serde(serialize_with = "super::decimal_string")]
    #[schema(value_type = String)]
    pub voucher_id: i64,
    pub program_id: i32,
    pub venue_organisation_id: i64,
    pub scanned_at: DateTime<Utc>,
    pub theme: String,
    pub held_on: chrono::NaiveDate,
    pub duration_minutes: i32,
    pub face_value_cents: i64,
    pub existing_redemption_id: i64,
    pub decision: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
}

/// The conflicts of a funder's programmes.
pub async fn list_conflicts(
    conn: &mut AsyncPgConnection,
    funder: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<Conflict>, ApiError> {
    use crate::db::schema::programs;
    Ok(conflicts::table
        .select(Conflict::as_select())
        .filter(conflicts::id.gt(after))
        .filter(
            conflicts::program_id.eq_any(
                programs::table
                    .filter(programs::funder_organisation_id.eq(funder))
                    .select(programs::id),
            ),
        )
        .order(conflicts::id)
        .limit(limit)
        .load(conn)
        .await?)
}

async fn by_id(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<Conflict>> {
    conflicts::table
        .find(id)
        .select(Conflict::as_select())
        .first(conn)
        .await
        .optional()
}

/// The conflict if `funder` runs its programme; any other is not found.
pub async fn find_conflict(
    conn: &mut AsyncPgConnection,
    id: i64,
    funder: i64,
) -> Result<Conflict, ApiError> {
    let not_found = || ApiError::not_found(format!("No conflict {id}."));
    let conflict = by_id(conn, id).await?.ok_or_else(not_found)?;
    if super::programs::runs(conn, conflict.program_id, funder).await? {
        Ok(conflict)
    } else {
        Err(not_found())
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// `pay` or `reject`.
    #[schema(schema_with = crate::http::openapi::decisions)]
    pub decision: String,
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// The funder decides: `pay` makes the scan a redemption of its own (paid
/// on the next statement), at most once; `reject` never pays it.
pub async fn resolve(
    conn: &mut AsyncPgConnection,
    conflict: &Conflict,
    funder_user: i64,
    resolution: Resolution,
) -> Result<Conflict, ApiError> {
    let pay = match resolution.decision.as_str() {
        "pay" => true,
        "reject" => false,
        _ => return Err(ApiError::invalid_field("decision", "pay or reject")),
    };
    let reason = super::check_reason(&resolution.reason)?;
    let id = conflict.id;
    conn.transaction::<_, ApiError, _>(async |conn| {
        let decided = diesel::update(
            conflicts::table
                .find(id)
                .filter(conflicts::decision.is_null()),
        )
        .set((
            conflicts::decision.eq(if pay { "pay" } else { "reject" }),
            conflicts::decided_at.eq(diesel::dsl::now),
            conflicts::decided_by_user_id.eq(funder_user),
            conflicts::decision_reason.eq(reason),
        ))
        .execute(conn)
        .await?;
        if decided != 1 {
            return Err(ApiError::new(
                ProblemType::Conflict,
                "This conflict was already resolved.",
            ));
        }
        if pay {
            // conflict_id is UNIQUE: a conflict is paid at most once.
            diesel::insert_into(redemptions::table)
                .values((
                    redemptions::voucher_id.eq(conflict.voucher_id),
                    redemptions::program_id.eq(conflict.program_id),
                    redemptions::venue_organisation_id.eq(conflict.venue_organisation_id),
                    redemptions::redeemed_at.eq(conflict.scanned_at),
                    redemptions::theme.eq(&conflict.theme),
                    redemptions::held_on.eq(conflict.held_on),
                    redemptions::duration_minutes.eq(conflict.duration_minutes),
                    redemptions::face_value_cents.eq(conflict.face_value_cents),
                    redemptions::conflict_id.eq(id),
                ))
                .execute(conn)
                .await?;
        }
        Ok(())
    })
    .await?;
    by_id(conn, id)
        .await?
        .ok_or_else(|| ApiError::internal("the conflict vanished"))
}
