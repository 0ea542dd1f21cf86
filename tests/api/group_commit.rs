//! Group commit: events waiting together are applied by one read and one write, and every
//! guarantee of the single-event path still holds for each of them. The batches are made
//! certain, not left to timing: a test holds a lock the writers need, so the deliveries queue
//! up behind it, and lets go.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::{
    DedicatedCluster, TableCounts, TestApp, create_auth_user, migrated_database, spawn_app_with,
};

/// A connection that holds `public.stripe_customers` locked until dropped or `release`d: the
/// writers' snapshot reads wait behind it, and the deliveries queue up.
struct TableLock(PgConnection);

impl TableLock {
    async fn take(url: &str) -> Self {
        let mut connection = PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql("begin; lock table public.stripe_customers in access exclusive mode")
            .execute(&mut connection)
            .await
            .unwrap();
        Self(connection)
    }

    async fn release(mut self) {
        sqlx::raw_sql("commit").execute(&mut self.0).await.unwrap();
    }
}

/// Waits until `count` sessions wait for a lock on the app's database.
async fn until_sessions_wait_for_the_lock(app: &TestApp, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        if waiting >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} sessions wait for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn deliver_all(app: &TestApp, payloads: &[String]) -> Vec<(u16, Value)> {
    join_all(payloads.iter().map(|payload| app.deliver_json(payload))).await
}

/// Delivers `payloads` all at once while the table is locked, so that the writers' first
/// writes block and the rest queue up behind them; lets go once a writer waits.
async fn deliver_all_queued_behind_a_lock(
    app: &TestApp,
    url: &str,
    payloads: &[String],
) -> Vec<(u16, Value)> {
    let lock = TableLock::take(url).await;
    let release = async {
        until_sessions_wait_for_the_lock(app, 1).await;
        // Let the rest of the deliveries queue up behind the blocked writers.
        tokio::time::sleep(Duration::from_millis(300)).await;
        lock.release().await;
    };
    let (answers, ()) = tokio::join!(deliver_all(app, payloads), release);
    answers
}

