//! Organisations and venue accreditation.

use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::json::Body;
use super::pagination::{Page, PageRequest};
use super::problem::ApiError;
use super::query::Query;
use crate::auth::Role;
use crate::domain::organisations::{self, NewOrganisation, Organisation};
use crate::state::AppState;

/// Registers an organisation (operator only).
#[utoipa::path(
    post,
    path = "/api/v1/organisations",
    tag = "organisations",
    request_body = NewOrganisation,
    responses(
        (status = 201, body = Organisation),
        (status = 409, description = "`conflict`: an organisation has this SIRET already"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<NewOrganisation>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator])?;
    let new = body.parse()?;
    let mut conn = state.pool.get().await?;
    let org = organisations::create(&mut conn, new).await?;
    Ok(HttpResponse::Created().json(org))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// operator, funder, issuer or venue; empty or absent for all (operator only).
    #[param(schema_with = crate::http::openapi::kinds)]
    pub kind: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the page before; none for the first page.
    #[param(pattern = r"^[0-9]{0,18}$")]
    pub cursor: Option<String>,
}

/// Lists organisations: the operator sees them all; any user may list venues.
#[utoipa::path(
    get,
    path = "/api/v1/organisations",
    tag = "organisations",
    params(ListParams),
    responses((status = 200, body = Page<Organisation>)),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let kind =
        match params.kind.as_deref() {
            None | Some("") => None,
            Some(k) => Some(Role::parse(k).ok_or_else(|| {
                ApiError::invalid_field("kind", "operator, funder, issuer or venue")
            })?),
        };
    if kind != Some(Role::Venue) {
        caller.require(&[Role::Operator])?;
    }
    let page = PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let mut conn = state.reader().await?;
    let rows = organisations::list(&mut conn, kind, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page, |o: &Organisation| o.id)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Accreditation {
    /// Last day of accreditation, inclusive.
    #[serde(deserialize_with = "crate::domain::bounds::date")]
    #[schema(pattern = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub valid_until: NaiveDate,
}

/// Accredits a venue until a date (operator only).
#[utoipa::path(
    post,
    path = "/api/v1/organisations/{id}/accreditation",
    tag = "organisations",
    request_body = Accreditation,
    responses(
        (status = 200, body = Organisation),
        (status = 409, description = "`conflict`: only venues are accredited"),
    ),
    security(("bearer" = []))
)]
pub async fn accredit(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<Accreditation>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator])?;
    let mut conn = state.pool.get().await?;
    let venue = organisations::find(&mut conn, *id).await?;
    let Accreditation { valid_until } = body.parse()?;
    let venue = organisations::accredit(&mut conn, &venue, valid_until).await?;
    Ok(HttpResponse::Ok().json(venue))
}

/// Withdraws a venue's accreditation from now on (operator only).
#[utoipa::path(
    delete,
    path = "/api/v1/organisations/{id}/accreditation",
    tag = "organisations",
    responses(
        (status = 204, description = "Withdrawn from now on"),
        (status = 409, description = "`conflict`: only venues are accredited, and this one is not"),
    ),
    security(("bearer" = []))
)]
pub async fn withdraw(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator])?;
    let mut conn = state.pool.get().await?;
    let venue = organisations::find(&mut conn, *id).await?;
    organisations::withdraw_accreditation(&mut conn, &venue).await?;
    Ok(HttpResponse::NoContent().finish())
}
