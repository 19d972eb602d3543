//! Login tokens: short-lived JWTs signed with EdDSA by the key ring's login
//! key; issuer, audience and algorithm are pinned when they are checked.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Role;
use crate::keys::{KeyError, KeyRing, Purpose};

pub const ISSUER: &str = "passnum";
pub const AUDIENCE: &str = "passnum-api";
/// How long a token lives unless configured otherwise.
pub const DEFAULT_TTL_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user's id, as a string per RFC 7519.
    pub sub: String,
    /// The user's organisation and its kind.
    pub org: i64,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// Signs a token for user `user_id` of organisation `org` (`role`).
pub async fn issue(
    keys: &KeyRing,
    user_id: i64,
    org: i64,
    role: Role,
    ttl_secs: i64,
) -> Result<(String, i64), TokenError> {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let (kid, key) = keys.signer(Purpose::Login).await?;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: user_id.to_string(),
        org,
        role,
        iat: now,
        exp: now + ttl_secs,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes()))
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    Ok((token, ttl_secs))
}

/// Checks a token's signature (EdDSA only, by a login key of the ring),
/// issuer, audience and expiry.
pub async fn verify(keys: &KeyRing, token: &str) -> Result<Claims, TokenError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
    if header.alg != Algorithm::EdDSA {
        return Err(TokenError::Invalid("only EdDSA tokens are accepted".into()));
    }
    let kid = header
        .kid
        .as_deref()
        .and_then(|k| k.parse::<u8>().ok())
        .ok_or(TokenError::UnknownKey)?;
    let public = keys
        .verifying_key(Purpose::Login, kid)
        .await?
        .ok_or(TokenError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 5;
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_ed_der(public.as_bytes()),
        &validation,
    )
    .map_err(|e| TokenError::Invalid(e.to_string()))?;
    Ok(data.claims)
}