/// The value of one sample line of `/metrics`; 0 when absent.
async fn metric(app: &TestApp, series: &str) -> f64 {
    app.metrics_text()
        .await
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn events_queued_together_are_applied_in_batches_each_exactly_once_and_in_order() {
    let db = migrated_database().await;
    let url = db.url.clone();
    let app = spawn_app_with(db, |_| {}).await;
    let user = create_auth_user(&app.db.pool).await;

    // Customers whose created and two updates arrive together, newest first; a duplicate of
    // each event; two customers claiming one user; and plain new customers.
    let ordered: Vec<String> = (0..6).map(|_| new_customer_id()).collect();
    let plain: Vec<String> = (0..20).map(|_| new_customer_id()).collect();
    let claimants = [new_customer_id(), new_customer_id()];
    let mut payloads = Vec::new();
    for customer in &ordered {
        payloads.push(
            CustomerEvent::updated(customer, T0 + 2)
                .name("newest")
                .json(),
        );
        payloads.push(
            CustomerEvent::updated(customer, T0 + 1)
                .name("older")
                .json(),
        );
        payloads.push(CustomerEvent::created(customer, T0).name("first").json());
    }
    for claimant in &claimants {
        payloads.push(CustomerEvent::created(claimant, T0).for_user(user).json());
    }
    for customer in &plain {
        payloads.push(CustomerEvent::created(customer, T0).json());
    }
    let duplicates = payloads.clone();
    payloads.extend(duplicates);
    let distinct_events = payloads.len() as i64 / 2;

    let answers = deliver_all_queued_behind_a_lock(&app, &url, &payloads).await;

    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    let first_answers = answers
        .iter()
        .filter(|(_, body)| body["status"] != "duplicate")
        .count() as i64;
    assert_eq!(first_answers, distinct_events, "each event applied once");
    assert_eq!(app.ledger_count().await, distinct_events);
    for customer in &ordered {
        assert_eq!(
            app.customer(customer).await.unwrap()["customer_name"],
            "newest",
            "the newest update wins whatever the order within a batch"
        );
    }
    let linked: Vec<String> = sqlx::query_scalar(
        "select stripe_customer_id from public.stripe_customers where user_id = $1",
    )
    .bind(user)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(linked.len(), 1, "one customer per user: {linked:?}");
    assert!(claimants.contains(&linked[0]));
    assert_eq!(
        app.customer_count().await,
        (ordered.len() + claimants.len() + plain.len()) as i64
    );
    // Every change names its event in the audit trail, though many shared one statement.
    let unnamed: i64 = sqlx::query_scalar(
        "select count(*) from public.stripe_customers_audit where event_id is null",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(unnamed, 0);

    let batches = metric(&app, "stripe_webhook_batch_events_count").await;
    let batched = metric(&app, "stripe_webhook_batch_events_sum").await;
    assert!(
        batches < batched,
        "{batched} events in {batches} batches: none was applied together"
    );
}

/// A batch whose events all write a row takes a statement without the guard of an event that
/// writes none; one that mixes the two must keep it, or the others would not be recorded by
/// the batch and would each fall back to the single-event path.
#[tokio::test]
async fn a_batch_mixing_customer_events_with_events_that_write_no_row_records_them_all_together() {
    let db = migrated_database().await;
    let url = db.url.clone();
    let app = spawn_app_with(db, |_| {}).await;
    // Two of each in turn: the HTTP workers take connections in turn, and each has its own
    // writer, so each writer's batch gets both kinds.
    let mut payloads = Vec::new();
    for _ in 0..5 {
        for _ in 0..2 {
            payloads.push(CustomerEvent::created(&new_customer_id(), T0).json());
        }
        for _ in 0..2 {
            payloads.push(CustomerEvent::new("invoice.paid", &new_customer_id(), T0).json());
        }
    }

    let answers = deliver_all_queued_behind_a_lock(&app, &url, &payloads).await;

    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    let ignored = answers
        .iter()
        .filter(|(_, body)| body["status"] == "ignored")
        .count();
    assert_eq!(ignored, 10);
    assert_eq!(app.ledger_count().await, payloads.len() as i64);
    assert_eq!(app.customer_count().await, 10);
    let batches = metric(&app, "stripe_webhook_batch_events_count").await;
    let batched = metric(&app, "stripe_webhook_batch_events_sum").await;
    assert!(
        batches < batched,
        "{batched} events in {batches} batches: none was applied together"
    );
    assert_eq!(
        metric(&app, "stripe_webhook_events_applied_one_by_one_total").await,
        0.0,
        "every event was settled by its batch"
    );
}

#[tokio::test]
async fn an_outage_while_a_batch_waits_answers_503_to_each_of_its_events_writes_nothing_and_each_is_processed_on_retry()
 {
    let mut cluster = DedicatedCluster::start().await;
    let db = cluster.migrated_database().await;
    let url = db.url.clone();
    let app = spawn_app_with(db, |_| {}).await;
    let existing = new_customer_id();
    app.deliver_expecting(&CustomerEvent::created(&existing, T0).json(), "processed")
        .await;
    let before = app.table_counts().await;

    let mut payloads: Vec<String> = (0..12)
        .map(|_| CustomerEvent::created(&new_customer_id(), T0).json())
        .collect();
    payloads.push(
        CustomerEvent::updated(&existing, T0 + 1)
            .name("Ada King")
            .json(),
    );

    let lock = TableLock::take(&url).await;
    let outage = async {
        until_sessions_wait_for_the_lock(&app, 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.stop().await;
        drop(lock);
    };
    let started = Instant::now();
    let (answers, ()) = tokio::join!(deliver_all(&app, &payloads), outage);
    let waited = started.elapsed();
    // The shutdown may end the lock's session a moment before a waiting writer's: that
    // writer's batch then commits before its own session ends, and its events are answered
    // `processed`. Every other event is answered 503, and none of those was written.
    let mut unavailable = Vec::new();
    let mut written = before;
    for (index, (payload, (status, body))) in payloads.iter().zip(&answers).enumerate() {
        match status {
            503 => {
                assert_eq!(body["error"]["code"], "unavailable", "{body}");
                unavailable.push(payload.clone());
            }
            200 => {
                assert_eq!(body["status"], "processed", "{body}");
                written.ledger += 1;
                written.audit += 1;
                // The last payload updates `existing`; the others each create a customer.
                written.customers += i64::from(index + 1 < payloads.len());
            }
            _ => panic!("{status}: {body}"),
        }
    }
    assert!(
        unavailable.len() >= 2,
        "the outage met no batch waiting to be written: {answers:?}"
    );
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");

    cluster.restart().await;
    assert_eq!(app.table_counts().await, written, "nothing half-written");
    // Stripe retries each event answered 503; the pool reconnects on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pending = unavailable;
    while !pending.is_empty() {
        let answers = deliver_all(&app, &pending).await;
        let mut still = Vec::new();
        for (payload, (status, body)) in pending.iter().zip(answers) {
            match status {
                200 => assert_eq!(body["status"], "processed", "{body}"),
                503 => still.push(payload.clone()),
                _ => panic!("{status}: {body}"),
            }
        }
        pending = still;
        assert!(
            Instant::now() < deadline,
            "{} events not processed",
            pending.len()
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let n = payloads.len() as i64;
    assert_eq!(
        app.table_counts().await,
        TableCounts {
            ledger: before.ledger + n,
            customers: before.customers + n - 1,
            audit: before.audit + n,
        }
    );
    assert_eq!(
        app.customer(&existing).await.unwrap()["customer_name"],
        "Ada King"
    );
}
