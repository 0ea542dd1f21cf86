//! The test harness: one throwaway PostgreSQL cluster per test run (or the server named by
//! `DATABASE_URL`), one fresh database per test, cloned from a template that already carries
//! the Supabase shim and our migrations.

#![allow(dead_code)] // each test module uses its own subset

mod cluster;
mod dedicated_cluster;
pub mod pgbouncer;
pub mod serve_process;
pub mod stripe_double;
pub mod tokens;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use stripe_customer_sync::configuration::{DatabaseSettings, Settings, WebhookSettings};
use stripe_customer_sync::domain::{SignatureTolerance, StripeMode, WebhookSecrets};
use stripe_customer_sync::startup::Application;
use stripe_customer_sync::store::pool::{self, ConnectionPolicy};
use stripe_customer_sync::sync::SyncSettings;
use uuid::Uuid;

pub use cluster::TestServer;
pub use dedicated_cluster::DedicatedCluster;

/// A database of its own for one test.
pub struct TestDatabase {
    pub pool: PgPool,
    pub url: String,
    pub name: String,
}

/// A fresh database with the Supabase shim and every migration applied.
pub async fn migrated_database() -> TestDatabase {
    fresh_database(cluster::Template::Migrated).await
}

/// A fresh database with the Supabase shim only: for migration up/down tests.
pub async fn shim_only_database() -> TestDatabase {
    fresh_database(cluster::Template::ShimOnly).await
}

async fn fresh_database(template: cluster::Template) -> TestDatabase {
    let server = TestServer::get().await;
    let name = server.create_database(template).await;
    let url = server.url(&name);
    let pool = PgPoolOptions::new()
        .max_connections(25)
        .connect(&url)
        .await
        .expect("connect to test database");
    TestDatabase { pool, url, name }
}

/// Inserts an `auth.users` row, as signing up on Supabase would, and returns its id.
pub async fn create_auth_user(pool: &PgPool) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("insert into auth.users (id, email) values ($1, $2)")
        .bind(id)
        .bind(format!("{id}@example.com"))
        .execute(pool)
        .await
        .expect("insert auth.users row");
    id
}

/// Inserts an `auth.users` row with a given id (fixtures carry fixed user ids).
pub async fn create_auth_user_with_id(pool: &PgPool, id: Uuid) {
    sqlx::query("insert into auth.users (id, email) values ($1, $2)")
        .bind(id)
        .bind(format!("{id}@example.com"))
        .execute(pool)
        .await
        .expect("insert auth.users row");
}

/// The endpoint secret the test app is configured with.
pub const TEST_SECRET: &str = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc";

