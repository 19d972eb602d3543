//! Liveness and readiness, for load balancers and orchestrators.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::problem::ApiError;
use crate::db;
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    status: &'static str,
}

/// The process is up and answering.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Status)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// The database answers and its schema is up to date (503 while the server drains).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, body = Status),
        (status = 503, description = "`unavailable`", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.draining.is_on() {
        return Err(ApiError::unavailable("The server is shutting down."));
    }
    let timeout = state.config.db_timeout;
    match tokio::time::timeout(timeout, db::check_ready(&state.pool)).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(Status { status: "ready" })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            Err(ApiError::unavailable(match e {
                db::NotReady::Unreachable(_) => "The database is unreachable.".to_owned(),
                outdated => outdated.to_string(),
            }))
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer in time");
            Err(ApiError::unavailable(
                "The database did not answer in time.",
            ))
        }
    }
}
