//! Connection pools: one for serving webhooks (short timeouts: a webhook must be answered
//! within seconds, 503 when the database cannot), small ones beside it for the parts of `serve`
//! that must never take the webhooks' connections ([`pool_beside`]), and plain connections for
//! migrations.
//!
//! Every pool here connects through any pooler a Supabase project offers (Supavisor, PgBouncer,
//! session or transaction mode): the startup packet carries only the parameters poolers accept
//! (no `extra_float_digits`, no `options`), and timeouts are set by SQL in the way the pooler
//! mode honours (see [`ConnectionPolicy`] and [`super::session`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use futures_util::FutureExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

/// How long a request may wait for a pooled connection before answering 503.
/// sqlx's default is 30 s, far beyond what a webhook sender waits.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// The server cancels any serving statement that runs longer; the response goes out as 503.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(4);
/// A batch command's page may take seconds, never minutes.
const COMMAND_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How the server connections behind `DATABASE_URL` are shared (`DATABASE_POOL_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolMode {
    /// A connection of our own for as long as we hold it: the direct connection, Supavisor's
    /// session mode (port 5432) or PgBouncer's `pool_mode = session`.
    #[default]
    Session,
    /// A server connection per transaction only: Supavisor's transaction mode (port 6543) or
    /// PgBouncer's `pool_mode = transaction`. No session state may outlive a transaction.
    Transaction,
}

impl PoolMode {
    /// Whether session-scoped features work: LISTEN/NOTIFY (a notification reaches only the
    /// server connection that listened), session advisory locks, session `SET`s. Where they do
    /// not, a worker that would wait for a notification falls back to its periodic sweep.
    pub fn keeps_sessions(self) -> bool {
        self == Self::Session
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Transaction => "transaction",
        }
    }
}

impl FromStr for PoolMode {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "session" => Ok(Self::Session),
            "transaction" => Ok(Self::Transaction),
            _ => Err(
                "must be `session` (direct connection, session pooler) or `transaction` \
                      (Supavisor on port 6543, PgBouncer pool_mode = transaction)",
            ),
        }
    }
}

impl fmt::Display for PoolMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the serving path needs to know to use a connection: the pooler's mode and the
/// server-side statement timeout to put on every statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionPolicy {
    pub mode: PoolMode,
    pub statement_timeout: Duration,
}

impl Default for ConnectionPolicy {
    fn default() -> Self {
        Self {
            mode: PoolMode::Session,
            statement_timeout: STATEMENT_TIMEOUT,
        }
    }
}

/// Parses a `postgres://` URL; the error never repeats the URL (it may hold a password).
pub fn connect_options(url: &str) -> Result<PgConnectOptions, String> {
    // sqlx reads any scheme as PostgreSQL; a mysql:// URL is a mistake worth naming.
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must start with postgres:// or postgresql://".into());
    }
    // PgBouncer refuses any startup parameter it does not know ("unsupported startup
    // parameter: extra_float_digits"); PostgreSQL 12+ already prints floats exactly by
    // default, and sqlx reads numbers in binary anyway.
    PgConnectOptions::from_str(url)
        .map(|options| options.extra_float_digits(None))
        .map_err(|e| e.to_string())
}

/// A pooled connection idle longer than this is pinged before use; one used more recently is
/// not (see [`serving_pool`]).
pub(crate) const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The pool that serves webhooks. Lazy: the service starts (and `/readyz` reports) while the
/// database is down, and connections come back on their own when it returns.
///
/// sqlx pings every connection it hands out by default (`test_before_acquire`): a round trip
/// per checkout, on top of the one it always makes when a connection goes back. Under load a
/// connection was in use a moment ago, so only one idle for more than [`PING_IF_IDLE_FOR`] is
/// pinged, which still weeds out a pool full of connections that a database restart broke. A
/// connection broken in the last second fails its statement (503, Stripe retries) and sqlx's
/// ping when it goes back discards it. (sqlx's ping is a bare protocol Sync: any pooler, any
/// mode, answers it.)
///
/// The statement timeout: in session mode set once per connection, right after connecting
/// (not as a startup `options` parameter, which PgBouncer refuses and Supavisor silently
/// drops); in transaction mode a session `SET` would land on whichever server connection is
/// free and stay there for other clients, so each event's transaction sets it with
/// `set local` instead ([`super::session::EventScope`]).
pub fn serving_pool(
    options: PgConnectOptions,
    max_connections: u32,
    policy: ConnectionPolicy,
) -> PgPool {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    connection.ping().await?;
                }
                Ok(true)
            })
        });
    match policy.mode {
        PoolMode::Session => with_session_statement_timeout(pool, policy.statement_timeout),
        PoolMode::Transaction => pool,
    }
    .connect_lazy_with(options)
}

