//! The files under `static/`, embedded in the binary at compile time and
//! served at `/static/…`. Pages link them with their digest in the query, so
//! a versioned URL can be cached for a year and a new build is fetched anew.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::errors::PageError;

#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct Static;

/// The first 12 hex digits of a file's SHA-256: its version.
fn version(path: &str) -> Option<String> {
    Static::get(path).map(|file| {
        file.metadata.sha256_hash()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// A static file's bytes.
pub fn contents(path: &str) -> Option<Vec<u8>> {
    Static::get(path).map(|file| file.data.into_owned())
}

/// The URL a page links a static file by.
pub fn url(path: &str) -> String {
    match version(path) {
        Some(v) => format!("/static/{path}?v={v}"),
        None => {
            tracing::warn!(path, "a page links a static file that does not exist");
            format!("/static/{path}")
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct VersionQuery {
    v: Option<String>,
}

pub async fn serve(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<VersionQuery>,
) -> Result<HttpResponse, PageError> {
    let path = path.into_inner();
    let file = Static::get(&path).ok_or(PageError::NotFound)?;
    let version = version(&path).unwrap_or_default();
    let etag = format!("\"{version}\"");
    let cache = if query.v.as_deref() == Some(version.as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response
        .insert_header((header::CONTENT_TYPE, file.metadata.mimetype()))
        .body(file.data.into_owned()))
}
