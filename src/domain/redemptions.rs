//! Redemption: a venue records the workshop a voucher pays for, exactly once.
//!
//! The flow goes one way: read the code and verify its signature (pure, with
//! the key ring's cached public keys), then one transaction checks the book,
//! the programme and the venue and inserts the redemption under the unique
//! index `redemptions_one_per_voucher`; a rival insert for the same voucher
//! waits for ours and then fails, so exactly one wins.

use chrono::{DateTime, Days, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use diesel::sql_types::{
    Array, BigInt, Binary, Bool, Date, Integer, Nullable, SmallInt, Text, Timestamptz,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::accounts::Account;
use super::books::{voucher_status, VoucherStatus};
use super::devices::Scanner;
use super::group_commit::GroupCommit;
use super::idempotency::{self, Recorded};
use super::themes;
use crate::auth::Role;
use crate::db::prepared::Prepared;
use crate::db::schema::{audit_events, programs, redemptions};
use crate::db::Pool;
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

/// How a voucher is judged online by the database's `redeem` function (an
/// offline scan goes through its `scan` function, `batch::process`).
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Could it be redeemed now? Reads only.
    Check,
    /// Redeem it now.
    Online,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Check => "check",
            Mode::Online => "online",
        }
    }
}

/// What the database's `redeem` (or `scan`) function decided about one
/// voucher, with the facts a message or a receipt needs.
#[derive(Debug, Clone, QueryableByName)]
pub(super) struct Judgement {
    #[diesel(sql_type = Text)]
    pub(super) outcome: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub(super) problem: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    field: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    voucher_id: Option<i64>,
    #[diesel(sql_type = Nullable<Integer>)]
    program_id: Option<i32>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    position: Option<i16>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    book_size: Option<i16>,
    #[diesel(sql_type = Nullable<Date>)]
    expires_on: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<Array<Text>>)]
    territory: Option<Vec<String>>,
    #[diesel(sql_type = Nullable<Bool>)]
    book_revoked: Option<bool>,
    #[diesel(sql_type = Nullable<Date>)]
    today: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(super) redemption_id: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    redeemed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Bool>)]
    mine: Option<bool>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    status: Option<i16>,
    #[diesel(sql_type = Nullable<Binary>)]
    body: Option<Vec<u8>>,
}

/// The signed fields a QR code carries, which must agree with what was
/// issued; a typed code carries none.
pub(super) type Signed = (Option<i32>, Option<i16>, Option<i16>, Option<NaiveDate>);

pub(super) fn signed_fields(code: &ScannedCode) -> Signed {
    match code {
        ScannedCode::Signed(v) => {
            let b = v.body();
            (
                i32::try_from(b.program_id).ok(),
                Some(i16::from(b.position)),
                Some(i16::from(b.book_size)),
                Some(b.expires_on),
            )
        }
        ScannedCode::Typed(_) => (None, None, None, None),
    }
}

/// The voucher id of a code as the database stores it: an id of 2^63 or
/// more was never issued, and -1 names no voucher.
pub(super) fn stored_id(code: &ScannedCode) -> i64 {
    i64::try_from(code.voucher_id()).unwrap_or(-1)
}

/// Everything the database's `redeem` function is given for one voucher,
/// owned, so that concurrent redemptions can be handed to one transaction
/// (`group_commit`).
#[derive(Debug, Clone)]
pub struct RedeemArgs {
    mode: Mode,
    voucher_id: i64,
    signed: Signed,
    venue: i64,
    user: Option<i64>,
    device: Option<i64>,
    workshop: Option<Workshop>,
    idempotency: Option<(String, String, Vec<u8>)>,
}

impl RedeemArgs {
    pub(super) fn new(
        mode: Mode,
        scanner: &Scanner,
        code: &ScannedCode,
        workshop: Option<&Workshop>,
        idempotency: Option<&Idempotency<'_>>,
    ) -> Self {
        RedeemArgs {
            mode,
            voucher_id: stored_id(code),
            signed: signed_fields(code),
            venue: scanner.venue.id,
            user: scanner.user_id,
            device: scanner.device_id,
            workshop: workshop.cloned(),
            idempotency: idempotency
                .map(|i| (scanner.principal(), i.key.to_owned(), i.hash.clone())),
        }
    }

    /// The voucher: a group's statements run in its order, so that two
    /// groups lock positions in the same order.
    pub(super) fn voucher_id(&self) -> i64 {
        self.voucher_id
    }
}

