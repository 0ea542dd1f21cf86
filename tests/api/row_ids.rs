//! The ids of the rows the service inserts. `stripe_customers.id` keeps its random default for
//! rows inserted by hand, but the service gives its own rows time-ordered UUIDs (version 7), so
//! that each new entry of the primary key index lands at its right edge instead of on a random
//! page: whichever way the customer arrives (a webhook, a backfill page, a caught-up event).

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::commands::{backfill, workdir};
use crate::helpers::events::{CustomerEvent, new_customer_id};
use crate::helpers::stripe_double::{Customer, StripeDouble, output};
use crate::helpers::{insert_customer_by_hand, now, spawn_app};

async fn id_of(pool: &PgPool, stripe_customer_id: &str) -> Uuid {
    sqlx::query_scalar("select id from public.stripe_customers where stripe_customer_id = $1")
        .bind(stripe_customer_id)
        .fetch_one(pool)
        .await
        .expect("the customer's row")
}

/// Lets the clock move on by more than a UUID v7's millisecond, so that ids of rows written one
/// after the other by different processes must sort in that order.
async fn next_millisecond() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

#[tokio::test]
async fn rows_the_service_inserts_get_ids_in_creation_order_whichever_way_they_arrive() {
    let app = spawn_app().await;
    let double = StripeDouble::start().await;
    let dir = workdir();
    let [by_webhook, by_backfill, by_catch_up, by_webhook_again] =
        std::array::from_fn(|_| new_customer_id());

    app.deliver_expecting(
        &CustomerEvent::created(&by_webhook, now()).json(),
        "processed",
    )
    .await;
    next_millisecond().await;

    double.add([Customer::new(&by_backfill)]);
    let run = backfill(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    next_millisecond().await;

    let missed = CustomerEvent::created(&by_catch_up, now()).json();
    double.add_events([missed.as_str()]);
    let caught_up = output(double.command(&app.db.url, dir.path(), &["catch-up", "--json"])).await;
    assert!(
        caught_up.status.success(),
        "{}",
        String::from_utf8_lossy(&caught_up.stderr)
    );
    next_millisecond().await;

    app.deliver_expecting(
        &CustomerEvent::created(&by_webhook_again, now()).json(),
        "processed",
    )
    .await;

    let mut ids = Vec::new();
    for customer in [&by_webhook, &by_backfill, &by_catch_up, &by_webhook_again] {
        let id = id_of(&app.db.pool, customer).await;
        assert_eq!(id.get_version_num(), 7, "{customer}: a time-ordered id");
        ids.push(id);
    }
    assert!(
        ids.is_sorted(),
        "ids sort in the order the rows were created: {ids:?}"
    );
}

#[tokio::test]
async fn a_row_inserted_by_hand_keeps_the_random_default_id() {
    let app = spawn_app().await;
    let customer = new_customer_id();
    insert_customer_by_hand(&app.db.pool, &customer, "by-hand@example.com").await;

    assert_eq!(id_of(&app.db.pool, &customer).await.get_version_num(), 4);
}
