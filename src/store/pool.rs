//! Connection pools: one for serving webhooks (short timeouts: a webhook must be answered
//! within seconds, 503 when the database cannot) and plain connections for migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

/// How long a request may wait for a pooled connection before answering 503.
/// sqlx's default is 30 s, far beyond what a webhook sender waits.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// The server cancels any serving statement that runs longer; the response goes out as 503.
const STATEMENT_TIMEOUT: &str = "4s";

/// Parses a `postgres://` URL; the error never repeats the URL (it may hold a password).
pub fn connect_options(url: &str) -> Result<PgConnectOptions, String> {
    // sqlx reads any scheme as PostgreSQL; a mysql:// URL is a mistake worth naming.
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must start with postgres:// or postgresql://".into());
    }
    PgConnectOptions::from_str(url).map_err(|e| e.to_string())
}

/// A pooled connection idle longer than this is pinged before use; one used more recently is
/// not (see [`serving_pool`]).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The pool that serves webhooks. Lazy: the service starts (and `/readyz` reports) while the
/// database is down, and connections come back on their own when it returns.
///
/// sqlx pings every connection it hands out by default (`test_before_acquire`): a round trip
/// per checkout, on top of the one it always makes when a connection goes back. Under load a
/// connection was in use a moment ago, so only one idle for more than [`PING_IF_IDLE_FOR`] is
/// pinged, which still weeds out a pool full of connections that a database restart broke. A
/// connection broken in the last second fails its statement (503, Stripe retries) and sqlx's
/// ping when it goes back discards it.
pub fn serving_pool(options: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
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
        })
        .connect_lazy_with(options.options([("statement_timeout", STATEMENT_TIMEOUT)]))
}

/// The pool of a batch command (`backfill`, `verify`): connected up front, so a wrong
/// `DATABASE_URL` fails at once; a page's statements may take seconds, never minutes.
pub async fn command_pool(
    options: PgConnectOptions,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.options([("statement_timeout", "60s")]))
        .await
}

/// A small pool for schema work: no statement timeout, a migration may take its time.
pub async fn admin_pool(options: PgConnectOptions) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}
