//! The database a command works on: the one `DATABASE_URL` names, or our local one.

use std::path::PathBuf;

use sqlx::postgres::PgConnectOptions;

use super::CliError;
use crate::configuration::DatabaseArgs;
use crate::local_db::{self, LocalCluster};
use crate::store::pool;

pub(super) struct Database {
    pub(super) options: PgConnectOptions,
    /// The URL the options came from (for tools that take one: pg_dump). May hold a password.
    pub(super) url: String,
    pub(super) local: Option<LocalCluster>,
}

impl Database {
    /// The database of a command's `DatabaseArgs`, over a connection with a session of its
    /// own (`MIGRATION_DATABASE_URL` when set): migrations and the batch commands need one.
    pub(super) async fn from_args(args: &DatabaseArgs) -> Result<Self, CliError> {
        let mut database = Self::open(args.session_database_url()?).await?;
        if database.local.is_none() {
            database.url = args.session_database_url_text().to_owned();
        }
        Ok(database)
    }

    pub(super) async fn open(options: Option<PgConnectOptions>) -> Result<Self, CliError> {
        if let Some(options) = options {
            return Ok(Self {
                options,
                url: String::new(),
                local: None,
            });
        }
        let data_dir = PathBuf::from(local_db::LOCAL_DATA_DIR);
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
        let url = cluster.url(local_db::LOCAL_DATABASE);
        let database = Self {
            options: pool::connect_options(&url).map_err(CliError::Failed)?,
            url: url.clone(),
            local: Some(cluster),
        };
        if let Err(error) = local_db::create_local_database(&database.options).await {
            database.close();
            return Err(CliError::failed("local database", error));
        }
        tracing::info!(
            data_dir = %database.local.as_ref().map(|c| c.data_dir().display().to_string()).unwrap_or_default(),
            psql = %format!("psql '{url}'"),
            "no DATABASE_URL: using the local PostgreSQL database"
        );
        Ok(database)
    }

    pub(super) fn close(&self) {
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
