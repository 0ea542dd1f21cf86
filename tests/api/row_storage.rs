//! Where a customer's new row version goes. Most `customer.updated` events change neither the
//! email nor the user, so no indexed column: PostgreSQL can then write the new version on the
//! row's own page, without a new entry in any of the table's four indexes (a heap-only update),
//! but only if the page has room for it. The table leaves that room.

use sqlx::PgPool;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::{insert_customer_by_hand, spawn_app};

/// The heap page (block number) the row of `stripe_customer_id` is on.
async fn page_of(pool: &PgPool, stripe_customer_id: &str) -> i64 {
    sqlx::query_scalar(
        "select (ctid::text::point)[0]::bigint
           from public.stripe_customers
          where stripe_customer_id = $1",
    )
    .bind(stripe_customer_id)
    .fetch_one(pool)
    .await
    .expect("read the row's page")
}

#[tokio::test]
async fn an_update_that_keeps_email_and_user_is_written_on_the_rows_own_full_page() {
    let app = spawn_app().await;
    let customer = new_customer_id();
    app.deliver_expecting(&CustomerEvent::created(&customer, T0).json(), "processed")
        .await;
    assert_eq!(page_of(&app.db.pool, &customer).await, 0, "the first row");

    // Fill its page with rows smaller than the customer's, until one no longer fits: what is
    // left free then is what the table keeps for updates.
    let mut filler = 0;
    loop {
        filler += 1;
        assert!(filler < 200, "a page holds fewer rows than that");
        let id = format!("cus_filler{filler}");
        insert_customer_by_hand(&app.db.pool, &id, "f@example.com").await;
        if page_of(&app.db.pool, &id).await > 0 {
            break;
        }
    }

    let update = CustomerEvent::updated(&customer, T0 + 10).metadata("plan", "pro");
    app.deliver_expecting(&update.json(), "processed").await;

    let stored = app.customer(&customer).await.expect("the row");
    assert_eq!(stored["customer_metadata"]["stripe"]["plan"], "pro");
    assert_eq!(
        page_of(&app.db.pool, &customer).await,
        0,
        "the new version is on the row's own page"
    );
}
