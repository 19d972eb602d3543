//! Per-request telemetry: a request id on every log line and on the answer
//! (`X-Request-Id`), one access log line, and the metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use super::metrics::{self, Metrics};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = req.method().clone();
    // The method as its label: a made-up one may be kilobytes long.
    let span = tracing::info_span!("request", request_id = %request_id, method = metrics::method_label(&method), path = %req.path());
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let started = Instant::now();

    let mut res = next.call(req).instrument(span.clone()).await?;

    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    let route = res.request().match_pattern();
    if let Some(metrics) = metrics {
        metrics.observe(&method, route.as_deref(), status, elapsed.as_secs_f64());
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            route = route.as_deref().unwrap_or("unmatched"),
            ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}
