//! A signed voucher and its `PN1:` text form.

use ed25519_dalek::{Signature, VerifyingKey};

use super::base45;
use super::body::{VoucherBody, BODY_LEN, VERSION};
use super::error::{InvalidSignature, MalformedCode};
use super::typed_code;

/// Domain tag of voucher signatures: a voucher signature can never pass for a
/// statement signature or any other signed object.
pub const SIGNATURE_TAG: &[u8] = b"passnum-voucher-v1";
/// Literal start of the text form (format family and version).
pub const TEXT_PREFIX: &str = "PN1:";
/// Body plus signature: what the Base45 part of the text decodes to.
pub const PAYLOAD_LEN: usize = BODY_LEN + SIGNATURE_LEN;
const SIGNATURE_LEN: usize = 64;
const MESSAGE_LEN: usize = SIGNATURE_TAG.len() + 1 + BODY_LEN;

/// The exact bytes an Ed25519 voucher signature covers:
/// `"passnum-voucher-v1" || 0x00 || body`.
pub fn signed_message(body: &[u8; BODY_LEN]) -> [u8; MESSAGE_LEN] {
    let mut message = [0u8; MESSAGE_LEN];
    message[..SIGNATURE_TAG.len()].copy_from_slice(SIGNATURE_TAG);
    message[SIGNATURE_TAG.len() + 1..].copy_from_slice(body);
    message
}

/// A valid body with its signature, as printed or as scanned. Only
/// [`VoucherBody::sign`] and [`SignedVoucher::parse`] build one, so the body
/// always obeys the format rules; whether the signature is genuine is a
/// separate question answered by [`SignedVoucher::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedVoucher {
    body: VoucherBody,
    /// The body exactly as signed or received, so verification never depends
    /// on re-encoding.
    body_bytes: [u8; BODY_LEN],
    signature: [u8; SIGNATURE_LEN],
}

impl SignedVoucher {
    pub(super) fn from_parts(
        body: VoucherBody,
        body_bytes: [u8; BODY_LEN],
        signature: [u8; SIGNATURE_LEN],
    ) -> Self {
        SignedVoucher {
            body,
            body_bytes,
            signature,
        }
    }

    pub fn body(&self) -> &VoucherBody {
        &self.body
    }

    /// The 18 encoded body bytes.
    pub fn body_bytes(&self) -> &[u8; BODY_LEN] {
        &self.body_bytes
    }

    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The QR code's content: `PN1:` and 123 Base45 symbols.
    pub fn to_text(&self) -> String {
        let mut payload = [0u8; PAYLOAD_LEN];
        payload[..BODY_LEN].copy_from_slice(&self.body_bytes);
        payload[BODY_LEN..].copy_from_slice(&self.signature);
        let mut text = String::from(TEXT_PREFIX);
        text.push_str(&base45::encode(&payload));
        text
    }

    /// Parses the text form without checking the signature. Tolerates what
    /// scanners do to text (lower case, surrounding whitespace or line end)
    /// and nothing else; inner spaces are Base45 symbols and are kept.
    pub fn parse(text: &str) -> Result<Self, MalformedCode> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MalformedCode::Empty);
        }
        let text = text.to_ascii_uppercase();
        let encoded = text
            .strip_prefix(TEXT_PREFIX)
            .ok_or(MalformedCode::MissingPrefix)?;
        let payload = base45::decode(encoded)?;
        match payload.first() {
            Some(&version) if version != VERSION => {
                return Err(MalformedCode::UnsupportedVersion(version));
            }
            _ => {}
        }
        let payload: [u8; PAYLOAD_LEN] =
            payload
                .as_slice()
                .try_into()
                .map_err(|_| MalformedCode::WrongLength {
                    found: payload.len(),
                })?;
        let mut body_bytes = [0u8; BODY_LEN];
        let mut signature = [0u8; SIGNATURE_LEN];
        body_bytes.copy_from_slice(&payload[..BODY_LEN]);
        signature.copy_from_slice(&payload[BODY_LEN..]);
        let body = VoucherBody::from_bytes(&body_bytes)?;
        Ok(SignedVoucher::from_parts(body, body_bytes, signature))
    }

    /// Verifies strictly (RFC 8032 plus: canonical S, no small-order key or
    /// R), so that no second valid text exists for a voucher and no weak key
    /// vouches for anything.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), InvalidSignature> {
        key.verify_strict(
            &signed_message(&self.body_bytes),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| InvalidSignature)
    }

    /// The code printed under the QR for typing when the camera fails.
    pub fn typed_code(&self) -> String {
        typed_code::format(self.body.voucher_id)
    }
}
