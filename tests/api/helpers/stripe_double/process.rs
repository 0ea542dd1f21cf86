//! The built binary, run as an operator runs it against a database and the double.

use super::{StripeDouble, TEST_API_KEY};

/// The built binary, as an operator runs it against a database and Stripe (the double).
pub const BINARY: &str = env!("CARGO_BIN_EXE_stripe-customer-sync");

impl StripeDouble {
    /// `stripe-customer-sync <args>` against `database_url` and this double, in `workdir`
    /// (where the default checkpoint lands; away from any developer `.env`).
    pub fn command(
        &self,
        database_url: &str,
        workdir: &std::path::Path,
        args: &[&str],
    ) -> std::process::Command {
        let mut command = std::process::Command::new(BINARY);
        command
            .args(args)
            .current_dir(workdir)
            .env("DATABASE_URL", database_url)
            .env("STRIPE_API_KEY", TEST_API_KEY)
            .env("STRIPE_API_BASE", &self.base_url)
            .env("LOG_FORMAT", "json")
            .env_remove("USER_ID_METADATA_KEY")
            .env_remove("RUST_LOG");
        command
    }
}

/// Runs a command to its end off the async runtime (the double answers meanwhile).
pub async fn output(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("run the binary"))
        .await
        .unwrap()
}
