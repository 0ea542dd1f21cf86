//! `migrate`: back up (when asked), then apply pending migrations or revert the last one;
//! and the schema preparation `serve` shares.

use std::path::PathBuf;
use std::process::ExitCode;

use sqlx::postgres::PgConnectOptions;

use super::CliError;
use super::database::{Database, LocalUse};
use crate::backup;
use crate::configuration::{DatabaseArgs, OrganizationArgs, OrganizationSettings};
use crate::store::{pool, schema};

#[derive(clap::Args, Debug)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Undo the most recently applied migration instead.
    #[arg(long)]
    revert: bool,
    /// On plain PostgreSQL, first create what Supabase provides (auth schema, auth.users,
    /// roles). Never needed, and never applied, on Supabase.
    #[arg(long)]
    supabase_shim: bool,
    /// First back up into DIR/<timestamp>/: pg_dump --schema-only, and auth.users,
    /// public.profiles, public.stripe_customers as CSV. Nothing is migrated if this fails.
    #[arg(long, value_name = "DIR")]
    backup_dir: Option<PathBuf>,
    /// ORGANIZATIONS_TABLE and the rest: organization billing is installed where they exist.
    #[command(flatten)]
    organizations: OrganizationArgs,
}

pub(crate) async fn command(args: MigrateArgs) -> Result<ExitCode, CliError> {
    let organizations = OrganizationSettings::from_args(&args.organizations)?;
    let database = Database::from_args(&args.database, LocalUse::Migrate).await?;
    let result = async {
        let pool = pool::admin_pool(database.options.clone())
            .await
            .map_err(|e| CliError::database(format!("cannot connect to the database: {e}")))?;
        if let Some(backup_dir) = &args.backup_dir {
            let backup = backup::run(&database.url, &pool, backup_dir)
                .await
                .map_err(|e| CliError::failed("backup failed, nothing was migrated", e))?;
            tracing::info!(
                dir = %backup.dir.display(),
                tables = backup.tables.len(),
                "backed up the schema and the user data"
            );
        }
        if args.revert {
            match schema::revert_last(&pool)
                .await
                .map_err(|e| CliError::failed("revert", e))?
            {
                Some(version) => tracing::info!(version, "reverted migration"),
                None => tracing::info!("no migration to revert"),
            }
            return Ok(());
        }
        drop(pool);
        prepare_schema(
            &database.options,
            args.supabase_shim || database.local.is_some(),
            &organizations,
        )
        .await
        .map(drop)
    }
    .await;
    database.close();
    result.map(|()| ExitCode::SUCCESS)
}

/// Applies the Supabase shim (plain PostgreSQL only, when asked) and pending migrations; says
/// what the schema watches (profiles, organizations).
pub(super) async fn prepare_schema(
    options: &PgConnectOptions,
    with_shim: bool,
    organizations: &OrganizationSettings,
) -> Result<schema::Watched, CliError> {
    let pool = pool::admin_pool(options.clone())
        .await
        .map_err(|e| CliError::database(format!("cannot connect to the database: {e}")))?;
    if with_shim
        && schema::apply_supabase_shim_if_missing(&pool)
            .await
            .map_err(|e| CliError::failed("Supabase shim", e))?
    {
        tracing::info!("applied the Supabase compatibility shim (auth schema, roles)");
    }
    let has_auth: bool = sqlx::query_scalar("select to_regclass('auth.users') is not null")
        .fetch_one(&pool)
        .await
        .map_err(|e| CliError::failed("cannot query the database", e))?;
    if !has_auth {
        return Err(CliError::Failed(
            "auth.users does not exist: this is not a Supabase database; on plain PostgreSQL run \
             `stripe-customer-sync migrate --supabase-shim` first"
                .into(),
        ));
    }
    let watched = schema::migrate_with(&pool, organizations)
        .await
        .map_err(|e| CliError::failed("migration failed", e))?;
    tracing::info!(
        profiles_watched = watched.profiles_watched,
        organizations_on = watched.organizations_on,
        organizations_table = %organizations.organizations,
        "migrations are current"
    );
    pool.close().await;
    Ok(watched)
}
