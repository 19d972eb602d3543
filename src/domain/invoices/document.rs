//! What an invoice or a credit note says, worked out from the signed
//! extract's lines: one line per theme and face value, and the totals.
//! Pure: the issuing code gathers the parties and the extract's CSV cells.
//!
//! The face value is what the funder pays for a workshop, VAT included: for
//! a venue exempt from VAT it is the unit price; for a venue charging VAT it
//! is split into the price before VAT and the VAT, so that the invoice's
//! total with VAT equals the extract's to the cent.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// An invoice (UNTDID 1001 code 380) or a credit note (381).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Invoice,
    CreditNote,
}

impl Kind {
    pub fn type_code(self) -> i16 {
        match self {
            Kind::Invoice => 380,
            Kind::CreditNote => 381,
        }
    }

    pub fn from_type_code(code: i16) -> Option<Kind> {
        match code {
            380 => Some(Kind::Invoice),
            381 => Some(Kind::CreditNote),
            _ => None,
        }
    }

    /// "Facture", "Avoir".
    pub fn french(self) -> &'static str {
        match self {
            Kind::Invoice => "Facture",
            Kind::CreditNote => "Avoir",
        }
    }
}

/// A seller or a buyer: who, registered where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    pub siret: String,
    pub address: String,
    pub postcode: String,
    pub city: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seller {
    pub party: Party,
    pub vat_number: Option<String>,
    pub iban: String,
    pub bic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    pub party: Party,
    /// Chorus Pro "code service" (BT-10).
    pub service_code: Option<String>,
    /// "Numéro d'engagement" (BT-13).
    pub engagement_number: Option<String>,
}

/// The VAT of every line: one regime per venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "regime", rename_all = "snake_case")]
pub enum Tax {
    /// Category E, with the legal mention (BT-120).
    Exempt { reason: String },
    /// Category S at this rate, in basis points.
    Standard { rate_basis_points: i32 },
}

/// One line: the workshops of one theme at one face value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The theme's code as in the CSV, and its French label.
    pub theme: String,
    pub label: String,
    pub quantity: i64,
    /// The face value of one workshop, VAT included.
    pub face_value_cents: i64,
    /// The price of one workshop before VAT (BT-146), in ten-thousandths of
    /// a euro: the face value for an exempt venue, the face value less its
    /// VAT otherwise, rounded to 4 decimals.
    pub unit_price_e4: i64,
    /// The line's amount before VAT (BT-131): its share of the total before
    /// VAT, within two cents of quantity × unit price.
    pub net_cents: i64,
}

/// The document's totals, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Σ line amounts before VAT (BT-106, BT-109, BT-116).
    pub net_cents: i64,
    /// BT-110, BT-117.
    pub vat_cents: i64,
    /// BT-114: the cent that makes the due amount equal the extract's
    /// when no split before VAT adds up exactly; 0 almost always.
    pub rounding_cents: i64,
}

impl Totals {
    /// BT-112.
    pub fn gross_cents(&self) -> i64 {
        self.net_cents + self.vat_cents
    }

    /// BT-115: what the lines are worth, VAT included.
    pub fn due_cents(&self) -> i64 {
        self.gross_cents() + self.rounding_cents
    }
}

/// The invoice a credit note corrects (BG-3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub number: String,
    pub issued_on: NaiveDate,
}

/// The statement extract a document is drawn from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub statement_id: i64,
    pub statement_number: i32,
    pub program_name: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    /// SHA-256 of the venue's signed extract.
    pub sha256: String,
    /// The extract's total: what the funder pays on this statement (or, when
    /// negative, carries to the next), all its lines together.
    pub extract_total_cents: i64,
}

/// Everything an invoice or credit note says; stored as issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub kind: Kind,
    pub number: String,
    pub issued_on: NaiveDate,
    /// Invoices: the day payment is due.
    pub due_on: Option<NaiveDate>,
    pub source: Source,
    pub seller: Seller,
    pub buyer: Buyer,
    pub tax: Tax,
    pub lines: Vec<Line>,
    pub totals: Totals,
    /// Credit notes: the invoices whose workshops they take back.
    pub corrects: Vec<Reference>,
}

