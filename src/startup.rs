//! Builds the HTTP application from the settings and a pool; binds (port 0 in tests).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpResponse, HttpServer, web};
use sqlx::PgPool;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder, TracingLogger};

use crate::auth::{JwksCache, TokenVerifier};
use crate::catch_up::worker::{self, Worker};
use crate::configuration::{ProfilePushSettings, Settings};
use crate::domain::StripeMode;
use crate::ensure_customer::{self, CustomerCreator};
use crate::http::connections::{self, ConnectionCap};
use crate::http::customers::{self, CustomersEndpoint};
use crate::http::organization_customer;
use crate::http::{AppState, health, webhook};
use crate::ledger_retention;
use crate::metrics::Metrics;
use crate::profile_push::{self, Pusher};
use crate::store::pool::{self, ConnectionPolicy, PoolMode};
use crate::stripe::signature::SignatureVerifier;
use crate::stripe_api::{RetryPolicy, StripeClient};
use crate::sync::{EventWriter, SyncSettings};

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
    /// background catch-up.
    pub fn build(settings: &Settings, pool: PgPool) -> std::io::Result<Self> {
        let listener = TcpListener::bind(settings.listen_addr)?;
        let port = listener.local_addr()?.port();
        let client = |retry| {
            settings
                .stripe_api
                .as_ref()
                .map(|api| StripeClient::new(api, retry).map_err(std::io::Error::other))
                .transpose()
        };
        let metrics = Arc::new(Metrics::default());
        let catch_up = match (client(RetryPolicy::default())?, settings.catch_up_interval) {
            (Some(client), Some(interval)) => {
                catch_up_database(settings, &pool).map(|(pool, sync)| {
                    let context = worker::Context {
                        pool,
                        client,
                        settings: sync,
                        metrics: metrics.clone(),
                    };
                    (context, interval)
                })
            }
            _ => None,
        };
        // One attempt per claim, bounded by PROFILE_PUSH_TIMEOUT: the retry schedule lives on
        // the outbox row.
        let push_retry = RetryPolicy {
            attempt_timeout: settings.profile_push.timeout,
            ..RetryPolicy::default()
        };
        let profile_push = match (client(push_retry)?, &settings.stripe_api) {
            (Some(client), Some(api)) => Some(Pusher {
                pool: profile_push_pool(settings, &pool),
                client,
                settings: profile_push_settings(settings),
                metrics: metrics.clone(),
                key_livemode: api.mode == StripeMode::Live,
                worker_id: format!(
                    "serve-{}-{}",
                    std::process::id(),
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                ),
            }),
            _ => None,
        };
        // Webhooks keep `pool` (DATABASE_MAX_CONNECTIONS) and their writers' own connections;
        // every other part has connections of its own (docs/design.md "Capacity").
        let customers_endpoint = customers_endpoint(settings, &pool, &metrics)?;
        let health_pool = pool::pool_beside(
            &pool,
            pool::HEALTH_CONNECTIONS,
            settings.database.connection,
        );
        let app_metrics = metrics.clone();
        // Off the webhooks' hot path and out of their pool: one statement at a time, a batch
        // of rows each.
        let retention_pool = pool::pool_beside(&pool, 1, settings.database.connection);
        let allowed_origins = settings.customers.allowed_origins.clone();
        let state = web::Data::new(AppState {
            verifier: SignatureVerifier::new(&settings.webhook.secrets, settings.webhook.tolerance),
            pool,
            health_pool,
            sync: settings.sync.clone(),
            metrics,
            stripe_api: client(RetryPolicy::within_a_webhook())?,
            customers: customers_endpoint,
            body_timeout: settings.http.body_timeout,
        });
        let customers_on = state.customers.is_some();
        let own_metrics_server = settings
            .http
            .metrics_addr
            .map(|address| metrics_server(address, state.clone()))
            .transpose()?;
        let public_metrics = own_metrics_server.is_none();
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
                .configure(|config| {
                    if public_metrics {
                        config.route("/metrics", web::get().to(health::metrics));
                    }
                    if customers_on {
                        config.service(
                            web::resource("/customers")
                                .wrap(cors(&allowed_origins))
                                .route(web::post().to(customers::ensure)),
                        );
                        // Answers 404 where the organizations' tables do not exist.
                        config.service(
                            web::resource("/organizations/{organization_id}/customer")
                                .app_data(web::PayloadConfig::new(customers::MAX_BODY_BYTES))
                                .wrap(cors(&allowed_origins))
                                .route(web::post().to(organization_customer::ensure)),
                        );
                    }
                })
                .default_service(web::to(not_found))
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
        // Started once nothing can fail any more: no run without a server.
        let catch_up = catch_up.map(|(context, interval)| Worker::spawn(context, interval));
        let profile_push = profile_push.map(profile_push::worker::Worker::spawn);
        let ledger_retention = ledger_retention::Worker::spawn(
            retention_pool,
            settings.ledger_retention,
            app_metrics.clone(),
        );
        Ok(Self {
            port,
            server,
            metrics_server: own_metrics_server,
            catch_up,
            profile_push,
            ledger_retention,
            app_metrics,
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
            .default_service(web::to(not_found))
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

/// `POST /customers`, when STRIPE_API_KEY and a token setting are configured.
fn customers_endpoint(
    settings: &Settings,
    pool: &PgPool,
    metrics: &Arc<Metrics>,
) -> std::io::Result<Option<CustomersEndpoint>> {
    let (Some(api), None) = (&settings.stripe_api, settings.customers_endpoint_off()) else {
        return Ok(None);
    };
    let client =
        StripeClient::new(api, ensure_customer::retry_policy()).map_err(std::io::Error::other)?;
    let jwks = settings
        .customers
        .jwks_url
        .clone()
        .map(|url| {
            JwksCache::new(
                url,
                settings.customers.jwks_min_refetch,
                settings.customers.jwks_max_age,
            )
        })
        .transpose()
        .map_err(std::io::Error::other)?;
    let verifier = TokenVerifier::new(
        settings.customers.jwt_secret.as_ref(),
        jwks,
        settings.customers.issuer(),
    );
    let creator = CustomerCreator::new(
        pool::pool_beside(
            pool,
            pool::CUSTOMERS_CONNECTIONS,
            settings.database.connection,
        ),
        client,
        settings.sync.clone(),
        api.mode == StripeMode::Live,
        settings.profile_push.name_column.clone(),
        settings.organizations.clone(),
        metrics.clone(),
    );
    Ok(Some(CustomersEndpoint { verifier, creator }))
}

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

/// The profile push's own pool (one connection listens, one claims and finishes). Its LISTEN
/// needs a session: behind a transaction pooler it connects to `MIGRATION_DATABASE_URL`, the
/// session connection, when there is one, and otherwise goes through the pooler and sweeps
/// (see [`profile_push_settings`]). The statement timeout as the serving pool's.
fn profile_push_pool(settings: &Settings, pool: &PgPool) -> PgPool {
    const PUSH_CONNECTIONS: u32 = 2;
    let serving = settings.database.connection;
    match (
        serving.mode,
        settings.database.migration_connect_options.clone(),
    ) {
        (PoolMode::Transaction, Some(session)) => {
            let policy = ConnectionPolicy {
                mode: PoolMode::Session,
                ..serving
            };
            pool::serving_pool(session, PUSH_CONNECTIONS, policy)
        }
        _ => pool::serving_pool((*pool.connect_options()).clone(), PUSH_CONNECTIONS, serving),
    }
}

/// The push LISTENs where its connection keeps a session (the direct connection, a session
/// pooler, or `MIGRATION_DATABASE_URL` behind a transaction pooler); otherwise it relies on its
/// sweep alone, as a notification reaches only the server connection that listened.
fn profile_push_settings(settings: &Settings) -> ProfilePushSettings {
    let session = settings.database.connection.mode.keeps_sessions()
        || settings.database.migration_connect_options.is_some();
    ProfilePushSettings {
        listen: settings.profile_push.listen && session,
        organizations_table: settings.organizations.organizations.clone(),
        ..settings.profile_push.clone()
    }
}

/// A catch-up run holds one transaction open for its whole run (its lock) and reads and
/// writes with prepared statements: it needs connections that keep their session, and gets a
/// small pool of its own beside the webhooks' (never theirs). Behind a
/// transaction pooler it gets a small pool of its own on `MIGRATION_DATABASE_URL`, the session
/// connection; without one, it is off (and says so).
fn catch_up_database(settings: &Settings, pool: &PgPool) -> Option<(PgPool, SyncSettings)> {
    /// One applies events, one renews the run's lease and reads the ledger meanwhile.
    const CATCH_UP_CONNECTIONS: u32 = 2;
    let serving = settings.database.connection;
    if serving.mode.keeps_sessions() {
        // Its own connections: a long run never takes the webhooks'.
        let own = pool::pool_beside(pool, CATCH_UP_CONNECTIONS, serving);
        return Some((own, settings.sync.clone()));
    }
    let Some(options) = settings.database.migration_connect_options.clone() else {
        tracing::warn!(
            "DATABASE_POOL_MODE=transaction and no MIGRATION_DATABASE_URL: the background \
             catch-up is off, as it needs a session connection; set MIGRATION_DATABASE_URL to the \
             direct or session-pooler string"
        );
        return None;
    };
    let session = ConnectionPolicy {
        mode: PoolMode::Session,
        ..serving
    };
    let sync = SyncSettings {
        connection: session,
        ..settings.sync.clone()
    };
    Some((
        pool::serving_pool(options, CATCH_UP_CONNECTIONS, session),
        sync,
    ))
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

async fn not_found() -> HttpResponse {
    crate::http::error::not_found()
}

fn http_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_HTTP_WORKERS)
}
