//! Programmes and allocations: a funder's budget, shared out between issuers.
//! Every limit is a database constraint checked in the writing transaction.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bounds::MAX_CENTS;
use super::organisations::{self, validation};
use crate::auth::Role;
use crate::db::schema::{allocations, programs, redemptions, vouchers};
use crate::geo::Communes;
use crate::http::problem::{ApiError, FieldError, ProblemType};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Territory {
    /// Département codes: "67", "2A", "971"…
    #[schema(schema_with = crate::http::openapi::departement_codes)]
    pub departements: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProgram {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(minimum = 1, maximum = 100_000_000_000i64)]
    pub face_value_cents: i64,
    #[schema(minimum = 0, maximum = 100_000_000_000i64)]
    pub budget_cents: i64,
    /// Last day books may be issued, inclusive.
    #[serde(deserialize_with = "super::bounds::date")]
    #[schema(pattern = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub issue_until: NaiveDate,
    #[schema(minimum = 1, maximum = 3650)]
    pub voucher_validity_days: i32,
    pub territory: Territory,
    /// IANA time zone of every calendar date of the programme (default Europe/Paris).
    #[schema(schema_with = crate::http::openapi::time_zones)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = programs)]
pub struct ProgramRow {
    pub id: i32,
    pub funder_organisation_id: i64,
    pub name: String,
    pub face_value_cents: i64,
    pub budget_cents: i64,
    pub issue_until: NaiveDate,
    pub voucher_validity_days: i32,
    pub territory: Vec<String>,
    pub time_zone: String,
    pub allocated_vouchers: i64,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ProgramRow {
    /// The programme's time zone; the column only ever holds valid names.
    pub fn tz(&self) -> Tz {
        self.time_zone
            .parse()
            .unwrap_or(super::paris::DEFAULT_TIME_ZONE)
    }

    pub fn today(&self) -> NaiveDate {
        super::paris::today_in(self.tz())
    }

    /// The day it was created, in its time zone: where its first statement starts.
    pub fn first_day(&self) -> NaiveDate {
        self.created_at.with_timezone(&self.tz()).date_naive()
    }
}

/// A programme as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Program {
    pub id: i32,
    pub funder_organisation_id: i64,
    pub name: String,
    pub face_value_cents: i64,
    pub budget_cents: i64,
    pub issue_until: NaiveDate,
    pub voucher_validity_days: i32,
    pub territory: TerritoryOut,
    pub time_zone: String,
    /// Vouchers allocated to issuers, times the face value.
    pub allocated_cents: i64,
    /// Face value of the vouchers issued; a replacement voucher is not counted twice.
    pub committed_cents: i64,
    pub redeemed_cents: i64,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TerritoryOut {
    pub departements: Vec<String>,
}

#[derive(Debug, Serialize, Queryable, Selectable, ToSchema)]
#[diesel(table_name = allocations)]
pub struct Allocation {
    pub id: i64,
    pub program_id: i32,
    pub issuer_organisation_id: i64,
    /// Vouchers the issuer may hand out in all.
    pub vouchers: i32,
    pub used_vouchers: i32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAllocation {
    pub issuer_organisation_id: i64,
    /// Vouchers added to the issuer's allocation.
    #[schema(minimum = 1)]
    pub vouchers: i32,
}

fn check_program(new: &NewProgram) -> Result<(Vec<String>, Tz), ApiError> {
    let mut errors = Vec::new();
    let mut fail = |field: &str, message: &str| {
        errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        })
    };
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        fail("name", "the name must be 1 to 200 characters");
    }
    if !(1..=MAX_CENTS).contains(&new.face_value_cents) {
        fail(
            "face_value_cents",
            "the face value is 1 to 100000000000 cents",
        );
    }
    if !(0..=MAX_CENTS).contains(&new.budget_cents) {
        fail("budget_cents", "the budget is 0 to 100000000000 cents");
    }
    if !(1..=3650).contains(&new.voucher_validity_days) {
        fail("voucher_validity_days", "vouchers are valid 1 to 3650 days");
    }
    let communes = Communes::shared();
    let mut territory: Vec<String> = new
        .territory
        .departements
        .iter()
        .map(|d| d.trim().to_uppercase())
        .collect();
    territory.sort();
    territory.dedup();
    if territory.is_empty() {
        fail("territory.departements", "name at least one département");
    }
    if let Some(bad) = territory.iter().find(|d| !communes.is_departement_code(d)) {
        let message = format!("{bad:?} is not a département code");
        fail("territory.departements", &message);
    }
    let tz = match new.time_zone.as_deref() {
        None => super::paris::DEFAULT_TIME_ZONE,
        Some(name) => match name.parse::<Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                fail(
                    "time_zone",
                    "not an IANA time zone name (e.g. Europe/Paris, America/Cayenne)",
                );
                super::paris::DEFAULT_TIME_ZONE
            }
        },
    };
    if new.issue_until < super::paris::today_in(tz) {
        fail("issue_until", "the last issue date is in the past");
    }
    if errors.is_empty() {
        Ok((territory, tz))
    } else {
        Err(validation(errors))
    }
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    funder_id: i64,
    new: NewProgram,
) -> Result<Program, ApiError> {
    let (territory, tz) = check_program(&new)?;
    let row: ProgramRow = diesel::insert_into(programs::table)
        .values((
            programs::funder_organisation_id.eq(funder_id),
            programs::name.eq(new.name.trim()),
            programs::face_value_cents.eq(new.face_value_cents),
            programs::budget_cents.eq(new.budget_cents),
            programs::issue_until.eq(new.issue_until),
            programs::voucher_validity_days.eq(new.voucher_validity_days),
            programs::territory.eq(territory),
            programs::time_zone.eq(tz.name()),
        ))
        .returning(ProgramRow::as_returning())
        .get_result(conn)
        .await?;
    present(conn, row).await
}

