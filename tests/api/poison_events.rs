//! Events no retry can fix are answered 200 and kept, never 503: a 503 tells Stripe to retry
//! for three days, and is only ever "transient".

use serde_json::{Value, json};

use crate::helpers::events::{CustomerEvent, T0, fixture, new_customer_id};
use crate::helpers::stripe_double::{BINARY, output};
use crate::helpers::{TestApp, event_id_of, spawn_app};

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn nul_characters_postgres_cannot_hold_are_replaced_and_the_event_is_applied_once() {
    let app = spawn_app().await;
    let customer = new_customer_id();
    let event = CustomerEvent::created(&customer, T0)
        .name("Ada\u{0}Lovelace")
        .metadata("note", "a\u{0}b");
    let payload = event.json();
    assert!(
        payload.contains("\\u0000"),
        "the event carries JSON's NUL escape"
    );

    app.deliver_expecting(&payload, "processed").await;
    app.deliver_expecting(&payload, "duplicate").await;

    let row = app.customer(&customer).await.expect("the row was written");
    assert_eq!(row["customer_name"], "Ada\u{FFFD}Lovelace");
    assert_eq!(row["customer_metadata"]["stripe"]["note"], "a\u{FFFD}b");
    let ledger = app.ledger_row(&event.event_id).await.unwrap();
    assert_eq!(
        ledger["payload_sanitized"], true,
        "the ledger says it was changed"
    );
    assert_eq!(
        ledger["payload"]["data"]["object"]["name"],
        "Ada\u{FFFD}Lovelace"
    );
}

#[tokio::test]
async fn nul_in_an_event_the_service_does_not_apply_is_recorded_as_ignored_twice_in_a_row() {
    let app = spawn_app().await;
    let mut invoice: Value = serde_json::from_str(&fixture("edge/invoice.paid.json")).unwrap();
    invoice["data"]["object"]["description"] = json!("Thanks\u{0}!");
    let payload = invoice.to_string();

    app.deliver_expecting(&payload, "ignored").await;
    app.deliver_expecting(&payload, "duplicate").await;
    app.assert_recorded(&event_id_of(&payload), "ignored").await;
}

/// An operator's rule the rows must meet (no customer named "Poison"): the database refuses
/// whatever breaks it, on every retry.
async fn add_operator_rule(app: &TestApp) {
    sqlx::raw_sql(
        "alter table public.stripe_customers
             add constraint operator_rule check (customer_name is distinct from 'Poison')",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn event_the_database_refuses_is_failed_recorded_counted_and_never_503() {
    let app = spawn_app().await;
    add_operator_rule(&app).await;
    let customer = new_customer_id();
    let event = CustomerEvent::created(&customer, T0).name("Poison");

    for _ in 0..2 {
        let (status, body) = app.deliver_json(&event.json()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["event_id"], event.event_id.as_str());
        assert!(
            matches!(body["status"].as_str(), Some("failed" | "duplicate")),
            "{body}"
        );
    }
    let ledger = app.ledger_row(&event.event_id).await.unwrap();
    assert_eq!(
        (ledger["outcome"].as_str(), ledger["reason"].as_str()),
        (Some("failed"), Some("constraint_violation"))
    );
    let error = ledger["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("23514") && error.contains("operator_rule"),
        "{error}"
    );
    assert_eq!(app.customer(&customer).await, None, "nothing half-written");
    assert!(
        metrics(&app)
            .await
            .contains(r#"stripe_webhook_events_total{type="customer.created",outcome="failed"} 1"#),
        "failed events are counted"
    );
}

#[tokio::test]
async fn operator_reapplies_a_failed_event_once_its_cause_is_fixed() {
    let app = spawn_app().await;
    add_operator_rule(&app).await;
    let customer = new_customer_id();
    let event = CustomerEvent::created(&customer, T0).name("Poison");
    app.deliver_expecting(&event.json(), "failed constraint_violation")
        .await;

    let reapply = || {
        let mut command = std::process::Command::new(BINARY);
        command
            .arg("reapply-failed")
            .current_dir(std::env::temp_dir())
            .env("DATABASE_URL", &app.db.url)
            .env("STRIPE_MODE", "test")
            .env("LOG_FORMAT", "json");
        output(command)
    };
    let still = reapply().await;
    assert_eq!(still.status.code(), Some(1), "still failing is a failure");
    assert!(String::from_utf8_lossy(&still.stdout).contains(&format!("{} failed", event.event_id)));
    app.assert_recorded(&event.event_id, "failed constraint_violation")
        .await;

    sqlx::raw_sql("alter table public.stripe_customers drop constraint operator_rule")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let fixed = reapply().await;
    assert!(
        fixed.status.success(),
        "{}",
        String::from_utf8_lossy(&fixed.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&fixed.stdout).trim(),
        format!("{} processed", event.event_id)
    );
    app.assert_recorded(&event.event_id, "processed").await;
    let row = app.customer(&customer).await.expect("applied at last");
    assert_eq!(row["customer_name"], "Poison");

    let again = reapply().await;
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "no failed events"
    );
    app.deliver_expecting(&event.json(), "duplicate").await;
}
