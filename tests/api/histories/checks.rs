//! The rules a history is checked against, on the final database and on
//! every recorded answer:
//!
//! 1. each position key has at most one live redemption (second payments
//!    the funder chose apart);
//! 2. no redemption is both cancelled and on a closed statement; each closed
//!    statement's bytes verify, and its totals equal its lines;
//! 3. every acknowledged effect is stored;
//! 4. every stored effect comes from a request that was acknowledged or got
//!    no answer (a refused request stored nothing);
//! 5. no answer is a 5xx;
//! 6. `issued = redeemed + expired + revoked + outstanding`, in count and
//!    cents, and `issued` cents equal the programme's committed cents.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Binary, Integer, Nullable, SmallInt, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::{Event, Op, VENUES};

/// Backdates the venues' accreditation and returns the demo issuer's id.
pub async fn prepare(database_url: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(database_url).await.unwrap();
    diesel::sql_query(
        "UPDATE organisations SET accredited_since = now() - interval '30 days' WHERE kind = 'venue'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    one(
        &mut conn,
        "SELECT o.id AS n FROM organisations o JOIN users u ON u.organisation_id = o.id
          WHERE u.email = 'prescripteur@demo.passnum.test'",
    )
    .await
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn one(conn: &mut AsyncPgConnection, query: &str) -> i64 {
    diesel::sql_query(query)
        .get_result::<N>(conn)
        .await
        .unwrap()
        .n
}

#[derive(QueryableByName)]
struct RedemptionRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    voucher_id: i64,
    #[diesel(sql_type = BigInt)]
    venue: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    conflict_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    cancel_reason: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    reverse_reason: Option<String>,
}

/// What an answer recorded for an Idempotency-Key, or a scan's nonce, says
/// about which redemption it made.
#[derive(QueryableByName)]
struct Source {
    #[diesel(sql_type = Text)]
    text: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    redemption_id: Option<i64>,
    #[diesel(sql_type = Text)]
    body: String,
}

#[derive(QueryableByName)]
struct BookRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    replaces_book_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    revoked_reason: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    reference: Option<String>,
}

#[derive(QueryableByName)]
struct StatementRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Integer)]
    program_id: i32,
    #[diesel(sql_type = Binary)]
    csv: Vec<u8>,
    #[diesel(sql_type = Text)]
    sha256: String,
    #[diesel(sql_type = Text)]
    signature: String,
    #[diesel(sql_type = Binary)]
    public_key: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    total_cents: i64,
    #[diesel(sql_type = Integer)]
    total_count: i32,
    #[diesel(sql_type = BigInt)]
    lines_cents: i64,
    #[diesel(sql_type = BigInt)]
    lines: i64,
    #[diesel(sql_type = BigInt)]
    extracts_cents: i64,
}

#[derive(QueryableByName)]
struct ExtractRow {
    #[diesel(sql_type = BigInt)]
    statement_id: i64,
    #[diesel(sql_type = Binary)]
    csv: Vec<u8>,
    #[diesel(sql_type = Text)]
    sha256: String,
    #[diesel(sql_type = Text)]
    signature: String,
    #[diesel(sql_type = Binary)]
    public_key: Vec<u8>,
}

#[derive(QueryableByName)]
struct ConflictRow {
    #[diesel(sql_type = BigInt)]
    venue: i64,
    #[diesel(sql_type = BigInt)]
    voucher_id: i64,
    #[diesel(sql_type = Timestamptz)]
    scanned_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    decision: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    decision_reason: Option<String>,
}

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    text: String,
}

#[derive(QueryableByName)]
struct Venue {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    email: String,
}

