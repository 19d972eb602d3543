//! Redemption: a venue records the workshop a voucher pays for, exactly once.
//!
//! The flow goes one way: read the code and verify its signature (pure, with
//! the key ring's cached public keys), then one transaction checks the book,
//! the programme and the venue and inserts the redemption under the unique
//! index `redemptions_one_per_voucher`; a rival insert for the same voucher
//! waits for ours and then fails, so exactly one wins.

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Date, Integer, Nullable, SmallInt, Text, Timestamptz,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::accounts::Account;
use super::books::{voucher_status, VoucherStatus};
use super::devices::Scanner;
use super::idempotency::{self, Recorded};
use super::organisations::Organisation;
use super::themes;
use crate::auth::Role;
use crate::db::schema::{audit_events, programs, redemptions};
use crate::http::problem::{ApiError, ProblemType};
use crate::keys::{KeyRing, Purpose};
use crate::voucher::{typed_code, SignedVoucher, VoucherError, TEXT_PREFIX};

/// How far back a workshop may have been held when it is recorded.
pub const HELD_ON_WINDOW_DAYS: u64 = 7;

/// What a scanned or typed code turned out to be, before any database access.
#[derive(Debug)]
pub enum ScannedCode {
    /// A `PN1:` text whose signature verified.
    Signed(SignedVoucher),
    /// A typed code: the voucher id only, unsigned (online only).
    Typed(u64),
}

impl ScannedCode {
    pub fn voucher_id(&self) -> u64 {
        match self {
            ScannedCode::Signed(v) => v.body().voucher_id,
            ScannedCode::Typed(id) => *id,
        }
    }
}

/// Reads a code: the QR text (verified against the published voucher keys) or
/// a typed code. Every refusal is its own problem.
pub async fn read_code(keys: &KeyRing, code: &str) -> Result<ScannedCode, ApiError> {
    let trimmed = code.trim();
    if trimmed.is_empty() {
        return Err(ApiError::new(
            ProblemType::MalformedCode,
            "The code is empty.",
        ));
    }
    let malformed = |e: &dyn std::fmt::Display| {
        ApiError::new(
            ProblemType::MalformedCode,
            format!("The code cannot be read: {e}."),
        )
    };
    if !trimmed.to_ascii_uppercase().starts_with(TEXT_PREFIX) {
        return typed_code::decode(trimmed)
            .map(ScannedCode::Typed)
            .map_err(|e| malformed(&e));
    }
    let voucher = SignedVoucher::parse(code).map_err(|e| malformed(&e))?;
    let kid = voucher.body().kid;
    let key = keys.verifying_key(Purpose::Voucher, kid).await?;
    let verified = crate::voucher::decode_and_verify(code, |_| key);
    match verified {
        Ok(voucher) => Ok(ScannedCode::Signed(voucher)),
        Err(VoucherError::Malformed(e)) => Err(malformed(&e)),
        Err(VoucherError::UnknownKey(kid)) => Err(ApiError::new(
            ProblemType::UnknownKey,
            format!("No published voucher key has kid {kid}: the voucher is not ours, or its key was withdrawn."),
        )),
        Err(VoucherError::InvalidSignature) => Err(ApiError::new(
            ProblemType::InvalidSignature,
            "The signature does not match: the voucher was altered or forged.",
        )),
    }
}

/// The workshop a redemption records.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Workshop {
    /// A code of `GET /api/v1/themes`.
    pub theme: String,
    /// The day it was held, at most 7 days ago.
    pub held_on: NaiveDate,
    #[schema(minimum = 15, maximum = 480)]
    pub duration_minutes: i32,
}

/// Checks that need no database: the theme and the duration.
pub fn check_workshop(w: &Workshop) -> Result<(), ApiError> {
    if !themes::is_theme(&w.theme) {
        return Err(ApiError::invalid_field(
            "workshop.theme",
            "not a theme of GET /api/v1/themes",
        ));
    }
    if !(15..=480).contains(&w.duration_minutes) {
        return Err(ApiError::invalid_field(
            "workshop.duration_minutes",
            "a workshop lasts 15 to 480 minutes",
        ));
    }
    Ok(())
}

