//! docs/design.md's HTTP table for `POST /webhooks/stripe`, row by row. Every refusal is checked to
//! have written nothing: no ledger row, no customer row, no audit row.

use serde_json::{Value, json};
use stripe_customer_sync::domain::WebhookSecrets;

use crate::helpers::events::{CustomerEvent, T0, fixture, new_customer_id};
use crate::helpers::{
    TEST_SECRET, TestApp, event_id_of, json_reply, migrated_database, now, spawn_app,
    spawn_app_with, stripe_signature,
};

/// The body limit of the contract.
const ONE_MIB: usize = 1024 * 1024;

fn customer_created() -> String {
    CustomerEvent::created(&new_customer_id(), T0).json()
}

/// The `v1` value of a `t=…,v1=…` header.
fn v1_of(header: &str) -> String {
    header
        .split_once(",v1=")
        .expect("a v1 element")
        .1
        .to_owned()
}

/// POSTs `body` with `signature` and asserts the error answer, and that nothing was written.
async fn assert_rejected(
    app: &TestApp,
    body: impl Into<Vec<u8>>,
    signature: Option<&str>,
    status: u16,
    code: &str,
) {
    let before = app.table_counts().await;
    let (got, answer) = json_reply(app.post_webhook(body.into(), signature).await).await;
    assert_eq!(got, status, "{answer}");
    assert_eq!(answer["error"]["code"], code, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
    assert_eq!(
        app.table_counts().await,
        before,
        "a {status} answer must write nothing"
    );
}

/// POSTs `payload` with `signature` and asserts it was accepted and applied.
async fn assert_accepted(app: &TestApp, payload: &str, signature: &str) {
    let customers = app.customer_count().await;
    let response = app
        .post_webhook(payload.as_bytes().to_vec(), Some(signature))
        .await;
    let expected = json!({ "status": "processed", "event_id": event_id_of(payload) });
    assert_eq!(json_reply(response).await, (200, expected), "{signature}");
    assert_eq!(app.customer_count().await, customers + 1);
}

#[tokio::test]
async fn applied_event_answers_processed_with_its_event_id() {
    let app = spawn_app().await;
    let event = CustomerEvent::created(&new_customer_id(), T0);
    let payload = event.json();
    let (status, body) = app.deliver_json(&payload).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "status": "processed", "event_id": event.event_id })
    );
    assert!(app.customer(&event.customer_id).await.is_some());

    let ledger = app.ledger_row(&event.event_id).await.expect("ledger row");
    assert_eq!(ledger["type"], "customer.created");
    assert_eq!(ledger["livemode"], false);
    assert_eq!(ledger["api_version"], "2024-06-20");
    assert_eq!(
        (&ledger["outcome"], &ledger["reason"]),
        (&json!("processed"), &Value::Null)
    );
    assert_eq!(
        ledger["payload"],
        serde_json::from_str::<Value>(&payload).unwrap()
    );
    let stripe_created =
        chrono::DateTime::parse_from_rfc3339(ledger["stripe_created"].as_str().unwrap()).unwrap();
    assert_eq!(stripe_created.timestamp(), T0);
    assert!(ledger["processed_at"].is_string() && ledger["received_at"].is_string());
    assert_eq!(
        (app.ledger_count().await, app.customer_count().await),
        (1, 1)
    );
}

#[tokio::test]
async fn event_id_already_recorded_answers_duplicate_and_changes_nothing() {
    let app = spawn_app().await;
    let event = CustomerEvent::created(&new_customer_id(), T0);
    app.deliver_expecting(&event.json(), "processed").await;
    let row = app.customer(&event.customer_id).await;
    let counts = app.table_counts().await;

    let (status, body) = app.deliver_json(&event.json()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "status": "duplicate", "event_id": event.event_id })
    );
    assert_eq!(
        app.customer(&event.customer_id).await,
        row,
        "row (and its updated_at) unchanged"
    );
    assert_eq!(
        app.table_counts().await,
        counts,
        "no new ledger or audit row"
    );
}

#[tokio::test]
async fn event_of_a_type_the_service_does_not_apply_is_ignored_and_recorded() {
    let app = spawn_app().await;
    let invoice_paid = fixture("edge/invoice.paid.json");
    let (status, body) = app.deliver_json(&invoice_paid).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "status": "ignored", "event_id": event_id_of(&invoice_paid) })
    );
    app.assert_recorded(&event_id_of(&invoice_paid), "ignored")
        .await;
    assert_eq!(
        (app.customer_count().await, app.audit_count().await),
        (0, 0)
    );
}

