//! Prometheus metrics: request counts and latency by route and status.

use std::net::IpAddr;

use actix_web::{web, HttpRequest, HttpResponse};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use super::problem::ApiError;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl Metrics {
    pub fn new() -> Self {
        let labels = &["method", "route", "status"];
        let requests = IntCounterVec::new(
            Opts::new("passnum_http_requests_total", "HTTP requests answered"),
            labels,
        )
        .expect("valid metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "passnum_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            labels,
        )
        .expect("valid metric definition");
        let registry = Registry::new();
        registry
            .register(Box::new(requests.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(latency.clone()))
            .expect("metric registered once");
        Metrics {
            registry,
            requests,
            latency,
        }
    }

    /// `route` is the matched pattern (`/api/v1/books/{id}`), never the raw path,
    /// so the number of series stays bounded.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    pub fn render(&self) -> HttpResponse {
        let mut buffer = Vec::new();
        match TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            Ok(()) => HttpResponse::Ok()
                .content_type("text/plain; version=0.0.4; charset=utf-8")
                .body(buffer),
            Err(e) => HttpResponse::from_error(ApiError::internal(e.to_string())),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `/metrics` on the main port: loopback clients only, others see nothing there.
pub async fn loopback_only(
    req: HttpRequest,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let loopback = req
        .peer_addr()
        .map(|a| a.ip())
        .is_some_and(|ip: IpAddr| ip.is_loopback());
    if loopback {
        Ok(metrics.render())
    } else {
        Err(ApiError::not_found("No such resource."))
    }
}

/// `/metrics` on its own listener (`PASSNUM_METRICS_BIND`).
pub async fn any_client(metrics: web::Data<Metrics>) -> HttpResponse {
    metrics.render()
}
