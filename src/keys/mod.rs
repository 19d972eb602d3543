//! The key ring: which kid signs what, shared by every instance through
//! PostgreSQL; private keys as PKCS#8 files in the keys directory, named by kid.
//!
//! Per purpose exactly one key is active (it signs); rotation retires it (it
//! still verifies) and makes a new one active. A voucher key withdrawn after a
//! compromise stops verifying anything. Login-token keys are never published.

mod files;
pub mod jwks;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::db::schema::signing_keys;
use crate::db::Pool;
use crate::voucher::{SignedVoucher, VoucherError};

/// How long an instance trusts its copy of the ring before reading it again.
/// A kid it has never seen is looked up at once.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// A failed signature reloads the ring at most this often (`verify_voucher`).
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// Serialises key generation and rotation across instances.
const KEYRING_LOCK_KEY: i64 = 0x7061_7373_6e75_6d01;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Voucher,
    Statement,
    /// Signs login tokens; never published.
    Login,
    /// Signs the transparency log's checkpoints; published at `/log/key`.
    Log,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [
        Purpose::Voucher,
        Purpose::Statement,
        Purpose::Login,
        Purpose::Log,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Voucher => "voucher",
            Purpose::Statement => "statement",
            Purpose::Login => "login",
            Purpose::Log => "log",
        }
    }
}

impl std::str::FromStr for Purpose {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown key purpose {s:?} (voucher, statement, login or log)"))
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Retired,
    Withdrawn,
}

impl KeyStatus {
    fn parse(s: &str) -> KeyStatus {
        match s {
            "active" => KeyStatus::Active,
            "retired" => KeyStatus::Retired,
            _ => KeyStatus::Withdrawn,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Retired => "retired",
            KeyStatus::Withdrawn => "withdrawn",
        }
    }

    /// Active and retired keys verify; withdrawn ones never again.
    pub fn verifies(self) -> bool {
        self != KeyStatus::Withdrawn
    }
}

/// One key of the ring, public half only.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub kid: u8,
    pub purpose: Purpose,
    pub public_key: VerifyingKey,
    pub status: KeyStatus,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "there is no active {0} key: run `passnum keys generate` once, then deploy the keys \
         directory to every instance (see keys/README.md)"
    )]
    NoActiveKey(Purpose),
    #[error(
        "the active key {kid} has no private key file at {path}: copy the keys directory from \
         the instance that generated it (see keys/README.md)"
    )]
    MissingPrivateKey { kid: u8, path: PathBuf },
    #[error(
        "the private key file {path} can be read by others (mode {mode:o}): run chmod 600 on it"
    )]
    PrivateKeyExposed { path: PathBuf, mode: u32 },
    #[error("the private key file {path} does not hold the public key registered for kid {kid}")]
    KeyMismatch { kid: u8, path: PathBuf },
    #[error("the private key file {path} cannot be read: {reason}")]
    BadPrivateKey { path: PathBuf, reason: String },
    #[error(
        "all 256 kids are taken: each by the active key of a purpose, a key that signed a \
         voucher or a statement, a withdrawn voucher key, or a key retired less than a day \
         ago; no new key can be made now (docs/voucher-format.md, section Keys)"
    )]
    KidsExhausted,
    #[error("no key has kid {0}")]
    UnknownKid(u8),
    #[error("key {0} cannot be withdrawn: only voucher keys are, and only once")]
    NotWithdrawable(u8),
    #[error("the key ring holds an invalid row for kid {0}")]
    CorruptRow(i16),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database unreachable: {0}")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::PoolError),
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
struct KeyRow {
    kid: i16,
    purpose: String,
    public_key: Vec<u8>,
    status: String,
    created_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
    withdrawn_at: Option<DateTime<Utc>>,
}

impl KeyRow {
    fn into_info(self) -> Result<KeyInfo, KeyError> {
        let corrupt = || KeyError::CorruptRow(self.kid);
        let kid = u8::try_from(self.kid).map_err(|_| corrupt())?;
        let purpose = self.purpose.parse().map_err(|_| corrupt())?;
        let bytes: [u8; 32] = self
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| corrupt())?;
        let public_key = VerifyingKey::from_bytes(&bytes).map_err(|_| corrupt())?;
        Ok(KeyInfo {
            kid,
            purpose,
            public_key,
            status: KeyStatus::parse(&self.status),
            created_at: self.created_at,
            retired_at: self.retired_at,
            withdrawn_at: self.withdrawn_at,
        })
    }
}

