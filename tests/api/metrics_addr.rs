//! `METRICS_ADDR`: `/metrics` holds counts only, but operators keep it off the internet; when
//! set, it is served there and not on the public address.

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::serve_process::ServeProcess;
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

#[tokio::test]
async fn serve_says_where_metrics_are_and_keeps_them_off_the_public_address() {
    let db = migrated_database().await;
    let serve = ServeProcess::start(&db.url, &[("METRICS_ADDR", "127.0.0.1:0")])
        .await
        .ready()
        .await;
    let log = serve
        .wait_for_log("serving GET /metrics on METRICS_ADDR only")
        .await;
    let metrics_port = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|entry| entry["metrics_port"].as_u64())
        .expect("the metrics port is logged");
    let client = reqwest::Client::new();

    let (private, _) = get(&client, format!("http://127.0.0.1:{metrics_port}/metrics")).await;
    let (public, _) = get(&client, format!("{}/metrics", serve.base_url)).await;
    let (healthz, _) = get(&client, format!("{}/healthz", serve.base_url)).await;

    assert_eq!((private, public, healthz), (200, 404, 200));
    assert!(serve.terminate().await, "both servers stop on SIGTERM");
}
