//! Who can see and change what, through Supabase's API roles: each request is replayed exactly as
//! PostgREST makes it (a transaction with `set local role` and the JWT claims as a setting).

use serde_json::json;
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::helpers::schema::{audit_rows, insert_customer, insert_event, rejection};
use crate::helpers::{create_auth_user, migrated_database};

const INSUFFICIENT_PRIVILEGE: &str = "42501";
const OUR_TABLES: [&str; 3] = [
    "public.stripe_customers",
    "public.stripe_webhook_events",
    "public.stripe_customers_audit",
];

/// The caller of an API request, as its JWT says.
#[derive(Clone, Copy)]
enum Caller {
    Anon,
    User(Uuid),
    /// Signed in, but a token without a subject.
    UserWithoutSub,
    ServiceRole,
}

impl Caller {
    fn role(self) -> &'static str {
        match self {
            Caller::Anon => "anon",
            Caller::User(_) | Caller::UserWithoutSub => "authenticated",
            Caller::ServiceRole => "service_role",
        }
    }

    fn claims(self) -> serde_json::Value {
        match self {
            Caller::User(sub) => json!({ "sub": sub, "role": "authenticated" }),
            other => json!({ "role": other.role() }),
        }
    }
}

/// Opens a transaction set up as PostgREST sets up a request's; rolled back when dropped.
async fn request(pool: &PgPool, caller: Caller) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(AssertSqlSafe(format!("set local role {}", caller.role())))
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("select set_config('request.jwt.claims', $1, true)")
        .bind(caller.claims().to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Everything in our three tables, read as the superuser: equal before and after means nothing
/// changed.
async fn contents(pool: &PgPool) -> Vec<String> {
    let mut all = Vec::new();
    for table in OUR_TABLES {
        let rows: String = sqlx::query_scalar(AssertSqlSafe(format!(
            "select coalesce(jsonb_agg(to_jsonb(t) order by to_jsonb(t)::text), '[]')::text
             from {table} t"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        all.push(format!("{table}: {rows}"));
    }
    all
}

/// Runs `sql` as `caller` and asserts it is refused for lack of privilege and left every row
/// as it was.
async fn assert_denied(pool: &PgPool, caller: Caller, sql: &'static str) {
    let before = contents(pool).await;
    let mut tx = request(pool, caller).await;
    let result = sqlx::query(sql).execute(&mut *tx).await.map(drop);
    drop(tx);
    let (code, _) = rejection(result);
    assert_eq!(code, INSUFFICIENT_PRIVILEGE, "{} ran: {sql}", caller.role());
    assert_eq!(
        contents(pool).await,
        before,
        "{} changed data: {sql}",
        caller.role()
    );
}

/// Runs `sql` as `caller`, commits, and returns how many rows it affected.
async fn run_as(pool: &PgPool, caller: Caller, sql: &'static str) -> u64 {
    let mut tx = request(pool, caller).await;
    let affected = sqlx::query(sql)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{} could not run {sql}: {e}", caller.role()))
        .rows_affected();
    tx.commit().await.unwrap();
    affected
}

async fn visible_customer_ids(pool: &PgPool, caller: Caller) -> Vec<String> {
    let mut tx = request(pool, caller).await;
    sqlx::query_scalar("select stripe_customer_id from public.stripe_customers order by 1")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
}

/// Two users with a customer each, an unlinked customer, and a ledger row; the audit trail has
/// the three inserts.
struct World {
    alice: Uuid,
    bob: Uuid,
}

async fn world(pool: &PgPool) -> World {
    let alice = create_auth_user(pool).await;
    let bob = create_auth_user(pool).await;
    insert_customer(pool, Some(alice), "cus_Alice")
        .await
        .unwrap();
    insert_customer(pool, Some(bob), "cus_Bob").await.unwrap();
    insert_customer(pool, None, "cus_Nobody").await.unwrap();
    insert_event(pool, "evt_Seen", "processed", None)
        .await
        .unwrap();
    World { alice, bob }
}

const SELECT_CUSTOMERS: &str = "select * from public.stripe_customers";
const INSERT_CUSTOMER: &str =
    "insert into public.stripe_customers (stripe_customer_id, customer_email)
     values ('cus_Intruder', 'intruder@example.com')";
const UPDATE_CUSTOMERS: &str =
    "update public.stripe_customers set customer_email = 'hijacked@example.com'";
const DELETE_CUSTOMERS: &str = "delete from public.stripe_customers";

const SELECT_EVENTS: &str = "select * from public.stripe_webhook_events";
const INSERT_EVENT: &str = "insert into public.stripe_webhook_events
         (id, type, livemode, stripe_created, outcome, payload)
     values ('evt_Forged', 'customer.created', true, now(), 'processed', '{}')";
const UPDATE_EVENTS: &str = "update public.stripe_webhook_events set outcome = 'ignored'";
const DELETE_EVENTS: &str = "delete from public.stripe_webhook_events";

const SELECT_AUDIT: &str = "select * from public.stripe_customers_audit";
const INSERT_AUDIT: &str =
    "insert into public.stripe_customers_audit (stripe_customer_id, operation)
     values ('cus_Alice', 'DELETE')";
const UPDATE_AUDIT: &str = "update public.stripe_customers_audit set changed_by = 'nobody'";
const DELETE_AUDIT: &str = "delete from public.stripe_customers_audit";

// --- anon ---------------------------------------------------------------------------------------

#[tokio::test]
async fn anon_can_neither_read_nor_write_customers() {
    let db = migrated_database().await;
    world(&db.pool).await;
    for sql in [
        SELECT_CUSTOMERS,
        INSERT_CUSTOMER,
        UPDATE_CUSTOMERS,
        DELETE_CUSTOMERS,
    ] {
        assert_denied(&db.pool, Caller::Anon, sql).await;
    }
}

#[tokio::test]
async fn anon_can_neither_read_nor_write_the_ledger() {
    let db = migrated_database().await;
    world(&db.pool).await;
    for sql in [SELECT_EVENTS, INSERT_EVENT, UPDATE_EVENTS, DELETE_EVENTS] {
        assert_denied(&db.pool, Caller::Anon, sql).await;
    }
}

#[tokio::test]
async fn anon_can_neither_read_nor_write_the_audit_trail() {
    let db = migrated_database().await;
    world(&db.pool).await;
    for sql in [SELECT_AUDIT, INSERT_AUDIT, UPDATE_AUDIT, DELETE_AUDIT] {
        assert_denied(&db.pool, Caller::Anon, sql).await;
    }
}

// --- authenticated ------------------------------------------------------------------------------

#[tokio::test]
async fn authenticated_user_sees_only_their_own_customer_row() {
    let db = migrated_database().await;
    let World { alice, bob } = world(&db.pool).await;

    assert_eq!(
        visible_customer_ids(&db.pool, Caller::User(alice)).await,
        ["cus_Alice"]
    );
    assert_eq!(
        visible_customer_ids(&db.pool, Caller::User(bob)).await,
        ["cus_Bob"]
    );

    let mut tx = request(&db.pool, Caller::User(alice)).await;
    let bobs: i64 =
        sqlx::query_scalar("select count(*) from public.stripe_customers where user_id = $1")
            .bind(bob)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(bobs, 0, "asking for another user's row by id finds nothing");
}

#[tokio::test]
async fn authenticated_user_without_a_customer_or_a_subject_sees_no_customer_rows() {
    let db = migrated_database().await;
    world(&db.pool).await;
    let carol = create_auth_user(&db.pool).await;

    assert!(
        visible_customer_ids(&db.pool, Caller::User(carol))
            .await
            .is_empty()
    );
    assert!(
        visible_customer_ids(&db.pool, Caller::UserWithoutSub)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn authenticated_user_cannot_insert_update_or_delete_customers() {
    let db = migrated_database().await;
    let World { alice, .. } = world(&db.pool).await;
    let own_row_too = [
        INSERT_CUSTOMER,
        UPDATE_CUSTOMERS,
        DELETE_CUSTOMERS,
        "update public.stripe_customers set customer_email = 'me@example.com'
         where stripe_customer_id = 'cus_Alice'",
        "delete from public.stripe_customers where stripe_customer_id = 'cus_Alice'",
    ];
    for sql in own_row_too {
        assert_denied(&db.pool, Caller::User(alice), sql).await;
    }
}

#[tokio::test]
async fn authenticated_user_can_neither_read_nor_write_the_ledger() {
    let db = migrated_database().await;
    let World { alice, .. } = world(&db.pool).await;
    for sql in [SELECT_EVENTS, INSERT_EVENT, UPDATE_EVENTS, DELETE_EVENTS] {
        assert_denied(&db.pool, Caller::User(alice), sql).await;
    }
}

#[tokio::test]
async fn authenticated_user_can_neither_read_nor_write_the_audit_trail() {
    let db = migrated_database().await;
    let World { alice, .. } = world(&db.pool).await;
    for sql in [SELECT_AUDIT, INSERT_AUDIT, UPDATE_AUDIT, DELETE_AUDIT] {
        assert_denied(&db.pool, Caller::User(alice), sql).await;
    }
}

// --- service_role -------------------------------------------------------------------------------

#[tokio::test]
async fn service_role_can_insert_update_and_delete_customers() {
    let db = migrated_database().await;
    world(&db.pool).await;

    assert_eq!(
        run_as(&db.pool, Caller::ServiceRole, INSERT_CUSTOMER).await,
        1
    );
    assert_eq!(
        run_as(&db.pool, Caller::ServiceRole, UPDATE_CUSTOMERS).await,
        4
    );
    assert_eq!(
        run_as(&db.pool, Caller::ServiceRole, DELETE_CUSTOMERS).await,
        4
    );

    let trail = audit_rows(&db.pool, "cus_Intruder").await;
    let by: Vec<(&str, &str)> = trail
        .iter()
        .map(|row| (row.operation.as_str(), row.changed_by.as_str()))
        .collect();
    assert_eq!(
        by,
        [
            ("INSERT", "service_role"),
            ("UPDATE", "service_role"),
            ("DELETE", "service_role")
        ],
        "service_role's writes are audited as service_role"
    );
}

#[tokio::test]
async fn service_role_cannot_empty_customers_past_the_audit_trail() {
    let db = migrated_database().await;
    world(&db.pool).await;

    // TRUNCATE fires no row triggers: allowed, it would leave no audit trace.
    assert_denied(
        &db.pool,
        Caller::ServiceRole,
        "truncate public.stripe_customers",
    )
    .await;
}

#[tokio::test]
async fn service_role_can_insert_update_and_delete_ledger_rows() {
    let db = migrated_database().await;
    world(&db.pool).await;

    assert_eq!(run_as(&db.pool, Caller::ServiceRole, INSERT_EVENT).await, 1);
    assert_eq!(
        run_as(&db.pool, Caller::ServiceRole, UPDATE_EVENTS).await,
        2
    );
    assert_eq!(
        run_as(&db.pool, Caller::ServiceRole, DELETE_EVENTS).await,
        2
    );
}

#[tokio::test]
async fn service_role_can_read_the_audit_trail_but_not_change_it() {
    let db = migrated_database().await;
    world(&db.pool).await;

    let mut tx = request(&db.pool, Caller::ServiceRole).await;
    let readable: i64 = sqlx::query_scalar("select count(*) from public.stripe_customers_audit")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    assert_eq!(readable, 3);

    for sql in [INSERT_AUDIT, UPDATE_AUDIT, DELETE_AUDIT] {
        assert_denied(&db.pool, Caller::ServiceRole, sql).await;
    }
}
