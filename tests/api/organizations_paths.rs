//! The organization link on the paths other than a snapshot webhook (a thin event's fetch,
//! `backfill`'s pages), and what `serve` says at start-up about organization billing.

use uuid::Uuid;

use crate::helpers::commands::{backfill, workdir};
use crate::helpers::events::{new_customer_id, thin_event};
use crate::helpers::organizations::{
    create_organization, create_organizations_schema, customer_of_organization,
};
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::stripe_double::{Customer, StripeDouble};
use crate::helpers::{create_auth_user, migrated_database, spawn_app, spawn_app_with_stripe};

#[tokio::test]
async fn a_thin_event_links_the_fetched_customer_to_its_organization() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    create_organizations_schema(&app.db.pool).await;
    let acme = create_organization(&app.db.pool, "Acme", None).await;
    let id = new_customer_id();
    double.add([Customer::new(&id).metadata("organization_id", &acme.to_string())]);
    app.deliver_expecting(&thin_event("v1.customer.updated", &id), "processed")
        .await;
    let row = customer_of_organization(&app.db.pool, acme).await;
    assert_eq!(row.expect("linked")["stripe_customer_id"], id.as_str());
}

#[tokio::test]
async fn backfill_links_organizations_customers_beside_users_ones_on_one_page() {
    let db = migrated_database().await;
    create_organizations_schema(&db.pool).await;
    let acme = create_organization(&db.pool, "Acme", Some("billing@acme.test")).await;
    let user = create_auth_user(&db.pool).await;
    let double = StripeDouble::start().await;
    double.add([
        Customer::new("cus_BfOrg1").metadata("organization_id", &acme.to_string()),
        // The same organization again on the page: the first listed keeps it.
        Customer::new("cus_BfOrg2").metadata("organization_id", &acme.to_string()),
        Customer::new("cus_BfUser").for_user(user),
        Customer::new("cus_BfNobody").metadata("organization_id", &Uuid::new_v4().to_string()),
    ]);
    let dir = workdir();
    let run = backfill(&double, &db.url, dir.path(), &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);

    let linked = customer_of_organization(&db.pool, acme)
        .await
        .expect("a row");
    type Row = (String, Option<String>, Option<Uuid>, Option<Uuid>);
    let errors: Vec<Row> = sqlx::query_as(
        "select stripe_customer_id, customer_metadata #>> '{sync,error}', user_id, organization_id
           from public.stripe_customers order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let first_listed = linked["stripe_customer_id"].as_str().unwrap().to_owned();
    let other = if first_listed == "cus_BfOrg1" {
        "cus_BfOrg2"
    } else {
        "cus_BfOrg1"
    };
    let expected = |id: &str| -> (Option<String>, Option<Uuid>, Option<Uuid>) {
        match id {
            id if id == first_listed => (None, None, Some(acme)),
            id if id == other => (Some("organization_already_linked".into()), None, None),
            "cus_BfUser" => (None, Some(user), None),
            _ => (Some("unknown_organization".into()), None, None),
        }
    };
    assert_eq!(errors.len(), 4);
    for (id, error, user_id, organization_id) in errors {
        assert_eq!((error, user_id, organization_id), expected(&id), "{id}");
    }
}

#[tokio::test]
async fn serve_says_at_start_up_whether_organization_billing_is_on() {
    let spawned = spawn_app().await; // for its database
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        ServeProcess::command(&spawned.db.url)
            .current_dir(dir.path())
            .env("CATCH_UP_INTERVAL", "0")
            .env_remove("RUST_LOG")
            .start()
    };
    let serve = start().await;
    let off = serve.wait_for_log("organization billing is").await;
    drop(serve);
    assert!(off.contains("organization billing is off"), "{off}");

    create_organizations_schema(&spawned.db.pool).await;
    let serve = start().await;
    let on = serve.wait_for_log("organization billing is").await;
    drop(serve);
    assert!(on.contains("organization billing is on"), "{on}");
}