/// Judges one voucher for the scanner's venue in one statement (and, but for
/// a check, one transaction): the database's `redeem` function holds the
/// rules (docs/architecture.md, "The flow of a redemption").
pub(super) async fn judge(
    conn: &mut AsyncPgConnection,
    args: &RedeemArgs,
) -> QueryResult<Judgement> {
    /// The statement's name in the prepared-statement cache.
    struct Redeem;
    let (program, position, size, expires) = args.signed;
    let w = args.workshop.as_ref();
    let i = args.idempotency.as_ref();
    Prepared::<Redeem>::new(
        "SELECT * FROM redeem($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $12, $13, $14, $15)",
    )
    .bind::<Text, _>(args.mode.name())
    .bind::<BigInt, _>(args.voucher_id)
    .bind::<Nullable<Integer>, _>(program)
    .bind::<Nullable<SmallInt>, _>(position)
    .bind::<Nullable<SmallInt>, _>(size)
    .bind::<Nullable<Date>, _>(expires)
    .bind::<BigInt, _>(args.venue)
    .bind::<Nullable<BigInt>, _>(args.user)
    .bind::<Nullable<BigInt>, _>(args.device)
    .bind::<Nullable<Text>, _>(w.map(|w| w.theme.clone()))
    .bind::<Nullable<Date>, _>(w.map(|w| w.held_on))
    .bind::<Nullable<Integer>, _>(w.map(|w| w.duration_minutes))
    .bind::<Nullable<Text>, _>(i.map(|i| i.0.clone()))
    .bind::<Nullable<Text>, _>(i.map(|i| i.1.clone()))
    .bind::<Nullable<Binary>, _>(i.map(|i| i.2.clone()))
    .get_result(conn)
    .await
}

/// Judges several online redemptions in one statement, so one transaction
/// and one commit: each row is its own call of `redeem`, in the order given.
/// If one fails, the whole statement does, and the caller judges each alone.
pub(super) async fn judge_many(
    conn: &mut AsyncPgConnection,
    all: &[RedeemArgs],
) -> QueryResult<Vec<Judgement>> {
    fn column<T>(all: &[RedeemArgs], f: impl Fn(&RedeemArgs) -> T) -> Vec<T> {
        all.iter().map(f).collect()
    }
    struct RedeemMany;
    Prepared::<RedeemMany>::new(
        "SELECT r.* FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::smallint[], $5::smallint[], $6::date[],
                                $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::date[], $12::integer[],
                                $13::text[], $14::text[], $15::bytea[])
                     WITH ORDINALITY AS a (mode, voucher, program, position, size, expires, venue, usr, device,
                                           theme, held_on, duration, principal, key, hash, n)
              CROSS JOIN LATERAL redeem(a.mode, a.voucher, a.program, a.position, a.size, a.expires, a.venue,
                                        a.usr, a.device, NULL, a.theme, a.held_on, a.duration,
                                        a.principal, a.key, a.hash) r
          ORDER BY a.n",
    )
    .bind::<Array<Text>, _>(column(all, |a| a.mode.name()))
    .bind::<Array<BigInt>, _>(column(all, |a| a.voucher_id))
    .bind::<Array<Nullable<Integer>>, _>(column(all, |a| a.signed.0))
    .bind::<Array<Nullable<SmallInt>>, _>(column(all, |a| a.signed.1))
    .bind::<Array<Nullable<SmallInt>>, _>(column(all, |a| a.signed.2))
    .bind::<Array<Nullable<Date>>, _>(column(all, |a| a.signed.3))
    .bind::<Array<BigInt>, _>(column(all, |a| a.venue))
    .bind::<Array<Nullable<BigInt>>, _>(column(all, |a| a.user))
    .bind::<Array<Nullable<BigInt>>, _>(column(all, |a| a.device))
    .bind::<Array<Nullable<Text>>, _>(column(all, |a| a.workshop.as_ref().map(|w| w.theme.clone())))
    .bind::<Array<Nullable<Date>>, _>(column(all, |a| a.workshop.as_ref().map(|w| w.held_on)))
    .bind::<Array<Nullable<Integer>>, _>(column(all, |a| a.workshop.as_ref().map(|w| w.duration_minutes)))
    .bind::<Array<Nullable<Text>>, _>(column(all, |a| a.idempotency.as_ref().map(|i| i.0.clone())))
    .bind::<Array<Nullable<Text>>, _>(column(all, |a| a.idempotency.as_ref().map(|i| i.1.clone())))
    .bind::<Array<Nullable<Binary>>, _>(column(all, |a| a.idempotency.as_ref().map(|i| i.2.clone())))
    .load(conn)
    .await
}

