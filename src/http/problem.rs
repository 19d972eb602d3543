//! Every error the API returns, as RFC 9457 problem+json, mapped in this one place.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// `Retry-After` of an `unavailable` answer: a failover or a restart takes seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

/// The problem types of the API contract (plus the few HTTP itself needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    ValidationError,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    MalformedCode,
    InvalidSignature,
    UnknownKey,
    VoucherExpired,
    VoucherRevoked,
    ProgramClosed,
    VenueNotAccredited,
    VenueOutOfTerritory,
    AlreadyRedeemed,
    QuotaExceeded,
    BudgetExceeded,
    IdempotencyConflict,
    NotCancellable,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    Unavailable,
    Internal,
}

impl ProblemType {
    pub fn slug(self) -> &'static str {
        self.describe().0
    }

    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.describe().1).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn title(self) -> &'static str {
        self.describe().2
    }

    fn describe(self) -> (&'static str, u16, &'static str) {
        use ProblemType::*;
        match self {
            ValidationError => ("validation-error", 422, "The request is not valid"),
            Unauthorized => ("unauthorized", 401, "Authentication is required"),
            Forbidden => ("forbidden", 403, "Your role does not allow this"),
            NotFound => ("not-found", 404, "Not found"),
            MethodNotAllowed => (
                "method-not-allowed",
                405,
                "Method not allowed on this resource",
            ),
            MalformedCode => ("malformed-code", 422, "The voucher code cannot be read"),
            InvalidSignature => (
                "invalid-signature",
                422,
                "The voucher signature is not valid",
            ),
            UnknownKey => (
                "unknown-key",
                422,
                "The voucher was signed by an unknown key",
            ),
            VoucherExpired => ("voucher-expired", 410, "The voucher has expired"),
            VoucherRevoked => ("voucher-revoked", 410, "The voucher has been revoked"),
            ProgramClosed => ("program-closed", 410, "The programme is closed"),
            VenueNotAccredited => ("venue-not-accredited", 403, "The venue is not accredited"),
            VenueOutOfTerritory => (
                "venue-out-of-territory",
                403,
                "The venue is outside the programme's territory",
            ),
            AlreadyRedeemed => ("already-redeemed", 409, "The voucher has already been used"),
            QuotaExceeded => ("quota-exceeded", 409, "The allocation is used up"),
            BudgetExceeded => ("budget-exceeded", 409, "The programme's budget is exceeded"),
            IdempotencyConflict => (
                "idempotency-conflict",
                422,
                "This Idempotency-Key was used with another request",
            ),
            NotCancellable => (
                "not-cancellable",
                409,
                "The redemption can no longer be cancelled",
            ),
            Conflict => ("conflict", 409, "The current state does not allow this"),
            PayloadTooLarge => ("payload-too-large", 413, "The request body is too large"),
            UnsupportedMediaType => ("unsupported-media-type", 415, "Unsupported media type"),
            RateLimited => ("rate-limited", 429, "Too many attempts"),
            Unavailable => ("unavailable", 503, "The service is temporarily unavailable"),
            Internal => ("internal-error", 500, "Internal error"),
        }
    }

    /// The problem type that best describes a bare HTTP status.
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 | 422 => ProblemType::ValidationError,
            401 => ProblemType::Unauthorized,
            403 => ProblemType::Forbidden,
            404 => ProblemType::NotFound,
            405 => ProblemType::MethodNotAllowed,
            409 => ProblemType::Conflict,
            413 => ProblemType::PayloadTooLarge,
            415 => ProblemType::UnsupportedMediaType,
            429 => ProblemType::RateLimited,
            503 => ProblemType::Unavailable,
            _ => ProblemType::Internal,
        }
    }
}

/// One invalid field of a request body, named by its path (`beneficiary.postcode`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The body of every error answer (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "/problems/validation-error")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Members a problem type adds (`redeemed_at` of `already-redeemed`, …).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

