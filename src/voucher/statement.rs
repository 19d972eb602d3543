//! Signatures of closed statements (and of each venue's extract): they let a
//! venue prove what it was owed whoever runs the service later. The signature
//! covers the SHA-256 digest of the exact CSV bytes, under its own domain tag
//! so that it can never be confused with a voucher signature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Domain tag of statement signatures.
pub const SIGNATURE_TAG: &[u8] = b"passnum-statement-v1";
const MESSAGE_LEN: usize = SIGNATURE_TAG.len() + 1 + 32;

/// Why a statement signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StatementSignatureError {
    #[error("the statement signature is not unpadded base64url")]
    NotBase64Url,
    #[error("the statement signature is {0} bytes, an Ed25519 signature is 64")]
    WrongLength(usize),
    #[error("the statement signature does not verify")]
    DoesNotVerify,
}

/// SHA-256 of the statement's exact CSV bytes.
pub fn digest(csv: &[u8]) -> [u8; 32] {
    Sha256::digest(csv).into()
}

/// Lower-case hex, the form published in the `sha256` field.
pub fn digest_hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The exact bytes signed: `"passnum-statement-v1" || 0x00 || digest`.
pub fn signed_message(digest: &[u8; 32]) -> [u8; MESSAGE_LEN] {
    let mut message = [0u8; MESSAGE_LEN];
    message[..SIGNATURE_TAG.len()].copy_from_slice(SIGNATURE_TAG);
    message[SIGNATURE_TAG.len() + 1..].copy_from_slice(digest);
    message
}

/// Signs a statement digest; the result is unpadded base64url text.
pub fn sign(digest: &[u8; 32], key: &SigningKey) -> String {
    URL_SAFE_NO_PAD.encode(key.sign(&signed_message(digest)).to_bytes())
}

/// Verifies strictly, as for vouchers. Padded or otherwise non-canonical
/// base64url is refused, so a signature has a single text form.
pub fn verify(
    digest: &[u8; 32],
    signature: &str,
    key: &VerifyingKey,
) -> Result<(), StatementSignatureError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| StatementSignatureError::NotBase64Url)?;
    let bytes: [u8; 64] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| StatementSignatureError::WrongLength(bytes.len()))?;
    key.verify_strict(&signed_message(digest), &Signature::from_bytes(&bytes))
        .map_err(|_| StatementSignatureError::DoesNotVerify)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    const CSV: &[u8] = b"voucher_id,venue,redeemed_on\n42,Mediatheque,2026-03-02\n";

    #[test]
    fn round_trip() {
        let d = digest(CSV);
        let signature = sign(&d, &key());
        assert_eq!(signature.len(), 86);
        assert_eq!(verify(&d, &signature, &key().verifying_key()), Ok(()));
    }

    #[test]
    fn digest_is_sha256() {
        assert_eq!(
            digest_hex(&digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tampering_is_detected() {
        let d = digest(CSV);
        let signature = sign(&d, &key());
        let public = key().verifying_key();

        let mut altered_csv = CSV.to_vec();
        altered_csv[30] ^= 1;
        assert_eq!(
            verify(&digest(&altered_csv), &signature, &public),
            Err(StatementSignatureError::DoesNotVerify)
        );

        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert_eq!(
            verify(&d, &signature, &other),
            Err(StatementSignatureError::DoesNotVerify)
        );

        let mut bytes = URL_SAFE_NO_PAD.decode(&signature).expect("own encoding");
        bytes[10] ^= 0x40;
        assert_eq!(
            verify(&d, &URL_SAFE_NO_PAD.encode(&bytes), &public),
            Err(StatementSignatureError::DoesNotVerify)
        );
    }

    #[test]
    fn a_voucher_signature_is_not_a_statement_signature() {
        // Same key, same 32 bytes, other tag: must not verify.
        let d = digest(CSV);
        let mut body = [0u8; 32];
        body.copy_from_slice(&d);
        let voucher_style = key().sign(&[b"passnum-voucher-v1".as_slice(), &[0], &body].concat());
        let text = URL_SAFE_NO_PAD.encode(voucher_style.to_bytes());
        assert_eq!(
            verify(&d, &text, &key().verifying_key()),
            Err(StatementSignatureError::DoesNotVerify)
        );
    }

    #[test]
    fn bad_encodings_are_rejected() {
        let d = digest(CSV);
        let signature = sign(&d, &key());
        let public = key().verifying_key();
        // The last symbol carries 4 bits and 2 zero bits; setting one is non-canonical.
        const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = B64URL.find(&signature[85..]).expect("base64url symbol");
        let non_canonical = format!("{}{}", &signature[..85], &B64URL[last | 1..(last | 1) + 1]);
        for text in [
            non_canonical,
            format!("{signature}=="),
            signature.replace('-', "+").replace('_', "/") + "+",
            String::from("not base64!"),
        ] {
            assert_eq!(
                verify(&d, &text, &public),
                Err(StatementSignatureError::NotBase64Url),
                "{text}"
            );
        }
        assert_eq!(
            verify(&d, &signature[..84], &public),
            Err(StatementSignatureError::WrongLength(63))
        );
        assert_eq!(
            verify(&d, "", &public),
            Err(StatementSignatureError::WrongLength(0))
        );
    }
}
