//! The HTTP application: built once, bound to a port (port 0 in tests), run,
//! and drained on SIGTERM.

use std::net::TcpListener;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::{from_fn, ErrorHandlers, Next};
use actix_web::{web, App, HttpServer};

use crate::http::{self, metrics::Metrics, request_log, MetricsRoute};
use crate::state::{AppState, Draining};

pub struct Application {
    server: Server,
    port: u16,
    metrics_server: Option<Server>,
    draining: Draining,
}

/// Stops the servers of an `Application`: finishing what is in flight first
/// (`drain`), or at once.
#[derive(Clone)]
pub struct Shutdown {
    handles: Vec<ServerHandle>,
    draining: Draining,
}

impl Application {
    /// Binds the listeners now, so the caller knows the port before serving.
    pub fn build(state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(state.config.bind)?;
        let port = listener.local_addr()?.port();
        // Signals are ours (`stop_on_signals`): actix would stop at once on SIGINT.
        let shutdown_secs = state.config.shutdown_timeout.as_secs();
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
                .disable_signals()
                .shutdown_timeout(shutdown_secs)
                .bind(addr)?
                .run();
                tracing::info!(%addr, "metrics served");
                Some(server)
            }
            None => None,
        };
        let draining = state.draining.clone();
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(metrics.clone())
                .wrap(ErrorHandlers::new().default_handler(http::ensure_problem))
                .wrap(from_fn(http::body_limit))
                .wrap(from_fn(request_log::middleware))
                .wrap(from_fn(close_when_draining))
                .configure(|cfg| http::routes(cfg, metrics_route))
                .configure(crate::web::routes)
                .default_service(web::to(http::no_route))
        })
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(shutdown_secs)
        .run();
        Ok(Application {
            server,
            port,
            metrics_server,
            draining,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn shutdown(&self) -> Shutdown {
        let mut handles = vec![self.server.handle()];
        handles.extend(self.metrics_server.as_ref().map(Server::handle));
        Shutdown {
            handles,
            draining: self.draining.clone(),
        }
    }

    /// Serves until stopped (see `Shutdown`), then returns once every
    /// request in flight is answered or the shutdown timeout has passed.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.metrics_server {
            Some(metrics) => futures_util::future::try_join(self.server, metrics)
                .await
                .map(|_| ()),
            None => self.server.await,
        }
    }
}

impl Shutdown {
    /// Stops accepting connections and lets the requests in flight finish
    /// (within `PASSNUM_SHUTDOWN_TIMEOUT_SECS`); their answers close their
    /// connections, and `/readyz` fails meanwhile.
    pub async fn drain(&self) {
        self.draining.start();
        futures_util::future::join_all(self.handles.iter().map(|h| h.stop(true))).await;
    }

    /// Stops now: requests in flight are dropped, their transactions rolled back.
    pub async fn now(&self) {
        futures_util::future::join_all(self.handles.iter().map(|h| h.stop(false))).await;
    }

    /// SIGTERM or SIGINT drains; a second one stops at once.
    pub async fn stop_on_signals(self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            "stopping: no new connections; finishing the requests in flight"
        );
        let drain = self.drain();
        tokio::pin!(drain);
        tokio::select! {
            () = &mut drain => {}
            _ = term.recv() => { tracing::warn!("second signal: stopping at once"); self.now().await }
            _ = int.recv() => { tracing::warn!("second signal: stopping at once"); self.now().await }
        }
        Ok(())
    }
}

/// While draining, every answer closes its connection, so keep-alive clients
/// reconnect to an instance that stays.
async fn close_when_draining(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let draining = res
        .request()
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.draining.is_on());
    if draining {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}
