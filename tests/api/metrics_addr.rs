//! `METRICS_ADDR`: `/metrics` holds counts only, but operators keep it off the internet; when
//! set, it is served there and not on the public address.

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::{migrated_database, spawn_app, spawn_app_with};

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn with_metrics_addr_metrics_are_served_there_and_not_on_the_public_address() {
    let app = spawn_app_with(migrated_database().await, |settings| {
        settings.http.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let metrics = app.metrics_address.clone().expect("a metrics address");
    assert_eq!(
        app.deliver(&CustomerEvent::created(&new_customer_id(), T0).json())
            .await
            .status(),
        200
    );

    let (private, text) = get(&app.client, format!("{metrics}/metrics")).await;
    let (public, _) = get(&app.client, format!("{}/metrics", app.address)).await;

    assert_eq!(private, 200);
    assert!(
        text.contains("stripe_webhook_events_total{"),
        "the same metrics: {text}"
    );
    assert_eq!(public, 404, "not on the public address");
    // The metrics address serves nothing else.
    let (healthz, _) = get(&app.client, format!("{metrics}/healthz")).await;
    assert_eq!(healthz, 404);
    let (webhook, _) = get(&app.client, format!("{metrics}/webhooks/stripe")).await;
    assert_eq!(webhook, 404);
}

#[tokio::test]
async fn without_metrics_addr_metrics_are_on_the_public_address() {
    let app = spawn_app().await;
    assert!(app.metrics_address.is_none());
    let (status, text) = get(&app.client, format!("{}/metrics", app.address)).await;
    assert_eq!(status, 200);
    assert!(text.contains("# EOF"), "{text}");
}