#[derive(QueryableByName)]
struct Double {
    #[diesel(sql_type = BigInt)]
    lineage_id: i64,
    #[diesel(sql_type = SmallInt)]
    position: i16,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

pub struct Report {
    pub violations: Vec<String>,
    figures: Vec<(String, i64)>,
}

impl Report {
    pub fn summary(&self) -> String {
        let figures: Vec<String> = self
            .figures
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        format!(
            "history: {}; violations {}",
            figures.join(", "),
            self.violations.len()
        )
    }
}

/// A batch that carried a scan, with the scan's result if an answer came.
type Sent<'a> = (&'a Event, Option<&'a Value>);

/// Whether an answer acknowledges the effect (`want`), or no answer came.
fn acked_or_unanswered(e: &Event, want: u16) -> bool {
    e.status.is_none() || e.status == Some(want)
}

pub async fn check<F, Fut>(database_url: &str, events: &[Event], programs: &[i32], get: F) -> Report
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Value>,
{
    let mut v: Vec<String> = Vec::new();
    let mut conn = AsyncPgConnection::establish(database_url).await.unwrap();

    let venues: Vec<Venue> = diesel::sql_query(
        "SELECT o.id, u.email FROM organisations o JOIN users u ON u.organisation_id = o.id WHERE o.kind = 'venue'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let venue_id = |i: usize| venues.iter().find(|x| x.email == VENUES[i]).unwrap().id;

    // 1. One live redemption per position.
    let doubles: Vec<Double> = diesel::sql_query(
        "SELECT lineage_id, position, count(*) AS n FROM redemptions
          WHERE cancelled_at IS NULL AND NOT second_payment GROUP BY 1, 2 HAVING count(*) > 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    for d in doubles {
        v.push(format!(
            "position ({}, {}) has {} live redemptions",
            d.lineage_id, d.position, d.n
        ));
    }
    let second: Vec<Id> = diesel::sql_query(
        "SELECT r.id FROM redemptions r LEFT JOIN conflicts c ON c.id = r.conflict_id
          WHERE r.second_payment AND (c.decision IS DISTINCT FROM 'pay' OR c.kind <> 'redeemed_elsewhere')",
    )
    .load(&mut conn)
    .await
    .unwrap();
    for r in second {
        v.push(format!(
            "redemption {} is a second payment no funder decision made",
            r.id
        ));
    }

    // 2. Cancelled and paid; statements that do not verify or add up.
    let paid_cancelled: Vec<Id> = diesel::sql_query(
        "SELECT r.id FROM statement_lines l JOIN redemptions r ON r.id = l.redemption_id
          WHERE l.kind = 'redemption' AND r.cancelled_at IS NOT NULL",
    )
    .load(&mut conn)
    .await
    .unwrap();
    for r in &paid_cancelled {
        v.push(format!(
            "redemption {} is cancelled and on a closed statement",
            r.id
        ));
    }
    let statements: Vec<StatementRow> = diesel::sql_query(
        "SELECT s.id, s.program_id, s.csv, s.sha256, s.signature, k.public_key, s.total_cents, s.total_count,
                COALESCE((SELECT sum(amount_cents) FROM statement_lines l WHERE l.statement_id = s.id), 0)::bigint
              + COALESCE((SELECT sum(amount_cents) FROM statement_carries c WHERE c.statement_id = s.id), 0)::bigint AS lines_cents,
                (SELECT count(*) FROM statement_lines l WHERE l.statement_id = s.id)
              + (SELECT count(*) FROM statement_carries c WHERE c.statement_id = s.id) AS lines,
                COALESCE((SELECT sum(total_cents) FROM statement_extracts e WHERE e.statement_id = s.id), 0)::bigint AS extracts_cents
           FROM statements s JOIN signing_keys k ON k.kid = s.kid ORDER BY s.id",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let verifies = |csv: &[u8], sha256: &str, signature: &str, key: &[u8]| {
        let digest = passnum::voucher::statement::digest(csv);
        let key: [u8; 32] = key.try_into().unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap();
        passnum::voucher::statement::digest_hex(&digest) == sha256
            && passnum::voucher::statement::verify(&digest, signature, &key).is_ok()
    };
    for s in &statements {
        if !verifies(&s.csv, &s.sha256, &s.signature, &s.public_key) {
            v.push(format!("statement {} does not verify", s.id));
        }
        if s.total_cents != s.lines_cents
            || i64::from(s.total_count) != s.lines
            || s.extracts_cents != s.total_cents
        {
            v.push(format!(
                "statement {}: total {} ({} lines), lines {} ({}), extracts {}",
                s.id, s.total_cents, s.total_count, s.lines_cents, s.lines, s.extracts_cents
            ));
        }
    }
    let extracts: Vec<ExtractRow> = diesel::sql_query(
        "SELECT e.statement_id, e.csv, e.sha256, e.signature, k.public_key
           FROM statement_extracts e JOIN statements s ON s.id = e.statement_id JOIN signing_keys k ON k.kid = s.kid",
    )
    .load(&mut conn)
    .await
    .unwrap();
    for e in &extracts {
        if !verifies(&e.csv, &e.sha256, &e.signature, &e.public_key) {
            v.push(format!(
                "an extract of statement {} does not verify",
                e.statement_id
            ));
        }
    }

    // 3 and 4. Acknowledged means stored; stored means asked for.
    let redemptions: Vec<RedemptionRow> = diesel::sql_query(
        "SELECT r.id, r.voucher_id, r.venue_organisation_id AS venue, r.conflict_id, r.cancel_reason, r.reverse_reason
           FROM redemptions r",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let keys: Vec<Source> = diesel::sql_query(
        "SELECT key AS text, NULL::bigint AS redemption_id, convert_from(response_body, 'UTF8') AS body
           FROM idempotency_records WHERE status = 201",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let key_of: HashMap<i64, String> = keys
        .into_iter()
        .filter_map(|k| {
            let body: Value = serde_json::from_str(&k.body).ok()?;
            Some((body["id"].as_i64()?, k.text))
        })
        .collect();
    let nonces: Vec<Source> = diesel::sql_query(
        "SELECT nonce AS text, redemption_id, '' AS body FROM scan_nonces WHERE outcome = 'redeemed'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let nonce_of: HashMap<i64, String> = nonces
        .into_iter()
        .filter_map(|n| Some((n.redemption_id?, n.text)))
        .collect();
    let by_id: HashMap<i64, &RedemptionRow> = redemptions.iter().map(|r| (r.id, r)).collect();
    let books: Vec<BookRow> = diesel::sql_query(
        "SELECT id, replaces_book_id, revoked_reason, beneficiary_reference AS reference FROM books",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let conflicts: Vec<ConflictRow> = diesel::sql_query(
        "SELECT venue_organisation_id AS venue, voucher_id, scanned_at, decision, decision_reason FROM conflicts",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let payments: HashSet<String> =
        diesel::sql_query("SELECT reference AS text FROM statement_payments")
            .load::<TextRow>(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.text)
            .collect();
    let statement_shas: HashSet<&str> = statements.iter().map(|s| s.sha256.as_str()).collect();

    let reason = |e: &Event| e.request["reason"].as_str().unwrap_or_default().to_owned();
    let mut redeem_by_key: HashMap<&str, &Event> = HashMap::new();
    let mut scans: HashMap<(i64, &str), Vec<Sent>> = HashMap::new();
    let mut by_reason: HashMap<String, &Event> = HashMap::new();
    let mut closes: HashMap<String, Vec<&Event>> = HashMap::new();
    let mut replaces: HashMap<String, Vec<&Event>> = HashMap::new();
    let mut issues: HashMap<String, &Event> = HashMap::new();
    let mut pays: HashMap<String, &Event> = HashMap::new();
    let mut server_errors = 0;
    for e in events {
        if e.status.is_some_and(|s| s >= 500) {
            server_errors += 1;
            v.push(format!(
                "{:?} {} answered {:?}: {}",
                e.op, e.path, e.status, e.answer
            ));
        }
        match e.op {
            Op::Redeem => {
                redeem_by_key.insert(e.key.as_deref().unwrap(), e);
                if e.status == Some(201) {
                    let id = e.answer["id"].as_i64().unwrap();
                    let voucher: i64 = e.answer["voucher_id"].as_str().unwrap().parse().unwrap();
                    if by_id.get(&id).map(|r| r.voucher_id) != Some(voucher) {
                        v.push(format!(
                            "redemption {id} was answered 201 and is not stored"
                        ));
                    }
                }
            }
            Op::Batch => {
                let venue = venue_id(e.venue.unwrap());
                let results = e.answer["results"].as_array();
                for (nonce, voucher, scanned_at) in &e.items {
                    let result =
                        results.and_then(|rs| rs.iter().find(|r| r["nonce"] == nonce.as_str()));
                    scans
                        .entry((venue, nonce.as_str()))
                        .or_default()
                        .push((e, result));
                    let Some(result) = result else { continue };
                    match result["outcome"].as_str() {
                        Some("redeemed") => {
                            let id = result["redemption_id"].as_i64().unwrap_or(0);
                            if by_id.get(&id).map(|r| (r.voucher_id, r.venue))
                                != Some((*voucher, venue))
                            {
                                v.push(format!(
                                    "scan {nonce} answered redeemed ({id}) and is not stored"
                                ));
                            }
                        }
                        Some("conflict") => {
                            let kept = conflicts.iter().any(|c| {
                                c.venue == venue
                                    && c.voucher_id == *voucher
                                    && c.scanned_at == *scanned_at
                            });
                            if !kept {
                                v.push(format!(
                                    "scan {nonce} answered conflict and no conflict is stored"
                                ));
                            }
                        }
                        _ => {}
                    }
                }
            }
            Op::Cancel | Op::Reverse | Op::Revoke | Op::Resolve => {
                by_reason.insert(reason(e), e);
            }
            Op::Replace => {
                by_reason.insert(reason(e), e);
                let book = e.path.split('/').nth(4).unwrap().to_owned();
                replaces.entry(book).or_default().push(e);
                if e.status == Some(201) {
                    let id = e.answer["id"].as_i64().unwrap();
                    if !books
                        .iter()
                        .any(|b| b.id == id && b.replaces_book_id.is_some())
                    {
                        v.push(format!(
                            "replacement book {id} was answered 201 and is not stored"
                        ));
                    }
                }
            }
            Op::Close => {
                let program = e.path.split('/').nth(4).unwrap().to_owned();
                closes.entry(program).or_default().push(e);
                if e.status == Some(201)
                    && !statement_shas.contains(e.answer["sha256"].as_str().unwrap_or(""))
                {
                    v.push(format!(
                        "statement {} was answered 201 and is not stored",
                        e.answer["id"]
                    ));
                }
            }
            Op::Pay => {
                let reference = e.request["reference"].as_str().unwrap().to_owned();
                if e.status == Some(201) && !payments.contains(&reference) {
                    v.push(format!(
                        "payment {reference} was answered 201 and is not stored"
                    ));
                }
                pays.insert(reference, e);
            }
            Op::Issue => {
                let reference = e.request["beneficiary"]["reference"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                if e.status == Some(201) {
                    let id = e.answer["id"].as_i64().unwrap();
                    if !books
                        .iter()
                        .any(|b| b.id == id && b.reference.as_deref() == Some(&reference))
                    {
                        v.push(format!("book {id} was answered 201 and is not stored"));
                    }
                }
                issues.insert(reference, e);
            }
            Op::Program | Op::Read => {}
        }
    }
    // An effect that came with a reason must come from a request with that
    // reason that was acknowledged (or got no answer).
    let from_reason =
        |what: &str, reason: &str, want: u16, v: &mut Vec<String>| match by_reason.get(reason) {
            Some(e) if acked_or_unanswered(e, want) => {}
            Some(e) => v.push(format!(
                "{what} stored, though its request was answered {:?}: {}",
                e.status, e.answer
            )),
            None => v.push(format!("{what} stored, and nobody asked for it ({reason})")),
        };
    for r in &redemptions {
        if let Some(reason) = &r.cancel_reason {
            from_reason(&format!("cancel of {}", r.id), reason, 200, &mut v);
        }
        if let Some(reason) = &r.reverse_reason {
            from_reason(&format!("reversal of {}", r.id), reason, 200, &mut v);
        }
        if r.conflict_id.is_some() {
            continue; // A paid conflict: checked with the conflicts below.
        }
        let key = key_of.get(&r.id);
        let nonce = nonce_of.get(&r.id);
        let online = key.and_then(|k| redeem_by_key.get(k.as_str()));
        let offline = nonce.and_then(|n| scans.get(&(r.venue, n.as_str())));
        let asked = match (online, offline) {
            (Some(e), _) => acked_or_unanswered(e, 201),
            (None, Some(sent)) => sent.iter().any(|(e, result)| {
                e.status.is_none() || result.is_some_and(|x| x["outcome"] == "redeemed")
            }),
            (None, None) => false,
        };
        if !asked {
            v.push(format!(
                "redemption {} is stored without an acknowledged request (key {key:?}, nonce {nonce:?})",
                r.id
            ));
        }
    }
    for b in &books {
        if let Some(reason) = &b.revoked_reason {
            let want = by_reason.get(reason.as_str()).map_or(200, |e| {
                if e.op == Op::Replace {
                    201
                } else {
                    200
                }
            });
            from_reason(
                &format!("revocation of book {}", b.id),
                reason,
                want,
                &mut v,
            );
        }
        match b.replaces_book_id {
            Some(old) => {
                let asked = replaces
                    .get(&old.to_string())
                    .is_some_and(|es| es.iter().any(|e| acked_or_unanswered(e, 201)));
                if !asked {
                    v.push(format!(
                        "replacement book {} is stored without an acknowledged replace",
                        b.id
                    ));
                }
            }
            None => {
                if let Some(reference) = b.reference.as_deref().filter(|r| r.starts_with("H-")) {
                    if !issues
                        .get(reference)
                        .is_some_and(|e| acked_or_unanswered(e, 201))
                    {
                        v.push(format!(
                            "book {} is stored without an acknowledged issue",
                            b.id
                        ));
                    }
                }
            }
        }
    }
    for c in &conflicts {
        let from_a_scan = scans.iter().any(|((venue, _), sent)| {
            *venue == c.venue
                && sent.iter().any(|(e, result)| {
                    e.items
                        .iter()
                        .any(|(_, voucher, at)| *voucher == c.voucher_id && *at == c.scanned_at)
                        && (e.status.is_none()
                            || result.is_some_and(|x| x["outcome"] == "conflict"))
                })
        });
        if !from_a_scan {
            v.push(format!(
                "a conflict of voucher {} is stored without a scan answered conflict",
                c.voucher_id
            ));
        }
        if let (Some(_), Some(reason)) = (&c.decision, &c.decision_reason) {
            from_reason("a conflict's decision", reason, 200, &mut v);
        }
    }
    for s in &statements {
        let asked = closes.get(&s.program_id.to_string()).is_some_and(|es| {
            es.iter()
                .any(|e| e.status.is_none() || e.answer["sha256"] == s.sha256.as_str())
        });
        if !asked {
            v.push(format!(
                "statement {} is stored without an acknowledged close",
                s.id
            ));
        }
    }
    for reference in &payments {
        if !pays
            .get(reference)
            .is_some_and(|e| acked_or_unanswered(e, 201))
        {
            v.push(format!(
                "payment {reference} is stored without an acknowledged request"
            ));
        }
    }

    // 6. Every voucher is in exactly one state.
    for program in programs {
        let stats = get(format!("/api/v1/programs/{program}/stats")).await;
        let program_row = get(format!("/api/v1/programs/{program}")).await;
        let f = |k: &str, part: &str| stats["vouchers"][k][part].as_i64().unwrap_or(-1);
        for part in ["count", "cents"] {
            let issued = f("issued", part);
            let parts = f("redeemed", part)
                + f("expired", part)
                + f("revoked", part)
                + f("outstanding", part);
            if issued != parts {
                v.push(format!(
                    "programme {program}: issued {part} {issued} ≠ {parts}"
                ));
            }
        }
        if f("issued", "cents") != program_row["committed_cents"].as_i64().unwrap_or(-2) {
            v.push(format!(
                "programme {program}: issued cents ≠ committed_cents"
            ));
        }
    }

    let count = |op: Op, f: &dyn Fn(&Event) -> bool| {
        events.iter().filter(|e| e.op == op && f(e)).count() as i64
    };
    let figures = vec![
        ("redemptions stored".into(), redemptions.len() as i64),
        (
            "of which cancelled".into(),
            redemptions
                .iter()
                .filter(|r| r.cancel_reason.is_some())
                .count() as i64,
        ),
        (
            "redeems answered 201".into(),
            count(Op::Redeem, &|e| e.status == Some(201)),
        ),
        (
            "redeems refused".into(),
            count(Op::Redeem, &|e| {
                e.status.is_some_and(|s| (400..500).contains(&s))
            }),
        ),
        (
            "cancels refused 409".into(),
            count(Op::Cancel, &|e| e.status == Some(409)),
        ),
        (
            "replaces answered 201".into(),
            count(Op::Replace, &|e| e.status == Some(201)),
        ),
        ("statements closed".into(), statements.len() as i64),
        ("payments".into(), payments.len() as i64),
        ("conflicts".into(), conflicts.len() as i64),
        ("5xx answers".into(), server_errors),
    ];
    Report {
        violations: v,
        figures,
    }
}
