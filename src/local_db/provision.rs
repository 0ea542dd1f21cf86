//! The database `serve` and the commands use on the local cluster: where the cluster lives
//! and creating the database on it.

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions};

/// `serve`'s local database lives under the working directory, so each project has its own.
pub(crate) const LOCAL_DATA_DIR: &str = ".stripe-customer-sync/pgdata";
/// The database `serve` and the commands use on the local cluster.
pub(crate) const LOCAL_DATABASE: &str = "stripe_customer_sync";

/// Creates [`LOCAL_DATABASE`] on the cluster `options` reaches (through its `postgres`
/// database), unless it exists.
pub(crate) async fn create_local_database(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(LOCAL_DATABASE)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        sqlx::raw_sql(AssertSqlSafe(format!("create database {LOCAL_DATABASE}")))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}