pub(super) fn check_held_on(held_on: NaiveDate, today: NaiveDate) -> Result<(), ApiError> {
    let earliest = today - Days::new(HELD_ON_WINDOW_DAYS);
    if held_on > today || held_on < earliest {
        return Err(ApiError::invalid_field(
            "workshop.held_on",
            format!("the workshop is recorded within 7 days: between {earliest} and {today}"),
        ));
    }
    Ok(())
}

/// The live redemption of a position: not cancelled, and not a second
/// payment the funder chose. At most one exists (`redemptions_one_per_position`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Live {
    pub(super) id: i64,
    pub(super) voucher_id: i64,
    pub(super) redeemed_at: DateTime<Utc>,
    pub(super) venue: i64,
}

/// Everything the rules need to know about one voucher and its position.
#[derive(Debug, Clone, QueryableByName)]
pub(super) struct Facts {
    #[diesel(sql_type = BigInt)]
    pub(super) voucher_id: i64,
    #[diesel(sql_type = Integer)]
    pub(super) program_id: i32,
    #[diesel(sql_type = BigInt)]
    pub(super) lineage_id: i64,
    #[diesel(sql_type = SmallInt)]
    pub(super) position: i16,
    #[diesel(sql_type = Date)]
    expires_on: NaiveDate,
    #[diesel(sql_type = BigInt)]
    pub(super) face_value_cents: i64,
    #[diesel(sql_type = SmallInt)]
    pub(super) book_size: i16,
    #[diesel(sql_type = Timestamptz)]
    book_created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    book_revoked_at: Option<DateTime<Utc>>,
    /// A voucher of a replacement book stands for this one.
    #[diesel(sql_type = Bool)]
    pub(super) replaced: bool,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    program_closed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Array<Text>)]
    territory: Vec<String>,
    #[diesel(sql_type = Text)]
    time_zone: String,
    #[diesel(sql_type = Text)]
    key_status: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    live_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    live_voucher_id: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    live_redeemed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    live_venue: Option<i64>,
}

impl Facts {
    pub(super) fn tz(&self) -> Tz {
        self.time_zone
            .parse()
            .unwrap_or(super::paris::DEFAULT_TIME_ZONE)
    }

    /// The live redemption of this voucher's position, whichever voucher of
    /// the position it was made with.
    pub(super) fn live(&self) -> Option<Live> {
        Some(Live {
            id: self.live_id?,
            voucher_id: self.live_voucher_id?,
            redeemed_at: self.live_redeemed_at?,
            venue: self.live_venue?,
        })
    }

    /// The live redemption as this voucher's own state: a voucher that was
    /// replaced is not "used" by a redemption of its replacement.
    fn used(&self) -> Option<Live> {
        self.live()
            .filter(|l| l.voucher_id == self.voucher_id || !self.replaced)
    }
}

/// A voucher and its position, read in one statement. Run after the book's
/// lock (see `lock_book`), it reads on a fresh snapshot: what a concurrent
/// replace or revoke committed is seen.
const FACTS: &str = "
SELECT v.id AS voucher_id, v.program_id, v.lineage_id, v.position, v.expires_on, v.face_value_cents,
       b.size AS book_size, b.created_at AS book_created_at, b.revoked_at AS book_revoked_at,
       EXISTS (SELECT 1 FROM vouchers w WHERE w.replaces_voucher_id = v.id) AS replaced,
       p.closed_at AS program_closed_at, p.territory, p.time_zone, k.status AS key_status,
       l.id AS live_id, l.voucher_id AS live_voucher_id, l.redeemed_at AS live_redeemed_at,
       l.venue_organisation_id AS live_venue
  FROM vouchers v
  JOIN books b ON b.id = v.book_id
  JOIN programs p ON p.id = v.program_id
  JOIN signing_keys k ON k.kid = v.kid
  LEFT JOIN redemptions l ON l.lineage_id = v.lineage_id AND l.position = v.position
       AND l.cancelled_at IS NULL AND NOT l.second_payment
 WHERE v.id = $1";

