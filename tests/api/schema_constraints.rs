//! What the tables accept, and what their triggers do: the integrity rules of the schema,
//! checked in SQL directly, below the service.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgDatabaseError;
use uuid::Uuid;

use crate::helpers::schema::{audit_rows, insert_customer, rejection};
use crate::helpers::{create_auth_user, migrated_database};

pub(crate) const UNIQUE_VIOLATION: &str = "23505";
pub(crate) const CHECK_VIOLATION: &str = "23514";
pub(crate) const NOT_NULL_VIOLATION: &str = "23502";
pub(crate) const FOREIGN_KEY_VIOLATION: &str = "23503";

pub(crate) fn assert_violates(result: Result<(), sqlx::Error>, code: &str, constraint: &str) {
    let (actual_code, actual_constraint) = rejection(result);
    assert_eq!(
        (actual_code.as_str(), actual_constraint.as_deref()),
        (code, Some(constraint))
    );
}

/// Supabase Auth deletes users as `supabase_auth_admin`, a role with rights on `auth` only.
/// Recreated here with just what deleting a user takes, so that cascades are tested as the
/// role that really starts them. Roles are cluster-wide and tests run concurrently, hence the
/// tolerance for a creator racing us.
pub(crate) async fn ensure_supabase_auth_admin(pool: &PgPool) {
    sqlx::raw_sql(
        "do $$
         begin
             if not exists (select from pg_catalog.pg_roles where rolname = 'supabase_auth_admin') then
                 create role supabase_auth_admin nologin noinherit;
             end if;
         exception when duplicate_object or unique_violation then null;
         end
         $$;
         grant usage on schema auth to supabase_auth_admin;
         grant select, delete on auth.users to supabase_auth_admin;",
    )
    .execute(pool)
    .await
    .expect("create supabase_auth_admin");
}

async fn updated_at(pool: &PgPool, stripe_customer_id: &str) -> DateTime<Utc> {
    sqlx::query_scalar(
        "select updated_at from public.stripe_customers where stripe_customer_id = $1",
    )
    .bind(stripe_customer_id)
    .fetch_one(pool)
    .await
    .expect("read updated_at")
}

// --- stripe_customers -------------------------------------------------------------------------

#[tokio::test]
async fn customer_id_not_matching_cus_pattern_is_rejected() {
    let db = migrated_database().await;
    let not_customer_ids = [
        "",
        "cus_",
        "cust_1MqLhR2eZvKYlo2C",
        "CUS_1MqLhR2eZvKYlo2C",
        "pm_1MqLhR2eZvKYlo2C",
        "cus_1MqL-hR2e",
        "cus_1MqL hR2e",
        " cus_1MqLhR2eZvKYlo2C",
        "cus_1MqLhR2eZvKYlo2C\n",
        "cus_é",
    ];
    for id in not_customer_ids {
        let (code, constraint) = rejection(insert_customer(&db.pool, None, id).await);
        assert_eq!(
            (code.as_str(), constraint.as_deref()),
            (
                CHECK_VIOLATION,
                Some("stripe_customers_stripe_customer_id_format")
            ),
            "{id:?} must be rejected"
        );
    }
    insert_customer(&db.pool, None, "cus_NffrFeUfNV2Hib")
        .await
        .expect("a real Stripe customer id is accepted");
}

#[tokio::test]
async fn second_customer_for_the_same_user_is_rejected() {
    let db = migrated_database().await;
    let user = create_auth_user(&db.pool).await;
    insert_customer(&db.pool, Some(user), "cus_First")
        .await
        .unwrap();

    let second = insert_customer(&db.pool, Some(user), "cus_Second").await;

    assert_violates(second, UNIQUE_VIOLATION, "stripe_customers_user_id_key");
}

#[tokio::test]
async fn second_row_for_the_same_stripe_customer_id_is_rejected() {
    let db = migrated_database().await;
    insert_customer(&db.pool, None, "cus_Same").await.unwrap();

    let second = insert_customer(&db.pool, None, "cus_Same").await;

    assert_violates(
        second,
        UNIQUE_VIOLATION,
        "stripe_customers_stripe_customer_id_key",
    );
}

#[tokio::test]
async fn any_number_of_customers_may_be_unlinked() {
    let db = migrated_database().await;
    for id in ["cus_Unlinked1", "cus_Unlinked2", "cus_Unlinked3"] {
        insert_customer(&db.pool, None, id)
            .await
            .expect("a null user_id does not collide with another null");
    }
}

#[tokio::test]
async fn customer_email_null_is_rejected() {
    let db = migrated_database().await;

    let error = sqlx::query(
        "insert into public.stripe_customers (stripe_customer_id, customer_email)
         values ('cus_NoEmail', null)",
    )
    .execute(&db.pool)
    .await
    .expect_err("a customer without an email must be rejected");

    let pg = error
        .as_database_error()
        .unwrap()
        .downcast_ref::<PgDatabaseError>();
    assert_eq!(
        (pg.code(), pg.column()),
        (NOT_NULL_VIOLATION, Some("customer_email"))
    );
}

