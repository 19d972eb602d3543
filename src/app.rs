//! The HTTP application: built once, bound to a port (port 0 in tests), run.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, ErrorHandlers};
use actix_web::{web, App, HttpServer};

use crate::http::{self, metrics::Metrics, request_log, MetricsRoute};
use crate::state::AppState;

pub struct Application {
    server: Server,
    port: u16,
    metrics_server: Option<Server>,
}

impl Application {
    /// Binds the listeners now, so the caller knows the port before serving.
    pub fn build(state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(state.config.bind)?;
        let port = listener.local_addr()?.port();
        let metrics = web::Data::new(Metrics::new());
        let metrics_route = match state.config.metrics_bind {
            Some(_) => MetricsRoute::Elsewhere,
            None => MetricsRoute::LoopbackOnly,
        };
        let metrics_server = match state.config.metrics_bind {
            Some(addr) => {
                let metrics = metrics.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(metrics.clone())
                        .route("/metrics", web::get().to(http::metrics::any_client))
                })
                .workers(1)
                .bind(addr)?
                .run();
                tracing::info!(%addr, "metrics served");
                Some(server)
            }
            None => None,
        };
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(metrics.clone())
                .wrap(ErrorHandlers::new().default_handler(http::ensure_problem))
                .wrap(from_fn(http::body_limit))
                .wrap(from_fn(request_log::middleware))
                .configure(|cfg| http::routes(cfg, metrics_route))
                .configure(crate::web::routes)
                .default_service(web::to(http::no_route))
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Application {
            server,
            port,
            metrics_server,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT or SIGTERM, then finishes the requests in flight.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.metrics_server {
            Some(metrics) => futures_util::future::try_join(self.server, metrics)
                .await
                .map(|_| ()),
            None => self.server.await,
        }
    }
}
