//! Books of vouchers (issuers).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::json::Body;
use super::pagination::{Page, PageRequest};
use super::problem::ApiError;
use super::query::Query;
use crate::auth::Role;
use crate::domain::books::{self, Book, IssuedBook, NewBook};
use crate::domain::carnet;
use crate::domain::printing;
use crate::domain::Reason;
use crate::keys::Purpose;
use crate::state::AppState;

/// Issues a book of 5 or 10 signed vouchers to a beneficiary, within the
/// issuer's allocation (`quota-exceeded` otherwise).
#[utoipa::path(post, path = "/api/v1/books", tag = "books", request_body = NewBook,
    responses((status = 201, body = IssuedBook),
        (status = 409, description = "`quota-exceeded`: the issuer's allocation is used up"),
        (status = 410, description = "`program-closed`: closed, or past its last issue day")),
    security(("bearer" = [])))]
pub async fn issue(
    state: web::Data<AppState>,
    caller: Caller,
    body: Body<NewBook>,
) -> Result<HttpResponse, ApiError> {
    let issuer = caller.require(&[Role::Issuer])?;
    let new = body.parse()?;
    let signer = state.keys.signer(Purpose::Voucher).await?;
    let mut conn = state.pool.get().await?;
    let book = books::issue(&mut conn, issuer, signer, new, &state.config.public_url).await?;
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
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the page before; none for the first page.
    #[param(pattern = r"^[0-9]{0,18}$")]
    pub cursor: Option<String>,
}

/// The organisation's books, with their progress (n of N used).
#[utoipa::path(get, path = "/api/v1/books", tag = "books", params(ListParams),
    responses((status = 200, body = Page<Book>)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let issuer = caller.require(&[Role::Issuer])?;
    let page = PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let mut conn = state.reader().await?;
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
        items.push(books::present(&mut conn, row, &state.config.public_url, false).await?);
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
    Ok(HttpResponse::Ok()
        .json(books::present(&mut conn, row, &state.config.public_url, true).await?))
}

/// Revokes a book: its unredeemed vouchers are refused from now on.
#[utoipa::path(post, path = "/api/v1/books/{id}/revoke", tag = "books", request_body = Reason,
    responses((status = 200, body = Book),
        (status = 409, description = "`conflict`: the book is revoked already")),
    security(("bearer" = [])))]
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
    Ok(HttpResponse::Ok()
        .json(books::present(&mut conn, row, &state.config.public_url, true).await?))
}

/// Replaces a lost book: new vouchers for the unredeemed positions, same expiry.
#[utoipa::path(post, path = "/api/v1/books/{id}/replace", tag = "books", request_body = Reason,
    responses((status = 201, body = IssuedBook),
        (status = 409, description = "`conflict`: replaced already, or every voucher used"),
        (status = 410, description = "`program-closed`, or `voucher-expired`: the book has expired")),
    security(("bearer" = [])))]
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

/// The printable book (A4 PDF, in French).
#[utoipa::path(get, path = "/api/v1/books/{id}/pdf", tag = "books",
    responses((status = 200, content_type = "application/pdf", description = "The book")), security(("bearer" = [])))]
pub async fn pdf(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let issuer = caller.require(&[Role::Issuer])?;
    let mut conn = state.pool.get().await?;
    let book = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let rendered = printing::print_book(
        &mut conn,
        &book,
        issuer.user.id,
        &state.config.privacy_contact,
        &state.config.public_url,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("inline; filename=\"pass-numerique-{}.pdf\"", book.id),
        ))
        .body(rendered.pdf))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Where to send it; defaults to the address given when the book was issued.
    #[schema(
        max_length = 254,
        pattern = r"^ *([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,15}){0,2}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?){1,3} *)?$"
    )]
    pub email: Option<String>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct SendAnswer {
    pub book_id: i64,
    pub sent_at: chrono::DateTime<chrono::Utc>,
}

