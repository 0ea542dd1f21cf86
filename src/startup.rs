//! The composition root: what `serve` runs, built from the settings and the webhooks' pool,
//! each part by the module that owns it; binds (port 0 in tests).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer, web};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder, TracingLogger};

use crate::catch_up::{self, worker::Worker};
use crate::configuration::Settings;
use crate::http::connections::{self, ConnectionCap};
use crate::http::customers::{self, CustomersEndpoint};
use crate::http::organization_customer;
use crate::http::{AppState, error, health, webhook};
use crate::ledger_retention;
use crate::metrics::Metrics;
use crate::profile_push;
use crate::store::pool;
use crate::sync::EventWriter;

/// In-flight events get this long to finish after SIGTERM; Stripe retries anything cut off.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;
/// HTTP workers at most (one per core below that). Each has its webhook writer with a
/// connection of its own (`sync::batch`), and the database, not the HTTP side, is what a
/// webhook waits for: more workers would only hold more connections.
const MAX_HTTP_WORKERS: usize = 4;
/// How long an idle connection is kept for a next request (actix' default).
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on `METRICS_ADDR`, when set: its port and server.
    metrics_server: Option<(u16, Server)>,
    catch_up: Option<Worker>,
    profile_push: Option<profile_push::worker::Worker>,
    ledger_retention: Option<ledger_retention::Worker>,
    app_metrics: Arc<Metrics>,
}

impl Application {
    /// Binds `settings.listen_addr` and builds the server; it runs once awaited. With
    /// STRIPE_API_KEY the profile push starts now, and with a catch-up interval too the
    /// background catch-up. `pool` is the webhooks' ([`serving_pool`]): every other part gets
    /// connections of its own beside it (docs/design.md "Capacity").
    pub fn build(settings: &Settings, pool: PgPool) -> std::io::Result<Self> {
        let listener = TcpListener::bind(settings.listen_addr)?;
        let port = listener.local_addr()?.port();
        let metrics = Arc::new(Metrics::new(
            settings.sync.tiers.products.without_tier_counter(),
            settings.sync.tiers.recompute_failures.counter(),
        ));
        let catch_up = catch_up::serving::context(settings, &pool, &metrics)?;
        let profile_push = profile_push::serving::pusher(settings, &pool, &metrics)?;
        let customers = CustomersEndpoint::for_serve(settings, &pool, &metrics)?;
        // Off the webhooks' hot path and out of their pool: one statement at a time, a batch
        // of rows each.
        let retention_pool = pool::pool_beside(&pool, 1, settings.connection());
        let state = web::Data::new(AppState::new(settings, pool, metrics.clone())?);
        let metrics_server = (settings.http.metrics_addr)
            .map(|address| metrics_server(address, state.clone()))
            .transpose()?;
        let routes = Routes {
            public_metrics: metrics_server.is_none(),
            customers: customers.map(web::Data::new),
            allowed_origins: settings.customers.allowed_origins.clone(),
        };
        let server = public_server(settings, listener, state, routes)?;
        // Started once nothing can fail any more: no run without a server.
        Ok(Self {
            port,
            server,
            metrics_server,
            catch_up: catch_up.map(|(context, interval)| Worker::spawn(context, interval)),
            profile_push: profile_push.map(profile_push::worker::Worker::spawn),
            ledger_retention: ledger_retention::Worker::spawn(
                retention_pool,
                settings.ledger_retention,
                metrics.clone(),
            ),
            app_metrics: metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What `/metrics` serves.
    pub fn metrics(&self) -> &Metrics {
        &self.app_metrics
    }

    /// The port of `/metrics` when it has an address of its own (`METRICS_ADDR`).
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(port, _)| *port)
    }

    /// Serves until SIGTERM (or the server stops), then stops the background workers
    /// (together: each waits for its own work in flight).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = match self.metrics_server {
            None => self.server.await,
            // The metrics server stops once the public one has (it has no signals of its own).
            Some((_, metrics)) => {
                let handle = metrics.handle();
                let public = async {
                    let served = self.server.await;
                    handle.stop(true).await;
                    served
                };
                tokio::join!(public, metrics).0
            }
        };
        let catch_up = async {
            if let Some(catch_up) = self.catch_up {
                catch_up.stop().await;
            }
        };
        let profile_push = async {
            if let Some(profile_push) = self.profile_push {
                profile_push.stop().await;
            }
        };
        let retention = async {
            if let Some(retention) = self.ledger_retention {
                retention.stop().await;
            }
        };
        tokio::join!(catch_up, profile_push, retention);
        served
    }
}

/// What the public server serves beyond the webhook and the health checks.
#[derive(Clone)]
struct Routes {
    /// `GET /metrics` here, unless `METRICS_ADDR` gives it an address of its own.
    public_metrics: bool,
    /// `POST /customers` and `POST /organizations/{id}/customer`, when on.
    customers: Option<web::Data<CustomersEndpoint>>,
    allowed_origins: Vec<String>,
}

