//! Login throttling, counted in PostgreSQL so every instance sees the same
//! attempts, per account (its e-mail) and per client address.
//!
//! The first failures are free. After them each attempt waits longer since
//! the last failure (5 s, 10 s, 20 s …, at most 15 minutes for an account and
//! one minute for an address): nobody is locked out, however many guesses
//! others made, and a guesser gets a handful of tries an hour. Failures are
//! forgotten after an hour without one.
//!
//! An attempt is counted as a failure when it is admitted, in the one
//! statement that decides, before its password is checked: concurrent
//! guesses cannot slip past the limit. A success takes it back.
//!
//! A flood must not take the database from everyone else: logins use a few
//! connections at a time (`Throttle::database_slot`), and an instance
//! remembers the waits the database gave it, so an account or an address
//! told to wait is refused again without asking the database (the database
//! would say the same: nothing can change its count before the wait ends).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::sql_types::{Double, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Failures an account may have before attempts wait.
pub const FREE_PER_EMAIL: i32 = 5;
/// Failures a client address may have before its attempts wait: an office
/// behind one address makes typos too.
pub const FREE_PER_CLIENT: i32 = 30;
/// The wait after the first failure past the free ones; it doubles after each.
pub const FIRST_WAIT_SECS: i32 = 5;
pub const MAX_WAIT_PER_EMAIL_SECS: i32 = 15 * 60;
pub const MAX_WAIT_PER_CLIENT_SECS: i32 = 60;
/// Failures older than this (since the last one) are forgotten.
pub const FORGET_AFTER_SECS: i32 = 60 * 60;

/// Whether an attempt may check its password now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead: the attempt is counted as a failure until it succeeds.
    Admitted,
    /// Wait this long first.
    Wait { secs: u64 },
}

#[derive(QueryableByName)]
struct Verdict {
    #[diesel(sql_type = Double)]
    client_wait: f64,
    #[diesel(sql_type = Double)]
    email_wait: f64,
}

/// Waits remembered at most, so a flood of made-up addresses cannot grow
/// an instance's memory: past it, the database is asked again.
const MAX_REMEMBERED: usize = 10_000;

/// An instance's share of throttling: the database connections logins may
/// hold at once, and the waits the database gave lately.
pub struct Throttle {
    slots: Semaphore,
    slot_timeout: Duration,
    waits: Mutex<HashMap<String, Instant>>,
}

impl Throttle {
    /// `database_slots`: connections logins may hold at once, a slot waited
    /// for up to `slot_timeout` (the pool's own timeout).
    pub fn new(database_slots: usize, slot_timeout: Duration) -> Self {
        Throttle {
            slots: Semaphore::new(database_slots.max(1)),
            slot_timeout,
            waits: Mutex::new(HashMap::new()),
        }
    }

    /// For a pool of `pool_size`: logins hold a quarter of it at most, so a
    /// flood leaves the rest to everyone else.
    pub fn for_pool(pool_size: usize, timeout: Duration) -> Self {
        Throttle::new(pool_size / 4, timeout)
    }

    /// How long `email` or `client` must still wait, as the database said.
    pub fn known_wait(&self, email: &str, client: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let waits = self.waits.lock().ok()?;
        [key("email", email), key("client", &client.to_string())]
            .iter()
            .filter_map(|k| waits.get(k))
            .filter(|until| **until > now)
            .map(|until| (*until - now).as_secs_f64().ceil() as u64)
            .max()
    }

    /// One of the few database connections logins may hold at once, waited
    /// for (holding nothing meanwhile) as long as the pool would be.
    pub async fn database_slot(&self) -> Option<SemaphorePermit<'_>> {
        tokio::time::timeout(self.slot_timeout, self.slots.acquire())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Admits an attempt for `email` from `client`, counting it, or says how
    /// long to wait; nothing is counted then, and the wait is remembered.
    pub async fn admit(
        &self,
        conn: &mut AsyncPgConnection,
        email: &str,
        client: IpAddr,
    ) -> diesel::QueryResult<Admission> {
        let client = client.to_string();
        let verdict = decide(conn, email, &client).await?;
        let wait = verdict.client_wait.max(verdict.email_wait);
        if wait <= 0.0 {
            return Ok(Admission::Admitted);
        }
        self.remember(&[
            (key("client", &client), verdict.client_wait),
            (key("email", email), verdict.email_wait),
        ]);
        Ok(Admission::Wait {
            secs: wait.ceil() as u64,
        })
    }

    fn remember(&self, waits: &[(String, f64)]) {
        let Ok(mut remembered) = self.waits.lock() else {
            return;
        };
        let now = Instant::now();
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, until| *until > now);
        }
        for (key, secs) in waits.iter().filter(|(_, secs)| *secs > 0.0) {
            if remembered.len() < MAX_REMEMBERED || remembered.contains_key(key) {
                remembered.insert(key.clone(), now + Duration::from_secs_f64(*secs));
            }
        }
    }
}

fn key(scope: &str, value: &str) -> String {
    format!("{scope}:{value}")
}