struct Snapshot {
    keys: Arc<Vec<KeyInfo>>,
    loaded_at: Instant,
}

/// An instance's view of the ring: the public keys (re-read every few seconds)
/// and the private keys it has loaded.
pub struct KeyRing {
    pool: Pool,
    dir: PathBuf,
    snapshot: RwLock<Option<Snapshot>>,
    signers: Mutex<HashMap<u8, SigningKey>>,
}

impl KeyRing {
    pub fn new(pool: Pool, dir: impl Into<PathBuf>) -> Self {
        KeyRing {
            pool,
            dir: dir.into(),
            snapshot: RwLock::new(None),
            signers: Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The start-up check: every purpose has an active key whose private file
    /// is here, matches, and is private. With `generate`, a missing key is
    /// made and registered first (development).
    pub async fn prepare(&self, generate: bool) -> Result<(), KeyError> {
        if generate {
            for (purpose, kid) in self.generate_missing().await? {
                tracing::info!(%purpose, kid, dir = %self.dir.display(), "generated a signing key");
            }
        }
        for purpose in Purpose::ALL {
            self.signer(purpose).await?;
        }
        Ok(())
    }

    /// Makes an active key for every purpose that lacks one; returns them.
    pub async fn generate_missing(&self) -> Result<Vec<(Purpose, u8)>, KeyError> {
        let mut made = Vec::new();
        for purpose in Purpose::ALL {
            if let Some(kid) = self.add_active_key(purpose, false).await? {
                made.push((purpose, kid));
            }
        }
        self.invalidate();
        Ok(made)
    }

    /// Retires the active key of `purpose` and makes a new one active.
    pub async fn rotate(&self, purpose: Purpose) -> Result<u8, KeyError> {
        let kid = self.add_active_key(purpose, true).await?;
        self.invalidate();
        kid.ok_or(KeyError::NoActiveKey(purpose))
    }

    /// Withdraws a compromised voucher key: what it signed stops verifying.
    pub async fn withdraw(&self, kid: u8, reason: &str) -> Result<(), KeyError> {
        let mut conn = self.pool.get().await?;
        let updated = conn
            .transaction::<_, KeyError, _>(async |conn| {
                let updated = diesel::update(
                    signing_keys::table
                        .filter(signing_keys::kid.eq(i16::from(kid)))
                        .filter(signing_keys::purpose.eq(Purpose::Voucher.as_str()))
                        .filter(signing_keys::status.ne(KeyStatus::Withdrawn.as_str())),
                )
                .set((
                    signing_keys::status.eq(KeyStatus::Withdrawn.as_str()),
                    signing_keys::withdrawn_at.eq(diesel::dsl::now),
                    signing_keys::withdrawn_reason.eq(reason),
                ))
                .execute(conn)
                .await?;
                if updated == 1 {
                    // Offline scanners learn it at their next sync.
                    crate::domain::sync::record(
                        conn,
                        "withdrawn_kid",
                        None,
                        None,
                        Some(i16::from(kid)),
                    )
                    .await?;
                }
                Ok(updated)
            })
            .await;
        self.invalidate();
        match updated {
            Ok(1) => Ok(()),
            // Withdrawing the active key leaves the purpose without one until
            // the next rotation, which is what a compromise calls for.
            Ok(_) => match self.all_keys().await?.iter().any(|k| k.kid == kid) {
                true => Err(KeyError::NotWithdrawable(kid)),
                false => Err(KeyError::UnknownKid(kid)),
            },
            Err(e) => Err(e),
        }
    }

    /// Every key, in kid order (cached for a few seconds).
    pub async fn all_keys(&self) -> Result<Arc<Vec<KeyInfo>>, KeyError> {
        if let Some(snapshot) = self
            .snapshot
            .read()
            .ok()
            .as_deref()
            .and_then(Option::as_ref)
        {
            if snapshot.loaded_at.elapsed() < CACHE_TTL {
                return Ok(snapshot.keys.clone());
            }
        }
        self.reload().await
    }

    /// The JWK Set to publish: retired voucher keys stay only while some voucher
    /// they signed can still be redeemed.
    pub async fn published(&self) -> Result<jwks::Jwks, KeyError> {
        use crate::db::schema::vouchers;
        let keys = self.all_keys().await?;
        // Yesterday in Paris: no programme's time zone is a day behind it.
        let oldest_valid_day = crate::domain::paris::today() - chrono::Days::new(1);
        let mut in_use = Vec::new();
        let mut conn = self.pool.get().await?;
        for key in keys
            .iter()
            .filter(|k| k.purpose == Purpose::Voucher && k.status == KeyStatus::Retired)
        {
            let any: bool = diesel::select(diesel::dsl::exists(
                vouchers::table
                    .filter(vouchers::kid.eq(i16::from(key.kid)))
                    .filter(vouchers::expires_on.ge(oldest_valid_day)),
            ))
            .get_result(&mut conn)
            .await?;
            if any {
                in_use.push(key.kid);
            }
        }
        Ok(jwks::published(&keys, |kid| in_use.contains(&kid)))
    }

    /// The public key that verifies objects of `purpose` signed by `kid`, if
    /// that key exists and is not withdrawn. An unseen kid is looked up at once.
    pub async fn verifying_key(
        &self,
        purpose: Purpose,
        kid: u8,
    ) -> Result<Option<VerifyingKey>, KeyError> {
        let find = |keys: &[KeyInfo]| keys.iter().find(|k| k.kid == kid).cloned();
        let mut found = find(&self.all_keys().await?);
        if found.is_none() {
            found = find(&self.reload().await?);
        }
        Ok(found
            .filter(|k| k.purpose == purpose && k.status.verifies())
            .map(|k| k.public_key))
    }

    /// Decodes and verifies a voucher text against the ring. A signature that
    /// fails with the cached key is tried once more with the ring as stored:
    /// another instance may have given the kid of a retired key that signed
    /// nothing to a new key since this one last read the ring.
    pub async fn verify_voucher(
        &self,
        text: &str,
    ) -> Result<Result<SignedVoucher, VoucherError>, KeyError> {
        let kid = match SignedVoucher::parse(text) {
            Ok(voucher) => voucher.body().kid,
            Err(e) => return Ok(Err(VoucherError::Malformed(e))),
        };
        let key = self.verifying_key(Purpose::Voucher, kid).await?;
        let verified = crate::voucher::decode_and_verify(text, |_| key);
        let stale = self
            .snapshot
            .read()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.loaded_at.elapsed() > RECHECK_AFTER))
            .unwrap_or(true);
        if !matches!(verified, Err(VoucherError::InvalidSignature)) || !stale {
            return Ok(verified);
        }
        let fresh = self
            .reload()
            .await?
            .iter()
            .find(|k| k.kid == kid && k.purpose == Purpose::Voucher && k.status.verifies())
            .map(|k| k.public_key);
        if fresh == key {
            return Ok(verified);
        }
        Ok(crate::voucher::decode_and_verify(text, |_| fresh))
    }

