//! Prometheus metrics: request counts and latency by route and status.

use std::net::IpAddr;

use actix_web::http::Method;
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

    /// Every label comes from a bounded set, whatever clients send: the
    /// method is one of HTTP's own or `other`, the route the matched pattern
    /// (`/api/v1/books/{id}`) or `unmatched`, never the raw path, and the
    /// status one the server chose.
    pub fn observe(&self, method: &Method, route: Option<&str>, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [
            method_label(method),
            route.unwrap_or("unmatched"),
            status.as_str(),
        ];
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

/// The method as a label: a client may send any token as a method (43,000
/// distinct ones took a server from 30 to 133 MB), so only HTTP's own are kept.
pub fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `/metrics` on the main port: loopback clients only, others see nothing
/// there. Behind a trusted proxy on the same machine, the client is the
/// address the proxy saw, not the proxy.
pub async fn loopback_only(
    req: HttpRequest,
    state: web::Data<crate::state::AppState>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let loopback = super::client::address(&req, &state.config.trusted_proxies)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_bounded_sets() {
        let metrics = Metrics::new();
        for i in 0..1000 {
            let method = Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
            metrics.observe(&method, None, 405, 0.001);
        }
        metrics.observe(&Method::GET, Some("/api/v1/books/{id}"), 200, 0.001);
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&metrics.registry.gather(), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains(
                r#"passnum_http_requests_total{method="other",route="unmatched",status="405"} 1000"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"method="GET",route="/api/v1/books/{id}""#));
        assert!(!text.contains("X1"));
    }
}