impl Judgement {
    /// The refusal, worded: the database says which rule, this says why.
    pub(super) fn refusal(&self) -> Option<ApiError> {
        let problem = self.problem.as_deref()?;
        let field = self.field.as_deref();
        Some(match problem {
            "not-found" if field == Some("details") => {
                ApiError::not_found("No voucher was issued with these details.")
            }
            "not-found" => ApiError::not_found("No voucher has this code."),
            "validation-error" if field == Some("scanned_at") => ApiError::invalid_field(
                "scanned_at",
                "the scan time is before this voucher was issued",
            ),
            "validation-error" => {
                let today = self.today.unwrap_or_default();
                let earliest = today - Days::new(HELD_ON_WINDOW_DAYS);
                ApiError::invalid_field(
                    "workshop.held_on",
                    format!(
                        "the workshop is recorded within {HELD_ON_WINDOW_DAYS} days: between {earliest} and {today}"
                    ),
                )
            }
            "already-redeemed" => {
                let at = self.redeemed_at.unwrap_or_default();
                let mut e = ApiError::new(
                    ProblemType::AlreadyRedeemed,
                    format!(
                        "This voucher was already used on {}.",
                        at.format("%Y-%m-%d at %H:%M UTC")
                    ),
                )
                .with(
                    "redeemed_at",
                    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                );
                if self.mine == Some(true) {
                    e = e.with("redemption_id", self.redemption_id.unwrap_or_default());
                }
                e
            }
            "unknown-key" => ApiError::new(
                ProblemType::UnknownKey,
                "The key that signed this voucher was withdrawn.",
            ),
            "voucher-expired" => ApiError::new(
                ProblemType::VoucherExpired,
                format!(
                    "This voucher was valid until {}.",
                    self.expires_on.unwrap_or_default()
                ),
            ),
            "voucher-revoked" => ApiError::new(
                ProblemType::VoucherRevoked,
                "This voucher's book was revoked.",
            ),
            "program-closed" => ApiError::new(
                ProblemType::ProgramClosed,
                "The programme that pays for this voucher is closed.",
            ),
            "venue-not-accredited" => ApiError::new(
                ProblemType::VenueNotAccredited,
                "Your venue was not accredited at that time; ask the operator.",
            ),
            "venue-out-of-territory" => ApiError::new(
                ProblemType::VenueOutOfTerritory,
                format!(
                    "This programme pays for workshops in {} only.",
                    self.territory.as_deref().unwrap_or_default().join(", ")
                ),
            ),
            "idempotency-conflict" => ApiError::new(
                ProblemType::IdempotencyConflict,
                "This Idempotency-Key was used with another request.",
            ),
            _ => ApiError::new(
                ProblemType::Conflict,
                "The voucher keeps changing; try again.",
            ),
        })
    }
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
    /// With `already-redeemed`: when it was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redeemed_at: Option<DateTime<Utc>>,
    /// With `already-redeemed`: whether the scanner's own venue used it (never which other venue did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redeemed_here: Option<bool>,
}

