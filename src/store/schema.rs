//! The schema: Supabase's pieces (only on plain PostgreSQL) and our migrations.

use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// Our migrations, embedded so the binary (and the container) carries them.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What a Supabase project already has and plain PostgreSQL lacks: the `auth` schema,
/// `auth.users`, `auth.uid()`/`auth.role()`/`auth.jwt()` and the API roles.
const SUPABASE_SHIM: &str = include_str!("supabase_shim.sql");

/// Applies the Supabase compatibility shim unless `auth.users` already exists (as it does on
/// Supabase, where this is a no-op). Returns whether it was applied.
pub async fn apply_supabase_shim_if_missing(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let has_auth_users: bool = sqlx::query_scalar("select to_regclass('auth.users') is not null")
        .fetch_one(pool)
        .await?;
    if has_auth_users {
        return Ok(false);
    }
    sqlx::raw_sql(SUPABASE_SHIM).execute(pool).await?;
    Ok(true)
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Undoes the most recently applied migration; `None` when nothing is applied.
pub async fn revert_last(pool: &PgPool) -> Result<Option<i64>, sqlx::migrate::MigrateError> {
    let applied: Option<i64> =
        sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
            .fetch_one(pool)
            .await
            .ok()
            .flatten();
    let Some(last) = applied else { return Ok(None) };
    let target = MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| *v < last)
        .max()
        .unwrap_or(0);
    MIGRATOR.undo(pool, target).await?;
    Ok(Some(last))
}

/// True when every embedded migration is applied (readiness).
///
/// A simple query (one protocol message, no prepared statement): it works unchanged through a
/// transaction pooler, which may hand each message of an extended-protocol query to a
/// different server connection.
pub async fn is_current(pool: &PgPool) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let row = sqlx::raw_sql("select max(version) from _sqlx_migrations where success")
        .fetch_one(pool)
        .await?;
    let applied: Option<i64> = row.try_get(0)?;
    Ok(applied.unwrap_or(0) >= latest)
}