/// The one error type of the HTTP layer. Domain errors convert into it.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ProblemType,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub extra: Map<String, Value>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        ApiError {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            extra: Map::new(),
            retry_after_secs: None,
        }
    }

    /// A `validation-error` naming the offending field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        let mut e = ApiError::new(ProblemType::ValidationError, format!("{field}: {message}"));
        e.errors.push(FieldError { field, message });
        e
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::new(ProblemType::NotFound, detail)
    }

    /// `unavailable`, with the `Retry-After` every such answer carries.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(ProblemType::Unavailable, detail);
        e.retry_after_secs = Some(UNAVAILABLE_RETRY_AFTER_SECS);
        e
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::new(ProblemType::Internal, detail)
    }

    /// Adds a member to the problem object.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn problem(&self) -> Problem {
        // An internal error's detail stays in the logs: it may describe our insides.
        let detail = match self.kind {
            ProblemType::Internal => "An unexpected error occurred; it has been logged.".to_owned(),
            _ => self.detail.clone(),
        };
        Problem {
            type_: format!("/problems/{}", self.kind.slug()),
            title: self.kind.title().to_owned(),
            status: self.kind.status().as_u16(),
            detail,
            errors: self.errors.clone(),
            extra: self.extra.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.slug(), self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind.status()
    }

    fn error_response(&self) -> HttpResponse {
        // `unavailable` is said where it arises (a lost database, a mail
        // server down); a full login queue in a flood is not worth a line each.
        if self.kind == ProblemType::Internal {
            tracing::error!(problem = self.kind.slug(), detail = %self.detail, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if self.kind == ProblemType::Unauthorized {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        let retry_after = self
            .retry_after_secs
            .or((self.kind == ProblemType::Unavailable).then_some(UNAVAILABLE_RETRY_AFTER_SECS));
        if let Some(secs) = retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.body(serde_json::to_vec(&self.problem()).unwrap_or_default())
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &e {
            Error::NotFound => ApiError::not_found("Not found."),
            // diesel-async's kind for an error with no SQLSTATE: the
            // connection, not the query, failed.
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => lost_connection(),
            // A server that became a standby under us (a failover): nothing was written.
            Error::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => {
                tracing::warn!(error = %e, "the database refused a write: read-only (failover?)");
                ApiError::unavailable("The database is switching over; try again shortly.")
            }
            // tokio-postgres reports a vanished or stopping server as an unknown database error.
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if is_connection_failure(info.message()) =>
            {
                lost_connection()
            }
            Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
                match refused_value(info.message()) {
                    Some(message) => {
                        tracing::warn!(error = %e, "the database refused a value the checks let through");
                        ApiError::invalid_field("body", message)
                    }
                    None => ApiError::internal(format!("database error: {e}")),
                }
            }
            // Every rule of the input is checked before the database sees it;
            // a CHECK that still fires refuses the input all the same.
            Error::DatabaseError(DatabaseErrorKind::CheckViolation, info) => {
                tracing::warn!(error = %e, "a CHECK constraint refused what the checks let through");
                ApiError::invalid_field(
                    "body",
                    format!(
                        "a value breaks the rule {} of the database",
                        info.constraint_name().unwrap_or("(unnamed)")
                    ),
                )
            }
            _ => ApiError::internal(format!("database error: {e}")),
        }
    }
}

fn lost_connection() -> ApiError {
    tracing::warn!("the database connection was lost");
    ApiError::unavailable("The database connection was lost; try again shortly.")
}

/// Messages of a server gone, stopping, restarting or in recovery: each means
/// the transaction did not commit, and a retry may succeed elsewhere.
fn is_connection_failure(message: &str) -> bool {
    [
        "connection closed",
        "terminating connection",
        "broken pipe",
        "connection reset",
        "error communicating",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "the database system is not yet accepting connections",
        "the database system is not accepting connections",
    ]
    .iter()
    .any(|m| message.to_ascii_lowercase().contains(m))
}

/// What the database says when a value cannot be stored: SQLSTATE 22021
/// (a NUL or a byte sequence that is not UTF-8), 22003 (a number out of
/// range) and 22008 (a date out of range). diesel-async keeps the SQLSTATE
/// to itself, so the message tells; it is PostgreSQL's own English, as the
/// clusters run with `--no-locale` (`lc_messages` C).
fn refused_value(message: &str) -> Option<&'static str> {
    if message.starts_with("invalid byte sequence for encoding") {
        Some("a text holds a character that cannot be stored (a NUL, say)")
    } else if message.contains("out of range") {
        Some("a number or a date is out of range")
    } else {
        None
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        tracing::warn!(error = %e, "no database connection");
        ApiError::unavailable("The database is unreachable; try again shortly.")
    }
}

impl From<crate::keys::KeyError> for ApiError {
    fn from(e: crate::keys::KeyError) -> Self {
        use crate::keys::KeyError;
        match e {
            KeyError::Pool(e) => e.into(),
            KeyError::Database(e) => e.into(),
            KeyError::KidsExhausted => {
                ApiError::new(ProblemType::Conflict, KeyError::KidsExhausted.to_string())
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}
