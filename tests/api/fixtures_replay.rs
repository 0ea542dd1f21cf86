//! The recorded Stripe events of `fixtures/` (see fixtures/README.md), delivered as Stripe would
//! and through the `replay` command.

use std::process::{Command, Output};

use serde_json::Value;
use stripe_customer_sync::domain::WebhookSecrets;
use uuid::Uuid;

use crate::helpers::events::{fixture, fixtures_dir, fixtures_in};
use crate::helpers::{
    LinkState, TEST_SECRET, TableCounts, TestApp, create_auth_user_with_id, event_id_of,
    migrated_database, spawn_app, spawn_app_with,
};

/// One API version's folder: one customer's created → updated → deleted.
struct VersionFolder {
    folder: &'static str,
    customer: &'static str,
    user: &'static str,
    /// `default_payment_method` after the update (2024-06-20 sends it expanded).
    payment_method_after_update: Option<&'static str>,
}

const VERSION_FOLDERS: [VersionFolder; 3] = [
    VersionFolder {
        folder: "2020-08-27",
        customer: "cus_IN4vQk7ZyT2bHs",
        user: "68c60a38-e56d-470f-9915-bf79798e770b",
        payment_method_after_update: Some("pm_1HmkQxGqPLmT4vXw9VtYJc3p"),
    },
    VersionFolder {
        folder: "2024-06-20",
        customer: "cus_QJa8XrT3mVn2Kd",
        user: "de4d2cbe-3103-40ce-93a7-1481c9e3d67f",
        payment_method_after_update: Some("pm_1PSxKvGqPLmT4vXwZ3eR8yTq"),
    },
    VersionFolder {
        folder: "2026-09-30.endive",
        customer: "cus_Ub7Kq2WmZr9NxE",
        user: "e01d5904-54b9-4eae-a16d-a2916d3f4836",
        payment_method_after_update: None,
    },
];

const LIFECYCLE: [&str; 3] = [
    "01_customer.created.json",
    "02_customer.updated.json",
    "03_customer.deleted.json",
];

/// The users the edge fixtures name, so that each skip has a single cause.
const EDGE_USERS: [&str; 2] = [
    "b9459b8f-6f78-4e05-b931-b8e04d2b15d8",
    "cd6dd2f5-5324-4128-8bb5-33524838c7ce",
];

async fn create_users(app: &TestApp, users: &[&str]) {
    for user in users {
        create_auth_user_with_id(&app.db.pool, Uuid::parse_str(user).unwrap()).await;
    }
}

fn data_object(payload: &str) -> Value {
    let event: Value = serde_json::from_str(payload).unwrap();
    event["data"]["object"].clone()
}

#[tokio::test]
async fn every_api_version_fixture_is_accepted_and_applied_in_name_order() {
    let app = spawn_app().await;
    for version in &VERSION_FOLDERS {
        let user = Uuid::parse_str(version.user).unwrap();
        create_auth_user_with_id(&app.db.pool, user).await;
        let files = fixtures_in(version.folder);
        let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, LIFECYCLE, "{}", version.folder);
        let [(_, created), (_, updated), (_, deleted)] = &files[..] else {
            unreachable!()
        };

        app.deliver_expecting(created, "processed").await;
        assert_eq!(
            app.link_state(version.customer).await,
            LinkState::linked(user),
            "{}",
            version.folder
        );

        app.deliver_expecting(updated, "processed").await;
        let row = app.customer(version.customer).await.unwrap();
        assert_eq!(
            row["customer_email"],
            data_object(updated)["email"],
            "{}",
            version.folder
        );
        assert_eq!(
            row["customer_name"],
            data_object(updated)["name"],
            "{}",
            version.folder
        );
        assert_eq!(
            row["default_payment_method"].as_str(),
            version.payment_method_after_update,
            "{}",
            version.folder
        );
        assert_eq!(
            row["customer_metadata"]["stripe"],
            data_object(updated)["metadata"],
            "{}",
            version.folder
        );

        app.deliver_expecting(deleted, "processed").await;
        assert_eq!(
            app.link_state(version.customer).await,
            LinkState::deleted(),
            "{}",
            version.folder
        );
        let tombstone = app.customer(version.customer).await.unwrap();
        assert_eq!(
            tombstone["customer_metadata"]["sync"]["last_event_id"],
            event_id_of(deleted).as_str()
        );
    }
    assert_eq!(app.ledger_count().await, 9);
}

