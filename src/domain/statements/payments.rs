//! Payments: a funder records that it paid a venue its extract of a closed
//! statement. Once per venue, for exactly that venue's total; a total of zero
//! or less is not paid but carried to the venue's next extract.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::programs::ProgramRow;
use crate::db::schema::{statement_extracts, statement_payments, statements};
use crate::http::problem::{ApiError, ProblemType};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub venue_organisation_id: i64,
    /// Exactly the venue's total on the statement.
    #[schema(minimum = 1, maximum = 100_000_000_000i64)]
    pub amount_cents: i64,
    /// The day the transfer was made, in the programme's time zone.
    #[serde(deserialize_with = "crate::domain::bounds::date")]
    #[schema(pattern = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub paid_on: NaiveDate,
    /// The bank's reference of the transfer, 1 to 140 characters (the SEPA limit).
    #[schema(min_length = 1, max_length = 140)]
    pub reference: String,
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable, ToSchema)]
#[diesel(table_name = statement_payments)]
pub struct Payment {
    pub venue_organisation_id: i64,
    pub amount_cents: i64,
    pub paid_on: NaiveDate,
    pub reference: String,
    pub recorded_at: DateTime<Utc>,
}

/// The payments recorded on a statement, by venue.
pub async fn of_statement(
    conn: &mut AsyncPgConnection,
    statement_id: i64,
) -> QueryResult<HashMap<i64, Payment>> {
    let rows: Vec<Payment> = statement_payments::table
        .filter(statement_payments::statement_id.eq(statement_id))
        .select(Payment::as_select())
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|p| (p.venue_organisation_id, p))
        .collect())
}

/// Records a payment of statement `statement_id` (of `program`, whose funder
/// the caller is) to one venue.
pub async fn pay(
    conn: &mut AsyncPgConnection,
    program: &ProgramRow,
    statement_id: i64,
    user_id: i64,
    request: PaymentRequest,
) -> Result<Payment, ApiError> {
    let reference = request.reference.trim();
    if reference.is_empty()
        || reference.chars().count() > 140
        || reference.chars().any(char::is_control)
    {
        return Err(ApiError::invalid_field(
            "reference",
            "the bank reference of the transfer: 1 to 140 characters on one line",
        ));
    }
    crate::domain::bounds::check_cents("amount_cents", request.amount_cents, 1)?;
    let closed_at: DateTime<Utc> = statements::table
        .find(statement_id)
        .select(statements::closed_at)
        .first(conn)
        .await?;
    let closed_on = closed_at.with_timezone(&program.tz()).date_naive();
    if request.paid_on < closed_on || request.paid_on > program.today() {
        return Err(ApiError::invalid_field(
            "paid_on",
            format!("a payment is made between the statement's closing ({closed_on}) and today"),
        ));
    }
    let total: i64 = statement_extracts::table
        .find((statement_id, request.venue_organisation_id))
        .select(statement_extracts::total_cents)
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| {
            ApiError::invalid_field(
                "venue_organisation_id",
                "this venue has no line on this statement",
            )
        })?;
    if total <= 0 {
        return Err(ApiError::new(
            ProblemType::Conflict,
            format!(
                "Nothing is due to this venue on this statement: its total ({total} cents) is carried to its next statement."
            ),
        ));
    }
    if request.amount_cents != total {
        return Err(ApiError::invalid_field(
            "amount_cents",
            format!("must equal the venue's total on this statement, {total} cents"),
        ));
    }
    // The primary key makes it once per venue, even for two funders' clerks at once.
    let payment: Option<Payment> = diesel::insert_into(statement_payments::table)
        .values((
            statement_payments::statement_id.eq(statement_id),
            statement_payments::venue_organisation_id.eq(request.venue_organisation_id),
            statement_payments::amount_cents.eq(total),
            statement_payments::paid_on.eq(request.paid_on),
            statement_payments::reference.eq(reference),
            statement_payments::recorded_by_user_id.eq(user_id),
        ))
        .on_conflict_do_nothing()
        .returning(Payment::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    payment.ok_or_else(|| {
        ApiError::new(
            ProblemType::Conflict,
            "This venue's payment on this statement is already recorded.",
        )
    })
}