/// Days between an invoice and its due date: the legal limit for public buyers.
pub const PAYMENT_DAYS: u64 = 30;

/// The extract's CSV cells a document of `kind` takes: workshops paid for
/// an invoice, workshops taken back (reversals) for a credit note. Carried
/// balances come from an earlier credit note and are on neither.
/// Returns (theme, face value, count), in theme order.
pub fn tally(rows: &[Vec<String>], kind: Kind) -> Vec<(String, i64, i64)> {
    let mut tally: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for cells in rows {
        let [_, redemption_id, _, _, _, _, _, theme, _, amount] = cells.as_slice() else {
            continue;
        };
        let Ok(amount) = amount.parse::<i64>() else {
            continue;
        };
        if redemption_id.is_empty() {
            continue;
        }
        let face_value = match kind {
            Kind::Invoice if amount > 0 => amount,
            Kind::CreditNote if amount < 0 => -amount,
            _ => continue,
        };
        *tally.entry((theme.clone(), face_value)).or_default() += 1;
    }
    tally
        .into_iter()
        .map(|((theme, face_value), count)| (theme, face_value, count))
        .collect()
}

/// The lines and totals for `tally` under `tax`. Exempt: each line is its
/// count times its face value. Standard rate: the total with VAT is the sum
/// of face values; the amount before VAT is the one whose VAT, rounded to
/// the cent, brings it back to that sum (a one-cent rounding amount where
/// none does), shared among the lines in proportion.
pub fn price(
    tally: &[(String, i64, i64)],
    label: impl Fn(&str) -> String,
    tax: &Tax,
) -> (Vec<Line>, Totals) {
    let gross: i64 = tally.iter().map(|(_, face, count)| face * count).sum();
    let (net, vat, rounding) = match tax {
        Tax::Exempt { .. } => (gross, 0, 0),
        Tax::Standard { rate_basis_points } => split(gross, i64::from(*rate_basis_points)),
    };
    let mut lines: Vec<Line> = tally
        .iter()
        .map(|(theme, face, count)| Line {
            theme: theme.clone(),
            label: label(theme),
            quantity: *count,
            face_value_cents: *face,
            unit_price_e4: match tax {
                Tax::Exempt { .. } => face * 100,
                Tax::Standard { rate_basis_points } => {
                    let rate = i64::from(*rate_basis_points);
                    (face * 100 * 10_000 * 2 + 10_000 + rate) / (2 * (10_000 + rate))
                }
            },
            net_cents: if gross == 0 {
                0
            } else {
                net * face * count / gross
            },
        })
        .collect();
    // Largest remainders first, so that the lines add up to `net` exactly.
    let mut short = net - lines.iter().map(|l| l.net_cents).sum::<i64>();
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by_key(|&i| {
        let (_, face, count) = &tally[i];
        std::cmp::Reverse((net * face * count) % gross.max(1))
    });
    for i in order.into_iter().cycle().take(lines.len() * 2) {
        if short == 0 {
            break;
        }
        lines[i].net_cents += short.signum();
        short -= short.signum();
    }
    (
        lines,
        Totals {
            net_cents: net,
            vat_cents: vat,
            rounding_cents: rounding,
        },
    )
}

/// VAT at `rate` basis points on `net` cents, rounded half up.
pub fn vat_on(net: i64, rate: i64) -> i64 {
    (net * rate + 5_000).div_euclid(10_000)
}