/// Says whether the scanner's venue could redeem the voucher now; stores nothing.
pub async fn check(
    conn: &mut AsyncPgConnection,
    scanner: &Scanner,
    code: &ScannedCode,
) -> Result<CheckAnswer, ApiError> {
    let j = judge(
        conn,
        &RedeemArgs::new(Mode::Check, scanner, code, None, None),
    )
    .await?;
    if j.problem.as_deref() == Some("not-found") {
        return Err(j
            .refusal()
            .unwrap_or_else(|| ApiError::not_found("No voucher has this code.")));
    }
    let expires_on = j.expires_on.unwrap_or_default();
    let used = j.problem.as_deref() == Some("already-redeemed");
    Ok(CheckAnswer {
        redeemed_at: j.redeemed_at.filter(|_| used),
        redeemed_here: used.then_some(j.mine == Some(true)),
        voucher_id: j.voucher_id.unwrap_or_default().to_string(),
        program_id: j.program_id.unwrap_or_default(),
        position: j.position.unwrap_or_default(),
        book_size: j.book_size.unwrap_or_default(),
        expires_on,
        status: voucher_status(
            j.problem.as_deref() == Some("already-redeemed"),
            j.book_revoked.unwrap_or_default(),
            expires_on,
            j.today.unwrap_or_default(),
        ),
        redeemable: j.problem.is_none(),
        problem: j.problem,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The QR text (`PN1:…`) or the typed code.
    pub code: String,
    pub workshop: Workshop,
}

/// The answer to a redemption, as `redeem` writes it.
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

/// Redeems a voucher for the scanner's venue, now: one statement, the
/// `Idempotency-Key`'s lookup and record included, on a connection of its
/// own or in a group of concurrent redemptions (`group_commit`).
pub async fn redeem(
    pool: &Pool,
    group: Option<&GroupCommit>,
    scanner: &Scanner,
    code: &ScannedCode,
    workshop: &Workshop,
    idempotency: Option<&Idempotency<'_>>,
) -> Result<Answer, ApiError> {
    let args = RedeemArgs::new(Mode::Online, scanner, code, Some(workshop), idempotency);
    let judged = match group {
        Some(group) => group.judge(args).await?,
        None => judge(&mut *pool.get().await?, &args).await,
    };
    // A request with the same key that committed first makes our record
    // fail; one that redeemed first makes ours `already-redeemed`.
    let (refusal, raced) = match judged {
        Ok(j) if j.outcome == "redeemed" || j.outcome == "replay" => {
            return Ok(Answer {
                replayed: j.outcome == "replay",
                recorded: Recorded {
                    status: j.status.and_then(|s| u16::try_from(s).ok()).unwrap_or(201),
                    body: j.body.unwrap_or_default(),
                },
            })
        }
        Ok(j) => {
            let refusal = j
                .refusal()
                .unwrap_or_else(|| ApiError::internal("an online redemption has no conflicts"));
            let raced = refusal.kind == ProblemType::AlreadyRedeemed;
            (refusal, raced)
        }
        Err(diesel::result::Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
            if info.table_name() == Some("idempotency_records") =>
        {
            let refusal = ApiError::new(
                ProblemType::IdempotencyConflict,
                "A request with this Idempotency-Key ran meanwhile.",
            );
            (refusal, true)
        }
        Err(e) => return Err(e.into()),
    };
    // Its answer, if it was this very request, is the answer.
    match idempotency {
        Some(idem) if raced => {
            let mut conn = pool.get().await?;
            match idempotency::lookup(&mut conn, &scanner.principal(), idem.key, &idem.hash).await?
            {
                Some(answer) => Ok(Answer {
                    recorded: answer,
                    replayed: true,
                }),
                None => Err(refusal),
            }
        }
        _ => Err(refusal),
    }
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

/// What a venue reads of one of its redemptions beside the row: the
/// coupon as printed (its position in the book, the book's size, its typed
/// code) and the closed statement that paid it, if any.
#[derive(Debug, Clone)]
pub struct RedemptionFacts {
    pub position: i16,
    pub book_size: i16,
    pub typed_code: String,
    /// The number of the closed statement paying it (a cancellation is then refused).
    pub statement_number: Option<i32>,
}

/// [`RedemptionFacts`] of `rows`, by redemption id, in three queries.
pub async fn facts_of(
    conn: &mut AsyncPgConnection,
    rows: &[Redemption],
) -> Result<std::collections::HashMap<i64, RedemptionFacts>, ApiError> {
    use crate::db::schema::{books, statement_lines, statements, vouchers};
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let coupons: Vec<(i64, i64, i16, i16)> = redemptions::table
        .inner_join(vouchers::table.inner_join(books::table))
        .filter(redemptions::id.eq_any(&ids))
        .select((
            redemptions::id,
            vouchers::id,
            vouchers::position,
            books::size,
        ))
        .load(conn)
        .await?;
    let lines: Vec<(i64, i64)> = statement_lines::table
        .filter(statement_lines::redemption_id.eq_any(&ids))
        .filter(statement_lines::kind.eq("redemption"))
        .select((
            statement_lines::redemption_id,
            statement_lines::statement_id,
        ))
        .load(conn)
        .await?;
    let statement_ids: Vec<i64> = lines.iter().map(|(_, s)| *s).collect();
    let numbers: std::collections::HashMap<i64, i32> = statements::table
        .filter(statements::id.eq_any(&statement_ids))
        .select((statements::id, statements::number))
        .load::<(i64, i32)>(conn)
        .await?
        .into_iter()
        .collect();
    let on_statement: std::collections::HashMap<i64, i32> = lines
        .into_iter()
        .filter_map(|(r, s)| numbers.get(&s).map(|n| (r, *n)))
        .collect();
    Ok(coupons
        .into_iter()
        .map(|(id, voucher, position, book_size)| {
            let facts = RedemptionFacts {
                position,
                book_size,
                typed_code: u64::try_from(voucher)
                    .ok()
                    .and_then(|v| typed_code::encode(v).ok())
                    .unwrap_or_default(),
                statement_number: on_statement.get(&id).copied(),
            };
            (id, facts)
        })
        .collect())
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
