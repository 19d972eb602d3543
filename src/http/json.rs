//! The JSON body extractor: size-limited, and naming the field that failed.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::problem::{ApiError, ProblemType};

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

/// Parses a JSON body, naming the first field that does not fit `T`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::invalid_field(field, e.inner().to_string())
    })?;
    de.end()
        .map_err(|e| ApiError::invalid_field("body", e.to_string()))?;
    Ok(value)
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