    /// The active key of `purpose`, with its private half from the keys directory.
    pub async fn signer(&self, purpose: Purpose) -> Result<(u8, SigningKey), KeyError> {
        let active = self
            .all_keys()
            .await?
            .iter()
            .find(|k| k.purpose == purpose && k.status == KeyStatus::Active)
            .cloned();
        let active = match active {
            Some(key) => key,
            // Another instance may have rotated a moment ago.
            None => self
                .reload()
                .await?
                .iter()
                .find(|k| k.purpose == purpose && k.status == KeyStatus::Active)
                .cloned()
                .ok_or(KeyError::NoActiveKey(purpose))?,
        };
        if let Some(key) = self
            .signers
            .lock()
            .ok()
            .and_then(|s| s.get(&active.kid).cloned())
        {
            return Ok((active.kid, key));
        }
        let key = files::read(&self.dir, active.kid)?;
        if key.verifying_key() != active.public_key {
            return Err(KeyError::KeyMismatch {
                kid: active.kid,
                path: files::path_for(&self.dir, active.kid),
            });
        }
        if let Ok(mut signers) = self.signers.lock() {
            signers.insert(active.kid, key.clone());
        }
        Ok((active.kid, key))
    }

    /// The active key of `purpose` first, then each retired one whose
    /// private file is still here: the log's checkpoints carry a signature
    /// by each, so that verifiers that kept the previous key keep verifying
    /// after a rotation.
    pub async fn signers(&self, purpose: Purpose) -> Result<Vec<(u8, SigningKey)>, KeyError> {
        let mut out = vec![self.signer(purpose).await?];
        for key in self
            .all_keys()
            .await?
            .iter()
            .filter(|k| k.purpose == purpose && k.status == KeyStatus::Retired)
        {
            let cached = self
                .signers
                .lock()
                .ok()
                .and_then(|s| s.get(&key.kid).cloned());
            let private = match cached {
                Some(private) => private,
                None => match files::read(&self.dir, key.kid) {
                    Ok(private) if private.verifying_key() == key.public_key => {
                        if let Ok(mut signers) = self.signers.lock() {
                            signers.insert(key.kid, private.clone());
                        }
                        private
                    }
                    _ => continue,
                },
            };
            out.push((key.kid, private));
        }
        Ok(out)
    }

