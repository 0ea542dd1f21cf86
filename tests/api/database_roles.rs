//! The least-privilege login README ("A login of its own") tells operators to create: the
//! service runs on it, and it cannot take the audit trail or the schema apart.

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::{
    LinkState, TestDatabase, as_user, create_auth_user, migrated_database, readme_login_sql,
    spawn_app_with,
};

#[tokio::test]
async fn the_service_runs_on_the_documented_login_which_cannot_undo_the_audit_trail() {
    let db = migrated_database().await;
    // Roles are cluster-wide: a name of this test's own.
    let role = format!("scs_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let password = "a-long-random-test-password";
    let sql = readme_login_sql()
        .replace("stripe_customer_sync", &role)
        .replace("choose-a-long-random-password", password);
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&db.pool)
        .await
        .expect("README's SQL runs as written");
    let login_url = as_user(&db.url, &role, password);

    let app = spawn_app_with(
        TestDatabase {
            pool: db.pool.clone(),
            url: login_url.clone(),
            name: db.name.clone(),
        },
        |_| {},
    )
    .await;
    let user = create_auth_user(&app.db.pool).await;
    let customer = new_customer_id();
    let created = CustomerEvent::created(&customer, T0).for_user(user);
    app.deliver_expecting(&created.json(), "processed").await;
    app.deliver_expecting(&created.json(), "duplicate").await;
    app.deliver_expecting(
        &CustomerEvent::deleted(&customer, T0 + 1)
            .for_user(user)
            .json(),
        "processed",
    )
    .await;
    assert_eq!(app.link_state(&customer).await, LinkState::deleted());
    assert_eq!(
        app.audit_rows(&customer).await.len(),
        2,
        "the trigger still writes"
    );
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "readiness reads the bookkeeping");

    let mut login = PgConnection::connect(&login_url).await.unwrap();
    for forbidden in [
        "alter table public.stripe_customers disable trigger stripe_customers_audit",
        "truncate public.stripe_customers",
        "truncate public.stripe_webhook_events",
        "delete from public.stripe_customers_audit",
        "drop table public.stripe_customers_audit",
        "update _sqlx_migrations set success = false",
    ] {
        let error = sqlx::raw_sql(forbidden)
            .execute(&mut login)
            .await
            .expect_err(forbidden);
        assert_eq!(
            error.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "{forbidden}: {error}"
        );
    }
}
