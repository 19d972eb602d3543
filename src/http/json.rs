//! The JSON body extractor: size-limited, its text checked (`text`), and
//! naming the field that failed.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::problem::{ApiError, ProblemType};
use super::text;

/// Request bodies are at most 64 KiB (the batch endpoint raises its own limit).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Offline scanners send up to 500 redemptions at once.
pub const BATCH_BODY_LIMIT: usize = 1024 * 1024;

/// Like `web::Json`, but errors are problems: `validation-error` with the path of
/// the field that failed, `payload-too-large` past the limit.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // The limit is the `web::PayloadConfig` of the app or of the scope.
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(body_error)?;
            parse(&bytes).map(Json)
        })
    }
}

/// Parses a JSON body, naming the first field that does not fit `T`: the
/// document first (a repeated member is refused, as a typed parse would),
/// then its text, for every string (`text::check_json`), then its shape.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let document = Document::deserialize(&mut de)
        .and_then(|d| de.end().map(|()| d.0))
        .map_err(|e| ApiError::invalid_field("body", e.to_string()))?;
    text::check_json(&document)?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        let message = e.inner().to_string();
        ApiError::invalid_field(field_of(&e.path().to_string(), &message), message)
    })
}

/// A JSON document as `serde_json::Value`, read strictly where JSON is
/// loose and loosely where JSON Schema is: a member named twice is an error,
/// and a number with no fraction (`5.0`) is the integer it equals, as JSON
/// Schema's `integer` says.
struct Document(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Document {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocumentVisitor).map(Document)
    }
}

struct DocumentVisitor;

impl<'de> serde::de::Visitor<'de> for DocumentVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // Within ±2^53 every integer is exact as a double.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        Ok(if v.fract() == 0.0 && v.abs() <= EXACT {
            (v as i64).into()
        } else {
            v.into()
        })
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Document(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items.into())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = serde_json::Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let Document(value) = map.next_value()?;
            if members.insert(name.clone(), value).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "the member `{name}` appears twice"
                )));
            }
        }
        Ok(members.into())
    }
}

/// The path of the field an error is about. serde reports a missing field at
/// its parent, naming it in the message only.
fn field_of(path: &str, message: &str) -> String {
    let parent = if path == "." || path == "?" {
        None
    } else {
        Some(path)
    };
    let named = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (parent, named) {
        (Some(parent), Some(name)) => format!("{parent}.{name}"),
        (None, Some(name)) => name.to_owned(),
        (Some(parent), None) => parent.to_owned(),
        (None, None) => "body".to_owned(),
    }
}

fn body_error(e: actix_web::Error) -> ApiError {
    let too_large = matches!(e.as_error::<PayloadError>(), Some(PayloadError::Overflow))
        || e.error_response().status() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE;
    if too_large {
        ApiError::new(
            ProblemType::PayloadTooLarge,
            "The request body is larger than this endpoint accepts (64 KiB; 1 MiB for batches).",
        )
    } else {
        ApiError::invalid_field("body", format!("the body could not be read: {e}"))
    }
}

/// A JSON body read now but parsed when the handler says so: after the caller,
/// their role and the object are checked, as the API contract orders it. A
/// body that cannot even be read (too large) is reported then too.
#[derive(Debug)]
pub struct Body<T> {
    bytes: Result<web::Bytes, ApiError>,
    _type: std::marker::PhantomData<T>,
}

impl<T: DeserializeOwned> Body<T> {
    pub fn parse(self) -> Result<T, ApiError> {
        parse(&self.bytes?)
    }

    /// The bytes as sent, for a handler that also needs them whole.
    pub fn into_bytes(self) -> Result<web::Bytes, ApiError> {
        self.bytes
    }
}

impl<T: 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            Ok(Body {
                bytes: body.await.map_err(body_error),
                _type: std::marker::PhantomData,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Book {
        size: u8,
        beneficiary: Beneficiary,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Beneficiary {
        postcode: String,
    }

    fn field(body: &str) -> String {
        parse::<Book>(body.as_bytes()).unwrap_err().errors[0]
            .field
            .clone()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field(r#"{"size": "ten", "beneficiary": {"postcode": "67000"}}"#),
            "size"
        );
        assert_eq!(
            field(r#"{"size": 5, "beneficiary": {"postcode": 67000}}"#),
            "beneficiary.postcode"
        );
        assert_eq!(
            field(r#"{"size": 5, "beneficiary": {}}"#),
            "beneficiary.postcode"
        );
        assert_eq!(field(r#"{"beneficiary": {"postcode": "67000"}}"#), "size");
        assert_eq!(
            field(r#"{"size": 5, "beneficiary": {"postcode": "67000", "name": "X"}}"#),
            "beneficiary.name"
        );
        assert_eq!(field(r#"{"size": 5,"#), "body");
        assert_eq!(field(""), "body");
        assert_eq!(
            field(r#"{"size": 5, "beneficiary": {"postcode": "67000"}} trailing"#),
            "body"
        );
        assert_eq!(
            field(r#"{"size": 5, "size": 10, "beneficiary": {"postcode": "67000"}}"#),
            "body"
        );
        assert_eq!(
            field(r#"{"size": 5.5, "beneficiary": {"postcode": "67000"}}"#),
            "size"
        );
    }

    #[test]
    fn a_number_with_no_fraction_is_an_integer() {
        let book: Book = parse(br#"{"size": 10.0, "beneficiary": {"postcode": "67000"}}"#).unwrap();
        assert_eq!(book.size, 10);
    }
}