    fn invalidate(&self) {
        if let Ok(mut snapshot) = self.snapshot.write() {
            *snapshot = None;
        }
    }

    async fn reload(&self) -> Result<Arc<Vec<KeyInfo>>, KeyError> {
        let mut conn = self.pool.get().await?;
        let rows: Vec<KeyRow> = signing_keys::table
            .select(KeyRow::as_select())
            .order(signing_keys::kid)
            .load(&mut conn)
            .await?;
        let keys = Arc::new(
            rows.into_iter()
                .map(KeyRow::into_info)
                .collect::<Result<Vec<_>, _>>()?,
        );
        if let Ok(mut snapshot) = self.snapshot.write() {
            *snapshot = Some(Snapshot {
                keys: keys.clone(),
                loaded_at: Instant::now(),
            });
        }
        Ok(keys)
    }

    /// Adds a new active key of `purpose`, in one transaction under the ring's
    /// advisory lock. Without `replace`, does nothing when one is active
    /// already; with it, retires the active one. The private file is written
    /// before the commit, so a registered key always has its file.
    async fn add_active_key(
        &self,
        purpose: Purpose,
        replace: bool,
    ) -> Result<Option<u8>, KeyError> {
        let mut conn = self.pool.get().await?;
        let dir = self.dir.clone();
        let mut written: Option<u8> = None;
        let written_ref = &mut written;
        let outcome = conn
            .transaction::<_, KeyError, _>(async |conn| {
                diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                    .bind::<diesel::sql_types::BigInt, _>(KEYRING_LOCK_KEY)
                    .execute(conn)
                    .await?;
                let kids: Vec<(i16, String, String)> = signing_keys::table
                    .select((
                        signing_keys::kid,
                        signing_keys::purpose,
                        signing_keys::status,
                    ))
                    .load(conn)
                    .await?;
                let has_active = kids
                    .iter()
                    .any(|(_, p, s)| p == purpose.as_str() && s == KeyStatus::Active.as_str());
                if has_active && !replace {
                    return Ok(None);
                }
                let fresh = next_kid(kids.iter().map(|(kid, _, _)| *kid), |kid| {
                    files::path_for(&dir, kid).exists()
                });
                let kid = match fresh {
                    Err(KeyError::KidsExhausted) => reuse_kid(conn, &dir).await?,
                    other => other?,
                };
                if replace {
                    retire_active(conn, purpose).await?;
                }
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                files::write(&dir, kid, &key)?;
                *written_ref = Some(kid);
                diesel::insert_into(signing_keys::table)
                    .values((
                        signing_keys::kid.eq(i16::from(kid)),
                        signing_keys::purpose.eq(purpose.as_str()),
                        signing_keys::public_key.eq(key.verifying_key().to_bytes().to_vec()),
                        signing_keys::status.eq(KeyStatus::Active.as_str()),
                    ))
                    .execute(conn)
                    .await?;
                Ok(Some(kid))
            })
            .await;
        if outcome.is_err() {
            if let Some(kid) = written {
                files::discard(&self.dir, kid);
            }
        }
        outcome
    }
}

