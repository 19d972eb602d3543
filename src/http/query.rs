//! The query-string extractor: its text checked as a body's is (`text`), and
//! naming the parameter that failed.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::problem::ApiError;
use super::text;

/// Like `web::Query`, but errors are `validation-error` problems naming the parameter.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(req.query_string()).map(Query))
    }
}

/// Parses a query string (or a url-encoded form) into `T`.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    text::check_pairs(&pairs)?;
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path == "?" {
            "query".to_owned()
        } else {
            path
        };
        ApiError::invalid_field(field, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct List {
        reference: Option<String>,
        limit: Option<i64>,
    }

    #[test]
    fn parameters_are_named_when_they_fail() {
        let field = |q: &str| parse::<List>(q).unwrap_err().errors[0].field.clone();
        assert_eq!(field("limit=ten"), "limit");
        assert_eq!(field("reference=R%00"), "reference");
        let ok = parse::<List>("reference=R-1&limit=5").unwrap();
        assert_eq!(ok.reference.as_deref(), Some("R-1"));
        assert_eq!(ok.limit, Some(5));
    }
}
