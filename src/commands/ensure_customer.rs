//! `stripe-customer-sync ensure-customer --user-id UUID`: what `POST /customers` does, for
//! scripts (the same [`crate::ensure_customer::CustomerCreator`]). Prints
//! `{"stripe_customer_id":"cus_…","user_id":"…","created":true}` on stdout.

use crate::commands::CliError;
use crate::commands::fetch_context::FetchContext;
use crate::configuration;
use crate::domain::StripeMode;
use crate::stripe_api::StripeClient;
use std::process::ExitCode;

use clap::Args;

use crate::configuration::{DatabaseArgs, ProfileArgs, StripeApiArgs, SyncArgs};

#[derive(Args, Debug)]
pub struct EnsureCustomerArgs {
    /// The Supabase user (auth.users.id) whose Stripe customer to get or create.
    #[arg(long, value_name = "UUID")]
    pub user_id: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub stripe: StripeApiArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
}

/// The line printed on success.
pub fn print(ensured: &crate::ensure_customer::Ensured) {
    println!(
        "{}",
        serde_json::json!({
            "stripe_customer_id": ensured.stripe_customer_id,
            "user_id": ensured.user_id,
            "created": ensured.created,
        })
    );
}

/// The command's main: `ensure-customer`'s main: the user id checked, the shared context, then [`crate::ensure_customer::CustomerCreator::ensure`], exactly as `POST /customers` does.
pub(crate) async fn command(args: EnsureCustomerArgs) -> Result<ExitCode, CliError> {
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
    print(&result?);
    Ok(ExitCode::SUCCESS)
}
