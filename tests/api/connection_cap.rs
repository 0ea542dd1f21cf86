//! Slow clients cannot take every connection: `serve` limited to 256 descriptors, 300 clients
//! that send the head of a 100 kB POST and one byte and then hold on, and a correctly signed
//! webhook is still answered, as is `/healthz`, while the server drops the slow ones at their
//! body's deadline. Before the deadlines and the cap, the slow clients held their connections
//! for good, `accept` failed with "Too many open files", and the webhook was never answered.

use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::{TEST_SECRET, json_reply, migrated_database, now, stripe_signature};
use crate::request_deadlines::{post_head, read_until_closed, send_raw};

const OPEN_FILES_LIMIT: u64 = 256;
const SLOW_CLIENTS: usize = 300;

#[tokio::test]
async fn slow_clients_beyond_what_the_process_can_hold_do_not_starve_a_signed_webhook() {
    let db = migrated_database().await;
    let serve = ServeProcess::command(&db.url)
        .open_files_limit(OPEN_FILES_LIMIT)
        .envs(&[
            ("REQUEST_HEAD_TIMEOUT", "2s"),
            ("REQUEST_BODY_TIMEOUT", "2s"),
        ])
        .start()
        .await
        .ready()
        .await;
    let log = serve.wait_for_log("client connections capped").await;
    assert!(log.contains(r#""open_files_limit":256"#), "{log}");

    let mut slow = Vec::with_capacity(SLOW_CLIENTS);
    for _ in 0..SLOW_CLIENTS {
        let request = post_head("/webhooks/stripe", 100_000, "") + "{";
        slow.push(send_raw(&serve.base_url, &request).await);
    }

    let started = Instant::now();
    let event = CustomerEvent::created(&new_customer_id(), T0).json();
    // On a connection of its own, as Stripe delivers (not one kept alive from before).
    let delivery = reqwest::Client::new()
        .post(format!("{}/webhooks/stripe", serve.base_url))
        .header("Content-Type", "application/json")
        .header(
            "Stripe-Signature",
            stripe_signature(&event, TEST_SECRET, now()),
        )
        .body(event.clone())
        .send();
    let response = tokio::time::timeout(Duration::from_secs(30), delivery)
        .await
        .expect("the signed webhook is answered while the slow clients hold on")
        .unwrap();
    let (status, body) = json_reply(response).await;
    let webhook_took = started.elapsed();
    let healthz = tokio::time::timeout(
        Duration::from_secs(30),
        reqwest::get(format!("{}/healthz", serve.base_url)),
    )
    .await
    .expect("/healthz is answered")
    .unwrap();

    assert_eq!((status, body["status"].as_str()), (200, Some("processed")));
    // At most a few rounds of the 2 s deadline (the slow clients queued ahead of it, a cap's
    // worth at a time), however many there are and however long they would hold on.
    assert!(webhook_took < Duration::from_secs(20), "{webhook_took:?}");
    assert_eq!(healthz.status().as_u16(), 200);
    // Every slow client was answered 408 or dropped.
    let dropped = join_all(
        slow.iter_mut()
            .map(|stream| read_until_closed(stream, Duration::from_secs(60))),
    )
    .await;
    let still_open = dropped.iter().filter(|answer| answer.is_none()).count();
    assert_eq!(still_open, 0, "slow clients still connected");
    let log = serve.log();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(
        log.contains("reached the cap"),
        "the cap is logged when reached: {log}"
    );
}
