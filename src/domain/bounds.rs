//! The range of every amount and calendar date the service takes: far beyond
//! any real programme, well inside what bigint sums, PostgreSQL's dates and
//! the voucher's 16-bit day count (up to 2149) hold. The schema holds the
//! same bounds (migration `2026-12-02-300000`).

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};

use crate::http::problem::ApiError;

/// At most 10^11 cents (a billion euros) for any amount or budget.
pub const MAX_CENTS: i64 = 100_000_000_000;

/// The first and last calendar dates taken.
pub const FIRST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(day) => day,
    None => panic!("a valid date"),
};
pub const LAST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(2100, 12, 31) {
    Some(day) => day,
    None => panic!("a valid date"),
};

/// Whether a date is within 2000-01-01..=2100-12-31.
pub fn date_in_range(date: NaiveDate) -> bool {
    (FIRST_DAY..=LAST_DAY).contains(&date)
}

const DATE_RANGE: &str = "dates are from 2000-01-01 to 2100-12-31";

/// Refuses an amount outside `min..=MAX_CENTS`, naming the field.
pub fn check_cents(field: &str, cents: i64, min: i64) -> Result<i64, ApiError> {
    if (min..=MAX_CENTS).contains(&cents) {
        Ok(cents)
    } else {
        Err(ApiError::invalid_field(
            field,
            format!("an amount is from {min} to {MAX_CENTS} cents"),
        ))
    }
}

/// For `#[serde(deserialize_with)]`: a `YYYY-MM-DD` date within the range.
pub fn date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    let date = NaiveDate::deserialize(d)?;
    if date_in_range(date) {
        Ok(date)
    } else {
        Err(serde::de::Error::custom(DATE_RANGE))
    }
}

/// The same for an optional date (with `#[serde(default)]`).
pub fn optional_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    match Option::<NaiveDate>::deserialize(d)? {
        Some(date) if !date_in_range(date) => Err(serde::de::Error::custom(DATE_RANGE)),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Dated {
        #[serde(deserialize_with = "date")]
        on: NaiveDate,
        #[serde(default, deserialize_with = "optional_date")]
        until: Option<NaiveDate>,
    }

    #[test]
    fn dates_outside_2000_to_2100_are_refused() {
        let parse = |json: &str| serde_json::from_str::<Dated>(json);
        assert!(parse(r#"{"on": "2026-11-23"}"#).is_ok());
        assert!(parse(r#"{"on": "2100-12-31", "until": null}"#).is_ok());
        for bad in ["1999-12-31", "2101-01-01", "-200000-01-01", "+20000-01-01"] {
            assert!(parse(&format!(r#"{{"on": "{bad}"}}"#)).is_err(), "{bad}");
            assert!(
                parse(&format!(r#"{{"on": "2026-01-01", "until": "{bad}"}}"#)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn amounts_are_capped() {
        assert!(check_cents("x", MAX_CENTS, 1).is_ok());
        assert!(check_cents("x", MAX_CENTS + 1, 1).is_err());
        assert!(check_cents("x", 0, 1).is_err());
        assert!(check_cents("x", 0, 0).is_ok());
    }
}