/// Takes the voucher's book row in share mode until the transaction ends:
/// redemptions of one book run side by side, while a replace or a revoke of
/// it (which lock it for update) waits for them, and they for it.
async fn lock_book(conn: &mut AsyncPgConnection, voucher_id: i64) -> QueryResult<()> {
    diesel::sql_query(
        "SELECT 1 FROM books WHERE id = (SELECT book_id FROM vouchers WHERE id = $1) FOR SHARE",
    )
    .bind::<BigInt, _>(voucher_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether to take the book's lock before reading: yes inside a transaction
/// that may redeem, no for a check that changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    Book,
    None,
}

/// The voucher's facts, or not found. A signed code must agree with what was
/// issued; a typed code only names the voucher.
pub(super) async fn find_voucher(
    conn: &mut AsyncPgConnection,
    code: &ScannedCode,
    lock: Lock,
) -> Result<Facts, ApiError> {
    let id =
        i64::try_from(code.voucher_id()).map_err(|_| ApiError::not_found("No such voucher."))?;
    if lock == Lock::Book {
        lock_book(conn, id).await?;
    }
    let facts: Facts = diesel::sql_query(FACTS)
        .bind::<BigInt, _>(id)
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found("No voucher has this code."))?;
    if let ScannedCode::Signed(v) = code {
        let b = v.body();
        let agrees = i64::from(b.program_id) == i64::from(facts.program_id)
            && i16::from(b.position) == facts.position
            && i16::from(b.book_size) == facts.book_size
            && b.expires_on == facts.expires_on;
        if !agrees {
            return Err(ApiError::not_found(
                "No voucher was issued with these details.",
            ));
        }
    }
    Ok(facts)
}

/// `already-redeemed`: says when, and the redemption's id only to the venue that made it.
pub(super) fn already_redeemed(live: Live, venue: i64) -> ApiError {
    let mut e = ApiError::new(
        ProblemType::AlreadyRedeemed,
        format!(
            "This voucher was already used on {}.",
            live.redeemed_at.format("%Y-%m-%d at %H:%M UTC")
        ),
    )
    .with(
        "redeemed_at",
        live.redeemed_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    );
    if live.venue == venue {
        e = e.with("redemption_id", live.id);
    }
    e
}

/// Why this venue may not redeem this voucher at instant `at` (now online,
/// the scan time offline), its position's redemption aside. The order: key
/// withdrawn, expired, revoked, closed, then the venue. A revocation or a
/// closure after `at` does not count: a scan made before it is honoured.
pub(super) fn refusal(facts: &Facts, venue: &Organisation, at: DateTime<Utc>) -> Option<ApiError> {
    let today = at.with_timezone(&facts.tz()).date_naive();
    if facts.key_status == "withdrawn" {
        return Some(ApiError::new(
            ProblemType::UnknownKey,
            "The key that signed this voucher was withdrawn.",
        ));
    }
    if today > facts.expires_on {
        return Some(ApiError::new(
            ProblemType::VoucherExpired,
            format!("This voucher was valid until {}.", facts.expires_on),
        ));
    }
    if facts.book_revoked_at.is_some_and(|r| r <= at) {
        return Some(ApiError::new(
            ProblemType::VoucherRevoked,
            "This voucher's book was revoked.",
        ));
    }
    if facts.program_closed_at.is_some_and(|c| c <= at) {
        return Some(ApiError::new(
            ProblemType::ProgramClosed,
            "The programme that pays for this voucher is closed.",
        ));
    }
    if !venue.is_accredited_at(at, today) {
        return Some(ApiError::new(
            ProblemType::VenueNotAccredited,
            "Your venue was not accredited at that time; ask the operator.",
        ));
    }
    let inside = venue
        .departement
        .as_deref()
        .is_some_and(|d| facts.territory.iter().any(|t| t == d));
    if !inside {
        return Some(ApiError::new(
            ProblemType::VenueOutOfTerritory,
            format!(
                "This programme pays for workshops in {} only.",
                facts.territory.join(", ")
            ),
        ));
    }
    None
}

/// What `POST /api/v1/vouchers/check` answers for a genuine voucher.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckAnswer {
    pub voucher_id: String,
    pub program_id: i32,
    pub position: i16,
    pub book_size: i16,
    pub expires_on: NaiveDate,
    pub status: VoucherStatus,
    pub redeemable: bool,
    /// Why it is not redeemable here: a problem slug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Says whether `venue` could redeem the voucher now; stores nothing.
