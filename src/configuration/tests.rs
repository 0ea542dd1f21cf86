use clap::Parser;

use super::*;
use crate::domain::StripeMode;
use crate::store::pool::{ConnectionPolicy, PoolMode};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn parse(args: &[&str]) -> Result<Settings, ConfigError> {
    let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).unwrap();
    Settings::from_args(&cli.serve)
}

const SECRET: &str = "--stripe-webhook-secret=whsec_test_abc";

#[test]
fn defaults_follow_the_design() {
    let settings = parse(&[SECRET]).unwrap();
    assert_eq!(settings.listen_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.webhook.tolerance.as_secs(), 300);
    assert_eq!(settings.sync.user_id_metadata_key, "user_id");
    assert_eq!(settings.database.max_connections, 10);
    assert!(settings.database.connect_options.is_none());
    assert_eq!(settings.connection(), ConnectionPolicy::default());
    assert_eq!(settings.connection().mode, PoolMode::Session);
    assert!(settings.stripe_api.is_none());
    assert_eq!(settings.catch_up_interval, None, "no key, no catch-up");
    assert_eq!(settings.profile_push.name_column.as_str(), "full_name");
    assert_eq!(settings.profile_push.timeout.as_secs(), 10);
    assert_eq!(settings.profile_push.max_backoff.as_secs(), 600);
    assert!(settings.profile_push.listen);
}

#[test]
fn transaction_mode_migrates_over_the_migration_url_and_serves_in_transaction_mode() {
    let settings = parse(&[
        SECRET,
        "--database-url=postgres://u:pw@pooler.example:6543/postgres",
        "--database-pool-mode=transaction",
        "--migration-database-url=postgres://u:pw@pooler.example:5432/postgres",
    ])
    .unwrap();
    assert_eq!(settings.connection().mode, PoolMode::Transaction);
    let migration = settings
        .database
        .migration_connect_options
        .as_ref()
        .unwrap();
    assert_eq!(migration.get_port(), 5432);
    assert!(!format!("{settings:?}").contains("pw"), "{settings:?}");
}

#[test]
fn transaction_mode_without_migrations_needs_no_migration_url() {
    let settings = parse(&[
        SECRET,
        "--skip-migrations",
        "--database-url=postgres://u@pooler.example:6543/postgres",
        "--database-pool-mode=transaction",
    ])
    .unwrap();
    assert_eq!(settings.connection().mode, PoolMode::Transaction);
    assert!(settings.database.migration_connect_options.is_none());
}

#[test]
fn session_mode_migrates_over_the_database_url() {
    let settings = parse(&[
        SECRET,
        "--database-url=postgres://u@db.example:5432/postgres",
    ])
    .unwrap();
    let migration = settings
        .database
        .migration_connect_options
        .as_ref()
        .unwrap();
    assert_eq!(migration.get_host(), "db.example");
}

#[test]
fn catch_up_runs_every_15_minutes_with_a_key_unless_the_interval_is_zero() {
    let key = "--stripe-api-key=sk_test_abc";
    let settings = parse(&[SECRET, key]).unwrap();
    assert!(settings.stripe_api.is_some());
    assert_eq!(
        settings.catch_up_interval,
        Some(std::time::Duration::from_secs(900))
    );
    let settings = parse(&[SECRET, key, "--catch-up-interval=30s"]).unwrap();
    assert_eq!(
        settings.catch_up_interval,
        Some(std::time::Duration::from_secs(30))
    );
    let settings = parse(&[SECRET, key, "--catch-up-interval=0"]).unwrap();
    assert_eq!(settings.catch_up_interval, None);
    assert!(settings.stripe_api.is_some(), "thin events still work");
}

#[test]
fn a_deployment_keeps_its_api_keys_mode_unless_told_and_both_without_a_key() {
    let keyless = parse(&[SECRET]).unwrap();
    assert_eq!(keyless.sync.mode, StripeMode::Both);
    let live_key = "--stripe-api-key=sk_live_abc";
    assert_eq!(
        parse(&[SECRET, live_key]).unwrap().sync.mode,
        StripeMode::Live
    );
    let told = parse(&[SECRET, "--stripe-mode=test"]).unwrap();
    assert_eq!(told.sync.mode, StripeMode::Test);
    let mismatch = parse(&[SECRET, live_key, "--stripe-mode=test"]).unwrap_err();
    assert_eq!(mismatch.variable, "STRIPE_MODE");
    let error = parse(&[SECRET, "--stripe-mode=production"]).unwrap_err();
    assert_eq!(error.variable, "STRIPE_MODE");
}

