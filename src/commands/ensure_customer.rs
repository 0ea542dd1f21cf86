//! `stripe-customer-sync ensure-customer --user-id UUID` (or `--organization-id UUID`): what
//! `POST /customers` (or `POST /organizations/{id}/customer`) does, for scripts (the same
//! [`crate::ensure_customer::CustomerCreator`]). Prints
//! `{"stripe_customer_id":"cus_…","user_id":"…","created":true}` (`organization_id` for an
//! organization) on stdout.

use crate::commands::CliError;
use crate::commands::fetch_context::FetchContext;
use crate::configuration;
use crate::domain::StripeMode;
use crate::stripe_api::StripeClient;
use std::process::ExitCode;

use clap::Args;

use crate::configuration::{
    DatabaseArgs, OrganizationArgs, OrganizationSettings, ProfileArgs, StripeApiArgs, SyncArgs,
};
use crate::domain::Owner;

#[derive(Args, Debug)]
pub(crate) struct EnsureCustomerArgs {
    /// The Supabase user (auth.users.id) whose Stripe customer to get or create.
    #[arg(
        long,
        value_name = "UUID",
        required_unless_present = "organization_id",
        conflicts_with = "organization_id"
    )]
    pub user_id: Option<String>,
    /// Or the organization (ORGANIZATIONS_TABLE's id) whose Stripe customer to get or create,
    /// with its billing_email and name. No membership is checked: this is the operator's.
    #[arg(long, value_name = "UUID")]
    pub organization_id: Option<String>,
    #[command(flatten)]
    pub organizations: OrganizationArgs,
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
pub(crate) fn print(ensured: &crate::ensure_customer::Ensured) {
    println!(
        "{}",
        serde_json::json!({
            "stripe_customer_id": ensured.stripe_customer_id,
            ensured.owner.column(): ensured.owner.id(),
            "created": ensured.created,
        })
    );
}

/// The command's main: `ensure-customer`'s main: the user id checked, the shared context, then [`crate::ensure_customer::CustomerCreator::ensure`], exactly as `POST /customers` does.
pub(crate) async fn command(args: EnsureCustomerArgs) -> Result<ExitCode, CliError> {
    let parse = |raw: &str, variable, problem: &str| {
        uuid::Uuid::try_parse(raw.trim()).map_err(|_| configuration::ConfigError {
            variable,
            problem: problem.into(),
        })
    };
    let owner = match (&args.user_id, &args.organization_id) {
        (_, Some(organization)) => Owner::Organization(parse(
            organization,
            "--organization-id",
            "must be a UUID (the organization's id)",
        )?),
        (Some(user), None) => {
            Owner::User(parse(user, "--user-id", "must be a UUID (auth.users.id)")?)
        }
        (None, None) => {
            return Err(configuration::ConfigError {
                variable: "--user-id",
                problem: "required (or --organization-id)".into(),
            }
            .into());
        }
    };
    let organizations = OrganizationSettings::from_args(&args.organizations)?;
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
            organizations,
            std::sync::Arc::default(),
        );
        creator
            .ensure(owner)
            .await
            .map_err(|e| CliError::failed("ensure-customer", e))
    }
    .await;
    context.close().await;
    print(&result?);
    Ok(ExitCode::SUCCESS)
}