pub async fn check(
    conn: &mut AsyncPgConnection,
    venue: &Organisation,
    code: &ScannedCode,
) -> Result<CheckAnswer, ApiError> {
    let facts = find_voucher(conn, code, Lock::None).await?;
    let now = Utc::now();
    let today = now.with_timezone(&facts.tz()).date_naive();
    let used = facts.used();
    let problem = match used {
        Some(live) => Some(already_redeemed(live, venue.id)),
        None => refusal(&facts, venue, now),
    };
    Ok(CheckAnswer {
        voucher_id: facts.voucher_id.to_string(),
        program_id: facts.program_id,
        position: facts.position,
        book_size: facts.book_size,
        expires_on: facts.expires_on,
        status: voucher_status(
            used.is_some(),
            facts.book_revoked_at.is_some(),
            facts.expires_on,
            today,
        ),
        redeemable: problem.is_none(),
        problem: problem.map(|p| p.kind.slug().to_owned()),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The QR text (`PN1:…`) or the typed code.
    pub code: String,
    pub workshop: Workshop,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    pub id: i64,
    pub voucher_id: String,
    pub position: i16,
    pub book_size: i16,
    pub face_value_cents: i64,
    pub redeemed_at: DateTime<Utc>,
}

/// An `Idempotency-Key` and the hash of the request it came with.
pub struct Idempotency<'a> {
    pub key: &'a str,
    pub hash: Vec<u8>,
}

/// The answer to a redemption: status and body, and whether it replays the
/// answer first given to the same `Idempotency-Key`.
pub struct Answer {
    pub recorded: Recorded,
    pub replayed: bool,
}

/// When a scan is judged: now (online), or at the time the phone says it
/// scanned (an offline batch).
#[derive(Debug, Clone, Copy)]
pub(super) enum When {
    Online,
    Offline(DateTime<Utc>),
}

/// What became of one scan.
#[derive(Debug)]
pub(super) enum Scanned {
    Redeemed(Receipt),
    Refused(ApiError),
    /// Offline: this venue already redeemed this very voucher.
    Duplicate(i64),
    /// Offline: the position was redeemed elsewhere, or the voucher was
    /// replaced; kept for the funder to decide.
    Conflict,
}

/// The one path of a redemption, online and offline, inside the caller's
/// transaction: the book's lock, the voucher and its position, the rules at
/// the scan's instant, then the insert under `redemptions_one_per_position`.
pub(super) async fn redeem_in(
    conn: &mut AsyncPgConnection,
    scanner: &Scanner,
    code: &ScannedCode,
    workshop: &Workshop,
    when: When,
) -> Result<Scanned, ApiError> {
    let venue = &scanner.venue;
    let facts = match find_voucher(conn, code, Lock::Book).await {
        Ok(facts) => facts,
        Err(e) if e.kind == ProblemType::NotFound => return Ok(Scanned::Refused(e)),
        Err(e) => return Err(e),
    };
    let at = match when {
        When::Online => Utc::now(),
        When::Offline(at) if at < facts.book_created_at => {
            return Ok(Scanned::Refused(ApiError::invalid_field(
                "scanned_at",
                "the scan time is before this voucher was issued",
            )))
        }
        When::Offline(at) => at,
    };
    // A rival that committed after our read is met by the insert; we read
    // again once and judge it like any other live redemption.
    let mut live = facts.live();
    for _ in 0..2 {
        if let Some(outcome) = judge_position(conn, scanner, &facts, live, workshop, when).await? {
            return Ok(outcome);
        }
        if let Some(problem) = refusal(&facts, venue, at) {
            return Ok(Scanned::Refused(problem));
        }
        let day = at.with_timezone(&facts.tz()).date_naive();
        if let Err(problem) = check_held_on(workshop.held_on, day) {
            return Ok(Scanned::Refused(problem));
        }
        if let Some((id, redeemed_at)) = insert(conn, &facts, scanner, workshop, at).await? {
            return Ok(Scanned::Redeemed(Receipt {
                id,
                voucher_id: facts.voucher_id.to_string(),
                position: facts.position,
                book_size: facts.book_size,
                face_value_cents: facts.face_value_cents,
                redeemed_at,
            }));
        }
        live = position_live(conn, facts.lineage_id, facts.position).await?;
    }
    Err(ApiError::new(
        ProblemType::Conflict,
        "The voucher keeps changing; try again.",
    ))
}

/// What the position's state decides before the rules, if anything: online,
/// a used voucher is refused; offline, a scan of a voucher this venue already
/// redeemed is a duplicate, and one of a replaced voucher, or of a position
/// redeemed elsewhere, is a conflict for the funder.
async fn judge_position(
    conn: &mut AsyncPgConnection,
    scanner: &Scanner,
    facts: &Facts,
    live: Option<Live>,
    workshop: &Workshop,
    when: When,
) -> Result<Option<Scanned>, ApiError> {
    let venue = scanner.venue.id;
    let when_scanned = match when {
        When::Online => {
            let used = live.filter(|l| l.voucher_id == facts.voucher_id || !facts.replaced);
            return Ok(used.map(|l| Scanned::Refused(already_redeemed(l, venue))));
        }
        When::Offline(at) => at,
    };
    let kind = match live {
        Some(l) if l.venue == venue && l.voucher_id == facts.voucher_id => {
            return Ok(Some(Scanned::Duplicate(l.id)))
        }
        _ if facts.replaced => ConflictKind::Replaced,
        Some(_) => ConflictKind::RedeemedElsewhere,
        None => return Ok(None),
    };
    super::batch::record_conflict(conn, scanner, facts, kind, live, when_scanned, workshop).await?;
    Ok(Some(Scanned::Conflict))
}

/// Why an offline scan went to the funder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// Another venue (or another voucher of the position) redeemed it first.
    RedeemedElsewhere,
    /// The voucher was replaced: paying it takes the position, never beside it.
    Replaced,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::RedeemedElsewhere => "redeemed_elsewhere",
            ConflictKind::Replaced => "replaced",
        }
    }
}