#[test]
fn each_bad_value_names_its_variable() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "STRIPE_WEBHOOK_SECRET"),
        (
            &["--stripe-webhook-secret=sk_live_nope"],
            "STRIPE_WEBHOOK_SECRET",
        ),
        (
            &[SECRET, "--stripe-webhook-tolerance-secs=0"],
            "STRIPE_WEBHOOK_TOLERANCE_SECS",
        ),
        (
            &[SECRET, "--stripe-webhook-tolerance-secs=ten"],
            "STRIPE_WEBHOOK_TOLERANCE_SECS",
        ),
        (&[SECRET, "--listen-addr=localhost"], "LISTEN_ADDR"),
        (
            &[SECRET, "--database-max-connections=-1"],
            "DATABASE_MAX_CONNECTIONS",
        ),
        (&[SECRET, "--database-url=mysql://nope"], "DATABASE_URL"),
        (&[SECRET, "--require-database-url"], "DATABASE_URL"),
        (
            &[SECRET, "--database-pool-mode=statement"],
            "DATABASE_POOL_MODE",
        ),
        (
            &[
                SECRET,
                "--skip-migrations",
                "--database-url=postgres://u@db/postgres",
                "--migration-database-url=postgres://u:pw@[bad",
            ],
            "MIGRATION_DATABASE_URL",
        ),
        (
            &[
                SECRET,
                "--database-url=postgres://u@pooler:6543/postgres",
                "--database-pool-mode=transaction",
            ],
            "MIGRATION_DATABASE_URL",
        ),
        (
            &[
                SECRET,
                "--migration-database-url=postgres://u@db:5432/postgres",
            ],
            "MIGRATION_DATABASE_URL",
        ),
        (
            &[
                SECRET,
                "--database-url=postgres://u@db/postgres",
                "--migration-database-url=mysql://x",
            ],
            "MIGRATION_DATABASE_URL",
        ),
        (&[SECRET, "--catch-up-interval=15"], "CATCH_UP_INTERVAL"),
        (&[SECRET, "--catch-up-interval=soon"], "CATCH_UP_INTERVAL"),
        (&[SECRET, "--stripe-api-key=pk_test_x"], "STRIPE_API_KEY"),
        (&[SECRET, "--stripe-api-base=ftp://x"], "STRIPE_API_BASE"),
        (
            &[SECRET, "--profile-name-column=name; drop table x"],
            "PROFILE_NAME_COLUMN",
        ),
        (
            &[SECRET, "--profile-name-column=Name"],
            "PROFILE_NAME_COLUMN",
        ),
        (
            &[SECRET, "--profile-push-timeout=0"],
            "PROFILE_PUSH_TIMEOUT",
        ),
        (
            &[SECRET, "--profile-push-max-backoff=1"],
            "PROFILE_PUSH_MAX_BACKOFF",
        ),
        (
            &[SECRET, "--profile-push-min-interval=often"],
            "PROFILE_PUSH_MIN_INTERVAL",
        ),
    ];
    for (args, variable) in cases {
        let error = parse(args).unwrap_err();
        assert_eq!(error.variable, *variable, "{args:?}");
    }
}

#[derive(Parser)]
struct ApiCli {
    #[command(flatten)]
    api: StripeApiArgs,
}

fn parse_api(args: &[&str]) -> Result<StripeApiSettings, ConfigError> {
    let cli =
        ApiCli::try_parse_from(std::iter::once("backfill").chain(args.iter().copied())).unwrap();
    StripeApiSettings::from_args(&cli.api)
}

#[test]
fn stripe_api_takes_secret_and_restricted_keys_and_defaults_to_stripe() {
    for key in ["sk_test_4eC39HqLyjWDarjtT1zdp7dc", "rk_live_51Habc"] {
        let settings = parse_api(&[&format!("--stripe-api-key={key}")]).unwrap();
        assert_eq!(settings.base.as_str(), "https://api.stripe.com/");
    }
    let settings = parse_api(&[
        "--stripe-api-key=sk_test_x",
        "--stripe-api-base=http://127.0.0.1:9/v",
    ])
    .unwrap();
    assert_eq!(settings.base.as_str(), "http://127.0.0.1:9/v/");
}

#[test]
fn plain_http_reaches_any_host_with_a_test_key_and_only_localhost_with_a_live_one() {
    for key in ["sk_test_x", "rk_test_x"] {
        let settings = parse_api(&[
            &format!("--stripe-api-key={key}"),
            "--stripe-api-base=http://stripe-mock:12111",
        ])
        .unwrap();
        assert_eq!(settings.base.as_str(), "http://stripe-mock:12111/");
    }
    let live_local = parse_api(&[
        "--stripe-api-key=sk_live_x",
        "--stripe-api-base=http://localhost:12111",
    ]);
    assert!(live_local.is_ok(), "{live_local:?}");
    let error = parse_api(&[
        "--stripe-api-key=sk_live_x",
        "--stripe-api-base=http://stripe-mock:12111",
    ])
    .unwrap_err();
    assert_eq!(error.variable, "STRIPE_API_BASE");
}

