//! `reapply-failed`'s main: the database, then [`crate::reapply::run`] (no Stripe API).

use std::process::ExitCode;

use super::CliError;
use super::database::Database;
use crate::reapply::{self, ReapplyArgs};
use crate::store::pool;

pub(crate) async fn reapply(args: ReapplyArgs) -> Result<ExitCode, CliError> {
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
