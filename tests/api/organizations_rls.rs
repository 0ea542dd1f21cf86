//! Who reads an organization's customer row through Supabase's API: its active members, and
//! nobody else (docs/design.md "Organizations"). Each read is replayed as PostgREST makes it:
//! a transaction with `set local role authenticated` and the JWT claims as a setting.

use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::organizations::{add_member, create_organization, create_organizations_schema};
use crate::helpers::schema::{as_signed_in_user, insert_customer};
use crate::helpers::{create_auth_user, migrated_database};

/// The customer ids `user` sees in `public.stripe_customers` as `authenticated`.
async fn visible_to(pool: &PgPool, user: Uuid) -> Vec<String> {
    let mut tx = as_signed_in_user(pool, user).await;
    sqlx::query_scalar("select stripe_customer_id from public.stripe_customers order by 1")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
}

/// Links the customer `cus_…` to `organization`, as the sync would.
async fn insert_organization_customer(pool: &PgPool, organization: Uuid, customer: &str) {
    insert_customer(pool, None, customer).await.unwrap();
    sqlx::query(
        "update public.stripe_customers set organization_id = $1 where stripe_customer_id = $2",
    )
    .bind(organization)
    .bind(customer)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn active_members_read_their_organizations_customer_and_nobody_else_does() {
    let db = migrated_database().await;
    let pool = &db.pool;
    create_organizations_schema(pool).await;
    let acme = create_organization(pool, "Acme", Some("billing@acme.test")).await;
    let other = create_organization(pool, "Other", None).await;
    insert_organization_customer(pool, acme, "cus_Acme").await;
    insert_organization_customer(pool, other, "cus_Other").await;

    let owner = create_auth_user(pool).await;
    let viewer = create_auth_user(pool).await;
    add_member(pool, acme, owner, "owner", "active").await;
    add_member(pool, acme, viewer, "viewer", "active").await;
    // Members in name only: invited, suspended, removed.
    let mut not_active = Vec::new();
    for status in ["pending", "suspended", "removed"] {
        let user = create_auth_user(pool).await;
        add_member(pool, acme, user, "admin", status).await;
        not_active.push((status, user));
    }
    let outsider = create_auth_user(pool).await;
    // An outsider with a customer of their own still reads only that one.
    insert_customer(pool, Some(outsider), "cus_Outsider")
        .await
        .unwrap();

    assert_eq!(visible_to(pool, owner).await, ["cus_Acme"]);
    assert_eq!(visible_to(pool, viewer).await, ["cus_Acme"]);
    for (status, user) in not_active {
        assert!(
            visible_to(pool, user).await.is_empty(),
            "a {status} member reads a row"
        );
    }
    assert_eq!(visible_to(pool, outsider).await, ["cus_Outsider"]);
}

#[tokio::test]
async fn a_member_with_a_customer_of_their_own_reads_both_rows() {
    let db = migrated_database().await;
    let pool = &db.pool;
    create_organizations_schema(pool).await;
    let acme = create_organization(pool, "Acme", None).await;
    insert_organization_customer(pool, acme, "cus_Acme").await;
    let member = create_auth_user(pool).await;
    add_member(pool, acme, member, "member", "active").await;
    insert_customer(pool, Some(member), "cus_Mine")
        .await
        .unwrap();
    assert_eq!(visible_to(pool, member).await, ["cus_Acme", "cus_Mine"]);
}

#[tokio::test]
async fn members_read_through_one_select_policy_in_the_initplan_form() {
    let db = migrated_database().await;
    create_organizations_schema(&db.pool).await;
    // Supabase's linter: one permissive policy per role and action
    // (multiple_permissive_policies), auth.uid() wrapped in a select (auth_rls_initplan).
    let policies: Vec<(String, String)> = sqlx::query_as(
        "select policyname::text, qual from pg_policies
          where schemaname = 'public' and tablename = 'stripe_customers'
            and cmd = 'SELECT' and 'authenticated' = any(roles)",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(policies.len(), 1, "{policies:?}");
    let qual = &policies[0].1;
    assert!(qual.contains("organization_memberships"), "{qual}");
    assert!(
        !qual
            .replace("( SELECT auth.uid() AS uid)", "")
            .contains("auth.uid()"),
        "every auth.uid() in the initplan form: {qual}"
    );
}
