//! `catch-up`'s runs as the backend keeps them: private tables, one run at a time through a
//! lease that no Stripe call holds a transaction for, a bad interval refused, and a listed event
//! whose thin twin was applied counted as recorded.

use std::process::Command;

use crate::catch_up::{catch_up, customer};

use serde_json::Value;

use crate::helpers::commands::workdir;
use crate::helpers::events::CustomerEvent;
use crate::helpers::stripe_double::{BINARY, StripeDouble, TEST_API_KEY};
use crate::helpers::{TEST_SECRET, now, spawn_app};

#[tokio::test]
async fn catch_up_runs_are_private_to_the_backend() {
    let db = crate::helpers::migrated_database().await;
    let rls: bool = sqlx::query_scalar(
        "select relrowsecurity from pg_class where oid = 'public.stripe_catch_up_runs'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(rls, "row level security is enabled");
    let privileges: Vec<String> = sqlx::query_scalar(
        "select format('%s %s', r.rolname, p.privilege)
           from pg_roles r,
                unnest(array['select', 'insert', 'update', 'delete', 'truncate']) as p(privilege)
          where r.rolname in ('anon', 'authenticated', 'service_role')
            and has_table_privilege(r.oid, 'public.stripe_catch_up_runs', p.privilege)
         union all
         select format('%s sequence %s', r.rolname, p.privilege)
           from pg_roles r, unnest(array['usage', 'select', 'update']) as p(privilege)
          where r.rolname in ('anon', 'authenticated', 'service_role')
            and has_sequence_privilege(r.oid, 'public.stripe_catch_up_runs_id_seq', p.privilege)
          order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        privileges,
        [
            "service_role delete",
            "service_role insert",
            "service_role select",
        ]
    );
}

#[test]
fn bad_catch_up_interval_stops_serve_with_one_line_naming_it() {
    let output = Command::new(BINARY)
        .arg("serve")
        .current_dir(std::env::temp_dir()) // away from any developer .env
        .env("STRIPE_WEBHOOK_SECRET", TEST_SECRET)
        .env("STRIPE_API_KEY", TEST_API_KEY)
        .env("STRIPE_API_BASE", "http://127.0.0.1:9")
        .env("CATCH_UP_INTERVAL", "every hour")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("CATCH_UP_INTERVAL"), "{stderr}");
    assert!(!stderr.contains(TEST_API_KEY), "{stderr}");
}

#[tokio::test]
async fn catch_up_while_another_run_holds_the_lock_does_nothing_and_says_so() {
    let app = spawn_app().await;
    let double = StripeDouble::start().await;
    double.add_events([CustomerEvent::created(&customer(1), now() - 60)
        .json()
        .as_str()]);
    let dir = workdir();
    // Another run holds the lease, as a run in progress on another replica does.
    sqlx::query(
        "insert into public.stripe_catch_up_lease (holder, held_until)
         values ('run-elsewhere', now() + interval '5 minutes')",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();

    let locked = catch_up(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(locked.code, Some(1), "{}", locked.stderr);
    assert!(
        locked.stderr.contains("another catch-up is running"),
        "{}",
        locked.stderr
    );
    assert!(double.event_list_requests().is_empty(), "nothing listed");
    // A dry run writes nothing and needs no lock.
    let dry = catch_up(&double, &app.db.url, dir.path(), &["--dry-run"]).await;
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);

    // That run's process died: its lease runs out, and the next run takes it over.
    sqlx::query("update public.stripe_catch_up_lease set held_until = now() - interval '1 second'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let run = catch_up(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.summary["applied"]["processed"], 1);
    let leases: i64 = sqlx::query_scalar("select count(*) from public.stripe_catch_up_lease")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(leases, 0, "a completed run gives its lease back");
}

#[tokio::test]
async fn catch_up_holds_no_transaction_while_stripe_answers() {
    use std::time::Duration;
    let app = spawn_app().await;
    let double = StripeDouble::start().await;
    double.add_events([CustomerEvent::created(&customer(2), now() - 60)
        .json()
        .as_str()]);
    double.set_latency(Duration::from_secs(3));
    let dir = workdir();
    let command = double.command(&app.db.url, dir.path(), &["catch-up", "--json"]);
    let run = tokio::spawn(crate::helpers::stripe_double::output(command));
    // While the listing waits on Stripe: no session of the run sits in a transaction.
    double
        .wait_for("the listing request", |d| {
            !d.event_list_requests().is_empty()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid()
            and state like 'idle in transaction%'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(open, 0, "a transaction open while Stripe answers");
    let out = run.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn snapshot_event_whose_thin_twin_was_applied_counts_as_recorded() {
    use crate::helpers::events::FIXTURE_CUSTOMER;
    use crate::helpers::spawn_app_with_stripe;
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    double.add([crate::helpers::stripe_double::Customer::new(
        FIXTURE_CUSTOMER,
    )]);
    let thin = crate::helpers::events::fixture("thin/01_v1.customer.created.json");
    app.deliver_expecting(&thin, "processed").await;
    let twin_id: String = serde_json::from_str::<Value>(&thin).unwrap()["snapshot_event"]
        .as_str()
        .unwrap()
        .to_owned();

    // Stripe lists the snapshot event the thin one stands for, and one that nothing brought.
    let mut twin = CustomerEvent::created(FIXTURE_CUSTOMER, now() - 60);
    twin.event_id = twin_id.clone();
    let lost = CustomerEvent::created(&customer(7), now() - 30);
    double.add_events([twin.json().as_str(), lost.json().as_str()]);

    let dir = workdir();
    let run = catch_up(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.summary["seen"], 2);
    assert_eq!(run.summary["already_recorded"], 1);
    assert_eq!(run.summary["applied"], serde_json::json!({"processed": 1}));
    assert!(
        app.ledger_row(&twin_id).await.is_none(),
        "the twin is not applied again"
    );
    assert!(app.customer(&customer(7)).await.is_some());
}
