//! Who a token stands for, remembered for a few seconds, so that a request
//! costs no query for its caller.
//!
//! A login token names a user; a device token hashes to a device. Either is
//! looked up in PostgreSQL once, then kept for [`TTL`]. A deactivated user or
//! a revoked device is forgotten at once on the instance that did it, and
//! stops on every other within `TTL`, well inside the contract's 60 s. Only
//! what does not decide money is taken from here: a redemption reads its
//! venue's accreditation afresh, in the database's `redeem` function.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::db::Pool;
use crate::domain::accounts::{self, Account};
use crate::domain::devices::{self, Scanner};
use crate::http::problem::ApiError;

/// How long a caller is believed without asking PostgreSQL again.
pub const TTL: Duration = Duration::from_secs(10);
/// Past this many entries, expired ones are dropped (and, if none expired,
/// all of them): memory stays bounded whatever tokens arrive.
const MAX_ENTRIES: usize = 10_000;

struct Entry<T> {
    value: Option<T>,
    at: Instant,
}

/// Callers by user id and by device token hash. An unknown one is
/// remembered too (as `None`), so a flood of one bad token costs one query.
#[derive(Default)]
pub struct Callers {
    users: RwLock<HashMap<i64, Entry<Account>>>,
    devices: RwLock<HashMap<[u8; 32], Entry<Scanner>>>,
}

impl Callers {
    /// The account of user `id`, active or not, or `None` if there is none.
    pub async fn account(&self, pool: &Pool, id: i64) -> Result<Option<Account>, ApiError> {
        if let Some(known) = lookup(&self.users, &id) {
            return Ok(known);
        }
        let mut conn = pool.get().await?;
        let account = accounts::account(&mut conn, id).await?;
        remember(&self.users, id, account.clone());
        Ok(account)
    }

    /// The scanner a device token stands for, unless unknown or revoked.
    pub async fn device(&self, pool: &Pool, token: &str) -> Result<Option<Scanner>, ApiError> {
        let key = devices::hash(token);
        if let Some(known) = lookup(&self.devices, &key) {
            return Ok(known);
        }
        let mut conn = pool.get().await?;
        let scanner = devices::authenticate(&mut conn, token).await?;
        remember(&self.devices, key, scanner.clone());
        Ok(scanner)
    }

    /// Forgets a user at once (deactivated, or changed).
    pub fn forget_user(&self, id: i64) {
        if let Ok(mut users) = self.users.write() {
            users.remove(&id);
        }
    }

    /// Forgets a device at once (revoked).
    pub fn forget_device(&self, id: i64) {
        if let Ok(mut devices) = self.devices.write() {
            devices.retain(|_, e| e.value.as_ref().and_then(|s| s.device_id) != Some(id));
        }
    }
}

fn lookup<K: std::hash::Hash + Eq, T: Clone>(
    map: &RwLock<HashMap<K, Entry<T>>>,
    key: &K,
) -> Option<Option<T>> {
    let map = map.read().ok()?;
    map.get(key)
        .filter(|e| e.at.elapsed() < TTL)
        .map(|e| e.value.clone())
}

fn remember<K: std::hash::Hash + Eq, T>(
    map: &RwLock<HashMap<K, Entry<T>>>,
    key: K,
    value: Option<T>,
) {
    let Ok(mut map) = map.write() else { return };
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, e| e.at.elapsed() < TTL);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
    }
    map.insert(
        key,
        Entry {
            value,
            at: Instant::now(),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_map_stays_bounded() {
        let map: RwLock<HashMap<i64, Entry<u8>>> = RwLock::default();
        remember(&map, 1, Some(7));
        assert_eq!(lookup(&map, &1), Some(Some(7)));
        remember(&map, 2, None);
        assert_eq!(lookup(&map, &2), Some(None));
        assert_eq!(lookup(&map, &3), None);
        map.write().unwrap().get_mut(&1).unwrap().at = Instant::now() - TTL;
        assert_eq!(lookup(&map, &1), None, "expired");
        for i in 0..(MAX_ENTRIES as i64 + 5) {
            remember(&map, 100 + i, Some(1));
        }
        assert!(map.read().unwrap().len() <= MAX_ENTRIES);
    }
}
