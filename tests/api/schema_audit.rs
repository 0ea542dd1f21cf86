//! What the audit trail's trigger writes for each insert, update and delete of
//! `stripe_customers`, whoever makes it, checked in SQL directly, below the service.

use serde_json::{Value, json};

use crate::helpers::schema::{audit_rows, insert_customer};
use crate::helpers::{create_auth_user, migrated_database};

#[tokio::test]
async fn each_insert_update_and_delete_leaves_exactly_one_audit_row() {
    let db = migrated_database().await;
    let user = create_auth_user(&db.pool).await;

    insert_customer(&db.pool, Some(user), "cus_Audited")
        .await
        .unwrap();
    let trail = audit_rows(&db.pool, "cus_Audited").await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].operation, "INSERT");
    assert_eq!(trail[0].old_row, None);
    assert_eq!(
        trail[0].new_row, None,
        "an insert keeps no image: the inserted version is the row itself"
    );
    let stored_updated_at = |pool| async move {
        sqlx::query_scalar::<_, Value>(
            "select to_jsonb(updated_at) from public.stripe_customers
             where stripe_customer_id = 'cus_Audited'",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let inserted_updated_at = stored_updated_at(&db.pool).await;

    sqlx::query(
        "update public.stripe_customers set customer_name = 'Ada Lovelace'
         where stripe_customer_id = 'cus_Audited'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let trail = audit_rows(&db.pool, "cus_Audited").await;
    assert_eq!(trail.len(), 2);
    let update = &trail[1];
    assert_eq!(update.operation, "UPDATE");
    assert_eq!(
        update.old_row.as_ref().unwrap()["customer_name"],
        Value::Null
    );
    assert_eq!(
        update.new_row, None,
        "an update keeps the old values only: the version after is the next one's"
    );
    assert_eq!(
        update.old_row.as_ref().unwrap()["updated_at"],
        inserted_updated_at,
        "the audit records the row as it was stored, after the updated_at trigger"
    );
    let mut changed: Vec<&String> = update
        .old_row
        .as_ref()
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .collect();
    changed.sort();
    assert_eq!(
        changed,
        ["customer_name", "updated_at"],
        "only what changed"
    );

    sqlx::query("delete from public.stripe_customers where stripe_customer_id = 'cus_Audited'")
        .execute(&db.pool)
        .await
        .unwrap();
    let trail = audit_rows(&db.pool, "cus_Audited").await;
    assert_eq!(trail.len(), 3);
    let delete = &trail[2];
    assert_eq!(delete.operation, "DELETE");
    assert_eq!(delete.new_row, None);
    assert_eq!(
        delete.old_row.as_ref().unwrap()["customer_name"],
        "Ada Lovelace"
    );
    assert_eq!(
        delete.old_row.as_ref().unwrap()["user_id"],
        json!(user.to_string()),
        "a delete keeps the whole row it removed"
    );
}

#[tokio::test]
async fn audit_row_carries_the_event_id_set_for_the_transaction() {
    let db = migrated_database().await;

    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("select set_config('stripe_customer_sync.event_id', $1, true)")
        .bind("evt_1QzYxW2eZvKYlo2C")
        .execute(&mut *tx)
        .await
        .unwrap();
    insert_customer(&mut *tx, None, "cus_FromEvent")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let trail = audit_rows(&db.pool, "cus_FromEvent").await;
    assert_eq!(trail[0].event_id.as_deref(), Some("evt_1QzYxW2eZvKYlo2C"));
}

#[tokio::test]
async fn audit_row_has_no_event_id_when_the_transaction_set_none() {
    let db = migrated_database().await;
    // One connection throughout, as a pool would reuse it: the previous transaction's event id
    // must not leak into the next one's audit rows.
    let mut conn = db.pool.acquire().await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    sqlx::query("select set_config('stripe_customer_sync.event_id', 'evt_Earlier', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    insert_customer(&mut *tx, None, "cus_Earlier")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    insert_customer(&mut *conn, None, "cus_ByHand")
        .await
        .unwrap();

    let trail = audit_rows(&mut *conn, "cus_ByHand").await;
    assert_eq!(trail[0].event_id, None);
}

#[tokio::test]
async fn audit_row_names_the_role_that_made_the_change() {
    let db = migrated_database().await;
    let session_user: String = sqlx::query_scalar("select session_user::text")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    insert_customer(&db.pool, None, "cus_Roles").await.unwrap();

    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("set local role service_role")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("update public.stripe_customers set customer_name = 'x' where stripe_customer_id = 'cus_Roles'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let trail = audit_rows(&db.pool, "cus_Roles").await;
    let by: Vec<&str> = trail.iter().map(|row| row.changed_by.as_str()).collect();
    assert_eq!(by, [session_user.as_str(), "service_role"]);
}
