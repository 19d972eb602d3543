//! Password hashing with argon2id (the crate's defaults follow OWASP's advice).

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 10;
/// The longest: enough for any passphrase, and a bound on what a login carries.
pub const MAX_LENGTH: usize = 1024;

pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks `password` against a stored hash. With no hash (an unknown email),
/// a dummy one is checked all the same, so both answers take as long.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let stored = stored.unwrap_or(DUMMY_HASH);
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && stored != DUMMY_HASH
}

/// Password work of a server, behind a bounded queue. Each argon2id hash or
/// check takes a 19 MiB block and tens of milliseconds of a core, so a few
/// run at a time on the blocking pool, one core is left to everything else,
/// and a burst of logins waits here holding no database connection. Once
/// every place is taken, a login is told at once to come back (`enter`)
/// rather than piling up.
pub struct PasswordQueue {
    workers: usize,
    running: Arc<Semaphore>,
    places: Arc<Semaphore>,
}

/// A place in the queue, taken by `enter` and given back when dropped.
pub struct Place {
    _permit: OwnedSemaphorePermit,
}

/// Places per worker: at tens of milliseconds a check, the last in line
/// waits about a second and a half.
const PLACES_PER_WORKER: usize = 32;

impl PasswordQueue {
    pub fn new(workers: usize, places: usize) -> Self {
        let workers = workers.max(1);
        PasswordQueue {
            workers,
            running: Arc::new(Semaphore::new(workers)),
            places: Arc::new(Semaphore::new(places.max(workers))),
        }
    }

    /// One worker per core but one (at least one), 32 places each.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = cores.saturating_sub(1).max(1);
        PasswordQueue::new(workers, workers * PLACES_PER_WORKER)
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Whether every place is taken.
    pub fn is_full(&self) -> bool {
        self.places.available_permits() == 0
    }

    /// A place in the queue, or `None` when it is full.
    pub fn enter(&self) -> Option<Place> {
        self.places
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|permit| Place { _permit: permit })
    }

    /// Runs `work` on the blocking pool when a worker is free.
    pub async fn run<T: Send + 'static>(
        &self,
        place: Place,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        // The semaphore is never closed, so a permit always comes.
        let _worker = self.running.acquire().await.ok();
        let done = tokio::task::spawn_blocking(work).await;
        drop(place);
        done
    }
}

/// An argon2id hash of a random password nobody knows, with the default cost.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Vh0eLcrfD3R5d5q8Wq2bY9rVd7b7o2rQ3nV6mVbq1Ck";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(&h)));
        assert!(!verify("correct horse batterY", Some(&h)));
        assert!(!verify("anything", None));
        assert!(!verify("anything", Some("not a hash")));
    }

    #[test]
    fn the_dummy_hash_parses_with_the_default_cost() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let params = argon2::Params::try_from(&parsed).unwrap();
        assert_eq!(params.m_cost(), argon2::Params::DEFAULT_M_COST);
        assert_eq!(params.t_cost(), argon2::Params::DEFAULT_T_COST);
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_turns_newcomers_away_and_frees_places_as_work_ends() {
        let queue = PasswordQueue::new(1, 3);
        let places: Vec<Place> = std::iter::from_fn(|| queue.enter()).collect();
        assert_eq!(places.len(), 3);
        assert!(queue.enter().is_none());
        for place in places {
            assert_eq!(queue.run(place, || 2 + 2).await.unwrap(), 4);
        }
        assert!(queue.enter().is_some());
    }
}