#[tokio::test]
async fn customer_linked_to_a_missing_auth_user_is_rejected() {
    let db = migrated_database().await;

    let orphan = insert_customer(&db.pool, Some(Uuid::new_v4()), "cus_Orphan").await;

    assert_violates(
        orphan,
        FOREIGN_KEY_VIOLATION,
        "stripe_customers_user_id_fkey",
    );
}

#[tokio::test]
async fn customer_metadata_that_is_not_a_json_object_is_rejected() {
    let db = migrated_database().await;
    insert_customer(&db.pool, None, "cus_Meta").await.unwrap();

    for not_an_object in [json!([]), json!("text"), json!(1), Value::Null] {
        let result = sqlx::query(
            "update public.stripe_customers set customer_metadata = $1
             where stripe_customer_id = 'cus_Meta'",
        )
        .bind(&not_an_object)
        .execute(&db.pool)
        .await
        .map(drop);
        assert_violates(
            result,
            CHECK_VIOLATION,
            "stripe_customers_customer_metadata_is_object",
        );
    }
    let stored: Value = sqlx::query_scalar(
        "select customer_metadata from public.stripe_customers where stripe_customer_id = 'cus_Meta'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(stored, json!({}), "the default is an empty object");
}

#[tokio::test]
async fn updated_at_moves_on_update_and_only_then() {
    let db = migrated_database().await;
    // The trigger acts on updates only, so an insert can start the row a day in the past: any
    // later stamp is then unmistakably the trigger's, with no dependence on clock resolution.
    let inserted: DateTime<Utc> = sqlx::query_scalar(
        "insert into public.stripe_customers (stripe_customer_id, customer_email, updated_at)
         values ('cus_Clock', 'clock@example.com', now() - interval '1 day')
         returning updated_at",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();

    assert_eq!(updated_at(&db.pool, "cus_Clock").await, inserted);
    assert_eq!(
        updated_at(&db.pool, "cus_Clock").await,
        inserted,
        "reading changes nothing"
    );

    let (stamped, now): (DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
        "update public.stripe_customers set customer_name = 'Ada'
         where stripe_customer_id = 'cus_Clock'
         returning updated_at, now()",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();

    assert_eq!(
        stamped, now,
        "an update stamps the updating transaction's time"
    );
    assert!(stamped > inserted);
    assert_eq!(updated_at(&db.pool, "cus_Clock").await, stamped);
}

#[tokio::test]
async fn updated_at_cannot_be_backdated_by_an_update() {
    let db = migrated_database().await;
    insert_customer(&db.pool, None, "cus_Backdate")
        .await
        .unwrap();

    let kept_current: bool = sqlx::query_scalar(
        "update public.stripe_customers set updated_at = '2000-01-01T00:00:00Z'
         where stripe_customer_id = 'cus_Backdate'
         returning updated_at = now()",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();

    assert!(
        kept_current,
        "the trigger, not the writer, decides updated_at"
    );
}

#[tokio::test]
async fn deleting_an_auth_user_as_supabase_auth_admin_removes_their_customer_and_audits_it() {
    let db = migrated_database().await;
    ensure_supabase_auth_admin(&db.pool).await;
    let user = create_auth_user(&db.pool).await;
    insert_customer(&db.pool, Some(user), "cus_Cascade")
        .await
        .unwrap();
    let auth_admin_may_touch_ours: bool = sqlx::query_scalar(
        "select has_table_privilege('supabase_auth_admin', 'public.stripe_customers', 'DELETE')
             or has_table_privilege('supabase_auth_admin', 'public.stripe_customers_audit', 'INSERT')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        !auth_admin_may_touch_ours,
        "the deleting role must own nothing of ours"
    );

    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("set local role supabase_auth_admin")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("delete from auth.users where id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await
        .expect("deleting a user who has a Stripe customer must succeed");
    tx.commit().await.unwrap();

    let remaining: i64 = sqlx::query_scalar(
        "select count(*) from public.stripe_customers where stripe_customer_id = 'cus_Cascade'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(remaining, 0, "the cascade removes the user's customer row");

    let trail = audit_rows(&db.pool, "cus_Cascade").await;
    let delete = trail.last().expect("audit rows");
    assert_eq!(delete.operation, "DELETE");
    assert_eq!(delete.changed_by, "supabase_auth_admin");
    assert_eq!(delete.new_row, None);
    let former_user = delete
        .old_row
        .as_ref()
        .and_then(|row| row["user_id"].as_str());
    assert_eq!(
        former_user,
        Some(user.to_string().as_str()),
        "the audit keeps who it was"
    );
}

// --- stripe_webhook_events --------------------------------------------------------------------