/// The live redemption of a position, read afresh.
pub(super) async fn position_live(
    conn: &mut AsyncPgConnection,
    lineage_id: i64,
    position: i16,
) -> QueryResult<Option<Live>> {
    let row: Option<(i64, i64, DateTime<Utc>, i64)> = redemptions::table
        .filter(redemptions::lineage_id.eq(lineage_id))
        .filter(redemptions::position.eq(position))
        // The predicate of redemptions_one_per_position.
        .filter(redemptions::cancelled_at.is_null())
        .filter(redemptions::second_payment.eq(false))
        .select((
            redemptions::id,
            redemptions::voucher_id,
            redemptions::redeemed_at,
            redemptions::venue_organisation_id,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|(id, voucher_id, redeemed_at, venue)| Live {
        id,
        voucher_id,
        redeemed_at,
        venue,
    }))
}

/// Redeems a voucher for the scanner's venue, now.
pub async fn redeem(
    conn: &mut AsyncPgConnection,
    scanner: &Scanner,
    code: &ScannedCode,
    workshop: &Workshop,
    idempotency: Option<&Idempotency<'_>>,
) -> Result<Answer, ApiError> {
    let replay = |recorded| Answer {
        recorded,
        replayed: true,
    };
    let principal = scanner.principal();
    if let Some(idem) = idempotency {
        if let Some(answer) = idempotency::lookup(conn, &principal, idem.key, &idem.hash).await? {
            return Ok(replay(answer));
        }
    }
    let outcome = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let receipt = match redeem_in(conn, scanner, code, workshop, When::Online).await? {
                Scanned::Redeemed(receipt) => receipt,
                Scanned::Refused(problem) => return Err(problem),
                Scanned::Duplicate(_) | Scanned::Conflict => {
                    return Err(ApiError::internal("an online redemption has no conflicts"))
                }
            };
            let answer = Recorded {
                status: 201,
                body: serde_json::to_vec(&receipt)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            };
            if let Some(idem) = idempotency {
                idempotency::record(conn, &principal, idem.key, &idem.hash, &answer)
                    .await
                    .map_err(|e| match e {
                        diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::UniqueViolation,
                            _,
                        ) => ApiError::new(
                            ProblemType::IdempotencyConflict,
                            "A request with this Idempotency-Key ran meanwhile.",
                        ),
                        other => other.into(),
                    })?;
            }
            Ok(answer)
        })
        .await;
    match (outcome, idempotency) {
        // The same key ran concurrently: its answer, if it was this very
        // request, is the answer.
        (Err(e), Some(idem))
            if matches!(
                e.kind,
                ProblemType::AlreadyRedeemed | ProblemType::IdempotencyConflict
            ) =>
        {
            match idempotency::lookup(conn, &principal, idem.key, &idem.hash).await? {
                Some(answer) => Ok(replay(answer)),
                None => Err(e),
            }
        }
        (outcome, _) => outcome.map(|recorded| Answer {
            recorded,
            replayed: false,
        }),
    }
}

