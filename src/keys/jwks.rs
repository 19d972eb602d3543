//! The published JWK Set (RFC 7517, Ed25519 keys as in RFC 8037): what anyone
//! needs to verify vouchers and statements offline.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{KeyInfo, KeyStatus, Purpose};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    #[schema(example = "OKP")]
    pub kty: String,
    #[schema(example = "Ed25519")]
    pub crv: String,
    /// The raw 32-byte public key, base64url without padding.
    pub x: String,
    /// The kid in decimal, as signed into vouchers.
    #[schema(example = "1")]
    pub kid: String,
    #[schema(example = "EdDSA")]
    pub alg: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub use_: String,
    /// `voucher` or `statement`.
    pub purpose: String,
    /// `active` (signs new objects) or `retired` (verifies only).
    pub status: String,
}

impl Jwk {
    pub fn from_key(key: &KeyInfo) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(key.public_key.as_bytes()),
            kid: key.kid.to_string(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
            purpose: key.purpose.as_str().into(),
            status: key.status.as_str().into(),
        }
    }
}

/// The keys to publish: voucher and statement keys that still verify. Login
/// keys stay private to the service; withdrawn keys leave the set.
/// `voucher_key_in_use` says whether a retired voucher key still has unexpired
/// vouchers; once it has none, nothing needs it any more.
pub fn published(keys: &[KeyInfo], voucher_key_in_use: impl Fn(u8) -> bool) -> Jwks {
    let keys = keys
        .iter()
        .filter(|k| match (k.purpose, k.status) {
            (_, KeyStatus::Withdrawn) | (Purpose::Login | Purpose::Log, _) => false,
            (Purpose::Voucher, KeyStatus::Retired) => voucher_key_in_use(k.kid),
            _ => true,
        })
        .map(Jwk::from_key)
        .collect();
    Jwks { keys }
}