/// The public server on `listener`: its routes, workers, deadlines and connection cap.
fn public_server(
    settings: &Settings,
    listener: TcpListener,
    state: web::Data<AppState>,
    routes: Routes,
) -> std::io::Result<Server> {
    let workers = http_workers();
    let cap = ConnectionCap::for_process(workers, settings.database.max_connections);
    tracing::info!(
        max_connections = cap.total,
        per_worker = cap.per_worker,
        open_files_limit = cap.open_files_limit,
        request_head_timeout = ?settings.http.head_timeout,
        request_body_timeout = ?settings.http.body_timeout,
        "client connections capped below the open-files limit; each request's head and body \
         have a deadline"
    );
    let server = HttpServer::new(move || {
        // Called on each HTTP worker's thread: the worker's own writer, on its runtime, so
        // that an event goes from request to database and back without changing threads.
        let events = EventWriter::start(
            state.pool.clone(),
            state.sync.clone(),
            state.metrics.clone(),
        );
        App::new()
            .wrap_fn(connections::track_requests)
            .wrap(TracingLogger::<RequestSpan>::new())
            .app_data(state.clone())
            .app_data(web::Data::new(events))
            .route("/webhooks/stripe", web::post().to(webhook::receive))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .configure(|config| routes.configure(config))
            .default_service(web::to(error::not_found))
    })
    // SIGTERM: stop accepting, let in-flight events finish (bounded), then return.
    .workers(workers)
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    // The head's deadline (408 and closed past it); the body's is the handlers'.
    .client_request_timeout(settings.http.head_timeout)
    .max_connections(cap.per_worker)
    .keep_alive(KEEP_ALIVE)
    .on_connect(cap.on_connect(KEEP_ALIVE + settings.http.head_timeout))
    .listen(listener)?
    .run();
    Ok(server)
}

impl Routes {
    fn configure(&self, config: &mut web::ServiceConfig) {
        if self.public_metrics {
            config.route("/metrics", web::get().to(health::metrics));
        }
        // Only when on: the endpoint's state is registered with its routes alone.
        if let Some(endpoint) = &self.customers {
            config.service(
                web::resource("/customers")
                    .app_data(endpoint.clone())
                    .wrap(cors(&self.allowed_origins))
                    .route(web::post().to(customers::ensure)),
            );
            // Answers 404 where the organizations' tables do not exist.
            config.service(
                web::resource("/organizations/{organization_id}/customer")
                    .app_data(endpoint.clone())
                    .app_data(web::PayloadConfig::new(customers::MAX_BODY_BYTES))
                    .wrap(cors(&self.allowed_origins))
                    .route(web::post().to(organization_customer::ensure)),
            );
        }
    }
}

/// The webhooks' pool on `database` (`DATABASE_URL`, or the local database's address):
/// `DATABASE_MAX_CONNECTIONS` under the serving connection policy.
pub fn serving_pool(settings: &Settings, database: PgConnectOptions) -> PgPool {
    pool::serving_pool(
        database,
        settings.database.max_connections,
        settings.connection(),
    )
}

/// `GET /metrics` alone on `address` (`METRICS_ADDR`): one worker, stopped with the public
/// server rather than by signals of its own.
fn metrics_server(
    address: std::net::SocketAddr,
    state: web::Data<AppState>,
) -> std::io::Result<(u16, Server)> {
    let listener = TcpListener::bind(address).map_err(|error| {
        std::io::Error::new(error.kind(), format!("METRICS_ADDR {address}: {error}"))
    })?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(health::metrics))
            .default_service(web::to(error::not_found))
    })
    .workers(1)
    .disable_signals()
    .max_connections(METRICS_CONNECTIONS)
    .listen(listener)?
    .run();
    tracing::info!(
        metrics_address = %address,
        metrics_port = port,
        "serving GET /metrics on METRICS_ADDR only"
    );
    Ok((port, server))
}

/// Scrapers, not the public: a handful of connections is plenty.
const METRICS_CONNECTIONS: usize = 16;

/// Browsers of `ALLOWED_ORIGINS` may POST with a bearer token; any other origin's preflight is
/// refused. Calls without an `Origin` (servers, scripts) are not CORS's business.
fn cors(allowed_origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
    allowed_origins.iter().fold(
        actix_cors::Cors::default()
            .allowed_methods(["POST"])
            .allowed_headers([AUTHORIZATION, CONTENT_TYPE])
            .max_age(600),
        |cors, origin| cors.allowed_origin(origin),
    )
}

/// tracing-actix-web's request span (method, route, host, client address, user agent, request
/// id, status, …), at DEBUG rather than INFO. At INFO its dozen fields were formatted for every
/// request (5–10 % of `serve`'s CPU per event in `benches/end_to_end.rs`), yet the JSON log
/// prints the innermost span only and so never showed them: the one INFO line per event carries
/// the `stripe_webhook` span (event id and type) and the outcome.
/// `RUST_LOG=info,stripe_customer_sync::startup=debug` brings the request span back.
struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing_actix_web::root_span!(level = tracing::Level::DEBUG, request)
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

fn http_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_HTTP_WORKERS)
}
