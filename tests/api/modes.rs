//! Test and live data never mix unless a deployment asks for both (docs/design.md, "Modes").

use serde_json::json;
use stripe_customer_sync::domain::StripeMode;

use crate::helpers::commands::{backfill, workdir};
use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::link_states;
use crate::helpers::stripe_double::{Customer, StripeDouble, output};
use crate::helpers::{
    LinkState, TestApp, create_auth_user, migrated_database, spawn_app, spawn_app_with,
};

async fn app_keeping(mode: StripeMode) -> TestApp {
    spawn_app_with(migrated_database().await, |settings| {
        settings.sync.mode = mode
    })
    .await
}

async fn recorded_livemode(app: &TestApp, customer: &str) -> serde_json::Value {
    app.customer(customer).await.unwrap()["customer_metadata"]["sync"]["livemode"].clone()
}

#[tokio::test]
async fn test_mode_customer_never_takes_a_real_users_link_in_a_live_deployment() {
    let app = app_keeping(StripeMode::Live).await;
    let user = create_auth_user(&app.db.pool).await;
    let test_customer = new_customer_id();
    let event = CustomerEvent::created(&test_customer, T0).for_user(user);
    app.deliver_expecting(&event.json(), "ignored other_mode")
        .await;
    app.assert_recorded(&event.event_id, "ignored other_mode")
        .await;
    assert_eq!(app.customer(&test_customer).await, None);

    let live_customer = new_customer_id();
    let live = CustomerEvent::created(&live_customer, T0)
        .for_user(user)
        .live();
    app.deliver_expecting(&live.json(), "processed").await;
    assert_eq!(
        app.link_state(&live_customer).await,
        LinkState::linked(user)
    );
    assert_eq!(recorded_livemode(&app, &live_customer).await, json!(true));
}

#[tokio::test]
async fn live_events_are_ignored_by_a_test_deployment() {
    let app = spawn_app().await;
    let event = CustomerEvent::created(&new_customer_id(), T0).live();
    app.deliver_expecting(&event.json(), "ignored other_mode")
        .await;
    assert_eq!(app.customer_count().await, 0);
}

#[tokio::test]
async fn a_deployment_keeping_both_modes_records_each_rows_mode() {
    let app = app_keeping(StripeMode::Both).await;
    let (test, live) = (new_customer_id(), new_customer_id());
    app.deliver_expecting(&CustomerEvent::created(&test, T0).json(), "processed")
        .await;
    app.deliver_expecting(
        &CustomerEvent::created(&live, T0).live().json(),
        "processed",
    )
    .await;
    assert_eq!(recorded_livemode(&app, &test).await, json!(false));
    assert_eq!(recorded_livemode(&app, &live).await, json!(true));
}

#[tokio::test]
async fn verify_fix_with_a_test_key_leaves_live_rows_alone() {
    let app = app_keeping(StripeMode::Both).await;
    let double = StripeDouble::start().await;
    double.add([Customer::new("cus_TestA"), Customer::new("cus_TestB")]);
    let dir = workdir();
    assert_eq!(
        backfill(&double, &app.db.url, dir.path(), &[]).await.code,
        Some(0)
    );
    // Live customers the test-mode double (Stripe, as the test key sees it) does not know.
    for id in ["cus_LiveA", "cus_LiveB", "cus_LiveC"] {
        app.deliver_expecting(&CustomerEvent::created(id, T0).live().json(), "processed")
            .await;
    }

    let mut command = double.command(&app.db.url, dir.path(), &["verify", "--fix", "--json"]);
    command.env("STRIPE_MODE", "both");
    let run = output(command).await;
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(run.status.code(), Some(0), "{report}");
    assert_eq!(report["checked"], 2, "only the test-mode rows are checked");
    assert_eq!(
        report["other_mode_rows"], 3,
        "the live rows are counted apart"
    );
    let links = link_states(&app.db.pool).await;
    for id in ["cus_LiveA", "cus_LiveB", "cus_LiveC"] {
        assert_eq!(links[id], LinkState::unlinked("missing_user_id"), "{id}");
    }
}

#[tokio::test]
async fn a_key_of_a_mode_the_deployment_does_not_keep_is_refused() {
    let db = migrated_database().await;
    let double = StripeDouble::start().await;
    let dir = workdir();
    let mut command = double.command(&db.url, dir.path(), &["verify"]);
    command.env("STRIPE_MODE", "live");
    let run = output(command).await;
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("STRIPE_MODE"), "{stderr}");
}

#[tokio::test]
async fn verify_fix_refuses_to_mark_more_than_a_small_share_missing_unless_allowed() {
    let db = migrated_database().await;
    let double = StripeDouble::start().await;
    let ids: Vec<String> = (0..10).map(|i| format!("cus_Mass{i:02}")).collect();
    double.add(ids.iter().map(|id| Customer::new(id)));
    let dir = workdir();
    assert_eq!(
        backfill(&double, &db.url, dir.path(), &[]).await.code,
        Some(0)
    );
    for id in &ids[..7] {
        double.forget(id);
    }

    let verify = |extra: &'static [&'static str]| {
        let mut args = vec!["verify", "--fix", "--json"];
        args.extend_from_slice(extra);
        output(double.command(&db.url, dir.path(), &args))
    };
    let refused = verify(&[]).await;
    let report: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(report["fixed"], 0, "{report}");
    assert!(
        report["fix_refused"]
            .as_str()
            .unwrap_or_default()
            .contains("--allow-mass-delete"),
        "{report}"
    );
    let links = link_states(&db.pool).await;
    assert!(ids.iter().all(|id| links[id.as_str()].status == "unlinked"));

    let allowed = verify(&["--allow-mass-delete"]).await;
    let report: serde_json::Value = serde_json::from_slice(&allowed.stdout).unwrap();
    assert_eq!(report["fixed"], 7, "{report}");
    let links = link_states(&db.pool).await;
    for id in &ids[..7] {
        assert_eq!(links[id.as_str()], LinkState::missing(None), "{id}");
    }
}
