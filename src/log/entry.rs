//! One log entry: an event that moved money, as canonical JSON (keys sorted,
//! no spaces, UTF-8). Built from the stored rows, so that anyone with the
//! database can rebuild it and compare (`passnum log verify --database`).

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bpchar, Integer, Nullable, SmallInt, Text, Timestamptz};
use serde::{Deserialize, Serialize};

/// An entry's fields. Serde writes struct fields in declaration order: they
/// are declared in sorted order, so the output is canonical (RFC 8785 for
/// these integers and strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The signed change in what the venue is owed: the face value for
    /// `redeemed` and `conflict_paid`, its negative for `cancelled` and
    /// `reversed`. Absent for a statement.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub amount_cents: Option<i64>,
    /// When the event happened (RFC 3339, UTC, microseconds).
    pub at: String,
    pub kind: String,
    /// A closed statement's number within its programme.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub number: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub position: Option<i16>,
    pub program_id: i32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub redemption_id: Option<i64>,
    /// A closed statement's SHA-256 (hex of its signed CSV).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total_cents: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub venue_siret: Option<String>,
    /// Decimal string, as everywhere in the API.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub voucher_id: Option<String>,
}

impl Entry {
    /// The entry's bytes, exactly as logged.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads logged bytes back; `None` unless they are an entry in canonical form.
    pub fn parse(bytes: &[u8]) -> Option<Entry> {
        let entry: Entry = serde_json::from_slice(bytes).ok()?;
        (entry.to_bytes() == bytes).then_some(entry)
    }

    /// The first field in which two entries differ, named, with both values.
    pub fn difference(&self, other: &Entry) -> Option<String> {
        let (a, b) = (
            serde_json::to_value(self).unwrap_or_default(),
            serde_json::to_value(other).unwrap_or_default(),
        );
        let (a, b) = (a.as_object()?, b.as_object()?);
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter().find_map(|k| {
            let (x, y) = (a.get(k), b.get(k));
            (x != y).then(|| {
                let show =
                    |v: Option<&serde_json::Value>| v.map_or("absent".into(), |v| v.to_string());
                format!("{k} is {} in the log, {} in the database", show(x), show(y))
            })
        })
    }
}

/// What the sequencer reads of one event.
#[derive(Debug, QueryableByName)]
pub struct EventRow {
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub redemption_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub statement_id: Option<i64>,
    /// `None` when the row no longer says when (a cancellation cleared).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Integer)]
    pub program_id: i32,
    #[diesel(sql_type = Nullable<Bpchar>)]
    pub venue_siret: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub voucher_id: Option<i64>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    pub position: Option<i16>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub face_value_cents: Option<i64>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub number: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    pub sha256: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub total_cents: Option<i64>,
}

/// The columns of an event, given `e` (kind, redemption_id, statement_id)
/// joined with `r` (its redemption), `o` (the venue) and `s` (its statement).
pub const EVENT_COLUMNS: &str = "e.kind, e.redemption_id, e.statement_id,
    CASE e.kind WHEN 'cancelled' THEN r.cancelled_at WHEN 'reversed' THEN r.reversed_at
                WHEN 'statement_closed' THEN s.closed_at ELSE r.redeemed_at END AS at,
    COALESCE(r.program_id, s.program_id) AS program_id, o.siret AS venue_siret,
    r.voucher_id, r.position, r.face_value_cents, s.number, s.sha256, s.total_cents";

/// The joins `EVENT_COLUMNS` reads through.
pub const EVENT_JOINS: &str = "LEFT JOIN redemptions r ON r.id = e.redemption_id
    LEFT JOIN organisations o ON o.id = r.venue_organisation_id
    LEFT JOIN statements s ON s.id = e.statement_id";

impl EventRow {
    pub fn entry(&self) -> Entry {
        let sign = match self.kind.as_str() {
            "cancelled" | "reversed" => -1,
            _ => 1,
        };
        Entry {
            amount_cents: self.face_value_cents.map(|c| sign * c),
            at: self
                .at
                .map(|at| at.to_rfc3339_opts(SecondsFormat::Micros, true))
                .unwrap_or_default(),
            kind: self.kind.clone(),
            number: self.number,
            position: self.position,
            program_id: self.program_id,
            redemption_id: self.redemption_id,
            sha256: self.sha256.clone(),
            total_cents: self.total_cents,
            venue_siret: self.venue_siret.as_ref().map(|s| s.trim().to_owned()),
            voucher_id: self.voucher_id.map(|v| v.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redeemed() -> Entry {
        Entry {
            amount_cents: Some(2000),
            at: "2026-12-02T10:00:00.000000Z".into(),
            kind: "redeemed".into(),
            number: None,
            position: Some(3),
            program_id: 7,
            redemption_id: Some(41),
            sha256: None,
            total_cents: None,
            venue_siret: Some("35600000000048".into()),
            voucher_id: Some("9007199254740993".into()),
        }
    }

    #[test]
    fn entries_are_canonical_json() {
        let bytes = redeemed().to_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"amount_cents":2000,"at":"2026-12-02T10:00:00.000000Z","kind":"redeemed","position":3,"program_id":7,"redemption_id":41,"venue_siret":"35600000000048","voucher_id":"9007199254740993"}"#
        );
        // Keys sorted: the same bytes as a generic JSON value with sorted keys.
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(serde_json::to_vec(&value).unwrap(), bytes);
        assert_eq!(Entry::parse(&bytes), Some(redeemed()));
        assert_eq!(
            Entry::parse(b"{\"at\": \"x\"}"),
            None,
            "spaces are not canonical"
        );
    }

    #[test]
    fn a_difference_names_the_field() {
        let mut changed = redeemed();
        changed.amount_cents = Some(2500);
        assert_eq!(
            redeemed().difference(&changed).unwrap(),
            "amount_cents is 2000 in the log, 2500 in the database"
        );
        assert_eq!(redeemed().difference(&redeemed()), None);
    }
}