#[tokio::test]
async fn edge_customer_without_user_id_is_processed_and_stored_unlinked() {
    let app = spawn_app().await;
    app.deliver_expecting(&fixture("edge/customer.created.unlinked.json"), "processed")
        .await;
    assert_eq!(
        app.link_state("cus_QOhT5wz2KcLm8v").await,
        LinkState::unlinked("missing_user_id")
    );
}

#[tokio::test]
async fn edge_customer_without_email_is_skipped_as_missing_email() {
    let app = spawn_app().await;
    create_users(&app, &EDGE_USERS).await;
    let payload = fixture("edge/customer.created.no_email.json");
    app.deliver_expecting(&payload, "skipped missing_email")
        .await;
    app.assert_recorded(&event_id_of(&payload), "skipped missing_email")
        .await;
    assert_eq!(app.customer_count().await, 0);
}

#[tokio::test]
async fn edge_customer_with_a_malformed_id_is_skipped_as_invalid_customer_id() {
    let app = spawn_app().await;
    create_users(&app, &EDGE_USERS).await;
    let payload = fixture("edge/customer.created.bad_id.json");
    app.deliver_expecting(&payload, "skipped invalid_customer_id")
        .await;
    app.assert_recorded(&event_id_of(&payload), "skipped invalid_customer_id")
        .await;
    assert_eq!(app.customer_count().await, 0);
}

#[tokio::test]
async fn edge_bare_tombstone_without_a_row_or_email_is_skipped_as_missing_email() {
    let app = spawn_app().await;
    let payload = fixture("edge/customer.deleted.tombstone.json");
    app.deliver_expecting(&payload, "skipped missing_email")
        .await;
    app.assert_recorded(&event_id_of(&payload), "skipped missing_email")
        .await;
    assert_eq!(app.customer_count().await, 0);
}

#[tokio::test]
async fn edge_invoice_event_is_ignored_and_recorded() {
    let app = spawn_app().await;
    let payload = fixture("edge/invoice.paid.json");
    app.deliver_expecting(&payload, "ignored").await;
    app.assert_recorded(&event_id_of(&payload), "ignored").await;
    assert_eq!(app.customer_count().await, 0);
}

/// Runs the built binary's `replay` against `app`, signing with `secret`.
async fn replay(app: &TestApp, path: &str, secret: &str) -> Output {
    let path = fixtures_dir().join(path);
    let url = app.webhook_url();
    let secret = secret.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_stripe-customer-sync"))
            .arg("replay")
            .arg(path)
            .args(["--url", &url, "--secret", &secret])
            .env_remove("STRIPE_WEBHOOK_SECRET")
            .output()
            .expect("run stripe-customer-sync replay")
    })
    .await
    .expect("replay thread")
}

#[tokio::test]
async fn replay_command_signs_and_delivers_a_folder_in_name_order() {
    let app = spawn_app().await;
    let version = &VERSION_FOLDERS[1];
    create_users(&app, &[version.user]).await;

    let output = replay(&app, version.folder, TEST_SECRET).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), LIFECYCLE.len(), "{stdout}");
    for (line, name) in lines.iter().zip(LIFECYCLE) {
        assert!(line[0].ends_with(name), "{stdout}");
        assert_eq!(line[1..], ["200", "processed"], "{stdout}");
    }
    assert_eq!(app.ledger_count().await, 3);
    assert_eq!(app.link_state(version.customer).await, LinkState::deleted());
}

#[tokio::test]
async fn replay_signed_with_another_secret_exits_non_zero_and_prints_invalid_signature() {
    let app = spawn_app_with(migrated_database().await, |settings| {
        settings.webhook.secrets = WebhookSecrets::parse("whsec_another_endpoint").unwrap();
    })
    .await;
    let output = replay(&app, "2024-06-20/01_customer.created.json", TEST_SECRET).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{output:?}");
    let line: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(line[1..], ["400", "invalid_signature"], "{stdout}");
    assert_eq!(app.table_counts().await, TableCounts::default());
}
