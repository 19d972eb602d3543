//! Cursor pagination for every list: `?limit=&cursor=` in, `{items, next_cursor}` out.

use serde::Serialize;

use super::problem::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// `?limit=&cursor=` of a list with no other filter.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the page before; none for the first page.
    #[param(pattern = r"^[0-9]{0,18}$")]
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn request(&self) -> Result<PageRequest, ApiError> {
        PageRequest::parse(self.limit, self.cursor.as_deref())
    }
}

/// Where a page starts and how long it is, from the query string.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    /// Items come after this key (ids ascending); 0 for the first page.
    pub after: i64,
    pub limit: i64,
}

impl PageRequest {
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid_field(
                "limit",
                format!("limit is between 1 and {MAX_LIMIT}"),
            ));
        }
        // The last key of the page before, in decimal.
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => 0,
            Some(c) => Some(c)
                .filter(|c| c.len() <= 18 && c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| {
                    ApiError::invalid_field("cursor", "this cursor was not given by the API")
                })?,
        };
        Ok(PageRequest { after, limit })
    }

    /// How many rows to fetch: one more than the page, to know if another follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass it as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `request.fetch()` rows in key order.
    pub fn from_rows(mut rows: Vec<T>, request: PageRequest, key: impl Fn(&T) -> i64) -> Self {
        let more = rows.len() as i64 > request.limit;
        rows.truncate(request.limit as usize);
        let next_cursor = more
            .then(|| rows.last().map(|last| key(last).to_string()))
            .flatten();
        Page {
            items: rows,
            next_cursor,
        }
    }
}
