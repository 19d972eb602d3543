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
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::accounts::Account;
use super::books::{voucher_status, VoucherStatus};
use super::devices::Scanner;
use super::idempotency::{self, Recorded};
use super::organisations::Organisation;
use super::sync;
use super::themes;
use crate::auth::Role;
use crate::db::schema::{audit_events, books, programs, redemptions, signing_keys, vouchers};
use crate::http::problem::{ApiError, ProblemType};
use crate::keys::KeyRing;
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
    match keys.verify_voucher(code).await? {
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
    #[schema(schema_with = crate::http::openapi::theme_codes)]
    pub theme: String,
    /// The day it was held, at most 7 days ago.
    #[serde(deserialize_with = "super::bounds::date")]
    #[schema(pattern = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
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

/// Everything the rules need to know about one voucher.
#[derive(Debug, Clone, Queryable)]
pub(super) struct Facts {
    pub(super) voucher_id: i64,
    pub(super) program_id: i32,
    pub(super) position: i16,
    expires_on: NaiveDate,
    pub(super) face_value_cents: i64,
    pub(super) book_size: i16,
    book_revoked: Option<DateTime<Utc>>,
    program_closed: Option<DateTime<Utc>>,
    territory: Vec<String>,
    time_zone: String,
    key_status: String,
}

impl Facts {
    pub(super) fn tz(&self) -> Tz {
        self.time_zone
            .parse()
            .unwrap_or(super::paris::DEFAULT_TIME_ZONE)
    }
}

async fn facts(conn: &mut AsyncPgConnection, voucher_id: i64) -> QueryResult<Option<Facts>> {
    vouchers::table
        .inner_join(books::table.inner_join(programs::table))
        .inner_join(signing_keys::table)
        .filter(vouchers::id.eq(voucher_id))
        .select((
            vouchers::id,
            vouchers::program_id,
            vouchers::position,
            vouchers::expires_on,
            vouchers::face_value_cents,
            books::size,
            books::revoked_at,
            programs::closed_at,
            programs::territory,
            programs::time_zone,
            signing_keys::status,
        ))
        .first(conn)
        .await
        .optional()
}

/// The live (not cancelled) redemption of a voucher: id, when, by which venue.
pub(super) async fn live_redemption(
    conn: &mut AsyncPgConnection,
    voucher_id: i64,
) -> QueryResult<Option<(i64, DateTime<Utc>, i64)>> {
    redemptions::table
        .filter(redemptions::voucher_id.eq(voucher_id))
        .filter(redemptions::cancelled_at.is_null())
        .filter(redemptions::conflict_id.is_null())
        .select((
            redemptions::id,
            redemptions::redeemed_at,
            redemptions::venue_organisation_id,
        ))
        .first(conn)
        .await
        .optional()
}

/// The voucher's facts, or not found. A signed code must agree with what was
/// issued; a typed code only names the voucher.
pub(super) async fn find_voucher(
    conn: &mut AsyncPgConnection,
    code: &ScannedCode,
) -> Result<Facts, ApiError> {
    let id =
        i64::try_from(code.voucher_id()).map_err(|_| ApiError::not_found("No such voucher."))?;
    let facts = facts(conn, id)
        .await?
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
pub(super) fn already_redeemed(
    redeemed_at: DateTime<Utc>,
    id: i64,
    by: i64,
    venue: i64,
) -> ApiError {
    let mut e = ApiError::new(
        ProblemType::AlreadyRedeemed,
        format!(
            "This voucher was already used on {}.",
            redeemed_at.format("%Y-%m-%d at %H:%M UTC")
        ),
    )
    .with(
        "redeemed_at",
        redeemed_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    );
    if by == venue {
        e = e.with("redemption_id", id);
    }
    e
}

/// Why this venue may not redeem this voucher at instant `at` (now online,
/// the scan time offline), if it may not. The order: used, key withdrawn,
/// expired, revoked, closed, then the venue. A revocation or a closure after
/// `at` does not count: a scan made before it is honoured.
pub(super) fn refusal(
    facts: &Facts,
    live: Option<(i64, DateTime<Utc>, i64)>,
    venue: &Organisation,
    at: DateTime<Utc>,
) -> Option<ApiError> {
    let today = at.with_timezone(&facts.tz()).date_naive();
    if let Some((id, at, by)) = live {
        return Some(already_redeemed(at, id, by, venue.id));
    }
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
    if facts.book_revoked.is_some_and(|r| r <= at) {
        return Some(ApiError::new(
            ProblemType::VoucherRevoked,
            "This voucher's book was revoked.",
        ));
    }
    if facts.program_closed.is_some_and(|c| c <= at) {
        return Some(ApiError::new(
            ProblemType::ProgramClosed,
            "The programme that pays for this voucher is closed.",
        ));
    }
    if !venue.is_accredited_at(at, today) {
        return Some(ApiError::new(
            ProblemType::VenueNotAccredited,
            "Your venue is not accredited today; ask the operator.",
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
    let facts = find_voucher(conn, code).await?;
    let live = live_redemption(conn, facts.voucher_id).await?;
    let today = super::paris::today_in(facts.tz());
    let problem = refusal(&facts, live, venue, Utc::now());
    Ok(CheckAnswer {
        voucher_id: facts.voucher_id.to_string(),
        program_id: facts.program_id,
        position: facts.position,
        book_size: facts.book_size,
        expires_on: facts.expires_on,
        status: voucher_status(
            live.is_some(),
            facts.book_revoked.is_some(),
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

/// Redeems a voucher for `caller`'s venue.
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
    let venue = &scanner.venue;
    let principal = scanner.principal();
    if let Some(idem) = idempotency {
        if let Some(answer) = idempotency::lookup(conn, &principal, idem.key, &idem.hash).await? {
            return Ok(replay(answer));
        }
    }
    let outcome = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let facts = find_voucher(conn, code).await?;
            let live = live_redemption(conn, facts.voucher_id).await?;
            let now = Utc::now();
            if let Some(problem) = refusal(&facts, live, venue, now) {
                return Err(problem);
            }
            check_held_on(workshop.held_on, super::paris::today_in(facts.tz()))?;
            let inserted = insert(conn, &facts, scanner, workshop, now).await?;
            let Some((id, redeemed_at)) = inserted else {
                // The winner is committed: this statement sees it.
                let (rid, at, by) =
                    live_redemption(conn, facts.voucher_id)
                        .await?
                        .ok_or_else(|| {
                            ApiError::new(
                                ProblemType::Conflict,
                                "The voucher changed meanwhile; try again.",
                            )
                        })?;
                return Err(already_redeemed(at, rid, by, venue.id));
            };
            audit(
                conn,
                "redeemed",
                id,
                facts.voucher_id,
                scanner.actor(),
                venue.id,
                None,
            )
            .await?;
            let receipt = Receipt {
                id,
                voucher_id: facts.voucher_id.to_string(),
                position: facts.position,
                book_size: facts.book_size,
                face_value_cents: facts.face_value_cents,
                redeemed_at,
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

/// Inserts the redemption unless the voucher has one already. A rival insert
/// for the same voucher waits for ours to commit, then inserts nothing:
/// exactly one redemption wins. Records the change for offline scanners.
pub(super) async fn insert(
    conn: &mut AsyncPgConnection,
    facts: &Facts,
    scanner: &Scanner,
    workshop: &Workshop,
    redeemed_at: DateTime<Utc>,
) -> QueryResult<Option<(i64, DateTime<Utc>)>> {
    let inserted: Option<(i64, DateTime<Utc>)> = diesel::insert_into(redemptions::table)
        .values((
            redemptions::voucher_id.eq(facts.voucher_id),
            redemptions::program_id.eq(facts.program_id),
            redemptions::venue_organisation_id.eq(scanner.venue.id),
            redemptions::redeemed_by_user_id.eq(scanner.user_id),
            redemptions::redeemed_by_device_id.eq(scanner.device_id),
            redemptions::redeemed_at.eq(redeemed_at),
            redemptions::theme.eq(&workshop.theme),
            redemptions::held_on.eq(workshop.held_on),
            redemptions::duration_minutes.eq(workshop.duration_minutes),
            redemptions::face_value_cents.eq(facts.face_value_cents),
        ))
        .on_conflict(redemptions::voucher_id)
        .filter_target(
            redemptions::cancelled_at
                .is_null()
                .and(redemptions::conflict_id.is_null()),
        )
        .do_nothing()
        .returning((redemptions::id, redemptions::redeemed_at))
        .get_result(conn)
        .await
        .optional()?;
    if inserted.is_some() {
        sync::record(
            conn,
            "redeemed",
            Some(facts.program_id),
            Some(facts.voucher_id),
            None,
        )
        .await?;
    }
    Ok(inserted)
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

/// The venue takes back a redemption made by mistake, within the window:
/// the voucher is usable again. An event, never a delete.
pub async fn cancel(
    conn: &mut AsyncPgConnection,
    caller: &Account,
    redemption: &Redemption,
    reason: &str,
    window: chrono::Duration,
) -> Result<Redemption, ApiError> {
    let reason = super::check_reason(reason)?;
    let not_cancellable = |why: &str| ApiError::new(ProblemType::NotCancellable, why.to_owned());
    if redemption.cancelled_at.is_some() || redemption.reversed_at.is_some() {
        return Err(not_cancellable(
            "This redemption was already cancelled or reversed.",
        ));
    }
    let on_statement: bool = diesel::select(diesel::dsl::exists(
        crate::db::schema::statement_lines::table
            .filter(crate::db::schema::statement_lines::redemption_id.eq(redemption.id)),
    ))
    .get_result(conn)
    .await?;
    if on_statement {
        return Err(not_cancellable(
            "This redemption is on a closed statement: ask the funder to reverse it.",
        ));
    }
    if Utc::now() - redemption.redeemed_at > window {
        return Err(not_cancellable(&format!(
            "A redemption can be cancelled within {} hours only.",
            window.num_hours()
        )));
    }
    let (id, user, org) = (redemption.id, caller.user.id, caller.organisation.id);
    conn.transaction::<_, ApiError, _>(async |conn| {
        let updated = diesel::update(
            redemptions::table
                .find(id)
                .filter(redemptions::cancelled_at.is_null())
                .filter(redemptions::reversed_at.is_null()),
        )
        .set((
            redemptions::cancelled_at.eq(diesel::dsl::now),
            redemptions::cancelled_by_user_id.eq(user),
            redemptions::cancel_reason.eq(reason),
        ))
        .execute(conn)
        .await?;
        if updated != 1 {
            return Err(not_cancellable(
                "This redemption was already cancelled or reversed.",
            ));
        }
        audit(
            conn,
            "cancelled",
            id,
            redemption.voucher_id,
            Actor::user(user),
            org,
            Some(reason),
        )
        .await?;
        sync::record(
            conn,
            "reopened",
            Some(redemption.program_id),
            Some(redemption.voucher_id),
            None,
        )
        .await?;
        Ok(())
    })
    .await?;
    find(conn, id).await
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
    let (id, user, org) = (redemption.id, caller.user.id, caller.organisation.id);
    conn.transaction::<_, ApiError, _>(async |conn| {
        let updated = diesel::update(
            redemptions::table
                .find(id)
                .filter(redemptions::cancelled_at.is_null())
                .filter(redemptions::reversed_at.is_null()),
        )
        .set((
            redemptions::reversed_at.eq(diesel::dsl::now),
            redemptions::reversed_by_user_id.eq(user),
            redemptions::reverse_reason.eq(reason),
        ))
        .execute(conn)
        .await?;
        if updated != 1 {
            return Err(ApiError::new(
                ProblemType::Conflict,
                "This redemption was already cancelled or reversed.",
            ));
        }
        audit(
            conn,
            "reversed",
            id,
            redemption.voucher_id,
            Actor::user(user),
            org,
            Some(reason),
        )
        .await?;
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
