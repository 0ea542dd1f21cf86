//! The misreads of Stripe's answers that once destroyed data or lost events, each as it was
//! found: a base URL ending in `/v1`, a character PostgreSQL cannot hold in a listed event, a
//! thin event whose customer the key did not know.

use std::time::Duration;

use crate::helpers::commands::workdir;
use crate::helpers::events::{CustomerEvent, new_customer_id, thin_event};
use crate::helpers::stripe_double::{Customer, StripeDouble, TEST_API_KEY, output};
use crate::helpers::{
    LinkState, create_auth_user, event_id_of, migrated_database, now, spawn_app_with,
    spawn_app_with_stripe,
};

#[tokio::test]
async fn a_base_ending_in_v1_stops_verify_before_it_reports_any_row_missing() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let id = new_customer_id();
    app.deliver_expecting(&CustomerEvent::created(&id, now() - 60).json(), "processed")
        .await;
    double.add([Customer::new(&id)]);
    let dir = workdir();
    let mut command = double.command(&app.db.url, dir.path(), &["verify", "--fix", "--json"]);
    command.env("STRIPE_API_BASE", format!("{}/v1", double.base_url));
    let out = output(command).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout} {stderr}");
    assert!(
        stderr.contains("STRIPE_API_BASE"),
        "names the fix: {stderr}"
    );
    assert!(
        stderr.contains("Unrecognized request URL"),
        "quotes Stripe: {stderr}"
    );
    assert!(!stdout.contains("missing_in_stripe"), "{stdout}");
    assert_eq!(
        app.link_state(&id).await.status,
        "unlinked",
        "the row as it was"
    );
}

#[tokio::test]
async fn a_base_ending_in_v1_stops_serve_at_start_with_the_fix() {
    let double = StripeDouble::start().await;
    let db = migrated_database().await;
    let dir = workdir();
    let mut command = double.command(&db.url, dir.path(), &["serve"]);
    command
        .env("STRIPE_API_BASE", format!("{}/v1", double.base_url))
        .env("STRIPE_WEBHOOK_SECRET", crate::helpers::TEST_SECRET)
        .env("LISTEN_ADDR", "127.0.0.1:0");
    let out = tokio::time::timeout(Duration::from_secs(60), output(command))
        .await
        .expect("serve refuses to start rather than serving");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("STRIPE_API_BASE"), "{stderr}");
    assert_eq!(
        double.startup_checks().len(),
        0,
        "the check went to the wrong path"
    );
}

#[tokio::test]
async fn a_thin_event_through_a_base_ending_in_v1_is_503_and_never_a_tombstone() {
    let double = StripeDouble::start().await;
    let base = format!("{}/v1/", double.base_url);
    let app = spawn_app_with(migrated_database().await, |settings| {
        settings.stripe_api = Some(stripe_customer_sync::configuration::StripeApiSettings {
            key: TEST_API_KEY.to_owned().into(),
            mode: stripe_customer_sync::domain::StripeMode::Test,
            base: base.parse().unwrap(),
        });
    })
    .await;
    let user = create_auth_user(&app.db.pool).await;
    let id = new_customer_id();
    app.deliver_expecting(
        &CustomerEvent::created(&id, now() - 60)
            .for_user(user)
            .json(),
        "processed",
    )
    .await;
    double.add([Customer::new(&id).for_user(user)]);
    let thin = thin_event("v1.customer.updated", &id);
    let (status, body) = app.deliver_json(&thin).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(app.link_state(&id).await, LinkState::linked(user));
    assert!(app.ledger_row(&event_id_of(&thin)).await.is_none());
}

#[tokio::test]
async fn an_event_listed_with_a_nul_is_applied_cleaned_and_its_webhook_is_a_duplicate() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let id = new_customer_id();
    let event = CustomerEvent::created(&id, now() - 60)
        .name("Ada\u{0}Lovelace")
        .json();
    assert!(
        event.contains("\\u0000"),
        "the JSON escapes it as Stripe does"
    );
    double.add_events([event.as_str()]);
    let dir = workdir();
    let out = output(double.command(
        &app.db.url,
        dir.path(),
        &["catch-up", "--since", "1h", "--json"],
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = app.customer(&id).await.expect("the customer is written");
    assert_eq!(row["customer_name"], "Ada\u{FFFD}Lovelace");
    let recorded = app.ledger_row(&event_id_of(&event)).await.unwrap();
    assert_eq!(recorded["outcome"], "processed");
    assert_eq!(recorded["payload_sanitized"], true);
    // Stripe's own delivery of the same event changes nothing more.
    app.deliver_expecting(&event, "duplicate").await;
}

#[tokio::test]
async fn a_thin_event_failed_for_an_unknown_customer_is_reapplied_once_the_key_knows_it() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let user = create_auth_user(&app.db.pool).await;
    let id = new_customer_id();
    app.deliver_expecting(
        &CustomerEvent::created(&id, now() - 60)
            .for_user(user)
            .name("Before")
            .json(),
        "processed",
    )
    .await;
    let thin = thin_event("v1.customer.updated", &id);
    app.deliver_expecting(&thin, "failed customer_not_found")
        .await;

    // The key is put right: Stripe knows the customer.
    double.add([Customer::new(&id).for_user(user).name(Some("After"))]);
    let dir = workdir();
    let out = output(double.command(&app.db.url, dir.path(), &["reapply-failed", "--json"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"processed\""), "{stdout}");
    app.assert_recorded(&event_id_of(&thin), "processed").await;
    assert_eq!(app.customer(&id).await.unwrap()["customer_name"], "After");
    assert_eq!(app.link_state(&id).await, LinkState::linked(user));
}