/// Connections of `POST /customers` (and its `ensure-customer`), apart from the webhooks': a
/// burst of sign-ups waits for these and never for a webhook's. Each creation holds one for a
/// few statements at a time (never while Stripe answers), so a few serve hundreds of sign-ups
/// a second; a request waiting for another's Stripe call polls without one.
pub const CUSTOMERS_CONNECTIONS: u32 = 4;
/// `/readyz`'s one connection: a probe never takes a webhook's, and a flood of probes queues
/// on it (each bounded by its own deadline) rather than spreading over the webhooks' pool.
pub const HEALTH_CONNECTIONS: u32 = 1;

/// A pool of `connections` beside `webhooks`, to the same database with the same policy: a
/// part of the service (docs/design.md "Capacity") that must not take the webhooks' connections.
/// Behind a pooler each part's client connections are separate too; the server connections
/// behind a transaction pooler are shared, but none is held across a call to another peer.
pub fn pool_beside(webhooks: &PgPool, connections: u32, policy: ConnectionPolicy) -> PgPool {
    serving_pool((*webhooks.connect_options()).clone(), connections, policy)
}

/// The pool of a batch command (`backfill`, `verify`): connected up front, so a wrong
/// `DATABASE_URL` fails at once. Needs a session (a direct or session-pooler connection).
pub async fn command_pool(
    options: PgConnectOptions,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10));
    with_session_statement_timeout(pool, COMMAND_STATEMENT_TIMEOUT)
        .connect_with(options)
        .await
}

/// A small pool for schema work: no statement timeout, a migration may take its time.
/// Needs a session: sqlx's migrator holds a session advisory lock while it migrates.
pub async fn admin_pool(options: PgConnectOptions) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

/// A connection of its own for a webhook writer (`sync::batch`), outside the pool: opened with
/// the pool's options from the writer's task, so that its socket is driven by the runtime of
/// the HTTP worker whose events it writes (no hop to another thread per statement), and kept
/// for as long as it works. Its session: the statement timeout, and generic plans for the
/// batch statements (see `sync::batch`), which is also why it never joins the pool.
pub(crate) async fn writer_connection(
    pool: &PgPool,
    statement_timeout: Duration,
) -> Result<PgConnection, sqlx::Error> {
    let mut connection = PgConnection::connect_with(&pool.connect_options()).await?;
    let set = format!(
        "{}; set plan_cache_mode = force_generic_plan",
        set_statement_timeout(statement_timeout)
    );
    sqlx::raw_sql(AssertSqlSafe(set))
        .execute(&mut connection)
        .await?;
    Ok(connection)
}

/// Sets `statement_timeout` for the life of each new connection: one round trip per
/// connection, none per statement. Only for connections that keep their session.
fn with_session_statement_timeout(
    pool: PgPoolOptions,
    statement_timeout: Duration,
) -> PgPoolOptions {
    let set = set_statement_timeout(statement_timeout);
    pool.after_connect(move |connection, _meta| {
        // A simple query: no prepared statement is left behind.
        sqlx::raw_sql(AssertSqlSafe(set.clone()))
            .execute(connection)
            .map(|result| result.map(drop))
            .boxed()
    })
}

/// The session's `statement_timeout`, as a statement.
fn set_statement_timeout(timeout: Duration) -> String {
    format!("set statement_timeout = '{}ms'", timeout.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_mode_parses_both_modes_and_names_the_choices_otherwise() {
        assert_eq!(" Session ".parse(), Ok(PoolMode::Session));
        assert_eq!("transaction".parse(), Ok(PoolMode::Transaction));
        let error = "statement".parse::<PoolMode>().unwrap_err();
        assert!(
            error.contains("session") && error.contains("transaction"),
            "{error}"
        );
    }

    #[test]
    fn no_startup_parameter_a_pooler_refuses() {
        let options = connect_options("postgres://u:p@pooler.example:6543/postgres").unwrap();
        // Debug is the only window onto the options sqlx will send at start-up.
        let debug = format!("{options:?}");
        assert!(debug.contains("extra_float_digits: None"), "{debug}");
        assert!(debug.contains("options: None"), "{debug}");
    }
}
