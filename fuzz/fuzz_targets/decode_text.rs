//! Any string given to the voucher text decoder: no panic, and whatever parses
//! is canonical (re-encoding gives back the normalised input), so no voucher
//! has two accepted texts.
#![no_main]

use std::sync::OnceLock;

use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use passnum::voucher::{decode_and_verify, SignedVoucher};

/// Derived once: a scalar multiplication per input would dominate the run.
fn public_key() -> VerifyingKey {
    static KEY: OnceLock<VerifyingKey> = OnceLock::new();
    *KEY.get_or_init(|| SigningKey::from_bytes(&[7u8; 32]).verifying_key())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let public = public_key();
    // Odd kids are known, even kids unknown: both paths get exercised.
    let _ = decode_and_verify(&text, |kid| (kid % 2 == 1).then_some(public));

    if let Ok(voucher) = SignedVoucher::parse(&text) {
        let canonical = voucher.to_text();
        assert_eq!(canonical, text.trim().to_ascii_uppercase());
        assert_eq!(SignedVoucher::parse(&canonical).as_ref(), Ok(&voucher));
    }
});
