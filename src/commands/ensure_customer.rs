//! `stripe-customer-sync ensure-customer --user-id UUID`: what `POST /customers` does, for
//! scripts (the same [`crate::ensure_customer::CustomerCreator`]). Prints
//! `{"stripe_customer_id":"cus_…","user_id":"…","created":true}` on stdout.

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