async fn retire_active(conn: &mut AsyncPgConnection, purpose: Purpose) -> Result<(), KeyError> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::purpose.eq(purpose.as_str()))
            .filter(signing_keys::status.eq(KeyStatus::Active.as_str())),
    )
    .set((
        signing_keys::status.eq(KeyStatus::Retired.as_str()),
        signing_keys::retired_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// A retired key's kid is free again this long after it retired, if nothing
/// refers to it: by then every scanner phone online has fetched the JWK Set
/// again (it does at each sync, every three minutes) and forgotten the old
/// key, so none judges a new voucher with it.
pub const REUSE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Frees the kid of the retired key that no voucher and no statement refers
/// to (the one retired longest ago, a day ago at least), for a new key: its
/// row and its private file go. A kid that signed something never changes
/// meaning, and foreign keys hold that in the database too; a withdrawn kid
/// is never reused, as offline scanners keep refusing it for good. See
/// docs/voucher-format.md.
async fn reuse_kid(conn: &mut AsyncPgConnection, dir: &Path) -> Result<u8, KeyError> {
    use crate::db::schema::{statements, vouchers};
    use diesel::dsl::{exists, not};
    let retired_before =
        Utc::now() - chrono::Duration::from_std(REUSE_AFTER).unwrap_or(chrono::Duration::days(1));
    let kid: i16 = signing_keys::table
        .filter(signing_keys::status.eq(KeyStatus::Retired.as_str()))
        .filter(signing_keys::retired_at.lt(retired_before))
        .filter(not(exists(
            vouchers::table.filter(vouchers::kid.eq(signing_keys::kid)),
        )))
        .filter(not(exists(
            statements::table.filter(statements::kid.eq(signing_keys::kid)),
        )))
        .order((signing_keys::retired_at.asc(), signing_keys::kid.asc()))
        .select(signing_keys::kid)
        .first(conn)
        .await
        .optional()?
        .ok_or(KeyError::KidsExhausted)?;
    diesel::delete(signing_keys::table.find(kid))
        .execute(conn)
        .await?;
    let kid = u8::try_from(kid).map_err(|_| KeyError::CorruptRow(kid))?;
    // A retired key never signs again: if the transaction fails after this,
    // the old row comes back without its private half, which it never needs.
    files::discard(dir, kid);
    tracing::info!(kid, "reusing the kid of a retired key that signed nothing");
    Ok(kid)
}

/// A new key takes the next kid after the highest; once 255 is taken,
/// `reuse_kid` frees one. A kid whose private file exists already (left by
/// another database, say after the development data was reset) is skipped,
/// never overwritten.
fn next_kid(
    used: impl Iterator<Item = i16>,
    file_exists: impl Fn(u8) -> bool,
) -> Result<u8, KeyError> {
    let first = used.max().map_or(1, |max| max + 1);
    (first..=255)
        .filter_map(|kid| u8::try_from(kid).ok())
        .find(|kid| {
            let taken = file_exists(*kid);
            if taken {
                tracing::warn!(
                    kid,
                    "a private key file exists for this unregistered kid: skipping the kid"
                );
            }
            !taken
        })
        .ok_or(KeyError::KidsExhausted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kids_follow_the_highest_and_run_out_at_255() {
        let none = |_| false;
        assert_eq!(next_kid([].into_iter(), none).unwrap(), 1);
        assert_eq!(next_kid([1, 3, 2].into_iter(), none).unwrap(), 4);
        assert_eq!(next_kid([254].into_iter(), none).unwrap(), 255);
        assert!(matches!(
            next_kid([255].into_iter(), none),
            Err(KeyError::KidsExhausted)
        ));
        // Stale files from another database are skipped, never overwritten.
        assert_eq!(next_kid([].into_iter(), |kid| kid <= 3).unwrap(), 4);
        assert!(matches!(
            next_kid([250].into_iter(), |_| true),
            Err(KeyError::KidsExhausted)
        ));
    }

    #[test]
    fn purposes_round_trip_through_text() {
        for p in Purpose::ALL {
            assert_eq!(p.as_str().parse::<Purpose>().unwrap(), p);
        }
        assert!("login-token".parse::<Purpose>().is_err());
    }

    #[test]
    fn private_key_files_are_private_and_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let path = files::write(dir.path(), 7, &key).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            files::read(dir.path(), 7).unwrap().to_bytes(),
            key.to_bytes()
        );
        assert!(
            files::write(dir.path(), 7, &key).is_err(),
            "never overwrites"
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = files::read(dir.path(), 7).unwrap_err();
        assert!(
            matches!(err, KeyError::PrivateKeyExposed { mode: 0o644, .. }),
            "{err}"
        );
        assert!(matches!(
            files::read(dir.path(), 8),
            Err(KeyError::MissingPrivateKey { kid: 8, .. })
        ));
    }
}