/// Inserts the redemption unless its position has one already, with its
/// audit event and the change offline scanners sync (for every voucher of
/// the position), in one statement. A rival insert for the same position
/// waits for ours to commit, then inserts nothing: exactly one wins.
async fn insert(
    conn: &mut AsyncPgConnection,
    facts: &Facts,
    scanner: &Scanner,
    workshop: &Workshop,
    redeemed_at: DateTime<Utc>,
) -> QueryResult<Option<(i64, DateTime<Utc>)>> {
    #[derive(QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Timestamptz)]
        redeemed_at: DateTime<Utc>,
    }
    let inserted: Option<Inserted> = diesel::sql_query(
        "WITH r AS (
            INSERT INTO redemptions (voucher_id, program_id, lineage_id, position, venue_organisation_id,
                                     redeemed_by_user_id, redeemed_by_device_id, redeemed_at, theme,
                                     held_on, duration_minutes, face_value_cents)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (lineage_id, position) WHERE cancelled_at IS NULL AND NOT second_payment DO NOTHING
            RETURNING id, redeemed_at),
         a AS (
            INSERT INTO audit_events (kind, redemption_id, voucher_id, actor_user_id, actor_device_id, actor_organisation_id)
            SELECT 'redeemed', r.id, $1, $6, $7, $5 FROM r),
         s AS (
            INSERT INTO sync_changes (kind, program_id, voucher_id)
            SELECT 'redeemed', v.program_id, v.id FROM vouchers v, r WHERE v.lineage_id = $3 AND v.position = $4)
         SELECT id, redeemed_at FROM r",
    )
    .bind::<BigInt, _>(facts.voucher_id)
    .bind::<Integer, _>(facts.program_id)
    .bind::<BigInt, _>(facts.lineage_id)
    .bind::<SmallInt, _>(facts.position)
    .bind::<BigInt, _>(scanner.venue.id)
    .bind::<Nullable<BigInt>, _>(scanner.user_id)
    .bind::<Nullable<BigInt>, _>(scanner.device_id)
    .bind::<Timestamptz, _>(redeemed_at)
    .bind::<Text, _>(&workshop.theme)
    .bind::<Date, _>(workshop.held_on)
    .bind::<Integer, _>(workshop.duration_minutes)
    .bind::<BigInt, _>(facts.face_value_cents)
    .get_result(conn)
    .await
    .optional()?;
    Ok(inserted.map(|i| (i.id, i.redeemed_at)))
}

/// Who did it: a user, or a scanner device.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub user: Option<i64>,
    pub device: Option<i64>,
}

impl Actor {
    pub fn user(id: i64) -> Self {
        Actor {
            user: Some(id),
            device: None,
        }
    }
}

impl Scanner {
    pub fn actor(&self) -> Actor {
        Actor {
            user: self.user_id,
            device: self.device_id,
        }
    }
}

pub(super) async fn audit(
    conn: &mut AsyncPgConnection,
    kind: &str,
    redemption_id: i64,
    voucher_id: i64,
    actor: Actor,
    organisation: i64,
    reason: Option<&str>,
) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::kind.eq(kind),
            audit_events::redemption_id.eq(redemption_id),
            audit_events::voucher_id.eq(voucher_id),
            audit_events::actor_user_id.eq(actor.user),
            audit_events::actor_device_id.eq(actor.device),
            audit_events::actor_organisation_id.eq(organisation),
            audit_events::reason.eq(reason),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// A redemption as venues and funders see it.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, ToSchema)]
