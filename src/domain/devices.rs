//! Scanner devices: a venue's phones and tablets, each with a long-lived token
//! that can only check, redeem, batch and sync for that venue.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::organisations::{self, Organisation};
use crate::auth::Role;
use crate::db::schema::devices;
use crate::http::problem::ApiError;

/// Device tokens start with this, so a glance tells them from login tokens.
pub const TOKEN_PREFIX: &str = "pnd_";

/// Who scans for a venue: one of its users, or one of its devices.
#[derive(Debug, Clone)]
pub struct Scanner {
    pub venue: Organisation,
    pub user_id: Option<i64>,
    pub device_id: Option<i64>,
}

impl Scanner {
    /// The scope of idempotency keys.
    pub fn principal(&self) -> String {
        match (self.device_id, self.user_id) {
            (Some(device), _) => format!("device:{device}"),
            (None, Some(user)) => format!("user:{user}"),
            (None, None) => "nobody".into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// A name the venue recognises ("Tablette de l'accueil").
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

#[derive(Debug, Serialize, Queryable, Selectable, ToSchema)]
#[diesel(table_name = devices)]
pub struct Device {
    pub id: i64,
    pub venue_organisation_id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredDevice {
    #[serde(flatten)]
    pub device: Device,
    /// Shown once: only its hash is kept.
    pub token: String,
}

/// What is stored of a device token: its SHA-256.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub async fn register(
    conn: &mut AsyncPgConnection,
    venue: i64,
    user: i64,
    new: NewDevice,
) -> Result<RegisteredDevice, ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid_field(
            "name",
            "a name of 1 to 100 characters",
        ));
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    use base64::Engine;
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let device = diesel::insert_into(devices::table)
        .values((
            devices::venue_organisation_id.eq(venue),
            devices::name.eq(name),
            devices::token_hash.eq(hash(&token).to_vec()),
            devices::created_by_user_id.eq(user),
        ))
        .returning(Device::as_returning())
        .get_result(conn)
        .await?;
    Ok(RegisteredDevice { device, token })
}

/// The scanner a device token stands for, if the token is known and not revoked.
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    token: &str,
) -> Result<Option<Scanner>, ApiError> {
    let found: Option<(i64, i64)> = devices::table
        .filter(devices::token_hash.eq(hash(token).to_vec()))
        .filter(devices::revoked_at.is_null())
        .select((devices::id, devices::venue_organisation_id))
        .first(conn)
        .await
        .optional()?;
    let Some((device, venue)) = found else {
        return Ok(None);
    };
    let venue = organisations::find(conn, venue).await?;
    Ok(Some(Scanner {
        venue,
        user_id: None,
        device_id: Some(device),
    }))
}

/// A venue's devices, or every device for the operator.
pub async fn list(
    conn: &mut AsyncPgConnection,
    role: Role,
    org: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<Device>, ApiError> {
    let mut query = devices::table
        .select(Device::as_select())
        .filter(devices::id.gt(after))
        .order(devices::id)
        .limit(limit)
        .into_boxed();
    if role != Role::Operator {
        query = query.filter(devices::venue_organisation_id.eq(org));
    }
    Ok(query.load(conn).await?)
}

/// Revokes a device: its token stops working at its next request.
/// Idempotent, so a venue and the operator may both do it.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    id: i64,
    role: Role,
    org: i64,
) -> Result<Device, ApiError> {
    let mut query = devices::table
        .find(id)
        .select(Device::as_select())
        .into_boxed();
    if role != Role::Operator {
        query = query.filter(devices::venue_organisation_id.eq(org));
    }
    let device = query
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found(format!("No device {id}.")))?;
    if device.revoked_at.is_some() {
        // Revoking twice is harmless: the device stays revoked.
        return Ok(device);
    }
    Ok(diesel::update(devices::table.find(id))
        .set(devices::revoked_at.eq(diesel::dsl::now))
        .returning(Device::as_returning())
        .get_result(conn)
        .await?)
}
