//! Users and logging in.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::organisations::{self, Organisation};
use crate::auth::{password, throttle, Role};
use crate::db::schema::{organisations as orgs, users};
use crate::http::problem::{ApiError, ProblemType};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub organisation_id: i64,
    pub email: String,
    #[schema(min_length = 10)]
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

/// Normalises and checks an email address (lower case, one `@`, no spaces).
pub fn normalise_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@') && !domain.starts_with('.') && !domain.ends_with('.'));
    if valid {
        Ok(email)
    } else {
        Err(ApiError::invalid_field(
            "email",
            "this is not an email address",
        ))
    }
}

pub async fn create(conn: &mut AsyncPgConnection, new: NewUser) -> Result<User, ApiError> {
    let email = normalise_email(&new.email)?;
    if new.password.chars().count() < password::MIN_LENGTH {
        return Err(ApiError::invalid_field(
            "password",
            format!(
                "a password has at least {} characters",
                password::MIN_LENGTH
            ),
        ));
    }
    organisations::find(conn, new.organisation_id)
        .await
        .map_err(|_| ApiError::invalid_field("organisation_id", "no such organisation"))?;
    let hash = hash_off_thread(new.password).await?;
    insert(conn, new.organisation_id, &email, &hash).await
}

/// Hashing takes tens of milliseconds of CPU: keep it off the async workers.
pub async fn hash_off_thread(password: String) -> Result<String, ApiError> {
    password::off_thread(move || password::hash(&password))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))
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
/// deactivated user get the same answer; repeated failures are throttled.
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    email: &str,
    password: String,
    client_ip: &str,
) -> Result<Account, ApiError> {
    let email = email.trim().to_lowercase();
    if throttle::is_throttled(conn, &email, client_ip).await? {
        let mut e = ApiError::new(
            ProblemType::RateLimited,
            "Too many failed logins; wait 15 minutes and try again.",
        );
        e.retry_after_secs = Some(throttle::WINDOW.as_secs());
        return Err(e);
    }
    let row: Option<(i64, String, Option<DateTime<Utc>>)> = users::table
        .filter(users::email.eq(&email))
        .select((users::id, users::password_hash, users::deactivated_at))
        .first(conn)
        .await
        .optional()?;
    let stored = row
        .as_ref()
        .filter(|(_, _, deactivated)| deactivated.is_none())
        .map(|(_, hash, _)| hash.clone());
    let ok = password::off_thread(move || password::verify(&password, stored.as_deref()))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match (ok, row) {
        (true, Some((id, _, _))) => {
            throttle::forget(conn, &email).await?;
            account(conn, id)
                .await?
                .ok_or_else(|| ApiError::internal("user vanished during login"))
        }
        _ => {
            throttle::record_failure(conn, &email, client_ip).await?;
            Err(ApiError::new(
                ProblemType::Unauthorized,
                "Wrong email or password.",
            ))
        }
    }
}
