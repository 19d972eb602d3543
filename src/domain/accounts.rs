//! Users and logging in.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::organisations::{self, Organisation};
use crate::auth::password::{self, PasswordQueue};
use crate::auth::throttle::{self, Admission, Throttle};
use crate::auth::Role;
use crate::db::schema::{organisations as orgs, users};
use crate::db::Pool;
use crate::http::problem::{ApiError, ProblemType};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub organisation_id: i64,
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,15}){0,2}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?){1,3}$"
    )]
    pub email: String,
    #[schema(min_length = 10, max_length = 1024)]
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable, ToSchema)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub organisation_id: i64,
    #[serde(skip)]
    pub deactivated_at: Option<DateTime<Utc>>,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.deactivated_at.is_none()
    }
}

/// Normalises and checks an email address: lower case, at most 254
/// characters, and an address the mailer takes (lettre's rules), so a book
/// can always be sent to it.
pub fn normalise_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@') && !domain.starts_with('.') && !domain.ends_with('.'))
        // What the mailer parses before sending: refused there, it was a 503.
        && email.parse::<lettre::message::Mailbox>().is_ok();
    if valid {
        Ok(email)
    } else {
        Err(ApiError::invalid_field(
            "email",
            "this is not an email address",
        ))
    }
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    passwords: &PasswordQueue,
    new: NewUser,
) -> Result<User, ApiError> {
    let email = normalise_email(&new.email)?;
    let length = new.password.chars().count();
    if !(password::MIN_LENGTH..=password::MAX_LENGTH).contains(&length) {
        return Err(ApiError::invalid_field(
            "password",
            format!(
                "a password has {} to {} characters",
                password::MIN_LENGTH,
                password::MAX_LENGTH
            ),
        ));
    }
    match organisations::find(conn, new.organisation_id).await {
        Err(e) if e.kind == ProblemType::NotFound => {
            return Err(ApiError::invalid_field(
                "organisation_id",
                "no such organisation",
            ))
        }
        other => other?,
    };
    let place = passwords.enter().ok_or_else(busy)?;
    let hash = passwords
        .run(place, move || password::hash(&new.password))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    insert(conn, new.organisation_id, &email, &hash).await
}

/// Hashes a password on a blocking thread, for the one-off commands
/// (`admin create-operator`, the demo seed), which have no queue.
pub async fn hash_off_thread(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))
}

fn rate_limited(secs: u64) -> ApiError {
    let mut e = ApiError::new(
        ProblemType::RateLimited,
        format!("Too many failed logins; wait {secs} seconds and try again."),
    );
    e.retry_after_secs = Some(secs);
    e
}

/// Every place of the password queue is taken: come back in a moment.
fn busy() -> ApiError {
    let mut e = ApiError::unavailable("Too many logins at once; try again in a moment.");
    e.retry_after_secs = Some(1);
    e
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    organisation_id: i64,
    email: &str,
    hash: &str,
) -> Result<User, ApiError> {
    diesel::insert_into(users::table)
        .values((
            users::organisation_id.eq(organisation_id),
            users::email.eq(email),
            users::password_hash.eq(hash),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => ApiError::new(
                ProblemType::Conflict,
                format!("The email {email} is already taken."),
            ),
            other => other.into(),
        })
}

pub async fn find(conn: &mut AsyncPgConnection, id: i64) -> Result<User, ApiError> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found(format!("No user {id}.")))
}

/// The users of an organisation, in id order.
pub async fn of_organisation(
    conn: &mut AsyncPgConnection,
    organisation_id: i64,
) -> Result<Vec<User>, ApiError> {
    Ok(users::table
        .filter(users::organisation_id.eq(organisation_id))
        .select(User::as_select())
        .order(users::id)
        .load(conn)
        .await?)
}

/// Deactivates a user: their tokens stop working at their next request.
pub async fn deactivate(conn: &mut AsyncPgConnection, id: i64) -> Result<User, ApiError> {
    find(conn, id).await?;
    diesel::update(
        users::table
            .find(id)
            .filter(users::deactivated_at.is_null()),
    )
    .set(users::deactivated_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    find(conn, id).await
}

/// A user and their organisation, as a request sees them.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: User,
    pub organisation: Organisation,
}

impl Account {
    pub fn role(&self) -> Role {
        self.organisation.role()
    }
}

pub async fn account(
    conn: &mut AsyncPgConnection,
    user_id: i64,
) -> Result<Option<Account>, ApiError> {
    let row: Option<(User, Organisation)> = users::table
        .inner_join(orgs::table)
        .filter(users::id.eq(user_id))
        .select((User::as_select(), Organisation::as_select()))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|(user, organisation)| Account { user, organisation }))
}

/// Checks an email and password. Unknown email, wrong password and
/// deactivated user get the same answer; failures are throttled. The
/// password is checked holding no database connection: logins waiting for
/// their turn (`PasswordQueue`) leave the pool to everyone else.
pub async fn authenticate(
    pool: &Pool,
    passwords: &PasswordQueue,
    throttle: &Throttle,
    email: &str,
    password: String,
    client: IpAddr,
) -> Result<Account, ApiError> {
    let email = email.trim().to_lowercase();
    if email.is_empty()
        || email.chars().count() > 254
        || password.chars().count() > password::MAX_LENGTH
    {
        return Err(ApiError::new(
            ProblemType::Unauthorized,
            "Wrong email or password.",
        ));
    }
    // A full queue turns a login away before it costs anything (a flood from
    // many addresses), and so does a wait the database gave already (a flood
    // from one address): neither takes a connection.
    if passwords.is_full() {
        return Err(busy());
    }
    if let Some(secs) = throttle.known_wait(&email, client) {
        return Err(rate_limited(secs));
    }
    let (row, place) = {
        let _slot = throttle.database_slot().await.ok_or_else(busy)?;
        let mut conn = pool.get().await?;
        if let Admission::Wait { secs } = throttle.admit(&mut conn, &email, client).await? {
            return Err(rate_limited(secs));
        }
        let Some(place) = passwords.enter() else {
            // Filled meanwhile: the attempt was not made, so it does not count.
            throttle::not_made(&mut conn, &email, client).await?;
            return Err(busy());
        };
        let row: Option<(i64, String, Option<DateTime<Utc>>)> = users::table
            .filter(users::email.eq(&email))
            .select((users::id, users::password_hash, users::deactivated_at))
            .first(&mut conn)
            .await
            .optional()?;
        (row, place)
    };
    let stored = row
        .as_ref()
        .filter(|(_, _, deactivated)| deactivated.is_none())
        .map(|(_, hash, _)| hash.clone());
    let ok = passwords
        .run(place, move || {
            password::verify(&password, stored.as_deref())
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match (ok, row) {
        (true, Some((id, _, _))) => {
            let mut conn = pool.get().await?;
            throttle::succeeded(&mut conn, &email, client).await?;
            account(&mut conn, id)
                .await?
                .ok_or_else(|| ApiError::internal("user vanished during login"))
        }
        _ => Err(ApiError::new(
            ProblemType::Unauthorized,
            "Wrong email or password.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::normalise_email;

    #[test]
    fn an_address_is_one_the_mailer_takes() {
        assert_eq!(
            normalise_email(" Agent.Social@Example.ORG ").unwrap(),
            "agent.social@example.org"
        );
        for bad in [
            "a<b@example.org",
            "a,b@example.org",
            "a\"b@example.org",
            "a@example..org",
            "a b@example.org",
            "@example.org",
            "a@org",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
    }
}