#[diesel(table_name = redemptions)]
pub struct Redemption {
    pub id: i64,
    #[serde(serialize_with = "super::decimal_string")]
    #[schema(value_type = String)]
    pub voucher_id: i64,
    pub program_id: i32,
    pub venue_organisation_id: i64,
    pub redeemed_at: DateTime<Utc>,
    pub theme: String,
    pub held_on: NaiveDate,
    pub duration_minutes: i32,
    pub face_value_cents: i64,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub reversed_at: Option<DateTime<Utc>>,
    pub reverse_reason: Option<String>,
}

/// One page of redemptions: a venue's own, or those of a funder's programmes.
pub async fn list(
    conn: &mut AsyncPgConnection,
    role: Role,
    org: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<Redemption>, ApiError> {
    let mut query = redemptions::table
        .select(Redemption::as_select())
        .filter(redemptions::id.gt(after))
        .order(redemptions::id)
        .limit(limit)
        .into_boxed();
    query = match role {
        Role::Venue => query.filter(redemptions::venue_organisation_id.eq(org)),
        _ => query.filter(
            redemptions::program_id.eq_any(
                programs::table
                    .filter(programs::funder_organisation_id.eq(org))
                    .select(programs::id),
            ),
        ),
    };
    Ok(query.load(conn).await?)
}

/// A venue's redemptions, newest first, before redemption `before` if given
/// (the venue's pages page backwards through them).
pub async fn recent_for_venue(
    conn: &mut AsyncPgConnection,
    venue: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Redemption>, ApiError> {
    let mut query = redemptions::table
        .select(Redemption::as_select())
        .filter(redemptions::venue_organisation_id.eq(venue))
        .order(redemptions::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(redemptions::id.lt(before));
    }
    Ok(query.load(conn).await?)
}

async fn find(conn: &mut AsyncPgConnection, id: i64) -> Result<Redemption, ApiError> {
    redemptions::table
        .find(id)
        .select(Redemption::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found(format!("No redemption {id}.")))
}

/// The redemption if the venue made it; any other is not found.
pub async fn find_for_venue(
    conn: &mut AsyncPgConnection,
    id: i64,
    venue: i64,
) -> Result<Redemption, ApiError> {
    find(conn, id).await.and_then(|r| {
        if r.venue_organisation_id == venue {
            Ok(r)
        } else {
            Err(ApiError::not_found(format!("No redemption {id}.")))
        }
    })
}

/// The redemption if the funder runs its programme; any other is not found.
pub async fn find_for_funder(
    conn: &mut AsyncPgConnection,
    id: i64,
    funder: i64,
) -> Result<Redemption, ApiError> {
    let r = find(conn, id).await?;
    if super::programs::runs(conn, r.program_id, funder).await? {
        Ok(r)
    } else {
        Err(ApiError::not_found(format!("No redemption {id}.")))
    }
}

/// The venue takes back a redemption made by mistake, within the window and
/// while it is on no closed statement: the voucher is usable again. An event,
/// never a delete.
pub async fn cancel(
    conn: &mut AsyncPgConnection,
    caller: &Account,
    redemption: &Redemption,
    reason: &str,
    window: chrono::Duration,
) -> Result<Redemption, ApiError> {
    let reason = super::check_reason(reason)?;
    undo(conn, caller, redemption.id, reason, Undo::Cancel(window)).await
}

/// The funder disputes a redemption: it will not be paid (or is taken back on
/// the next statement), and the voucher stays used.
pub async fn reverse(
    conn: &mut AsyncPgConnection,
    caller: &Account,
    redemption: &Redemption,
    reason: &str,
) -> Result<Redemption, ApiError> {
    let reason = super::check_reason(reason)?;
    undo(conn, caller, redemption.id, reason, Undo::Reverse).await
}

#[derive(Debug, Clone, Copy)]
enum Undo {
    /// By the venue, within this window of the redemption.
    Cancel(chrono::Duration),
    /// By the funder, at any time.
    Reverse,
}

/// Until when a venue may cancel a redemption it made.
pub fn cancellable_until(redeemed_at: DateTime<Utc>, window: chrono::Duration) -> DateTime<Utc> {
    redeemed_at + window
}

/// Cancels or reverses under the redemption's row lock. A statement closing
/// at the same moment holds the locks of the redemptions it pays: we wait for
/// it, then see its lines. `redemptions_final_once_paid` refuses the cancel
/// in the database too.
async fn undo(
    conn: &mut AsyncPgConnection,
    caller: &Account,
    id: i64,
    reason: &str,
    how: Undo,
) -> Result<Redemption, ApiError> {
    use crate::db::schema::statement_lines;
    let (user, org) = (caller.user.id, caller.organisation.id);
    let refused = |why: String| match how {
        Undo::Cancel(_) => ApiError::new(ProblemType::NotCancellable, why),
        Undo::Reverse => ApiError::new(ProblemType::Conflict, why),
    };
    conn.transaction::<_, ApiError, _>(async |conn| {
        let current: Redemption = redemptions::table
            .find(id)
            .select(Redemption::as_select())
            .for_update()
            .first(conn)
            .await?;
        if current.cancelled_at.is_some() || current.reversed_at.is_some() {
            return Err(refused(
                "This redemption was already cancelled or reversed.".into(),
            ));
        }
        if let Undo::Cancel(window) = how {
            let on_statement: bool = diesel::select(diesel::dsl::exists(
                statement_lines::table.filter(statement_lines::redemption_id.eq(id)),
            ))
            .get_result(conn)
            .await?;
            if on_statement {
                return Err(refused(
                    "This redemption is on a closed statement: ask the funder to reverse it.".into(),
                ));
            }
            if Utc::now() > cancellable_until(current.redeemed_at, window) {
                return Err(refused(format!(
                    "A redemption can be cancelled within {} hours only.",
                    window.num_hours()
                )));
            }
        }
        let target = redemptions::table.find(id);
        let updated = match how {
            Undo::Cancel(_) => diesel::update(target)
                .set((
                    redemptions::cancelled_at.eq(diesel::dsl::now),
                    redemptions::cancelled_by_user_id.eq(user),
                    redemptions::cancel_reason.eq(reason),
                ))
                .execute(conn)
                .await,
            Undo::Reverse => diesel::update(target)
                .set((
                    redemptions::reversed_at.eq(diesel::dsl::now),
                    redemptions::reversed_by_user_id.eq(user),
                    redemptions::reverse_reason.eq(reason),
                ))
                .execute(conn)
                .await,
        };
        updated.map_err(|e| match e {
            diesel::result::Error::DatabaseError(_, ref info)
                if info.constraint_name() == Some("redemptions_final_once_paid") =>
            {
                refused("This redemption is on a closed statement: ask the funder to reverse it.".into())
            }
            other => other.into(),
        })?;
        let kind = match how {
            Undo::Cancel(_) => "cancelled",
            Undo::Reverse => "reversed",
        };
        audit(conn, kind, id, current.voucher_id, Actor::user(user), org, Some(reason)).await?;
        if let Undo::Cancel(_) = how {
            // Every voucher of the position is usable again (the latest one
            // in practice); phones learn it at their next sync.
            diesel::sql_query(
                "INSERT INTO sync_changes (kind, program_id, voucher_id)
                 SELECT 'reopened', v.program_id, v.id FROM vouchers v
                  WHERE (v.lineage_id, v.position) = (SELECT lineage_id, position FROM redemptions WHERE id = $1)",
            )
            .bind::<BigInt, _>(id)
            .execute(conn)
            .await?;
        }
        Ok(())
    })
    .await?;
    find(conn, id).await
}

/// One entry of the audit trail.
#[derive(Debug, Serialize, Queryable, Selectable, ToSchema)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub redemption_id: i64,
    #[serde(serialize_with = "super::decimal_string")]
    #[schema(value_type = String)]
    pub voucher_id: i64,
    pub actor_user_id: Option<i64>,
    pub actor_organisation_id: i64,
    pub reason: Option<String>,
}

pub async fn audit_trail(
    conn: &mut AsyncPgConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>, ApiError> {
    Ok(audit_events::table
        .select(AuditEvent::as_select())
        .filter(audit_events::id.gt(after))
        .order(audit_events::id)
        .limit(limit)
        .load(conn)
        .await?)
}
