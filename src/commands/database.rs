//! The database a command works on: the one `DATABASE_URL` names, or the local one.
//!
//! Without `DATABASE_URL` every command uses the same local database, under the working
//! directory: the cluster `serve` (or another command) is running there, found from its data
//! directory, or else one started for the command, brought up to date as `serve` does (the
//! Supabase shim and the migrations) and stopped when the command ends. The URL used is logged,
//! ready for `psql`.

use std::path::PathBuf;

use sqlx::postgres::PgConnectOptions;

use super::CliError;
use super::migrate::prepare_schema;
use crate::configuration::DatabaseArgs;
use crate::local_db::{self, LocalCluster, RunningCluster};
use crate::store::pool;

pub(super) struct Database {
    pub(super) options: PgConnectOptions,
    /// The URL the options came from (for tools that take one: pg_dump). May hold a password.
    pub(super) url: String,
    /// `None`: `DATABASE_URL`'s database.
    pub(super) local: Option<Local>,
}

/// The local cluster a command is on.
pub(super) enum Local {
    /// Started for this command: [`Database::close`] stops it.
    Started(LocalCluster),
    /// Another process runs it (`serve`, another command): left running.
    Shared,
}

/// What a command does with the local database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LocalUse {
    /// `serve` starts the cluster and keeps it while it serves (and migrates on its own). One
    /// already running is another `serve`'s or a command's: an error that says whose.
    Serve,
    /// `migrate` shares a running cluster or starts one, and migrates (or reverts) on its own.
    Migrate,
    /// The other commands share a running cluster, or start one and bring its schema up to
    /// date as `serve` does.
    Command,
}

impl Database {
    /// The database of a command's `DatabaseArgs`, over a connection with a session of its
    /// own (`MIGRATION_DATABASE_URL` when set): migrations and the batch commands need one.
    pub(super) async fn from_args(args: &DatabaseArgs, local: LocalUse) -> Result<Self, CliError> {
        let mut database = Self::open(args.session_database_url()?, local).await?;
        if database.local.is_none() {
            database.url = args.session_database_url_text().to_owned();
        }
        Ok(database)
    }

    pub(super) async fn open(
        options: Option<PgConnectOptions>,
        local: LocalUse,
    ) -> Result<Self, CliError> {
        if let Some(options) = options {
            return Ok(Self {
                options,
                url: String::new(),
                local: None,
            });
        }
        let data_dir = PathBuf::from(local_db::LOCAL_DATA_DIR);
        if let Some(running) = RunningCluster::find(&data_dir) {
            return Self::share(running, local);
        }
        let started = tokio::task::spawn_blocking({
            let data_dir = data_dir.clone();
            move || {
                let binaries = local_db::PgBinaries::locate()?;
                LocalCluster::start(
                    &binaries,
                    &local_db::ClusterOptions {
                        data_dir,
                        durable: true,
                    },
                )
            }
        })
        .await
        .map_err(|e| CliError::failed("local database", e))?;
        let cluster = match started {
            Ok(cluster) => cluster,
            // Another command started it meanwhile: share that one.
            Err(error) => match RunningCluster::find(&data_dir) {
                Some(running) => return Self::share(running, local),
                None => {
                    return Err(CliError::database(format!(
                        "no DATABASE_URL, and the local database could not start: {error}"
                    )));
                }
            },
        };
        let url = cluster.url(local_db::LOCAL_DATABASE);
        let database = Self {
            options: pool::connect_options(&url).map_err(CliError::Failed)?,
            url: url.clone(),
            local: Some(Local::Started(cluster)),
        };
        if let Err(error) = database.provision(local).await {
            database.close();
            return Err(error);
        }
        if local == LocalUse::Serve {
            tracing::info!(
                data_dir = %data_dir.display(),
                database_url = %url,
                psql = %format!("psql '{url}'"),
                "no DATABASE_URL: using the local PostgreSQL database; commands run in this \
                 directory use it too"
            );
        } else {
            tracing::info!(
                data_dir = %data_dir.display(),
                database_url = %url,
                psql = %format!("psql '{url}'"),
                "no DATABASE_URL: started the local PostgreSQL database for this command; it \
                 stops when the command ends"
            );
        }
        Ok(database)
    }

    /// Uses the cluster another process runs, unless this is `serve`, which must own its own.
    fn share(running: RunningCluster, local: LocalUse) -> Result<Self, CliError> {
        let owner = running
            .owner()
            .map(|(pid, command)| format!("pid {pid}: {command}"))
            .unwrap_or_else(|| "its process is unknown".into());
        let data_dir = local_db::LOCAL_DATA_DIR;
        if local == LocalUse::Serve {
            return Err(CliError::database(format!(
                "the local database in {data_dir} is already running ({owner}): another \
                 `serve`, or a command started without `serve`; stop that one, or wait for the \
                 command to finish, then start `serve` again"
            )));
        }
        let url = running.url(local_db::LOCAL_DATABASE);
        tracing::info!(
            database_url = %url,
            psql = %format!("psql '{url}'"),
            owner = %owner,
            "no DATABASE_URL: using the local PostgreSQL database that is running in {data_dir}"
        );
        Ok(Self {
            options: pool::connect_options(&url).map_err(CliError::Failed)?,
            url,
            local: Some(Local::Shared),
        })
    }

    /// The database on a cluster just started: created, and (for a command other than
    /// `serve` and `migrate`, which migrate on their own) brought up to date.
    async fn provision(&self, local: LocalUse) -> Result<(), CliError> {
        local_db::create_local_database(&self.options)
            .await
            .map_err(|e| CliError::database(format!("local database: {e}")))?;
        if local == LocalUse::Command {
            // The commands other than serve and migrate take no organization settings: the
            // default tables (serve's start-up installs the configured ones).
            prepare_schema(&self.options, true, &Default::default()).await?;
        }
        Ok(())
    }

    pub(super) fn close(&self) {
        if let Some(Local::Started(cluster)) = &self.local {
            match cluster.stop() {
                Ok(()) => tracing::info!("stopped the local PostgreSQL"),
                Err(error) => {
                    tracing::error!(error = %error, "could not stop the local PostgreSQL")
                }
            }
        }
    }
}
