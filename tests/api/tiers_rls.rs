//! Who reads a subscription through Supabase's API: the user whose customer it bills, and the
//! active members of the organization whose customer it bills (docs/design.md "Tiers").

use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::organizations::{add_member, create_organization, create_organizations_schema};
use crate::helpers::schema::{as_signed_in_user, insert_customer};
use crate::helpers::{create_auth_user, migrated_database};

/// The subscription ids `user` sees as `authenticated`, as PostgREST reads them.
async fn subscriptions_visible_to(pool: &PgPool, user: Uuid) -> Vec<String> {
    let mut tx = as_signed_in_user(pool, user).await;
    sqlx::query_scalar("select stripe_subscription_id from public.stripe_subscriptions order by 1")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
}

async fn insert_subscription(pool: &PgPool, subscription: &str, customer: &str) {
    sqlx::query(
        "insert into public.stripe_subscriptions
             (stripe_subscription_id, stripe_customer_id, status, livemode, last_event_id,
              last_event_created, last_event_type)
         values ($1, $2, 'active', false, 'evt_1', 1, 'customer.subscription.created')",
    )
    .bind(subscription)
    .bind(customer)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn users_read_their_own_subscriptions_and_members_their_organizations() {
    let db = migrated_database().await;
    let pool = &db.pool;
    create_organizations_schema(pool).await;
    let acme = create_organization(pool, "Acme", None).await;
    let member = create_auth_user(pool).await;
    let removed = create_auth_user(pool).await;
    let stranger = create_auth_user(pool).await;
    add_member(pool, acme, member, "member", "active").await;
    add_member(pool, acme, removed, "member", "removed").await;

    insert_customer(pool, None, "cus_Acme").await.unwrap();
    sqlx::query(
        "update public.stripe_customers set organization_id = $1
          where stripe_customer_id = 'cus_Acme'",
    )
    .bind(acme)
    .execute(pool)
    .await
    .unwrap();
    insert_customer(pool, Some(stranger), "cus_Stranger")
        .await
        .unwrap();
    insert_subscription(pool, "sub_Acme", "cus_Acme").await;
    insert_subscription(pool, "sub_Stranger", "cus_Stranger").await;
    insert_subscription(pool, "sub_Nobody", "cus_Nobody").await;

    assert_eq!(subscriptions_visible_to(pool, member).await, ["sub_Acme"]);
    assert_eq!(
        subscriptions_visible_to(pool, stranger).await,
        ["sub_Stranger"]
    );
    assert!(subscriptions_visible_to(pool, removed).await.is_empty());
}
