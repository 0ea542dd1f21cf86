//! The command line: parse, set up logging, dispatch. The work is done elsewhere.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::backfill::BackfillArgs;
use crate::commands::catch_up::CatchUpArgs;
use crate::commands::ensure_customer::EnsureCustomerArgs;
use crate::commands::healthcheck::HealthcheckArgs;
use crate::commands::migrate::MigrateArgs;
use crate::commands::reapply::ReapplyArgs;
use crate::commands::replay::ReplayArgs;
use crate::commands::verify::VerifyArgs;
use crate::commands::{self, CliError};
use crate::configuration::{LogArgs, ServeArgs};
use crate::telemetry;

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
    /// Compare every live row with Stripe and report drift; exit 1 on drift, 3 when rows were
    /// left unchecked.
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

impl Command {
    /// Whether the command prints JSON on stdout (`--json`, or always for `ensure-customer`):
    /// then a failure is printed there as JSON too.
    fn prints_json(&self) -> bool {
        match self {
            Self::Backfill(args) => args.json,
            Self::Verify(args) => args.json,
            Self::CatchUp(args) => args.json,
            Self::ReapplyFailed(args) => args.json,
            Self::EnsureCustomer(_) => true,
            Self::Serve(_) | Self::Migrate(_) | Self::Replay(_) | Self::Healthcheck(_) => false,
        }
    }
}

pub fn run() -> ExitCode {
    crate::tls::install_crypto_provider();
    // Optional, for local development; real environment variables win.
    let _ = dotenvy::dotenv();
    let cli = Cli::try_parse().unwrap_or_else(|error| refuse_arguments(error));
    let json = cli.command.prints_json();
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
            if json {
                println!("{}", error.to_json());
            }
            error.exit_code()
        }
    }
}

/// clap's answer to arguments it cannot parse (usage on stderr, exit 2), preceded on stdout by
/// the JSON error object when `--json` was asked for: a script reads one either way.
fn refuse_arguments(error: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let answer = matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    );
    if !answer && std::env::args().any(|arg| arg == "--json") {
        let message = error.to_string();
        let message = message.lines().next().unwrap_or_default();
        let message = message.trim_start_matches("error: ");
        println!(
            "{}",
            serde_json::json!({"error": {"code": "invalid_arguments", "message": message}})
        );
    }
    error.exit()
}

async fn dispatch(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Serve(args) => commands::serve::command(*args).await,
        Command::Migrate(args) => commands::migrate::command(args).await,
        Command::Backfill(args) => commands::backfill::command(args).await,
        Command::Verify(args) => commands::verify::command(args).await,
        Command::CatchUp(args) => commands::catch_up::command(args).await,
        Command::EnsureCustomer(args) => commands::ensure_customer::command(args).await,
        Command::Replay(args) => commands::replay::command(args).await,
        Command::ReapplyFailed(args) => commands::reapply::command(args).await,
        Command::Healthcheck(args) => commands::healthcheck::command(args).await,
    }
}