/// Splits a total with VAT into (before VAT, VAT, rounding).
fn split(gross: i64, rate: i64) -> (i64, i64, i64) {
    let estimate = gross * 10_000 / (10_000 + rate);
    let exact = (estimate - 2..=estimate + 2).find(|&net| net + vat_on(net, rate) == gross);
    match exact {
        Some(net) => (net, gross - net, 0),
        None => {
            let net = (gross * 10_000 * 2 + 10_000 + rate) / (2 * (10_000 + rate));
            let vat = vat_on(net, rate);
            (net, vat, gross - net - vat)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Vec<String>> {
        let row = |id: &str, theme: &str, amount: &str| {
            [
                "4",
                id,
                "2026-11-20T09:30:00Z",
                "73282932000074",
                "Café",
                "123",
                "3",
                theme,
                "2026-11-20",
                amount,
            ]
            .map(str::to_owned)
            .to_vec()
        };
        vec![
            row("1", "email", "2000"),
            row("2", "email", "2000"),
            row("3", "demarches", "2000"),
            row("4", "email", "-2000"),
            row("", "report du relevé 3", "-1500"),
            row("5", "email", "1500"),
        ]
    }

    #[test]
    fn an_invoice_counts_the_workshops_paid_and_a_credit_note_those_taken_back() {
        assert_eq!(
            tally(&rows(), Kind::Invoice),
            [
                ("demarches".to_owned(), 2000, 1),
                ("email".to_owned(), 1500, 1),
                ("email".to_owned(), 2000, 2)
            ]
        );
        assert_eq!(
            tally(&rows(), Kind::CreditNote),
            [("email".to_owned(), 2000, 1)]
        );
    }

    #[test]
    fn an_exempt_venue_invoices_the_face_values() {
        let tax = Tax::Exempt {
            reason: "TVA non applicable, art. 293 B du CGI".into(),
        };
        let (lines, totals) = price(&tally(&rows(), Kind::Invoice), str::to_owned, &tax);
        assert_eq!(
            lines.iter().map(|l| l.net_cents).collect::<Vec<_>>(),
            [2000, 1500, 4000]
        );
        assert_eq!(lines[2].unit_price_e4, 200_000);
        assert_eq!(totals.net_cents, 7500);
        assert_eq!(totals.due_cents(), 7500);
    }

    #[test]
    fn a_venue_charging_vat_gets_the_extracts_total_with_vat_to_the_cent() {
        for rate in [2000, 1000, 550, 210] {
            for gross in 1..3000 {
                let tally = [
                    ("email".to_owned(), gross, 1),
                    ("demarches".to_owned(), 2000, 3),
                ];
                let tax = Tax::Standard {
                    rate_basis_points: rate,
                };
                let (lines, totals) = price(&tally, str::to_owned, &tax);
                let gross = gross + 6000;
                assert_eq!(totals.due_cents(), gross, "rate {rate}");
                assert!(totals.rounding_cents.abs() <= 1);
                assert_eq!(totals.vat_cents, vat_on(totals.net_cents, i64::from(rate)));
                assert_eq!(
                    lines.iter().map(|l| l.net_cents).sum::<i64>(),
                    totals.net_cents
                );
                for line in &lines {
                    let exact = line.quantity * line.unit_price_e4;
                    assert!(
                        (line.net_cents * 100 - exact).abs() <= 200 + line.quantity,
                        "{line:?}"
                    );
                }
            }
        }
        // 20 %: 60 € with VAT are 50 € and 10 € of VAT.
        let (lines, totals) = price(
            &[("email".to_owned(), 2000, 3)],
            str::to_owned,
            &Tax::Standard {
                rate_basis_points: 2000,
            },
        );
        assert_eq!(
            (totals.net_cents, totals.vat_cents, totals.rounding_cents),
            (5000, 1000, 0)
        );
        assert_eq!(lines[0].unit_price_e4, 166_667);
    }

    #[test]
    fn a_total_that_no_split_reaches_takes_one_cent_of_rounding() {
        // 10 %: 5 cents with VAT; 4 + 0 = 4 and 5 + 1 = 6 (0.5 rounds up).
        assert_eq!(split(5, 1000), (5, 1, -1));
        assert_eq!(split(6, 1000), (5, 1, 0));
    }
}
