//! The command line: parse, set up logging, dispatch. The work is done elsewhere.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions};

use crate::catch_up::{self, CatchUpArgs, CatchUpOptions};
use crate::commands::backfill::{self, BackfillArgs, BackfillOptions};
use crate::commands::ensure_customer::{self as ensure_customer_command, EnsureCustomerArgs};
use crate::commands::reapply::{self, ReapplyArgs};
use crate::commands::replay::{self, ReplayArgs};
use crate::commands::verify::{self, VerifyArgs, VerifyOptions};
use crate::configuration::{self, DatabaseArgs, LogArgs, ServeArgs, Settings, StripeApiSettings};
use crate::domain::StripeMode;
use crate::local_db::{self, LocalCluster};
use crate::startup::Application;
use crate::store::{pool, schema};
use crate::stripe_api::{RetryPolicy, StripeClient};
use crate::{backup, telemetry};

#[derive(Parser, Debug)]
#[command(
    name = "stripe-customer-sync",
    version,
    about = "Keeps public.stripe_customers in step with Stripe through signed webhooks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the webhook consumer on POST /webhooks/stripe.
    // Boxed: the largest of the commands' arguments by far (clippy::large_enum_variant).
    Serve(Box<ServeArgs>),
    /// Apply pending migrations (or revert the last one).
    Migrate(MigrateArgs),
    /// Bring every existing Stripe customer in through the sync rules (resumable).
    Backfill(BackfillArgs),
    /// Compare every live row with Stripe and report drift; exit 1 on drift.
    Verify(VerifyArgs),
    /// Apply the customer events Stripe still holds (30 days) that the ledger lacks.
    CatchUp(CatchUpArgs),
    /// Get or create a user's Stripe customer, exactly as POST /customers does.
    EnsureCustomer(EnsureCustomerArgs),
    /// Sign event files with the current time, exactly as Stripe does, and POST them.
    Replay(ReplayArgs),
    /// Apply again the events the ledger holds as failed, once their cause is fixed.
    ReapplyFailed(ReapplyArgs),
    /// Exit 0 when the service answers GET /healthz (for container health checks).
    Healthcheck(HealthcheckArgs),
}

#[derive(clap::Args, Debug)]
struct HealthcheckArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    url: String,
}

#[derive(clap::Args, Debug)]
struct MigrateArgs {
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
}

/// Failures that end a command: one line on stderr and an exit code.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] configuration::ConfigError),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    fn failed(context: &str, error: impl std::fmt::Display) -> Self {
        Self::Failed(format!("{context}: {error}"))
    }
}

pub fn run() -> ExitCode {
    crate::tls::install_crypto_provider();
    // Optional, for local development; real environment variables win.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let result = cli
        .log
        .format()
        .map_err(CliError::from)
        .map(telemetry::init)
        .and_then(|()| actix_web::rt::System::new().block_on(dispatch(cli.command)));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("stripe-customer-sync: {error}");
            match error {
                CliError::Config(_) => ExitCode::from(2),
                CliError::Failed(_) => ExitCode::FAILURE,
            }
        }
    }
}

async fn dispatch(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Serve(args) => serve(*args).await.map(|()| ExitCode::SUCCESS),
        Command::Migrate(args) => migrate(args).await.map(|()| ExitCode::SUCCESS),
        Command::Backfill(args) => run_backfill(args).await,
        Command::Verify(args) => run_verify(args).await,
        Command::CatchUp(args) => run_catch_up(args).await,
        Command::EnsureCustomer(args) => run_ensure_customer(args).await,
        Command::Replay(args) => replay::run(args)
            .await
            .map_err(|e| CliError::failed("replay", e)),
        Command::ReapplyFailed(args) => run_reapply(args).await,
        Command::Healthcheck(args) => healthcheck(&args.url).await.map(|()| ExitCode::SUCCESS),
    }
}

