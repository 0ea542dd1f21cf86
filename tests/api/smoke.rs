use crate::helpers::{migrated_database, shim_only_database};

#[tokio::test]
async fn harness_gives_each_test_a_migrated_database_of_its_own() {
    let a = migrated_database().await;
    let b = migrated_database().await;
    assert_ne!(a.name, b.name);
    sqlx::query("create table scratch (x int)")
        .execute(&a.pool)
        .await
        .unwrap();
    let in_b: bool = sqlx::query_scalar("select to_regclass('public.scratch') is not null")
        .fetch_one(&b.pool)
        .await
        .unwrap();
    assert!(
        !in_b,
        "a table made in one test's database must not appear in another's"
    );
}

#[tokio::test]
async fn shim_only_database_has_auth_users_but_no_migrations() {
    let db = shim_only_database().await;
    let auth_users: bool = sqlx::query_scalar("select to_regclass('auth.users') is not null")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(auth_users);
}
