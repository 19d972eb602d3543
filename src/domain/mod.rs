//! The rules of the service, each applied in one database transaction.

pub mod accounts;
pub mod batch;
pub mod books;
pub mod bounds;
pub mod carnet;
pub mod devices;
pub mod directory;
pub mod group_commit;
pub mod idempotency;
pub mod invoices;
pub mod organisations;
pub mod paris;
pub mod printing;
pub mod programs;
pub mod purge;
pub mod redemptions;
pub mod statements;
pub mod stats;
pub mod sync;
pub mod themes;

use crate::http::problem::ApiError;

/// The reason a revocation, cancellation, reversal or decision must give.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// 1 to 500 characters once trimmed; line breaks allowed.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// Checks a reason: 1 to 500 characters once trimmed.
pub fn check_reason(reason: &str) -> Result<&str, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid_field(
            "reason",
            "say why, in 1 to 500 characters",
        ));
    }
    Ok(reason)
}

/// Serialises a 63-bit id as a decimal string, as the contract sends voucher ids.
pub fn decimal_string<S: serde::Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_string())
}