#[test]
fn each_bad_stripe_api_value_names_its_variable_and_never_echoes_the_key() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "STRIPE_API_KEY"),
        (&["--stripe-api-key= "], "STRIPE_API_KEY"),
        (&["--stripe-api-key=pk_live_Secret123"], "STRIPE_API_KEY"),
        (&["--stripe-api-key=whsec_Secret123"], "STRIPE_API_KEY"),
        (&["--stripe-api-key=sk_live_Secret 123"], "STRIPE_API_KEY"),
        (
            &[
                "--stripe-api-key=sk_test_x",
                "--stripe-api-base=api.stripe.com",
            ],
            "STRIPE_API_BASE",
        ),
        (
            &[
                "--stripe-api-key=sk_live_Secret123",
                "--stripe-api-base=http://api.stripe.com",
            ],
            "STRIPE_API_BASE",
        ),
        (
            &[
                "--stripe-api-key=rk_live_Secret123",
                "--stripe-api-base=http://stripe-mock:12111",
            ],
            "STRIPE_API_BASE",
        ),
        (
            &[
                "--stripe-api-key=sk_test_x",
                "--stripe-api-base=ftp://localhost",
            ],
            "STRIPE_API_BASE",
        ),
    ];
    for (args, variable) in cases {
        let error = parse_api(args).unwrap_err();
        assert_eq!(error.variable, *variable, "{args:?}");
        assert!(!error.to_string().contains("Secret"), "{error}");
    }
    let settings = parse_api(&["--stripe-api-key=sk_live_Secret123"]).unwrap();
    assert!(!format!("{settings:?}").contains("Secret"));
}

#[test]
fn errors_never_repeat_a_secret() {
    let error = parse(&["--stripe-webhook-secret=whsec_ok,whsec_has space"]).unwrap_err();
    assert!(!error.to_string().contains("has space"), "{error}");
    let error = parse(&[SECRET, "--database-url=postgres://u:hunter2@[bad/db"]).unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let error = parse(&[
        SECRET,
        "--database-url=postgres://u@db/postgres",
        "--migration-database-url=postgres://u:hunter2@[bad/db",
    ])
    .unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn an_environment_map_is_read_as_serve_reads_its_flags_and_environment() {
    let from_env = Settings::from_env([
        ("STRIPE_WEBHOOK_SECRET", "whsec_test_abc"),
        (
            "DATABASE_URL",
            "postgres://u:pw@pooler.example:6543/postgres",
        ),
        ("DATABASE_POOL_MODE", "transaction"),
        ("SKIP_MIGRATIONS", "true"),
        ("STRIPE_MODE", "test"),
        ("LISTEN_ADDR", "127.0.0.1:0"),
    ])
    .unwrap();
    let from_flags = parse(&[
        SECRET,
        "--database-url=postgres://u:pw@pooler.example:6543/postgres",
        "--database-pool-mode=transaction",
        "--skip-migrations",
        "--stripe-mode=test",
        "--listen-addr=127.0.0.1:0",
    ])
    .unwrap();
    assert_eq!(format!("{from_env:?}"), format!("{from_flags:?}"));
    assert_eq!(from_env.connection().mode, PoolMode::Transaction);
    // The defaults are serve's own.
    let defaults = Settings::from_env([("STRIPE_WEBHOOK_SECRET", "whsec_test_abc")]).unwrap();
    assert_eq!(
        format!("{defaults:?}"),
        format!("{:?}", parse(&[SECRET]).unwrap())
    );
}

#[test]
fn an_environment_map_is_checked_as_serve_checks_its_own() {
    let error = Settings::from_env([
        ("STRIPE_WEBHOOK_SECRET", "whsec_test_abc"),
        ("DATABASE_MAX_CONNECTIONS", "0"),
    ])
    .unwrap_err();
    assert_eq!(error.variable, "DATABASE_MAX_CONNECTIONS");
    let error = Settings::from_env([
        ("STRIPE_WEBHOOK_SECRET", "whsec_test_abc"),
        ("NOT_A_SETTING", "1"),
    ])
    .unwrap_err();
    assert!(error.to_string().contains("NOT_A_SETTING"), "{error}");
    // The last value of a name wins, as in a shell.
    let settings = Settings::from_env([
        ("STRIPE_WEBHOOK_SECRET", "whsec_test_abc"),
        ("LISTEN_ADDR", "127.0.0.1:1"),
        ("LISTEN_ADDR", "127.0.0.1:2"),
    ])
    .unwrap();
    assert_eq!(settings.listen_addr.port(), 2);
}