/// The real application, on a random port, against its own fresh database.
pub struct TestApp {
    pub address: String,
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
        sync: SyncSettings {
            user_id_metadata_key: "user_id".into(),
            // The fixtures and builders are test-mode events, as `stripe listen` delivers.
            mode: StripeMode::Test,
            connection: ConnectionPolicy::default(),
        },
        stripe_api: None,
        catch_up_interval: None,
        customers: Default::default(),
        profile_push: Default::default(),
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
    tokio::spawn(application.run_until_stopped());
    TestApp {
        address,
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

/// Signs `payload` at time `t` with Stripe's scheme, using async-stripe's signer: an
/// implementation independent of the one under test.
pub fn stripe_signature(payload: &str, secret: &str, t: i64) -> String {
    stripe_webhook::Webhook::generate_test_header(payload, secret, Some(t))
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl TestApp {
    /// POSTs `payload` signed now with the app's secret, as Stripe delivers it.
    pub async fn deliver(&self, payload: &str) -> reqwest::Response {
        let header = stripe_signature(payload, TEST_SECRET, now());
        self.post_webhook(payload.as_bytes().to_vec(), Some(&header))
            .await
    }

    /// POSTs `body` with the given `Stripe-Signature` header (or none).
    pub async fn post_webhook(&self, body: Vec<u8>, signature: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/stripe", self.address))
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        request.send().await.expect("send webhook")
    }

    /// Delivers and returns (HTTP status, JSON body); fails unless the answer is JSON.
    pub async fn deliver_json(&self, payload: &str) -> (u16, serde_json::Value) {
        json_reply(self.deliver(payload).await).await
    }

    /// Delivers `payload` and asserts the answer is `200 {"status", "event_id": <payload's id>}`.
    /// `expected` is written as `replay` prints it: `"processed"`, `"skipped stale_event"`.
    pub async fn deliver_expecting(&self, payload: &str, expected: &str) {
        let (status, body) = self.deliver_json(payload).await;
        assert_eq!(
            (status, &body),
            (200, &expected_answer(payload, expected)),
            "answer to {}",
            event_id_of(payload)
        );
    }

    /// Asserts the ledger recorded `event_id` with `expected` = `"outcome[ reason]"`.
    pub async fn assert_recorded(&self, event_id: &str, expected: &str) {
        let row = self
            .ledger_row(event_id)
            .await
            .unwrap_or_else(|| panic!("{event_id} not in the ledger"));
        let mut words = expected.split_whitespace();
        let (outcome, reason) = (words.next(), words.next());
        assert_eq!(
            (row["outcome"].as_str(), row["reason"].as_str()),
            (outcome, reason),
            "ledger row of {event_id}"
        );
    }

    /// Who the customer row is linked to, and its `customer_metadata.sync` status and error.
    pub async fn link_state(&self, stripe_customer_id: &str) -> LinkState {
        let row = self
            .customer(stripe_customer_id)
            .await
            .unwrap_or_else(|| panic!("no row for {stripe_customer_id}"));
        let sync = &row["customer_metadata"]["sync"];
        LinkState {
            user_id: row["user_id"]
                .as_str()
                .map(|id| Uuid::parse_str(id).expect("user_id is a uuid")),
            status: sync["status"].as_str().unwrap_or_default().to_owned(),
            error: sync["error"].as_str().map(str::to_owned),
        }
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/webhooks/stripe", self.address)
    }

    /// Row counts of the three tables, to show that a request wrote nothing.
    pub async fn table_counts(&self) -> TableCounts {
        TableCounts {
            ledger: self.ledger_count().await,
            customers: self.customer_count().await,
            audit: self.audit_count().await,
        }
    }

    /// The audit rows of one customer (`to_jsonb`), oldest first.
    pub async fn audit_rows(&self, stripe_customer_id: &str) -> Vec<serde_json::Value> {
        sqlx::query_scalar(
            "select to_jsonb(a) from public.stripe_customers_audit a
              where stripe_customer_id = $1 order by id",
        )
        .bind(stripe_customer_id)
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }

    pub async fn ledger_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from public.stripe_webhook_events")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    pub async fn customer_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from public.stripe_customers")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    pub async fn audit_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from public.stripe_customers_audit")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// The customer row as JSON (`to_jsonb`), or `None`.
    pub async fn customer(&self, stripe_customer_id: &str) -> Option<serde_json::Value> {
        sqlx::query_scalar(
            "select to_jsonb(c) from public.stripe_customers c where stripe_customer_id = $1",
        )
        .bind(stripe_customer_id)
        .fetch_optional(&self.db.pool)
        .await
        .unwrap()
    }

    /// The ledger row of an event as JSON, or `None`.
    pub async fn ledger_row(&self, event_id: &str) -> Option<serde_json::Value> {
        sqlx::query_scalar("select to_jsonb(e) from public.stripe_webhook_events e where id = $1")
            .bind(event_id)
            .fetch_optional(&self.db.pool)
            .await
            .unwrap()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableCounts {
    pub ledger: i64,
    pub customers: i64,
    pub audit: i64,
}

/// (HTTP status, JSON body) of a response; fails unless it says `content-type: application/json`.
pub async fn json_reply(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .cloned();
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "content-type of a {status} answer"
    );
    (status, response.json().await.expect("JSON response"))
}

/// The `id` of an event payload.
pub fn event_id_of(payload: &str) -> String {
    let event: serde_json::Value = serde_json::from_str(payload).expect("event payload is JSON");
    event["id"].as_str().expect("event has an id").to_owned()
}

/// The 200 body the service answers `payload` with, for `expected` = `"status[ reason]"`.
pub fn expected_answer(payload: &str, expected: &str) -> serde_json::Value {
    let mut words = expected.split_whitespace();
    let status = words.next().expect("a status");
    let mut answer = serde_json::json!({ "status": status, "event_id": event_id_of(payload) });
    if let Some(reason) = words.next() {
        answer["reason"] = serde_json::json!(reason);
    }
    answer
}

/// A customer row's link: `user_id`, `sync.status`, `sync.error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub user_id: Option<Uuid>,
    pub status: String,
    pub error: Option<String>,
}

impl LinkState {
    pub fn linked(user_id: Uuid) -> Self {
        Self {
            user_id: Some(user_id),
            status: "synced".into(),
            error: None,
        }
    }

    pub fn unlinked(reason: &str) -> Self {
        Self {
            user_id: None,
            status: "unlinked".into(),
            error: Some(reason.into()),
        }
    }

    pub fn deleted() -> Self {
        Self {
            user_id: None,
            status: "deleted".into(),
            error: None,
        }
    }
}
