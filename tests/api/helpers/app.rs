//! The real application, in the test process, on a random port against its own database.

use stripe_customer_sync::configuration::{
    DatabaseSettings, Settings, StripeApiSettings, WebhookSettings,
};
use stripe_customer_sync::domain::{
    LedgerRetention, SignatureTolerance, StripeMode, WebhookSecrets, ledger_retention,
};
use stripe_customer_sync::startup::Application;
use stripe_customer_sync::store::pool::{self, ConnectionPolicy};
use stripe_customer_sync::sync::SyncSettings;
use uuid::Uuid;

use super::database::{TestDatabase, migrated_database};
use super::stripe_double::{StripeDouble, TEST_API_KEY};
use super::webhooks::TEST_SECRET;
use super::{pgbouncer, stripe_double, tokens};

/// The real application, on a random port, against its own fresh database.
pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:<port>` of `/metrics` when the settings gave it an address of its own.
    pub metrics_address: Option<String>,
    pub db: TestDatabase,
    pub client: reqwest::Client,
    /// The pooler between the app and `db` under `TEST_UPSTREAM`; kept up as long as the app.
    pub route: Option<pgbouncer::Route>,
}

/// Spawns the app on a fresh migrated database with the default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(migrated_database().await, |_| {}).await
}

/// Spawns the app on `db`, after `configure` has adjusted the settings.
pub async fn spawn_app_with(db: TestDatabase, configure: impl FnOnce(&mut Settings)) -> TestApp {
    init_logs();
    let mut settings = Settings {
        database: DatabaseSettings {
            connect_options: None,
            max_connections: 10,
            migration_connect_options: None,
            connection: ConnectionPolicy::default(),
        },
        webhook: WebhookSettings {
            secrets: WebhookSecrets::parse(TEST_SECRET).unwrap(),
            tolerance: SignatureTolerance::default(),
        },
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        http: Default::default(),
        sync: SyncSettings {
            user_id_metadata_key: "user_id".into(),
            // The fixtures and builders are test-mode events, as `stripe listen` delivers.
            mode: StripeMode::Test,
            connection: ConnectionPolicy::default(),
            tiers: Default::default(),
        },
        stripe_api: None,
        catch_up_interval: None,
        customers: Default::default(),
        profile_push: Default::default(),
        ledger_retention: LedgerRetention::parse(ledger_retention::DEFAULT).unwrap(),
        organizations: Default::default(),
    };
    configure(&mut settings);
    // Under TEST_UPSTREAM, through a pooler, unless the test chose its own way to the database.
    let route = match pgbouncer::Upstream::from_env() {
        pgbouncer::Upstream::Direct => None,
        _ if settings.database.connect_options.is_some() => None,
        upstream => pgbouncer::Route::open(upstream, &db.url, &db.name),
    };
    if let Some(route) = &route {
        settings.database.connect_options = Some(pool::connect_options(route.url()).unwrap());
        settings.database.connection.mode = route.pool_mode();
        // What needs a session (the background catch-up) goes direct, as README advises.
        settings.database.migration_connect_options = Some(pool::connect_options(&db.url).unwrap());
    }
    // The serving path sees one policy, as `serve` builds it from the configuration.
    settings.sync.connection = settings.database.connection;
    // `db.url` unless the test points the app elsewhere (e.g. at a pooler in front of `db`).
    let options = (settings.database.connect_options.clone())
        .unwrap_or_else(|| pool::connect_options(&db.url).unwrap());
    let serving_pool = pool::serving_pool(
        options,
        settings.database.max_connections,
        settings.database.connection,
    );
    let application = Application::build(&settings, serving_pool).expect("build app");
    let address = format!("http://127.0.0.1:{}", application.port());
    let metrics_address =
        (application.metrics_port()).map(|port| format!("http://127.0.0.1:{port}"));
    tokio::spawn(application.run_until_stopped());
    TestApp {
        address,
        metrics_address,
        db,
        client: reqwest::Client::new(),
        route,
    }
}

/// The app with `POST /customers` on: Stripe's API at the double, tokens verified with
/// [`tokens::JWT_SECRET`], `https://app.example.com` allowed; then `configure`.
pub async fn spawn_app_with_customers(
    double: &stripe_double::StripeDouble,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_app_with_customers_on(migrated_database().await, double, configure).await
}

/// [`spawn_app_with_customers`] on a given database.
pub async fn spawn_app_with_customers_on(
    db: TestDatabase,
    double: &stripe_double::StripeDouble,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let base = format!("{}/", double.base_url);
    spawn_app_with(db, |settings| {
        settings.stripe_api = Some(stripe_customer_sync::configuration::StripeApiSettings {
            key: stripe_double::TEST_API_KEY.to_owned().into(),
            mode: StripeMode::Test,
            base: base.parse().unwrap(),
        });
        settings.customers.jwt_secret = Some(tokens::JWT_SECRET.to_owned().into());
        settings.customers.allowed_origins = vec!["https://app.example.com".into()];
        configure(settings);
    })
    .await
}

impl TestApp {
    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `POST /customers` with `Authorization: Bearer <token>` and `body` (JSON) if any.
    pub async fn post_customers(
        &self,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        post_customers(
            &self.client,
            &format!("{}/customers", self.address),
            token,
            body,
        )
        .await
    }

    /// The user's row in `public.stripe_customers`, as JSON, if any.
    pub async fn customer_of_user(&self, user_id: Uuid) -> Option<serde_json::Value> {
        sqlx::query_scalar("select to_jsonb(c) from public.stripe_customers c where user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.db.pool)
            .await
            .unwrap()
    }
}

/// `POST <url>` with the token and JSON body, as an app's backend or browser sends it.
pub async fn post_customers(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> reqwest::Response {
    let mut request = client.post(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("POST /customers")
}

fn init_logs() {
    stripe_customer_sync::tls::install_crypto_provider();
    // Quiet unless asked: `TEST_LOG=1 cargo test` shows the app's logs.
    if std::env::var_os("TEST_LOG").is_some() {
        stripe_customer_sync::telemetry::init(stripe_customer_sync::telemetry::LogFormat::Pretty);
    }
}

/// The app with STRIPE_API_KEY set and Stripe's API at the double.
pub async fn spawn_app_with_stripe(double: &StripeDouble) -> TestApp {
    let base = format!("{}/", double.base_url);
    spawn_app_with(migrated_database().await, |settings| {
        settings.stripe_api = Some(StripeApiSettings {
            key: TEST_API_KEY.to_owned().into(),
            mode: stripe_customer_sync::domain::StripeMode::Test,
            base: base.parse().unwrap(),
        });
    })
    .await
}