async fn healthcheck(url: &str) -> Result<(), CliError> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| CliError::failed(url, e))?;
    if !response.status().is_success() {
        return Err(CliError::failed(url, response.status()));
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let settings = Settings::from_args(&args)?;
    let database = Database::open(settings.database.connect_options.clone()).await?;
    if !args.skip_migrations {
        // Over MIGRATION_DATABASE_URL when set: the migrator needs a session.
        let options = (settings.database.migration_connect_options.clone())
            .unwrap_or_else(|| database.options.clone());
        prepare_schema(&options, database.local.is_some()).await?;
    }
    let connection = settings.database.connection;
    warn_of_a_likely_pool_mode_mismatch(&database.options, connection.mode);
    let pool = pool::serving_pool(
        database.options.clone(),
        settings.database.max_connections,
        connection,
    );
    let application = Application::build(&settings, pool.clone())
        .map_err(|e| CliError::failed(&format!("cannot listen on {}", settings.listen_addr), e))?;
    tracing::info!(
        address = %settings.listen_addr,
        port = application.port(),
        secrets = settings.webhook.secrets.len(),
        stripe_mode = %settings.sync.mode,
        database_pool_mode = %connection.mode,
        "listening for Stripe webhooks on POST /webhooks/stripe"
    );
    if args.stripe_mode.is_none() && settings.stripe_api.is_none() {
        tracing::warn!(
            "STRIPE_MODE is not set and there is no STRIPE_API_KEY to take it from: keeping \
             test-mode and live-mode events alike; set STRIPE_MODE=live in production so that a \
             test-mode customer can never take a real user's link"
        );
    }
    match settings.customers_endpoint_off() {
        None => tracing::info!(
            hs256 = settings.customers.jwt_secret.is_some(),
            jwks = settings.customers.jwks_url.is_some(),
            allowed_origins = settings.customers.allowed_origins.len(),
            "POST /customers is on"
        ),
        Some(why) => tracing::info!("POST /customers is off (404): {why}"),
    }
    match (&settings.stripe_api, settings.catch_up_interval) {
        (None, _) => tracing::warn!(
            "STRIPE_API_KEY is not set: thin events are answered 503 not_configured, and the \
             background catch-up and the profile push are off (profile changes stay queued)"
        ),
        (Some(_), None) => {
            tracing::info!("CATCH_UP_INTERVAL is 0: the background catch-up is off")
        }
        (Some(_), Some(_)) => {}
    }
    let served = application.run_until_stopped().await;
    pool.close().await;
    database.close();
    served.map_err(|e| CliError::failed("server", e))
}

/// Supabase's transaction pooler listens on 6543: in session mode the service would keep
/// prepared statements there and fail at random once the pooler reshuffles connections.
fn warn_of_a_likely_pool_mode_mismatch(options: &PgConnectOptions, mode: pool::PoolMode) {
    if options.get_port() == SUPAVISOR_TRANSACTION_PORT && mode == pool::PoolMode::Session {
        tracing::warn!(
            "DATABASE_URL uses port 6543, Supabase's transaction pooler, but DATABASE_POOL_MODE \
             is session: unless that pooler was switched to session mode, set \
             DATABASE_POOL_MODE=transaction (and MIGRATION_DATABASE_URL)"
        );
    }
}

const SUPAVISOR_TRANSACTION_PORT: u16 = 6543;

async fn migrate(args: MigrateArgs) -> Result<(), CliError> {
    let database = Database::from_args(&args.database).await?;
    let result = async {
        let pool = pool::admin_pool(database.options.clone())
            .await
            .map_err(|e| CliError::failed("cannot connect to the database", e))?;
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
        )
        .await
    }
    .await;
    database.close();
    result
}

/// What `backfill`, `verify` and `catch-up` share: settings checked first (a bad key fails before any
/// database starts), then the database, its pool and the Stripe client.
struct FetchContext {
    database: Database,
    pool: sqlx::PgPool,
    client: StripeClient,
    api: StripeApiSettings,
    sync: crate::sync::SyncSettings,
}

impl FetchContext {
    async fn open(
        database: &DatabaseArgs,
        stripe: &configuration::StripeApiArgs,
        sync: &configuration::SyncArgs,
        connections: u32,
    ) -> Result<Self, CliError> {
        let api = StripeApiSettings::from_args(stripe)?;
        let sync = sync.settings(&api)?;
        let client = StripeClient::new(&api, RetryPolicy::default())
            .map_err(|e| CliError::failed("Stripe client", e))?;
        let database = Database::from_args(database).await?;
        let pool = match pool::command_pool(database.options.clone(), connections).await {
            Ok(pool) => pool,
            Err(error) => {
                database.close();
                return Err(CliError::failed("cannot connect to the database", error));
            }
        };
        Ok(Self {
            database,
            pool,
            client,
            api,
            sync,
        })
    }