/// Emails the book as a PDF; the address is then deleted. A failing mail
/// server leaves the book as it was, and the send can be retried.
#[utoipa::path(post, path = "/api/v1/books/{id}/send", tag = "books", request_body = SendRequest,
    responses((status = 202, body = SendAnswer),
        (status = 409, description = "`conflict`: the book is revoked; send its replacement"),
        (status = 503, description = "`unavailable`: the mail server (or the database) cannot be reached; the book stays issued")),
    security(("bearer" = [])))]
pub async fn send(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: Body<SendRequest>,
) -> Result<HttpResponse, ApiError> {
    let issuer = caller.require(&[Role::Issuer])?;
    let mut conn = state.pool.get().await?;
    let book = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let request = body.parse()?;
    let sent_at = printing::send_book(
        &mut conn,
        &state.mailer,
        &book,
        issuer.user.id,
        request.email,
        &state.config.privacy_contact,
        &state.config.public_url,
    )
    .await?;
    Ok(HttpResponse::Accepted().json(SendAnswer {
        book_id: book.id,
        sent_at,
    }))
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct PageLinkAnswer {
    pub book_id: i64,
    /// The new secret link to the beneficiary's page, shown only here.
    pub page_url: String,
    /// How many earlier links stopped working.
    pub killed_links: usize,
}

/// Renews the link to the beneficiary's page: every earlier link (printed,
/// e-mailed) stops working and a new one is made; print or send the book
/// again to hand it over. A revoked book has no page (409 `conflict`).
#[utoipa::path(post, path = "/api/v1/books/{id}/page-link", tag = "books",
    responses((status = 201, body = PageLinkAnswer)), security(("bearer" = [])))]
pub async fn renew_page_link(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let issuer = caller.require(&[Role::Issuer])?;
    let mut conn = state.pool.get().await?;
    let book = books::find_own(&mut conn, *id, issuer.organisation.id).await?;
    let (secret, killed) = carnet::renew(&mut conn, &book, issuer.user.id).await?;
    tracing::info!(book = book.id, killed, "page link renewed");
    Ok(HttpResponse::Created().json(PageLinkAnswer {
        book_id: book.id,
        page_url: carnet::page_url(&state.config.public_url, &secret),
        killed_links: killed,
    }))
}

/// A voucher's QR code as SVG (its issuer).
#[utoipa::path(get, path = "/api/v1/vouchers/{voucher_id}/qr.svg", tag = "books",
    responses((status = 200, content_type = "image/svg+xml", description = "The QR code")), security(("bearer" = [])))]
pub async fn qr_svg(
    state: web::Data<AppState>,
    caller: Caller,
    voucher_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let qr = voucher_qr(&state, &caller, &voucher_id).await?;
    Ok(image(
        qr.to_svg(Some("Code QR du coupon")).into_bytes(),
        "image/svg+xml",
    ))
}

/// A voucher's QR code as PNG, 8 pixels per module (its issuer).
#[utoipa::path(get, path = "/api/v1/vouchers/{voucher_id}/qr.png", tag = "books",
    responses((status = 200, content_type = "image/png", description = "The QR code")), security(("bearer" = [])))]
pub async fn qr_png(
    state: web::Data<AppState>,
    caller: Caller,
    voucher_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let qr = voucher_qr(&state, &caller, &voucher_id).await?;
    let png = qr
        .to_png(8)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(image(png, "image/png"))
}

fn image(bytes: Vec<u8>, content_type: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            actix_web::http::header::CACHE_CONTROL,
            "private, max-age=3600",
        ))
        .body(bytes)
}

async fn voucher_qr(
    state: &AppState,
    caller: &Caller,
    voucher_id: &str,
) -> Result<crate::render::QrCode, ApiError> {
    let issuer = caller.require(&[Role::Issuer])?;
    let not_found = || ApiError::not_found(format!("No voucher {voucher_id}."));
    let id: i64 = voucher_id.parse().map_err(|_| not_found())?;
    let mut conn = state.pool.get().await?;
    let code = books::voucher_code(&mut conn, id, issuer.organisation.id)
        .await?
        .ok_or_else(not_found)?;
    crate::render::QrCode::new(&code).map_err(|e| ApiError::internal(e.to_string()))
}
