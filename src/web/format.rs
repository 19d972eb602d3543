//! Numbers, money and dates as French readers write them.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// A no-break space: the French thousands separator, as in amounts.
const NBSP: char = '\u{a0}';

/// `1234567` → `1 234 567` (no-break spaces).
pub fn number(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(NBSP);
        }
        out.push(c);
    }
    if n < 0 {
        format!("−{out}")
    } else {
        out
    }
}

/// Integer cents as euros (`1 234,56 €`), as the statement PDF writes them.
pub use crate::render::statement_pdf::euros;

/// `2026-11-23` → `23/11/2026`.
pub fn date(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

/// An instant, as the clock on the wall of `tz` showed it.
pub fn instant(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%d/%m/%Y à %H:%M").to_string()
}

/// A wait in words: `5` → `5 secondes`, `900` → `15 minutes`.
pub fn wait(secs: u64) -> String {
    match secs {
        0..=1 => "1 seconde".to_owned(),
        2..=59 => format!("{secs} secondes"),
        60..=119 => "1 minute".to_owned(),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// A share as a percentage with no decimal: `0.456` → `46 %`.
pub fn percent(share: f64) -> String {
    format!("{}\u{a0}%", (share * 100.0).round() as i64)
}

/// A share of a total, guarding against an empty total.
pub fn share(part: i64, total: i64) -> f64 {
    if total <= 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_said_in_words() {
        assert_eq!(wait(1), "1 seconde");
        assert_eq!(wait(5), "5 secondes");
        assert_eq!(wait(60), "1 minute");
        assert_eq!(wait(900), "15 minutes");
        assert_eq!(wait(61 * 2), "3 minutes");
    }

    #[test]
    fn money_is_written_the_french_way() {
        assert_eq!(euros(2_000), "20,00\u{a0}€");
        assert_eq!(euros(123_456_789), "1\u{a0}234\u{a0}567,89\u{a0}€");
        assert_eq!(number(999), "999");
        assert_eq!(number(-1_234_567), "−1\u{a0}234\u{a0}567");
    }

    #[test]
    fn dates_and_shares() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
        assert_eq!(date(d), "09/03/2026");
        assert_eq!(percent(share(1, 3)), "33\u{a0}%");
        assert_eq!(share(5, 0), 0.0);
    }
}