    async fn close(self) {
        self.pool.close().await;
        self.database.close();
    }
}

async fn run_backfill(args: BackfillArgs) -> Result<ExitCode, CliError> {
    let context = FetchContext::open(&args.database, &args.stripe, &args.sync, 4).await?;
    let options = BackfillOptions {
        dry_run: args.dry_run,
        livemode: context.api.mode == StripeMode::Live,
        checkpoint: args.checkpoint.clone(),
        restart: args.restart,
        target: backfill::target_of(&context.api, &context.database.options),
        progress: true,
    };
    let result = backfill::run(&context.pool, &context.client, &context.sync, &options).await;
    context.close().await;
    let summary = result.map_err(|e| CliError::failed("backfill", e))?;
    Ok(backfill::print(&summary, args.json))
}

async fn run_verify(args: VerifyArgs) -> Result<ExitCode, CliError> {
    let concurrency = args.concurrency.clamp(1, 64);
    let context = FetchContext::open(
        &args.database,
        &args.stripe,
        &args.sync,
        concurrency as u32 + 1,
    )
    .await?;
    let options = VerifyOptions {
        fix: args.fix,
        livemode: context.api.mode == StripeMode::Live,
        allow_mass_delete: args.allow_mass_delete,
        concurrency,
        progress: true,
    };
    let result = verify::run(&context.pool, &context.client, &context.sync, &options).await;
    context.close().await;
    let report = result.map_err(|e| CliError::failed("verify", e))?;
    Ok(verify::print(&report, args.json))
}

async fn run_reapply(args: ReapplyArgs) -> Result<ExitCode, CliError> {
    let sync = args.sync.settings_without_api()?;
    let database = Database::from_args(&args.database).await?;
    let result = match pool::command_pool(database.options.clone(), 2).await {
        Ok(pool) => {
            let result = reapply::run(&pool, &sync, args.event_id.as_deref()).await;
            pool.close().await;
            result.map_err(|e| CliError::failed("reapply-failed", e))
        }
        Err(error) => Err(CliError::failed("cannot connect to the database", error)),
    };
    database.close();
    Ok(reapply::print(&result?, args.json))
}

async fn run_catch_up(args: CatchUpArgs) -> Result<ExitCode, CliError> {
    let since = args
        .since
        .as_deref()
        .map(crate::domain::parse_duration)
        .transpose()
        .map_err(|e| configuration::ConfigError {
            variable: "--since",
            problem: e.to_string(),
        })?;
    // One connection holds the run's lock; one applies events.
    let context = FetchContext::open(&args.database, &args.stripe, &args.sync, 3).await?;
    let options = CatchUpOptions {
        since,
        dry_run: args.dry_run,
        started_by: crate::store::catch_up::StartedBy::Command,
        progress: true,
    };
    let result = catch_up::run(&context.pool, &context.client, &context.sync, &options).await;
    context.close().await;
    let summary = result.map_err(|e| CliError::failed("catch-up", e))?;
    Ok(catch_up::print(&summary, args.json))
}

async fn run_ensure_customer(args: EnsureCustomerArgs) -> Result<ExitCode, CliError> {
    let user_id =
        uuid::Uuid::try_parse(args.user_id.trim()).map_err(|_| configuration::ConfigError {
            variable: "--user-id",
            problem: "must be a UUID (auth.users.id)".into(),
        })?;
    let profile_name_column = args.profile.column()?;
    let context = FetchContext::open(&args.database, &args.stripe, &args.sync, 2).await?;
    let result = async {
        let client = StripeClient::new(&context.api, crate::ensure_customer::retry_policy())
            .map_err(|e| CliError::failed("Stripe client", e))?;
        let creator = crate::ensure_customer::CustomerCreator::new(
            context.pool.clone(),
            client,
            context.sync.clone(),
            context.api.mode == StripeMode::Live,
            profile_name_column,
            std::sync::Arc::default(),
        );
        creator
            .ensure(user_id)
            .await
            .map_err(|e| CliError::failed("ensure-customer", e))
    }
    .await;
    context.close().await;
    ensure_customer_command::print(&result?);
    Ok(ExitCode::SUCCESS)
}