/// The deciding statement, with the wait of each key.
async fn decide(
    conn: &mut AsyncPgConnection,
    email: &str,
    client: &str,
) -> diesel::QueryResult<Verdict> {
    // The rows exist first, so the deciding statement can lock both.
    diesel::sql_query(
        "INSERT INTO login_throttle (scope, key) VALUES ('client', $1), ('email', $2)
         ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(client)
    .bind::<Text, _>(email)
    .execute(conn)
    .await?;
    // Locked in one order (client, then email) by every attempt: a rival
    // waits here and then sees the count this one left.
    diesel::sql_query(
        "WITH current AS (
             SELECT scope, key, last_failure_at,
                    CASE WHEN last_failure_at < now() - make_interval(secs => $3) THEN 0
                         ELSE failures END AS failures,
                    CASE scope WHEN 'email' THEN $4 ELSE $5 END AS free,
                    CASE scope WHEN 'email' THEN $6 ELSE $7 END AS max_wait
               FROM login_throttle
              WHERE (scope = 'client' AND key = $1) OR (scope = 'email' AND key = $2)
              ORDER BY scope, key
                FOR UPDATE
         ), waits AS (
             SELECT scope, key, failures,
                    GREATEST(0, EXTRACT(EPOCH FROM last_failure_at - now())::float8
                        + CASE WHEN failures < free THEN 0
                               ELSE LEAST(max_wait, $8 * 2 ^ LEAST(failures - free, 30)) END) AS wait
               FROM current
         ), verdict AS (
             SELECT COALESCE(max(wait), 0) AS wait FROM waits
         ), counted AS (
             UPDATE login_throttle t SET failures = w.failures + 1, last_failure_at = now()
               FROM waits w
              WHERE (SELECT wait FROM verdict) = 0 AND t.scope = w.scope AND t.key = w.key
             RETURNING 1
         )
         SELECT COALESCE(max(wait) FILTER (WHERE scope = 'client'), 0) AS client_wait,
                COALESCE(max(wait) FILTER (WHERE scope = 'email'), 0) AS email_wait
           FROM waits",
    )
    .bind::<Text, _>(client)
    .bind::<Text, _>(email)
    .bind::<diesel::sql_types::Integer, _>(FORGET_AFTER_SECS)
    .bind::<diesel::sql_types::Integer, _>(FREE_PER_EMAIL)
    .bind::<diesel::sql_types::Integer, _>(FREE_PER_CLIENT)
    .bind::<diesel::sql_types::Integer, _>(MAX_WAIT_PER_EMAIL_SECS)
    .bind::<diesel::sql_types::Integer, _>(MAX_WAIT_PER_CLIENT_SECS)
    .bind::<diesel::sql_types::Integer, _>(FIRST_WAIT_SECS)
    .get_result(conn)
    .await
}

/// After a success: the account's slate is clean again, and the address
/// gets back the failure its attempt was counted as.
pub async fn succeeded(
    conn: &mut AsyncPgConnection,
    email: &str,
    client: IpAddr,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "WITH account AS (DELETE FROM login_throttle WHERE scope = 'email' AND key = $2)
         UPDATE login_throttle SET failures = GREATEST(failures - 1, 0)
          WHERE scope = 'client' AND key = $1",
    )
    .bind::<Text, _>(client.to_string())
    .bind::<Text, _>(email)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes back the failure an admitted attempt was counted as, when the
/// attempt could not be made after all (the password queue was full).
pub async fn not_made(
    conn: &mut AsyncPgConnection,
    email: &str,
    client: IpAddr,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "UPDATE login_throttle SET failures = GREATEST(failures - 1, 0)
          WHERE (scope = 'client' AND key = $1) OR (scope = 'email' AND key = $2)",
    )
    .bind::<Text, _>(client.to_string())
    .bind::<Text, _>(email)
    .execute(conn)
    .await?;
    Ok(())
}

/// Rows whose failures are forgotten serve nobody (`passnum purge`).
pub async fn forget_old(conn: &mut AsyncPgConnection) -> diesel::QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM login_throttle WHERE last_failure_at < now() - make_interval(secs => $1)",
    )
    .bind::<diesel::sql_types::Integer, _>(FORGET_AFTER_SECS)
    .execute(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_remembered_until_it_ends_for_its_key_only() {
        let throttle = Throttle::new(1, Duration::from_secs(1));
        let (here, there): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        throttle.remember(&[
            (key("client", "192.0.2.1"), 30.0),
            (key("email", "a@b.fr"), 0.0),
        ]);
        assert_eq!(throttle.known_wait("x@b.fr", here), Some(30));
        assert_eq!(throttle.known_wait("a@b.fr", there), None);
        throttle.remember(&[(key("email", "a@b.fr"), 0.001)]);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(throttle.known_wait("a@b.fr", there), None);
    }

    #[test]
    fn remembered_waits_are_bounded() {
        let throttle = Throttle::new(1, Duration::from_secs(1));
        for i in 0..MAX_REMEMBERED + 50 {
            throttle.remember(&[(key("client", &i.to_string()), 60.0)]);
        }
        assert_eq!(throttle.waits.lock().unwrap().len(), MAX_REMEMBERED);
    }
}
