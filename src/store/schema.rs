//! The schema: Supabase's pieces (only on plain PostgreSQL) and our migrations.

use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::configuration::OrganizationSettings;

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

/// The checksums sqlx recorded for migrations whose files have since changed in ways that
/// alter no schema: the first three gained their `set local lock_timeout`/`statement_timeout`
/// lines. A database that applied the old text records the old checksum, which sqlx would
/// refuse as "previously applied but modified"; [`adopt_legacy_checksums`] replaces exactly
/// these known values by the current ones.
pub const LEGACY_CHECKSUMS: [(i64, &str); 3] = [
    (
        20261125000001,
        "af3c236c0a8bbf6e150b229996ee03b567dbd29f3955197204fd2ce4651d71bb3923e7b2c793f1a021a05f70260dee77",
    ),
    (
        20261125000002,
        "3ffef46634b99782efdd3c08f7256317ca1c0d00e8139812c8a41122f3f30aa22fcb644296b0f43010878e9509c88726",
    ),
    (
        20261125000003,
        "6e5fdb78e41d33f5032caae0b40a9a14d41caf69dc29df572762d18ebc0690fe80c0e36c6f1525a6032e330d1f25ec6d",
    ),
];

/// Rewrites the recorded checksum of a migration from its known legacy value to the current
/// one. Anything else (a checksum nobody shipped) is left for sqlx to refuse.
async fn adopt_legacy_checksums(pool: &PgPool) -> Result<(), sqlx::Error> {
    let has_bookkeeping: bool =
        sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null")
            .fetch_one(pool)
            .await?;
    if !has_bookkeeping {
        return Ok(());
    }
    for (version, legacy) in LEGACY_CHECKSUMS {
        let Some(current) = MIGRATOR
            .iter()
            .find(|m| m.version == version && m.migration_type.is_up_migration())
        else {
            continue;
        };
        sqlx::query(
            "update _sqlx_migrations set checksum = $1
              where version = $2 and checksum = decode($3, 'hex')",
        )
        .bind(current.checksum.as_ref())
        .bind(version)
        .bind(legacy)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Applies every pending migration, then has the profile push watch `public.profiles` if it
/// exists (it may have been created after the outbox migration ran: every `migrate`, and
/// `serve`'s start-up, picks it up). Returns whether `public.profiles` is watched.
/// Organizations in the default tables are watched too ([`migrate_with`] names others).
pub async fn migrate(pool: &PgPool) -> Result<bool, sqlx::migrate::MigrateError> {
    Ok(migrate_with(pool, &OrganizationSettings::default())
        .await?
        .profiles_watched)
}

/// What the schema watches beyond its own tables, found when migrating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// `public.profiles` exists: name changes are pushed.
    pub profiles_watched: bool,
    /// The organizations and memberships tables exist: organization billing is on.
    pub organizations_on: bool,
}

/// [`migrate`], with the organizations of `organizations`.
pub async fn migrate_with(
    pool: &PgPool,
    organizations: &OrganizationSettings,
) -> Result<Watched, sqlx::migrate::MigrateError> {
    adopt_legacy_checksums(pool).await?;
    MIGRATOR.run(pool).await?;
    Ok(Watched {
        profiles_watched: watch_profiles(pool).await?,
        organizations_on: watch_organizations(pool, organizations).await?,
    })
}

/// Installs what organization billing needs where the configured tables exist (the foreign
/// key, the organizations' lookup, the members' read policy, the outbox's trigger): see the
/// migrations `customers_may_belong_to_organizations` and `outbox_for_organizations`. Whether
/// organizations are on.
pub async fn watch_organizations(
    pool: &PgPool,
    organizations: &OrganizationSettings,
) -> Result<bool, sqlx::Error> {
    let installed: bool = sqlx::query_scalar(
        "select to_regprocedure('public.stripe_customers_watch_organizations(text, text)')
                    is not null",
    )
    .fetch_one(pool)
    .await?;
    if !installed {
        return Ok(false);
    }
    let on: bool = sqlx::query_scalar("select public.stripe_customers_watch_organizations($1, $2)")
        .bind(organizations.organizations.as_text())
        .bind(organizations.memberships.as_text())
        .fetch_one(pool)
        .await?;
    if on {
        // Changes of an organization's billing email or name are pushed (a warning in the
        // server's log, and no push, where the table lacks those columns).
        let _pushed: bool =
            sqlx::query_scalar("select public.stripe_customer_outbox_watch_organizations($1)")
                .bind(organizations.organizations.as_text())
                .fetch_one(pool)
                .await?;
    }
    Ok(on)
}

/// Attaches the outbox's trigger to `public.profiles` when both exist; whether it is attached.
pub async fn watch_profiles(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let has_outbox: bool = sqlx::query_scalar(
        "select to_regprocedure('public.stripe_customer_outbox_watch_profiles()') is not null",
    )
    .fetch_one(pool)
    .await?;
    if !has_outbox {
        return Ok(false);
    }
    sqlx::query_scalar("select public.stripe_customer_outbox_watch_profiles()")
        .fetch_one(pool)
        .await
}

/// Whether organization billing is on, without changing anything: both configured tables exist
/// and the link's foreign key to the organizations table is installed.
pub async fn organizations_on(
    pool: &PgPool,
    organizations: &OrganizationSettings,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select to_regclass($1) is not null and to_regclass($2) is not null
                and exists (select 1 from pg_catalog.pg_constraint k
                             where k.conname = 'stripe_customers_organization_id_fkey'
                               and k.conrelid = to_regclass('public.stripe_customers')
                               and k.confrelid = to_regclass($1))",
    )
    .bind(organizations.organizations.as_text())
    .bind(organizations.memberships.as_text())
    .fetch_one(pool)
    .await
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
    adopt_legacy_checksums(pool).await?;
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