/// Applies the Supabase shim (plain PostgreSQL only, when asked) and pending migrations.
async fn prepare_schema(options: &PgConnectOptions, with_shim: bool) -> Result<(), CliError> {
    let pool = pool::admin_pool(options.clone())
        .await
        .map_err(|e| CliError::failed("cannot connect to the database", e))?;
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
    let profiles_watched = schema::migrate(&pool)
        .await
        .map_err(|e| CliError::failed("migration failed", e))?;
    tracing::info!(profiles_watched, "migrations are current");
    pool.close().await;
    Ok(())
}

/// The database a command works on: the one `DATABASE_URL` names, or our local one.
struct Database {
    options: PgConnectOptions,
    /// The URL the options came from (for tools that take one: pg_dump). May hold a password.
    url: String,
    local: Option<LocalCluster>,
}

/// The local database lives under the working directory, so each project has its own.
const LOCAL_DATA_DIR: &str = ".stripe-customer-sync/pgdata";
const LOCAL_DATABASE: &str = "stripe_customer_sync";

impl Database {
    /// The database of a command's `DatabaseArgs`, over a connection with a session of its
    /// own (`MIGRATION_DATABASE_URL` when set): migrations and the batch commands need one.
    async fn from_args(args: &DatabaseArgs) -> Result<Self, CliError> {
        let mut database = Self::open(args.session_database_url()?).await?;
        if database.local.is_none() {
            database.url = args.session_database_url_text().to_owned();
        }
        Ok(database)
    }

    async fn open(options: Option<PgConnectOptions>) -> Result<Self, CliError> {
        if let Some(options) = options {
            return Ok(Self {
                options,
                url: String::new(),
                local: None,
            });
        }
        let data_dir = PathBuf::from(LOCAL_DATA_DIR);
        let cluster = tokio::task::spawn_blocking(move || {
            let binaries = local_db::PgBinaries::locate()?;
            LocalCluster::start(
                &binaries,
                &local_db::ClusterOptions {
                    data_dir,
                    durable: true,
                },
            )
        })
        .await
        .map_err(|e| CliError::failed("local database", e))?
        .map_err(|e| {
            CliError::failed("no DATABASE_URL, and the local database could not start", e)
        })?;
        let url = cluster.url(LOCAL_DATABASE);
        let database = Self {
            options: pool::connect_options(&url).map_err(CliError::Failed)?,
            url: url.clone(),
            local: Some(cluster),
        };
        if let Err(error) = database.create_local_database().await {
            database.close();
            return Err(error);
        }
        tracing::info!(
            data_dir = %database.local.as_ref().map(|c| c.data_dir().display().to_string()).unwrap_or_default(),
            psql = %format!("psql '{url}'"),
            "no DATABASE_URL: using the local PostgreSQL database"
        );
        Ok(database)
    }

    async fn create_local_database(&self) -> Result<(), CliError> {
        let mut admin = self
            .options
            .clone()
            .database("postgres")
            .connect()
            .await
            .map_err(|e| CliError::failed("local database", e))?;
        let exists: bool =
            sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
                .bind(LOCAL_DATABASE)
                .fetch_one(&mut admin)
                .await
                .map_err(|e| CliError::failed("local database", e))?;
        if !exists {
            sqlx::raw_sql(AssertSqlSafe(format!("create database {LOCAL_DATABASE}")))
                .execute(&mut admin)
                .await
                .map_err(|e| CliError::failed("local database", e))?;
        }
        Ok(())
    }

    fn close(&self) {
        if let Some(cluster) = &self.local {
            match cluster.stop() {
                Ok(()) => tracing::info!("stopped the local PostgreSQL"),
                Err(error) => {
                    tracing::error!(error = %error, "could not stop the local PostgreSQL")
                }
            }
        }
    }
}
