//! Builds the HTTP application from the settings and a pool; binds (port 0 in tests).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;
use sqlx::PgPool;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder, TracingLogger};

use crate::catch_up::worker::{self, Worker};
use crate::configuration::Settings;
use crate::http::{health, webhook};
use crate::metrics::Metrics;
use crate::store::pool::{self, ConnectionPolicy, PoolMode};
use crate::stripe::signature::SignatureVerifier;
use crate::stripe_api::{RetryPolicy, StripeClient};
use crate::sync::SyncSettings;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub verifier: SignatureVerifier,
    pub pool: PgPool,
    pub sync: SyncSettings,
    pub metrics: Arc<Metrics>,
    /// Stripe's API for thin events (retries bounded by the webhook's deadline); `None`
    /// without STRIPE_API_KEY.
    pub stripe_api: Option<StripeClient>,
}

/// In-flight events get this long to finish after SIGTERM; Stripe retries anything cut off.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

pub struct Application {
    port: u16,
    server: Server,
    catch_up: Option<Worker>,
}

impl Application {
    /// Binds `settings.listen_addr` and builds the server; it runs once awaited. With
    /// STRIPE_API_KEY and a catch-up interval, the background catch-up starts now.
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
        let state = web::Data::new(AppState {
            verifier: SignatureVerifier::new(&settings.webhook.secrets, settings.webhook.tolerance),
            pool,
            sync: settings.sync.clone(),
            metrics,
            stripe_api: client(RetryPolicy::within_a_webhook())?,
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::<RequestSpan>::new())
                .app_data(state.clone())
                .route("/webhooks/stripe", web::post().to(webhook::receive))
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz))
                .route("/metrics", web::get().to(health::metrics))
                .default_service(web::to(not_found))
        })
        // SIGTERM: stop accepting, let in-flight events finish (bounded), then return.
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen(listener)?
        .run();
        // Started once nothing can fail any more: no run without a server.
        let catch_up = catch_up.map(|(context, interval)| Worker::spawn(context, interval));
        Ok(Self {
            port,
            server,
            catch_up,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM (or the server stops), then stops the background catch-up.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(catch_up) = self.catch_up {
            catch_up.stop().await;
        }
        served
    }
}

/// A catch-up run holds one transaction open for its whole run (its lock) and reads and
/// writes with prepared statements: it needs connections that keep their session. Behind a
/// transaction pooler it gets a small pool of its own on `MIGRATION_DATABASE_URL`, the session
/// connection; without one, it is off (and says so).
fn catch_up_database(settings: &Settings, pool: &PgPool) -> Option<(PgPool, SyncSettings)> {
    /// The lock's connection and one that applies events.
    const CATCH_UP_CONNECTIONS: u32 = 2;
    let serving = settings.database.connection;
    if serving.mode.keeps_sessions() {
        return Some((pool.clone(), settings.sync.clone()));
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
    HttpResponse::NotFound()
        .json(json!({ "error": { "code": "not_found", "message": "no such route" } }))
}