#[tokio::test]
async fn customer_event_that_cannot_change_the_table_is_skipped_with_its_reason_and_recorded() {
    let app = spawn_app().await;
    let no_email = CustomerEvent::created(&new_customer_id(), T0)
        .email(None)
        .json();
    let (status, body) = app.deliver_json(&no_email).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "status": "skipped", "reason": "missing_email", "event_id": event_id_of(&no_email) })
    );
    app.assert_recorded(&event_id_of(&no_email), "skipped missing_email")
        .await;
    assert_eq!(
        (app.customer_count().await, app.audit_count().await),
        (0, 0)
    );
}

#[tokio::test]
async fn missing_signature_is_rejected_and_writes_nothing() {
    let app = spawn_app().await;
    assert_rejected(&app, customer_created(), None, 400, "missing_signature").await;
}

#[tokio::test]
async fn empty_signature_header_counts_as_missing() {
    let app = spawn_app().await;
    assert_rejected(&app, customer_created(), Some(""), 400, "missing_signature").await;
}

#[tokio::test]
async fn malformed_signature_header_is_invalid() {
    let app = spawn_app().await;
    assert_rejected(
        &app,
        customer_created(),
        Some("garbage"),
        400,
        "invalid_signature",
    )
    .await;
}

#[tokio::test]
async fn header_with_only_a_v0_signature_is_invalid() {
    let app = spawn_app().await;
    let payload = customer_created();
    let t = now();
    // The right HMAC, but under the legacy `v0` scheme, which must never be accepted.
    let header = format!(
        "t={t},v0={}",
        v1_of(&stripe_signature(&payload, TEST_SECRET, t))
    );
    assert_rejected(&app, payload, Some(&header), 400, "invalid_signature").await;
}

#[tokio::test]
async fn valid_v1_among_several_is_accepted_wherever_it_stands_as_during_secret_rotation() {
    let app = spawn_app().await;
    for good_first in [false, true] {
        let payload = customer_created();
        let t = now();
        let bad = v1_of(&stripe_signature(&payload, "whsec_rolled_secret", t));
        let good = v1_of(&stripe_signature(&payload, TEST_SECRET, t));
        let (first, second) = if good_first { (good, bad) } else { (bad, good) };
        assert_accepted(&app, &payload, &format!("t={t},v1={first},v1={second}")).await;
    }
}

#[tokio::test]
async fn signature_with_any_configured_secret_is_accepted() {
    let app = spawn_app_with(migrated_database().await, |settings| {
        settings.webhook.secrets = WebhookSecrets::parse("whsec_a,whsec_b").unwrap();
    })
    .await;
    let payload = customer_created();
    assert_accepted(
        &app,
        &payload,
        &stripe_signature(&payload, "whsec_b", now()),
    )
    .await;
}

#[tokio::test]
async fn signature_from_another_secret_is_invalid() {
    let app = spawn_app().await;
    let payload = customer_created();
    let header = stripe_signature(&payload, "whsec_someone_else", now());
    assert_rejected(&app, payload, Some(&header), 400, "invalid_signature").await;
}

#[tokio::test]
async fn body_changed_after_signing_is_invalid() {
    let app = spawn_app().await;
    let signed = CustomerEvent::created(&new_customer_id(), T0);
    let header = stripe_signature(&signed.json(), TEST_SECRET, now());
    let tampered = signed.clone().email(Some("attacker@example.com")).json();
    assert_rejected(&app, tampered, Some(&header), 400, "invalid_signature").await;
}

#[tokio::test]
async fn old_timestamp_is_outside_tolerance() {
    let app = spawn_app().await;
    let payload = customer_created();
    let header = stripe_signature(&payload, TEST_SECRET, now() - 301);
    assert_rejected(
        &app,
        payload,
        Some(&header),
        400,
        "timestamp_outside_tolerance",
    )
    .await;
}

#[tokio::test]
async fn future_timestamp_is_outside_tolerance() {
    let app = spawn_app().await;
    let payload = customer_created();
    // Margin over the 300 s tolerance, so the server's clock moving on cannot bring it inside.
    let header = stripe_signature(&payload, TEST_SECRET, now() + 330);
    assert_rejected(
        &app,
        payload,
        Some(&header),
        400,
        "timestamp_outside_tolerance",
    )
    .await;
}

#[tokio::test]
async fn verified_body_that_is_not_a_stripe_event_is_a_malformed_payload() {
    let app = spawn_app().await;
    for body in [r#"{"hello":"world"}"#, "this is not json"] {
        let header = stripe_signature(body, TEST_SECRET, now());
        assert_rejected(&app, body, Some(&header), 400, "malformed_payload").await;
    }
}

#[tokio::test]
async fn body_larger_than_one_mib_is_payload_too_large() {
    let app = spawn_app().await;
    // A genuine, correctly signed event: only its size is wrong.
    let payload = CustomerEvent::created(&new_customer_id(), T0)
        .name(&"x".repeat(ONE_MIB))
        .json();
    let header = stripe_signature(&payload, TEST_SECRET, now());
    assert_rejected(&app, payload, Some(&header), 413, "payload_too_large").await;
}
