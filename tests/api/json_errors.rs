//! A command asked for `--json` answers with one JSON object on stdout when it fails too:
//! `{"error": {"code": …, "message": …}}`, with the exit code README lists.

use serde_json::Value;

use crate::helpers::commands::workdir;
use crate::helpers::stripe_double::{StripeDouble, output};

/// A database nobody listens on.
const NO_DATABASE: &str = "postgres://postgres@localhost/nothing?host=/nonexistent-socket-dir";

struct Failed {
    code: Option<i32>,
    error: Value,
    stderr: String,
}

async fn fail(command: std::process::Command) -> Failed {
    let out = output(command).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let answer: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout:?}\n{stderr}"));
    Failed {
        code: out.status.code(),
        error: answer["error"].clone(),
        stderr,
    }
}

#[tokio::test]
async fn json_commands_that_cannot_reach_the_database_answer_with_a_json_error() {
    let double = StripeDouble::start().await;
    let dir = workdir();
    for args in [
        &["backfill", "--json"][..],
        &["verify", "--json"],
        &["catch-up", "--json"],
        &["reapply-failed", "--json"],
    ] {
        let failed = fail(double.command(NO_DATABASE, dir.path(), args)).await;
        assert_eq!(failed.code, Some(1), "{args:?}: {}", failed.stderr);
        assert_eq!(failed.error["code"], "database_unavailable", "{args:?}");
        assert!(
            failed.error["message"]
                .as_str()
                .unwrap()
                .contains("cannot connect to the database"),
            "{args:?}: {}",
            failed.error
        );
    }
}

#[tokio::test]
async fn json_command_with_a_bad_setting_names_the_variable_in_its_json_error() {
    let double = StripeDouble::start().await;
    let dir = workdir();
    let mut command = double.command(NO_DATABASE, dir.path(), &["verify", "--json"]);
    command.env("STRIPE_API_KEY", "pk_test_Zq9Secret");
    let failed = fail(command).await;
    assert_eq!(failed.code, Some(2));
    assert_eq!(failed.error["code"], "invalid_configuration");
    assert_eq!(failed.error["variable"], "STRIPE_API_KEY");
    assert!(
        !failed.error.to_string().contains("Zq9Secret"),
        "no key echoed"
    );

    let failed = fail(double.command(
        NO_DATABASE,
        dir.path(),
        &["ensure-customer", "--user-id", "not-a-uuid"],
    ))
    .await;
    assert_eq!(failed.code, Some(2));
    assert_eq!(failed.error["variable"], "--user-id");
}

#[tokio::test]
async fn json_command_with_arguments_clap_refuses_still_answers_in_json() {
    let double = StripeDouble::start().await;
    let dir = workdir();
    let failed = fail(double.command(
        NO_DATABASE,
        dir.path(),
        &["verify", "--json", "--concurrency", "many"],
    ))
    .await;
    assert_eq!(failed.code, Some(2));
    assert_eq!(failed.error["code"], "invalid_arguments");
    assert!(
        failed.error["message"].as_str().unwrap().contains("many"),
        "{}",
        failed.error
    );
}
