//! Organization billing is off where the application has no organizations: the schema migrates
//! and the service runs as for users only (docs/design.md "Organizations").

use stripe_customer_sync::configuration::OrganizationSettings;
use stripe_customer_sync::store::schema;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::{LinkState, create_auth_user, migrated_database, spawn_app};

#[tokio::test]
async fn without_an_organizations_table_migrate_runs_and_organizations_stay_off() {
    let db = migrated_database().await;
    let watched = schema::migrate_with(&db.pool, &OrganizationSettings::default())
        .await
        .expect("migrate");
    assert!(!watched.organizations_on);
    assert!(
        !schema::organizations_on(&db.pool, &OrganizationSettings::default())
            .await
            .unwrap()
    );
    let foreign_keys: i64 = sqlx::query_scalar(
        "select count(*) from pg_constraint
          where conname = 'stripe_customers_organization_id_fkey'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(foreign_keys, 0);
}

#[tokio::test]
async fn without_an_organizations_table_users_link_as_before() {
    let app = spawn_app().await;
    let user = create_auth_user(&app.db.pool).await;
    let event = CustomerEvent::created(&new_customer_id(), T0).for_user(user);
    app.deliver_expecting(&event.json(), "processed").await;
    assert_eq!(
        app.link_state(&event.customer_id).await,
        LinkState::linked(user)
    );
    // A customer naming an organization where there are none is nobody's.
    let organization = CustomerEvent::created(&new_customer_id(), T0)
        .metadata("organization_id", &uuid::Uuid::new_v4().to_string());
    app.deliver_expecting(&organization.json(), "processed")
        .await;
    assert_eq!(
        app.link_state(&organization.customer_id).await,
        LinkState::unlinked("unknown_organization")
    );
}
