//! Webhook deliveries as Stripe makes them (signed with an independent signer), and their answers.

use super::app::TestApp;

/// The endpoint secret the test app is configured with.
pub const TEST_SECRET: &str = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc";

/// Signs `payload` at time `t` with Stripe's scheme, using async-stripe's signer: an
/// implementation independent of the one under test.
pub fn stripe_signature(payload: &str, secret: &str, t: i64) -> String {
    stripe_webhook::Webhook::generate_test_header(payload, secret, Some(t))
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl TestApp {
    /// POSTs `payload` signed now with the app's secret, as Stripe delivers it.
    pub async fn deliver(&self, payload: &str) -> reqwest::Response {
        let header = stripe_signature(payload, TEST_SECRET, now());
        self.post_webhook(payload.as_bytes().to_vec(), Some(&header))
            .await
    }

    /// POSTs `body` with the given `Stripe-Signature` header (or none).
    pub async fn post_webhook(&self, body: Vec<u8>, signature: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/stripe", self.address))
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        request.send().await.expect("send webhook")
    }

    /// Delivers and returns (HTTP status, JSON body); fails unless the answer is JSON.
    pub async fn deliver_json(&self, payload: &str) -> (u16, serde_json::Value) {
        json_reply(self.deliver(payload).await).await
    }

    /// Delivers `payload` and asserts the answer is `200 {"status", "event_id": <payload's id>}`.
    /// `expected` is written as `replay` prints it: `"processed"`, `"skipped stale_event"`.
    pub async fn deliver_expecting(&self, payload: &str, expected: &str) {
        let (status, body) = self.deliver_json(payload).await;
        assert_eq!(
            (status, &body),
            (200, &expected_answer(payload, expected)),
            "answer to {}",
            event_id_of(payload)
        );
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/webhooks/stripe", self.address)
    }
}

/// (HTTP status, JSON body) of a response; fails unless it says `content-type: application/json`.
pub async fn json_reply(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .cloned();
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "content-type of a {status} answer"
    );
    (status, response.json().await.expect("JSON response"))
}

/// The `id` of an event payload.
pub fn event_id_of(payload: &str) -> String {
    let event: serde_json::Value = serde_json::from_str(payload).expect("event payload is JSON");
    event["id"].as_str().expect("event has an id").to_owned()
}

/// The 200 body the service answers `payload` with, for `expected` = `"status[ reason]"`.
pub fn expected_answer(payload: &str, expected: &str) -> serde_json::Value {
    let mut words = expected.split_whitespace();
    let status = words.next().expect("a status");
    let mut answer = serde_json::json!({ "status": status, "event_id": event_id_of(payload) });
    if let Some(reason) = words.next() {
        answer["reason"] = serde_json::json!(reason);
    }
    answer
}
