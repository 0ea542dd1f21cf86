//! `ensure-customer`'s main: the user id checked, the shared context, then
//! [`crate::ensure_customer::CustomerCreator::ensure`], exactly as `POST /customers` does.

use std::process::ExitCode;

use super::CliError;
use super::fetch_context::FetchContext;
use crate::configuration;
use crate::domain::StripeMode;
use crate::ensure_customer::command::{self as ensure_customer_command, EnsureCustomerArgs};
use crate::stripe_api::StripeClient;

pub(crate) async fn ensure_customer(args: EnsureCustomerArgs) -> Result<ExitCode, CliError> {
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
