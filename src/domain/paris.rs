//! Calendar dates. Instants are UTC; a calendar date is always read in an
//! explicit time zone, Europe/Paris unless a programme says otherwise.

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;

pub const DEFAULT_TIME_ZONE: Tz = chrono_tz::Europe::Paris;

/// Today's date in `tz`.
pub fn today_in(tz: Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive()
}

/// Today's date in Europe/Paris.
pub fn today() -> NaiveDate {
    today_in(DEFAULT_TIME_ZONE)
}