/// Who may see a programme: its funder, and issuers with an allocation in it.
pub async fn find_visible(
    conn: &mut AsyncPgConnection,
    id: i32,
    role: Role,
    org: i64,
) -> Result<ProgramRow, ApiError> {
    let row: Option<ProgramRow> = programs::table
        .find(id)
        .select(ProgramRow::as_select())
        .first(conn)
        .await
        .optional()?;
    let not_found = || ApiError::not_found(format!("No programme {id}."));
    let row = row.ok_or_else(not_found)?;
    let visible = match role {
        Role::Funder => row.funder_organisation_id == org,
        Role::Issuer => has_allocation(conn, id, org).await?,
        _ => false,
    };
    if visible {
        Ok(row)
    } else {
        Err(not_found())
    }
}

/// Whether `funder` runs programme `program`.
pub async fn runs(conn: &mut AsyncPgConnection, program: i32, funder: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        programs::table
            .filter(programs::id.eq(program))
            .filter(programs::funder_organisation_id.eq(funder)),
    ))
    .get_result(conn)
    .await
}

/// The programme if `funder` runs it, else not found.
pub async fn find_own(
    conn: &mut AsyncPgConnection,
    id: i32,
    funder: i64,
) -> Result<ProgramRow, ApiError> {
    find_visible(conn, id, Role::Funder, funder).await
}

