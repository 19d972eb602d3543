//! Books of vouchers (issuers).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::json::{Body, Json};
use super::pagination::{Page, PageRequest};
use super::problem::ApiError;
use crate::auth::Role;
use crate::domain::books::{self, Book, IssuedBook, NewBook};
use crate::domain::programs;
use crate::keys::Purpose;
use crate::state::AppState;

/// Issues a book of 5 or 10 signed vouchers to a beneficiary, within the
/// issuer's allocation (`quota-exceeded` otherwise).
#[utoipa::path(post, path = "/api/v1/books", tag = "books", request_body = NewBook,
    responses((status = 201, body = IssuedBook)), security(("bearer" = [])))]
pub async fn issue(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<NewBook>,
) -> Result<HttpResponse, ApiError> {
    let issuer = caller.require(&[Role::Issuer])?;
    let signer = state.keys.signer(Purpose::Voucher).await?;
    let mut conn = state.pool.get().await?;
    let book = books::issue(&mut conn, issuer, signer, body.0, &state.config.public_url).await?;
    tracing::info!(
        book = book.id,
        program = book.program_id,
        size = book.size,
        "book issued"
    );
    Ok(HttpResponse::Created().json(book))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// Only the books with this beneficiary reference.
    pub reference: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The organisation's books, with their progress (n of N used).
#[utoipa::path(get, path = "/api/v1/books", tag = "books", params(ListParams),
    responses((status = 200, body = Page<Book>)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let issuer = caller.require(&[Role::Issuer])?;
    let page = PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let mut conn = state.pool.get().await?;
    let rows = books::list(
        &mut conn,
        issuer.organisation.id,
        params.reference.as_deref(),
        page.after,
        page.fetch(),
    )
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let today = programs::find_visible(
            &mut conn,
            row.program_id,
            Role::Issuer,
            issuer.organisation.id,
        )
        .await?
        .today();
        items.push(books::present(&mut conn, row, today, &state.config.public_url, false).await?);
    }
    Ok(HttpResponse::Ok().json(Page::from_rows(items, page, |b: &Book| b.id)))
}

/// One book with each voucher's status.
#[utoipa::path(get, path = "/api/v1/books/{id}", tag = "books",
    responses((status = 200, body = Book)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let issuer = caller.require(&[Role::Issuer])?;
    let mut conn = state.pool.get().await?;
    let row = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let today = programs::find_visible(
        &mut conn,
        row.program_id,
        Role::Issuer,
        issuer.organisation.id,
    )
    .await?
    .today();
    Ok(HttpResponse::Ok()
        .json(books::present(&mut conn, row, today, &state.config.public_url, true).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: String,
}

/// Revokes a book: its unredeemed vouchers are refused from now on.
#[utoipa::path(post, path = "/api/v1/books/{id}/revoke", tag = "books", request_body = Reason,
    responses((status = 200, body = Book)), security(("bearer" = [])))]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<Reason>,
) -> Result<HttpResponse, ApiError> {
    let issuer = caller.require(&[Role::Issuer])?;
    let mut conn = state.pool.get().await?;
    let row = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    books::revoke(&mut conn, &row, &body.parse()?.reason).await?;
    let row = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let today = programs::find_visible(
        &mut conn,
        row.program_id,
        Role::Issuer,
        issuer.organisation.id,
    )
    .await?
    .today();
    Ok(HttpResponse::Ok()
        .json(books::present(&mut conn, row, today, &state.config.public_url, true).await?))
}

/// Replaces a lost book: new vouchers for the unredeemed positions, same expiry.
#[utoipa::path(post, path = "/api/v1/books/{id}/replace", tag = "books", request_body = Reason,
    responses((status = 201, body = IssuedBook)), security(("bearer" = [])))]
pub async fn replace(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<Reason>,
) -> Result<HttpResponse, ApiError> {
    let issuer = caller.require(&[Role::Issuer])?;
    let mut conn = state.pool.get().await?;
    let row = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let reason = body.parse()?.reason;
    let signer = state.keys.signer(Purpose::Voucher).await?;
    let book = books::replace(
        &mut conn,
        &row,
        issuer,
        signer,
        &reason,
        &state.config.public_url,
    )
    .await?;
    tracing::info!(old = row.id, new = book.id, "book replaced");
    Ok(HttpResponse::Created().json(book))
}
