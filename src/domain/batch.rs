//! Offline scans sent in batches: each judged at its scan time, each nonce
//! stored once, and a voucher another venue redeemed first kept as a conflict
//! for the funder to decide.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::devices::Scanner;
use super::redemptions::{self as r, ConflictKind, ScannedCode, Workshop};
use crate::db::schema::conflicts;
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
    match r::read_code(keys, &item.code).await? {
        ScannedCode::Typed(_) => Err(ApiError::new(
            ProblemType::MalformedCode,
            "A typed code carries no signature: it is redeemed online only.",
        )),
        signed => Ok(signed),
    }
}

async fn process_item(
    conn: &mut AsyncPgConnection,
    keys: &KeyRing,
    scanner: &Scanner,
    item: &BatchItem,
) -> Result<BatchResult, ApiError> {
    use diesel::sql_types::{BigInt, Date, Integer, Nullable, SmallInt, Text, Timestamptz};
    let nonce = item.nonce.as_str();
    if nonce.is_empty() || nonce.chars().count() > 100 {
        let e = ApiError::invalid_field("nonce", "1 to 100 characters");
        return Ok(result(nonce, Outcome::Rejected, None, Some(&e)));
    }
    // What can be judged without the database is judged first; the scan's
    // nonce is stored either way, with its outcome.
    let judged = judge_alone(keys, item, Utc::now()).await;
    let (code, problem) = match &judged {
        Ok(code) => (Some(code), None),
        Err(e) => (None, Some(e.kind.slug())),
    };
    let (program, position, size, expires) =
        code.map_or((None, None, None, None), r::signed_fields);
    // One statement, one transaction: the nonce, then the judgement at the
    // scan time (the database's `scan` and `redeem` functions).
    struct Scan;
    let j: r::Judgement = crate::db::prepared::Prepared::<Scan>::new(
        "SELECT * FROM scan($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind::<Text, _>(nonce.to_owned())
    .bind::<BigInt, _>(code.map_or(-1, r::stored_id))
    .bind::<Nullable<Integer>, _>(program)
    .bind::<Nullable<SmallInt>, _>(position)
    .bind::<Nullable<SmallInt>, _>(size)
    .bind::<Nullable<Date>, _>(expires)
    .bind::<BigInt, _>(scanner.venue.id)
    .bind::<Nullable<BigInt>, _>(scanner.user_id)
    .bind::<Nullable<BigInt>, _>(scanner.device_id)
    .bind::<Timestamptz, _>(item.scanned_at)
    .bind::<Text, _>(item.workshop.theme.clone())
    .bind::<Date, _>(item.workshop.held_on)
    .bind::<Integer, _>(item.workshop.duration_minutes)
    .bind::<Nullable<Text>, _>(problem.map(str::to_owned))
    .get_result(conn)
    .await?;
    let outcome = match j.outcome.as_str() {
        "redeemed" => Outcome::Redeemed,
        "duplicate" => Outcome::Duplicate,
        "conflict" => Outcome::Conflict,
        _ => Outcome::Rejected,
    };
    Ok(BatchResult {
        nonce: nonce.to_owned(),
        outcome,
        redemption_id: j.redemption_id.filter(|_| outcome != Outcome::Conflict),
        problem: j.problem.filter(|_| outcome == Outcome::Rejected),
    })
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
    /// Why it came to the funder: `redeemed_elsewhere` or `replaced`.
    pub kind: String,
    /// The position's live redemption when the scan arrived, if any.
    pub existing_redemption_id: Option<i64>,
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
/// on the next statement), at most once (`conflict_id` is unique); `reject`
/// never pays it.
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
            pay_conflict(conn, conflict).await?;
        }
        Ok(())
    })
    .await?;
    by_id(conn, id)
        .await?
        .ok_or_else(|| ApiError::internal("the conflict vanished"))
}

/// A paid scan takes its position if the position is free. If it is not, a
/// scan of a voucher redeemed elsewhere becomes a second payment (the
/// funder's explicit choice, outside `redemptions_one_per_position`), while a
/// replaced voucher is never paid beside its replacement.
async fn pay_conflict(conn: &mut AsyncPgConnection, conflict: &Conflict) -> Result<(), ApiError> {
    use diesel::sql_types::{BigInt, Bool};
    let insert = |second_payment: bool| {
        diesel::sql_query(
            "WITH r AS (
                INSERT INTO redemptions (voucher_id, program_id, lineage_id, position, venue_organisation_id,
                                         redeemed_at, theme, held_on, duration_minutes, face_value_cents,
                                         conflict_id, second_payment)
                SELECT c.voucher_id, c.program_id, v.lineage_id, v.position, c.venue_organisation_id,
                       c.scanned_at, c.theme, c.held_on, c.duration_minutes, c.face_value_cents, c.id, $2
                  FROM conflicts c JOIN vouchers v ON v.id = c.voucher_id
                 WHERE c.id = $1
                ON CONFLICT (lineage_id, position) WHERE cancelled_at IS NULL AND NOT second_payment DO NOTHING
                RETURNING id, lineage_id, position, second_payment),
             s AS (
                INSERT INTO sync_changes (kind, program_id, voucher_id)
                SELECT 'redeemed', v.program_id, v.id FROM vouchers v, r
                 WHERE v.lineage_id = r.lineage_id AND v.position = r.position AND NOT r.second_payment)
             SELECT id FROM r",
        )
        .bind::<BigInt, _>(conflict.id)
        .bind::<Bool, _>(second_payment)
    };
    // The statement answers one row per redemption inserted.
    if insert(false).execute(conn).await? == 1 {
        return Ok(());
    }
    if conflict.kind == ConflictKind::Replaced.as_str() {
        return Err(ApiError::new(
            ProblemType::Conflict,
            "This voucher was replaced and the replacement was used: paying it would pay the same coupon twice. Reject it.",
        ));
    }
    insert(true).execute(conn).await?;
    Ok(())
}
