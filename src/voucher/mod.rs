//! Voucher format v1: the 18-byte body, its Ed25519 signature, the `PN1:` text
//! held by the QR code and the typed code printed under it.
//!
//! Everything here is pure (no I/O, no clock, no database) so that it can be
//! fuzzed and so that a scanner can run the very same checks offline. The
//! normative description is `docs/voucher-format.md`; the test vectors are in
//! `tests/vectors/voucher-v1.json`.

pub mod base45;
mod body;
mod error;
mod signed;
pub mod statement;
pub mod typed_code;

#[cfg(test)]
mod tests;

pub use body::{VoucherBody, BODY_LEN, BOOK_SIZES, MAX_VOUCHER_ID, VERSION};
pub use error::{BodyError, InvalidSignature, MalformedCode, VoucherError};
pub use signed::{signed_message, SignedVoucher, PAYLOAD_LEN, SIGNATURE_TAG, TEXT_PREFIX};

use ed25519_dalek::VerifyingKey;

/// Parses a scanned text, finds the key named by its kid and verifies the
/// signature strictly: the one call a redemption needs before touching the
/// database.
///
/// `key_for_kid` must return only keys published for the `voucher` purpose
/// (active or retired), so that a statement key can never vouch for a voucher.
pub fn decode_and_verify(
    text: &str,
    key_for_kid: impl Fn(u8) -> Option<VerifyingKey>,
) -> Result<SignedVoucher, VoucherError> {
    let voucher = SignedVoucher::parse(text)?;
    let kid = voucher.body().kid;
    let key = key_for_kid(kid).ok_or(VoucherError::UnknownKey(kid))?;
    voucher.verify(&key)?;
    Ok(voucher)
}