/// An issuer's allocation in a programme, if it has one.
pub async fn allocation(
    conn: &mut AsyncPgConnection,
    program: i32,
    issuer: i64,
) -> Result<Option<Allocation>, ApiError> {
    Ok(allocations::table
        .filter(allocations::program_id.eq(program))
        .filter(allocations::issuer_organisation_id.eq(issuer))
        .select(Allocation::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The allocations of a programme, with each issuer's name, by name.
pub async fn allocations_of(
    conn: &mut AsyncPgConnection,
    program: i32,
) -> Result<Vec<(Allocation, String)>, ApiError> {
    use crate::db::schema::organisations;
    Ok(allocations::table
        .inner_join(
            organisations::table.on(organisations::id.eq(allocations::issuer_organisation_id)),
        )
        .filter(allocations::program_id.eq(program))
        .select((Allocation::as_select(), organisations::name))
        .order(organisations::name)
        .load(conn)
        .await?)
}

async fn has_allocation(
    conn: &mut AsyncPgConnection,
    program: i32,
    issuer: i64,
) -> Result<bool, ApiError> {
    Ok(diesel::select(diesel::dsl::exists(
        allocations::table
            .filter(allocations::program_id.eq(program))
            .filter(allocations::issuer_organisation_id.eq(issuer)),
    ))
    .get_result(conn)
    .await?)
}

/// The programmes a funder runs, or an issuer has an allocation in, by id.
pub async fn list(
    conn: &mut AsyncPgConnection,
    role: Role,
    org: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<Program>, ApiError> {
    let after = i32::try_from(after).unwrap_or(i32::MAX);
    let mut query = programs::table
        .select(ProgramRow::as_select())
        .filter(programs::id.gt(after))
        .order(programs::id)
        .limit(limit)
        .into_boxed();
    query = match role {
        Role::Funder => query.filter(programs::funder_organisation_id.eq(org)),
        _ => query.filter(
            programs::id.eq_any(
                allocations::table
                    .filter(allocations::issuer_organisation_id.eq(org))
                    .select(allocations::program_id),
            ),
        ),
    };
    let rows = query.load(conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(present(conn, row).await?);
    }
    Ok(out)
}

/// Adds the live figures to a programme row.
pub async fn present(conn: &mut AsyncPgConnection, row: ProgramRow) -> Result<Program, ApiError> {
    // A replacement voucher stands for the one it replaces: counted once.
    let committed: i64 = vouchers::table
        .filter(vouchers::program_id.eq(row.id))
        .filter(vouchers::replaces_voucher_id.is_null())
        .select(sum_cents())
        .first(conn)
        .await?;
    // Paid or payable: neither cancelled by the venue nor reversed by the funder.
    let redeemed: i64 = redemptions::table
        .filter(redemptions::program_id.eq(row.id))
        .filter(redemptions::cancelled_at.is_null())
        .filter(redemptions::reversed_at.is_null())
        .select(sum_cents())
        .first(conn)
        .await?;
    Ok(Program {
        id: row.id,
        funder_organisation_id: row.funder_organisation_id,
        allocated_cents: row.allocated_vouchers * row.face_value_cents,
        committed_cents: committed,
        redeemed_cents: redeemed,
        name: row.name,
        face_value_cents: row.face_value_cents,
        budget_cents: row.budget_cents,
        issue_until: row.issue_until,
        voucher_validity_days: row.voucher_validity_days,
        territory: TerritoryOut {
            departements: row.territory,
        },
        time_zone: row.time_zone,
        closed_at: row.closed_at,
        created_at: row.created_at,
    })
}

/// `SUM(face_value_cents)` as cents: diesel would sum a BIGINT as NUMERIC.
fn sum_cents() -> diesel::expression::SqlLiteral<diesel::sql_types::BigInt> {
    diesel::dsl::sql("COALESCE(SUM(face_value_cents), 0)::bigint")
}

/// Gives an issuer more vouchers of a programme, within its budget.
pub async fn allocate(
    conn: &mut AsyncPgConnection,
    program: &ProgramRow,
    new: NewAllocation,
) -> Result<Allocation, ApiError> {
    if new.vouchers <= 0 {
        return Err(ApiError::invalid_field(
            "vouchers",
            "allocate a positive number of vouchers",
        ));
    }
    let not_an_issuer = || {
        ApiError::invalid_field(
            "issuer_organisation_id",
            "no issuing organisation has this id",
        )
    };
    let issuer = match organisations::find(conn, new.issuer_organisation_id).await {
        Ok(org) if org.role() == Role::Issuer => org,
        Ok(_) => return Err(not_an_issuer()),
        Err(e) if e.kind == ProblemType::NotFound => return Err(not_an_issuer()),
        Err(e) => return Err(e),
    };
    if program.closed_at.is_some() {
        return Err(ApiError::new(
            ProblemType::ProgramClosed,
            "The programme is closed.",
        ));
    }
    let program_id = program.id;
    let vouchers = new.vouchers;
    conn.transaction::<_, ApiError, _>(async |conn| {
        // The programme row's CHECK holds the budget; its lock orders rivals.
        diesel::update(programs::table.find(program_id))
            .set(
                programs::allocated_vouchers.eq(programs::allocated_vouchers + i64::from(vouchers)),
            )
            .execute(conn)
            .await
            .map_err(|e| {
                constraint(
                    e,
                    "programs_within_budget",
                    ProblemType::BudgetExceeded,
                    "The allocation would exceed the programme's budget.",
                )
            })?;
        Ok(diesel::insert_into(allocations::table)
            .values((
                allocations::program_id.eq(program_id),
                allocations::issuer_organisation_id.eq(issuer.id),
                allocations::vouchers.eq(vouchers),
            ))
            .on_conflict((allocations::program_id, allocations::issuer_organisation_id))
            .do_update()
            .set(allocations::vouchers.eq(allocations::vouchers + vouchers))
            .returning(Allocation::as_returning())
            .get_result(conn)
            .await?)
    })
    .await
}

/// Closes a programme: no more issuing, and its vouchers are refused.
pub async fn close(
    conn: &mut AsyncPgConnection,
    program: &ProgramRow,
) -> Result<Program, ApiError> {
    let id = program.id;
    let row = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row: ProgramRow = diesel::update(programs::table.find(id))
                .set(programs::closed_at.eq(diesel::dsl::now))
                .filter(programs::closed_at.is_null())
                .returning(ProgramRow::as_returning())
                .get_result(conn)
                .await
                .optional()?
                .ok_or_else(|| {
                    ApiError::new(ProblemType::Conflict, "The programme is already closed.")
                })?;
            super::sync::record(conn, "closed_program", Some(id), None, None).await?;
            Ok(row)
        })
        .await?;
    present(conn, row).await
}

/// Maps the violation of the named CHECK constraint to a problem.
pub fn constraint(
    e: diesel::result::Error,
    name: &str,
    kind: ProblemType,
    detail: &str,
) -> ApiError {
    match &e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::CheckViolation,
            info,
        ) if info.constraint_name() == Some(name) => ApiError::new(kind, detail),
        _ => e.into(),
    }
}
