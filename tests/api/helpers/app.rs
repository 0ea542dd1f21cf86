//! The real application, in the test process, on a random port against its own database. Its
//! settings are read from an environment as `serve` reads its own ([`Settings::from_env`]): the
//! test defaults below, what a test adds, then what a test changes in the settings themselves.

use stripe_customer_sync::configuration::Settings;
use stripe_customer_sync::startup::{self, Application};
use uuid::Uuid;

use super::database::{TestDatabase, migrated_database};
use super::stripe_double::{StripeDouble, TEST_API_KEY};
use super::webhooks::TEST_SECRET;
use super::{pgbouncer, tokens};

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

/// Environment variables, as `serve` reads them.
pub type Env = Vec<(&'static str, String)>;

/// What every test's app starts from, beside `DATABASE_URL`: the rest is `serve`'s defaults.
fn test_env() -> Env {
    vec![
        ("STRIPE_WEBHOOK_SECRET", TEST_SECRET.to_owned()),
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        // The fixtures and builders are test-mode events, as `stripe listen` delivers.
        ("STRIPE_MODE", "test".to_owned()),
        // The harness migrated the database; a test that wants the catch-up asks for it.
        ("SKIP_MIGRATIONS", "true".to_owned()),
        ("CATCH_UP_INTERVAL", "0".to_owned()),
    ]
}

/// STRIPE_API_KEY, and Stripe's API at the double.
pub fn stripe_env(double: &StripeDouble) -> Env {
    vec![
        ("STRIPE_API_KEY", TEST_API_KEY.to_owned()),
        ("STRIPE_API_BASE", format!("{}/", double.base_url)),
    ]
}

/// `POST /customers` on: [`stripe_env`], tokens verified with [`tokens::JWT_SECRET`],
/// `https://app.example.com` allowed.
pub fn customers_env(double: &StripeDouble) -> Env {
    let mut env = stripe_env(double);
    env.push(("SUPABASE_JWT_SECRET", tokens::JWT_SECRET.to_owned()));
    env.push(("ALLOWED_ORIGINS", "https://app.example.com".to_owned()));
    env
}

/// Spawns the app on a fresh migrated database with the default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(migrated_database().await, |_| {}).await
}

/// Spawns the app on `db`, after `configure` has adjusted the settings.
pub async fn spawn_app_with(db: TestDatabase, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_from_env(db, Env::new(), configure).await
}

/// Spawns the app on `db` in the test environment with `env` added (a name given again wins),
/// after `configure` has adjusted the settings read from it.
pub async fn spawn_app_from_env(
    db: TestDatabase,
    env: Env,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    init_logs();
    // Under TEST_UPSTREAM, through a pooler, unless the test chose its own way to the database.
    let route = match pgbouncer::Upstream::from_env() {
        pgbouncer::Upstream::Direct => None,
        _ if env.iter().any(|(name, _)| *name == "DATABASE_URL") => None,
        upstream => pgbouncer::Route::open(upstream, &db.url, &db.name),
    };
    let mut vars = test_env();
    vars.push(("DATABASE_URL", db.url.clone()));
    if let Some(route) = &route {
        vars.push(("DATABASE_URL", route.url().to_owned()));
        vars.push(("DATABASE_POOL_MODE", route.pool_mode().as_str().to_owned()));
        // What needs a session (the background catch-up) goes direct, as README advises.
        vars.push(("MIGRATION_DATABASE_URL", db.url.clone()));
    }
    vars.extend(env);
    let mut settings = Settings::from_env(vars.iter().map(|(name, value)| (*name, value.as_str())))
        .expect("the test configuration");
    configure(&mut settings);
    let database = (settings.database.connect_options.clone()).expect("DATABASE_URL is set");
    let pool = startup::serving_pool(&settings, database);
    let application = Application::build(&settings, pool).expect("build app");
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

/// The app with `POST /customers` on ([`customers_env`]); then `configure`.
pub async fn spawn_app_with_customers(
    double: &StripeDouble,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_app_with_customers_on(migrated_database().await, double, configure).await
}

/// [`spawn_app_with_customers`] on a given database.
pub async fn spawn_app_with_customers_on(
    db: TestDatabase,
    double: &StripeDouble,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_app_from_env(db, customers_env(double), configure).await
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
    spawn_app_from_env(migrated_database().await, stripe_env(double), |_| {}).await
}
