//! The transparency log's public files (C2SP tlog-tiles): `/log/checkpoint`,
//! `/log/key`, `/log/tile/…`, served without authentication and cacheable;
//! and the alarms venues' phones raise when a checkpoint does not extend the
//! one they kept.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::auth::Caller;
use super::json::Body;
use super::pagination::{Page, PageParams};
use super::problem::ApiError;
use crate::auth::Role;
use crate::domain::devices::Scanner;
use crate::keys::{KeyStatus, Purpose};
use crate::log::tree::TilePath;
use crate::log::{note, store};
use crate::state::AppState;

const TEXT: &str = "text/plain; charset=utf-8";
const OCTETS: &str = "application/octet-stream";

/// The latest signed checkpoint (C2SP tlog-checkpoint, a signed note).
/// Cached two seconds at most: it changes as the log grows.
#[utoipa::path(get, path = "/log/checkpoint", tag = "log",
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, description = "the log is still empty")))]
pub async fn checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // The primary: a standby behind it would serve an older checkpoint than
    // a phone may already hold, which is harmless but confusing.
    let mut conn = state.pool.get().await?;
    let note = store::checkpoint(&mut conn)
        .await?
        .ok_or_else(|| ApiError::not_found("The log is still empty: no checkpoint yet."))?;
    Ok(public(HttpResponse::Ok(), 2).content_type(TEXT).body(note))
}

/// The verifier key of the log (C2SP signed-note):
/// `<origin>+<hex key id>+<base64(0x01 ‖ Ed25519 public key)>`.
#[utoipa::path(get, path = "/log/key", tag = "log",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn key(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let keys = state.keys.all_keys().await?;
    let active = keys
        .iter()
        .find(|k| k.purpose == Purpose::Log && k.status == KeyStatus::Active)
        .ok_or_else(|| ApiError::from(crate::keys::KeyError::NoActiveKey(Purpose::Log)))?;
    let mut conn = state.reader().await?;
    let origin = crate::log::sequencer::origin(&mut conn, &state.config.log_origin).await?;
    Ok(public(HttpResponse::Ok(), 300)
        .content_type(TEXT)
        .body(format!(
            "{}\n",
            note::verifier_key(&origin, &active.public_key)
        )))
}

/// A hash tile `tile/<L>/<N>[.p/<W>]` or an entry bundle
/// `tile/entries/<N>[.p/<W>]`: immutable, cached for a year.
#[utoipa::path(get, path = "/log/tile/{path}", tag = "log",
    params(("path" = String, Path, description = "`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, N in groups of three digits (`x001/234`)")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404)))]
pub async fn tile(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let rest = req.match_info().query("path");
    let path = TilePath::parse(&format!("tile/{rest}"))
        .ok_or_else(|| ApiError::not_found(format!("No tile at tile/{rest}.")))?;
    let (_, bytes) = super::on_reader(&state, async |conn| {
        store::tile(conn, path)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("No tile {} in the log yet.", path.path())))
    })
    .await?;
    Ok(public(HttpResponse::Ok(), 31_536_000)
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(31_536_000),
            CacheDirective::Extension("immutable".into(), None),
        ]))
        .content_type(OCTETS)
        .body(bytes))
}

/// Public, cacheable for `secs`, readable from any origin (auditors' pages).
fn public(mut res: actix_web::HttpResponseBuilder, secs: u32) -> actix_web::HttpResponseBuilder {
    res.insert_header(CacheControl(vec![
        CacheDirective::Public,
        CacheDirective::MaxAge(secs),
    ]))
    .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
    res
}

/// What a phone reports: the checkpoint it kept, what it was served, why
/// they disagree.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmRequest {
    /// A short word for what failed: `inconsistent` (the new tree does not
    /// extend the kept one), `bad-signature`, `smaller` (the log shrank),
    /// `unreadable` (tiles missing or malformed).
    pub problem: String,
    /// The phone's own words.
    pub detail: String,
    /// The checkpoint the phone kept, as it was served.
    pub kept_checkpoint: String,
    /// The checkpoint it was served since, if any.
    pub new_checkpoint: Option<String>,
}

#[derive(Debug, Clone, QueryableByName, serde::Serialize, utoipa::ToSchema)]
pub struct Alarm {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub reported_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub venue_organisation_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub user_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub device_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub problem: String,
    #[diesel(sql_type = Text)]
    pub detail: String,
    #[diesel(sql_type = Text)]
    pub kept_checkpoint: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub new_checkpoint: Option<String>,
}

const ALARM_COLUMNS: &str = "id, reported_at, venue_organisation_id, user_id, device_id, problem, \
    detail, kept_checkpoint, new_checkpoint";

/// A venue's phone reports a checkpoint that does not extend the one it kept.
#[utoipa::path(post, path = "/api/v1/log/alarms", tag = "log", request_body = AlarmRequest,
    responses((status = 201, body = Alarm)), security(("bearer" = [])))]
pub async fn raise_alarm(
    state: web::Data<AppState>,
    scanner: Scanner,
    body: Body<AlarmRequest>,
) -> Result<HttpResponse, ApiError> {
    let alarm = body.parse()?;
    let problem = alarm.problem.trim();
    if problem.is_empty() || problem.chars().count() > 100 {
        return Err(ApiError::invalid_field(
            "problem",
            "from 1 to 100 characters",
        ));
    }
    if alarm.detail.chars().count() > 2000 {
        return Err(ApiError::invalid_field("detail", "2000 characters at most"));
    }
    let kept = alarm.kept_checkpoint.chars().count();
    if kept == 0 || kept > 4000 {
        return Err(ApiError::invalid_field(
            "kept_checkpoint",
            "from 1 to 4000 characters",
        ));
    }
    if alarm
        .new_checkpoint
        .as_ref()
        .is_some_and(|c| c.chars().count() > 4000)
    {
        return Err(ApiError::invalid_field(
            "new_checkpoint",
            "4000 characters at most",
        ));
    }
    let mut conn = state.pool.get().await?;
    let stored: Alarm = diesel::sql_query(format!(
        "INSERT INTO log_alarms (venue_organisation_id, user_id, device_id, problem, detail,
                                 kept_checkpoint, new_checkpoint)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ALARM_COLUMNS}"
    ))
    .bind::<BigInt, _>(scanner.venue.id)
    .bind::<Nullable<BigInt>, _>(scanner.user_id)
    .bind::<Nullable<BigInt>, _>(scanner.device_id)
    .bind::<Text, _>(problem)
    .bind::<Text, _>(&alarm.detail)
    .bind::<Text, _>(&alarm.kept_checkpoint)
    .bind::<Nullable<Text>, _>(alarm.new_checkpoint.as_deref())
    .get_result(&mut conn)
    .await?;
    tracing::warn!(
        alarm = stored.id,
        venue = stored.venue_organisation_id,
        problem = %stored.problem,
        "a venue's phone reports that the transparency log does not extend what it saw"
    );
    Ok(HttpResponse::Created().json(stored))
}

/// The alarms raised by venues' phones, newest last (operator).
#[utoipa::path(get, path = "/api/v1/log/alarms", tag = "log", params(PageParams),
    responses((status = 200, body = Page<Alarm>)), security(("bearer" = [])))]
pub async fn alarms(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator])?;
    let page = params.request()?;
    let mut conn = state.reader().await?;
    let rows: Vec<Alarm> = diesel::sql_query(format!(
        "SELECT {ALARM_COLUMNS} FROM log_alarms WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind::<BigInt, _>(page.after)
    .bind::<BigInt, _>(page.fetch())
    .load(&mut conn)
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page, |a: &Alarm| a.id)))
}
