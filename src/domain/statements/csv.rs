//! The statement CSV, byte for byte as signed (api-contract.md, "Statements"):
//! UTF-8 with a BOM, `;` separators, CRLF line ends, RFC 4180 quoting where a
//! cell needs it, and a `'` before a cell a spreadsheet would take for a formula.

use std::borrow::Cow;
use std::fmt::Write;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::sql_types::{BigInt, Date, Nullable, SmallInt, Text, Timestamptz};
use diesel::QueryableByName;
use serde::Serialize;
use utoipa::ToSchema;

/// One line of a statement: a redemption paid, the reversal of one paid
/// earlier, or a venue's negative balance carried from an earlier statement
/// (which has no redemption, voucher or time of its own).
#[derive(Debug, Clone, QueryableByName, Serialize, ToSchema)]
pub struct Line {
    #[diesel(sql_type = Nullable<BigInt>)]
    pub redemption_id: Option<i64>,
    /// `redemption`, `reversal` or `carry`.
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub redeemed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    pub venue_organisation_id: i64,
    #[diesel(sql_type = Text)]
    pub venue_siret: String,
    #[diesel(sql_type = Text)]
    pub venue_name: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    #[serde(serialize_with = "optional_decimal")]
    #[schema(value_type = Option<String>)]
    pub voucher_id: Option<i64>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    pub position: Option<i16>,
    /// The workshop's theme code; for a carried balance, where it comes from.
    #[diesel(sql_type = Text)]
    pub theme: String,
    /// The workshop's day; for a carried balance, the end of the period it comes from.
    #[diesel(sql_type = Date)]
    pub held_on: NaiveDate,
    #[diesel(sql_type = BigInt)]
    pub amount_cents: i64,
}

fn optional_decimal<S: serde::Serializer>(id: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_str(&id.to_string()),
        None => s.serialize_none(),
    }
}

pub const HEADER: &str =
    "statement_number;redemption_id;redeemed_at;venue_siret;venue_name;voucher_id;position;theme;held_on;amount_cents";

/// The BOM and the header row, where every CSV starts.
pub fn start() -> String {
    let mut out = String::with_capacity(64 * 1024);
    out.push('\u{feff}');
    out.push_str(HEADER);
    out.push_str("\r\n");
    out
}

/// Appends one line. `number` is empty on a live (unclosed) statement.
/// Numbers and dates never need quoting; only text goes through [`cell`].
pub fn push_line(out: &mut String, number: Option<i32>, line: &Line) {
    fn optional(out: &mut String, value: Option<impl std::fmt::Display>) {
        if let Some(value) = value {
            let _ = write!(out, "{value}");
        }
        out.push(';');
    }
    optional(out, number);
    optional(out, line.redemption_id);
    optional(
        out,
        line.redeemed_at.map(|at| at.format("%Y-%m-%dT%H:%M:%SZ")),
    );
    for text in [&line.venue_siret, &line.venue_name] {
        out.push_str(&cell(text));
        out.push(';');
    }
    optional(out, line.voucher_id);
    optional(out, line.position);
    out.push_str(&cell(&line.theme));
    let _ = write!(out, ";{};{}\r\n", line.held_on, line.amount_cents);
}

/// A whole statement (or extract) numbered `number`.
pub fn csv(number: i32, lines: &[Line]) -> Vec<u8> {
    let mut out = start();
    for line in lines {
        push_line(&mut out, Some(number), line);
    }
    out.into_bytes()
}

fn cell(value: &str) -> Cow<'_, str> {
    let formula = matches!(value.chars().next(), Some('=' | '+' | '-' | '@'))
        && value.parse::<i64>().is_err();
    let guarded = if formula {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    };
    if guarded.contains([';', '"', '\r', '\n']) {
        Cow::Owned(format!("\"{}\"", guarded.replace('"', "\"\"")))
    } else {
        guarded
    }
}

/// Reads the cells of each line back from statement CSV bytes (after the
/// header), undoing the quoting and the formula guard: what a reader of the
/// signed file sees.
pub fn read(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches('\u{feff}');
    let mut rows = Vec::new();
    let (mut row, mut cell) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ';') => row.push(unguard(std::mem::take(&mut cell))),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(unguard(std::mem::take(&mut cell)));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows.into_iter().skip(1).collect()
}

fn unguard(cell: String) -> String {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest.to_owned(),
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, amount: i64) -> Line {
        Line {
            redemption_id: Some(7),
            kind: "redemption".into(),
            redeemed_at: Some(
                DateTime::parse_from_rfc3339("2026-11-20T09:30:00Z")
                    .unwrap()
                    .with_timezone(&Utc),
            ),
            venue_organisation_id: 1,
            venue_siret: "73282932000074".into(),
            venue_name: name.into(),
            voucher_id: Some(123),
            position: Some(3),
            theme: "email".into(),
            held_on: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            amount_cents: amount,
        }
    }

    #[test]
    fn the_csv_has_a_bom_crlf_quoting_and_formula_guards() {
        let carried = Line {
            redemption_id: None,
            kind: "carry".into(),
            redeemed_at: None,
            voucher_id: None,
            position: None,
            theme: "report du relevé 3".into(),
            ..line("Café", -1500)
        };
        let bytes = csv(
            4,
            &[
                line("Médiathèque; \"la\" grande", 2000),
                line("=HYPERLINK()", -2000),
                carried,
            ],
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with('\u{feff}'));
        let rows: Vec<&str> = text.trim_start_matches('\u{feff}').split("\r\n").collect();
        assert_eq!(rows[0], HEADER);
        assert_eq!(
            rows[1],
            "4;7;2026-11-20T09:30:00Z;73282932000074;\"Médiathèque; \"\"la\"\" grande\";123;3;email;2026-11-20;2000"
        );
        assert_eq!(
            rows[2],
            "4;7;2026-11-20T09:30:00Z;73282932000074;'=HYPERLINK();123;3;email;2026-11-20;-2000"
        );
        assert_eq!(
            rows[3],
            "4;;;73282932000074;Café;;;report du relevé 3;2026-11-20;-1500"
        );
        assert_eq!(rows[4], "");
        assert!(!text.contains("\n\n"));
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let tricky = line("=1+1; \"quoted\"\r\nnext", -2000);
        let rows = read(&csv(9, &[line("Café", 2000), tricky]));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][4], "Café");
        assert_eq!(rows[1][4], "=1+1; \"quoted\"\r\nnext");
        assert_eq!(rows[1][9], "-2000");
        assert!(rows.iter().all(|r| r.len() == 10 && r[0] == "9"));
    }

    #[test]
    fn a_live_statement_leaves_the_number_empty() {
        let mut out = start();
        push_line(&mut out, None, &line("Café", 2000));
        assert!(out.ends_with(
            "\r\n;7;2026-11-20T09:30:00Z;73282932000074;Café;123;3;email;2026-11-20;2000\r\n"
        ));
    }
}
