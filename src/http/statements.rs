//! Signed statements: funders close periods; venues download their extract.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::json::Body;
use super::problem::ApiError;
use super::query::Query;
use crate::auth::Role;
use crate::domain::programs;
use crate::domain::statements::live::{self, Format, Range};
use crate::domain::statements::{self, CloseRequest, Payment, PaymentRequest, Summary};
use crate::keys::Purpose;
use crate::state::AppState;

/// Closes a period: every payable redemption up to `period_end` not yet on a
/// statement lands on this one, signed whole and per venue.
#[utoipa::path(post, path = "/api/v1/programs/{id}/statements", tag = "statements", request_body = CloseRequest,
    responses((status = 201, body = Summary),
        (status = 409, description = "`conflict`: the statements already run past this day")),
    security(("bearer" = [])))]
pub async fn close(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i32>,
    body: Body<CloseRequest>,
) -> Result<HttpResponse, ApiError> {
    let funder = caller.require(&[Role::Funder])?;
    let mut conn = state.pool.get().await?;
    let program = programs::find_own(&mut conn, *id, funder.organisation.id).await?;
    let request = body.parse()?;
    let signer = state.keys.signer(Purpose::Statement).await?;
    let summary = statements::close(
        &mut conn,
        &program,
        funder.user.id,
        signer,
        request.period_end,
    )
    .await?;
    Ok(HttpResponse::Created().json(summary))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    pub program_id: Option<i32>,
}

/// The funder's statements, or those a venue has an extract on.
#[utoipa::path(get, path = "/api/v1/statements", tag = "statements", params(ListParams),
    responses((status = 200, body = super::pagination::Page<Summary>, description = "Every statement, on one page: `next_cursor` is null")), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Funder, Role::Venue])?;
    let mut conn = state.reader().await?;
    let items = statements::list(
        &mut conn,
        caller.role(),
        caller.organisation_id(),
        params.program_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items, "next_cursor": null})))
}

/// One statement: the whole for its funder, a venue's own extract for a venue.
#[utoipa::path(get, path = "/api/v1/statements/{id}", tag = "statements",
    responses((status = 200, body = Summary)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (mut conn, scope) = readable(&state, &caller, *id).await?;
    Ok(HttpResponse::Ok().json(statements::summary(&mut conn, *id, scope).await?))
}

/// The signed CSV bytes: the whole for its funder, the extract for a venue.
#[utoipa::path(get, path = "/api/v1/statements/{id}/csv", tag = "statements",
    responses((status = 200, content_type = "text/csv", description = "The signed CSV")), security(("bearer" = [])))]
pub async fn csv(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (mut conn, scope) = readable(&state, &caller, *id).await?;
    let bytes = statements::csv_bytes(&mut conn, *id, scope).await?;
    Ok(attachment(
        "text/csv; charset=utf-8",
        &format!("{}.csv", file_stem(*id, scope)),
        bytes,
    ))
}

/// Records that the funder paid one venue its total on a closed statement.
#[utoipa::path(post, path = "/api/v1/statements/{id}/payments", tag = "statements", request_body = PaymentRequest,
    responses((status = 201, body = Payment),
        (status = 409, description = "`conflict`: paid already, or nothing is due to this venue (its total is carried)")),
    security(("bearer" = [])))]
pub async fn pay(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<PaymentRequest>,
) -> Result<HttpResponse, ApiError> {
    let funder = caller.require(&[Role::Funder])?;
    let mut conn = state.pool.get().await?;
    statements::viewer_scope(&mut conn, *id, Role::Funder, funder.organisation.id).await?;
    let program = statements::program_of(&mut conn, *id).await?;
    let request = body.parse()?;
    let payment =
        statements::payments::pay(&mut conn, &program, *id, funder.user.id, request).await?;
    Ok(HttpResponse::Created().json(payment))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RangeParams {
    /// First day, inclusive (default: the programme's first day).
    #[serde(default, deserialize_with = "crate::domain::bounds::optional_date")]
    #[param(pattern = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub from: Option<NaiveDate>,
    /// Last day, inclusive (default: today in the programme's time zone).
    #[serde(default, deserialize_with = "crate::domain::bounds::optional_date")]
    #[param(pattern = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub to: Option<NaiveDate>,
}

/// The live statement: every payable redemption of the range, closed or not,
/// streamed as CSV (`Accept: text/csv`) or JSON.
#[utoipa::path(get, path = "/api/v1/programs/{id}/statement", tag = "statements", params(RangeParams),
    responses((status = 200, description = "JSON (the default): `{program_id, from, to, lines:[…], total_count, total_cents}`; with `Accept: text/csv`, the statement CSV, number column empty",
        content((Object = "application/json"), (String = "text/csv")))),
    security(("bearer" = [])))]
pub async fn live(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i32>,
    params: Query<RangeParams>,
) -> Result<HttpResponse, ApiError> {
    let funder = caller.require(&[Role::Funder])?;
    let org = funder.organisation.id;
    let (conn, program) = super::on_reader(&state, async |conn| {
        programs::find_own(conn, *id, org).await
    })
    .await?;
    let range = Range {
        from: params.from.unwrap_or_else(|| program.first_day()),
        to: params.to.unwrap_or_else(|| program.today()),
    };
    if range.from > range.to {
        return Err(ApiError::invalid_field(
            "from",
            "the range starts on or before its last day",
        ));
    }
    let format = if wants_csv(&req) {
        Format::Csv
    } else {
        Format::Json
    };
    let chunks = live::stream(conn, &program, range, format).await?;
    let mut answer = HttpResponse::Ok();
    match format {
        Format::Csv => answer
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"releve-en-cours-{}-{}-{}.csv\"",
                    program.id, range.from, range.to
                ),
            )),
        Format::Json => answer.content_type("application/json"),
    };
    let body = futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    });
    Ok(answer.streaming(body))
}

/// Whether the client asked for CSV before JSON.
fn wants_csv(req: &HttpRequest) -> bool {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let position = |kind: &str| accept.find(kind);
    match (position("text/csv"), position("application/json")) {
        (Some(csv), Some(json)) => csv < json,
        (csv, _) => csv.is_some(),
    }
}

/// The statement as a PDF in French: the whole for its funder, the extract for a venue.
#[utoipa::path(get, path = "/api/v1/statements/{id}/pdf", tag = "statements",
    responses((status = 200, content_type = "application/pdf", description = "The statement, printable")), security(("bearer" = [])))]
pub async fn pdf(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (mut conn, scope) = readable(&state, &caller, *id).await?;
    let bytes = statements::pdf::render(&mut conn, *id, scope).await?;
    Ok(attachment(
        "application/pdf",
        &format!("{}.pdf", file_stem(*id, scope)),
        bytes,
    ))
}

/// A connection, and which part of statement `id` the caller may read: the
/// whole (`None`, its funder) or a venue's extract. A closed statement never
/// changes, so the standby serves it once it has it.
async fn readable(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(crate::db::Connection, Option<i64>), ApiError> {
    caller.require(&[Role::Funder, Role::Venue])?;
    let (role, org) = (caller.role(), caller.organisation_id());
    super::on_reader(state, async |conn| {
        statements::viewer_scope(conn, id, role, org).await
    })
    .await
}

/// A file to download.
pub fn attachment(content_type: &str, name: &str, bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .body(bytes)
}

/// `releve-12` for the whole, `releve-12-lieu-7` for a venue's extract.
pub fn file_stem(id: i64, venue: Option<i64>) -> String {
    match venue {
        None => format!("releve-{id}"),
        Some(venue) => format!("releve-{id}-lieu-{venue}"),
    }
}
