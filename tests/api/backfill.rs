//! `backfill`: every Stripe customer, from the API double, through the webhook's sync rules;
//! resumable, rate-limit aware, ordered against webhooks by the time it fetched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::commands::{Run, backfill, workdir};
use crate::helpers::events::CustomerEvent;
use crate::helpers::stripe_double::{Customer, Fault, StripeDouble, TEST_API_KEY, Target, output};
use crate::helpers::{
    LinkState, count, create_auth_users, link_states, migrated_database, now, spawn_app,
};

/// `cus_` ids that sort and read well: `cus_Bf000042`.
pub fn customer_id(i: usize) -> String {
    format!("cus_Bf{i:06}")
}

pub(crate) fn totals(run: &Run) -> &Value {
    &run.summary["totals"]
}

/// 1,000 customers covering every link rule, and what each row must end up as.
fn thousand_customers(users: &[Uuid]) -> (Vec<Customer>, HashMap<String, LinkState>) {
    let mut customers = Vec::new();
    let mut expected = HashMap::new();
    for i in 0..1000 {
        let id = customer_id(i);
        let (customer, state) = match i {
            0..940 => (
                Customer::new(&id).for_user(users[i]),
                LinkState::linked(users[i]),
            ),
            940..960 => (Customer::new(&id), LinkState::unlinked("missing_user_id")),
            960..970 => (
                Customer::new(&id).metadata("user_id", "not-a-uuid"),
                LinkState::unlinked("invalid_user_id"),
            ),
            970..980 => (
                Customer::new(&id).for_user(Uuid::new_v4()),
                LinkState::unlinked("unknown_user"),
            ),
            // Users that customers of page 1 hold already.
            980..990 => (
                Customer::new(&id).for_user(users[i - 980]),
                LinkState::unlinked("user_already_linked"),
            ),
            // Pairs within one page claiming one free user: the first listed wins.
            _ => {
                let user = users[940 + (i - 990) / 2];
                let state = if i % 2 == 0 {
                    LinkState::linked(user)
                } else {
                    LinkState::unlinked("user_already_linked")
                };
                (Customer::new(&id).for_user(user), state)
            }
        };
        expected.insert(id, state);
        customers.push(customer.payment_method(Some("pm_1Q0PsIJvEtkwdCNY")));
    }
    (customers, expected)
}

#[tokio::test]
async fn backfill_of_1000_customers_across_10_pages_lands_every_row_with_its_link_and_a_rerun_changes_nothing()
 {
    let db = migrated_database().await;
    let users = create_auth_users(&db.pool, 945).await;
    let double = StripeDouble::start().await;
    let (customers, expected) = thousand_customers(&users);
    double.add(customers);
    let dir = workdir();

    let first = backfill(&double, &db.url, dir.path(), &[]).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let t = totals(&first);
    assert_eq!(t["customers"], 1000);
    assert_eq!(t["inserted"], 1000);
    assert_eq!(t["updated"], 0);
    assert_eq!(
        t["unlinked"],
        serde_json::json!({"invalid_user_id": 10, "missing_user_id": 20,
                           "unknown_user": 10, "user_already_linked": 15})
    );
    assert_eq!(t["skipped"], serde_json::json!({}));
    assert_eq!(first.summary["pages"], 10);
    assert_eq!(link_states(&db.pool).await, expected);

    // Ten pages of 100, each after the last customer of the one before, with the pinned
    // version and the key.
    let lists = double.list_requests();
    assert_eq!(lists.len(), 10);
    for (n, request) in lists.iter().enumerate() {
        assert_eq!(request.query.get("limit").map(String::as_str), Some("100"));
        let cursor = (n > 0).then(|| customer_id(n * 100 - 1));
        assert_eq!(request.query.get("starting_after"), cursor.as_ref());
        assert_eq!(request.stripe_version.as_deref(), Some("2026-09-30.endive"));
        assert!(request.authorized);
    }

    // No event, no ledger row; the audit trail names the run on each of its writes.
    let run_id = first.summary["run_id"].as_str().unwrap().to_owned();
    assert!(run_id.starts_with("backfill:"), "{run_id}");
    assert_eq!(count(&db.pool, "public.stripe_webhook_events").await, 0);
    let audit: Vec<(Option<String>, i64)> = sqlx::query_as(
        "select event_id, count(*) from public.stripe_customers_audit group by event_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(audit, [(Some(run_id.clone()), 1000)]);
    let sync: Value = sqlx::query_scalar(
        "select customer_metadata -> 'sync' from public.stripe_customers
          where stripe_customer_id = $1",
    )
    .bind(customer_id(0))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(sync["last_event_type"], "backfill");
    assert_eq!(sync["last_event_id"], run_id.as_str());
    assert_eq!(sync["last_event_created"], first.summary["started_at"]);
    assert!(
        !dir.path()
            .join(".stripe-customer-sync/backfill-checkpoint.json")
            .exists(),
        "a completed run removes its checkpoint"
    );

    let again = backfill(&double, &db.url, dir.path(), &[]).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let t = totals(&again);
    assert_eq!(
        (&t["inserted"], &t["updated"], &t["unchanged"]),
        (&Value::from(0), &Value::from(0), &Value::from(1000))
    );
    assert_eq!(t["unlinked"]["user_already_linked"], 15);
    assert_eq!(
        count(&db.pool, "public.stripe_customers_audit").await,
        1000,
        "an unchanged customer is not written at all"
    );
    assert_eq!(link_states(&db.pool).await, expected);
}

/// Reads the checkpoint file, when there is one.
fn checkpoint(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[tokio::test]
async fn backfill_killed_after_page_4_continues_from_its_checkpoint_and_the_totals_are_right() {
    let db = migrated_database().await;
    let users = create_auth_users(&db.pool, 1000).await;
    let double = StripeDouble::start().await;
    double.add((0..1000).map(|i| Customer::new(&customer_id(i)).for_user(users[i])));
    // Page 5 is never answered: the process is killed while it waits.
    double.fail(Target::ListPagesFrom(5), Fault::Hang, usize::MAX);
    let dir = workdir();
    let checkpoint_path: PathBuf = dir
        .path()
        .join(".stripe-customer-sync/backfill-checkpoint.json");

    let mut child = double
        .command(&db.url, dir.path(), &["backfill", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pages = checkpoint(&checkpoint_path).map(|c| c["pages"].clone());
        let asked_for_page_5 = double.list_requests().iter().any(|r| r.page == Some(5));
        if pages == Some(Value::from(4)) && asked_for_page_5 {
            break;
        }
        assert!(Instant::now() < deadline, "page 4 was not checkpointed");
        assert!(child.try_wait().unwrap().is_none(), "backfill ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let saved = checkpoint(&checkpoint_path).unwrap();
    assert_eq!(saved["starting_after"], customer_id(399));
    assert_eq!(saved["totals"]["inserted"], 400);
    assert_eq!(count(&db.pool, "public.stripe_customers").await, 400);

    double.release_hangs();
    double.clear_requests();
    let rerun = backfill(&double, &db.url, dir.path(), &[]).await;
    assert_eq!(rerun.code, Some(0), "{}", rerun.stderr);
    assert_eq!(rerun.summary["resumed_after_pages"], 4);
    assert_eq!(rerun.summary["pages"], 10);
    assert_eq!(rerun.summary["customers_this_invocation"], 600);
    assert_eq!(rerun.summary["run_id"], saved["run_id"], "one run, resumed");
    let t = totals(&rerun);
    assert_eq!(
        (&t["customers"], &t["inserted"], &t["unchanged"]),
        (&Value::from(1000), &Value::from(1000), &Value::from(0))
    );
    // It started after the last committed customer, not from the top.
    let lists = double.list_requests();
    assert_eq!(lists.len(), 6);
    assert_eq!(
        lists[0].query.get("starting_after"),
        Some(&customer_id(399))
    );
    assert_eq!(count(&db.pool, "public.stripe_customers").await, 1000);
    let linked: i64 = sqlx::query_scalar(
        "select count(*) from public.stripe_customers where user_id is not null",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(linked, 1000);
    assert!(!checkpoint_path.exists());
}

#[tokio::test]
async fn backfill_waits_out_a_429_for_its_retry_after_and_retries_a_500() {
    let db = migrated_database().await;
    let double = StripeDouble::start().await;
    double.add((0..500).map(|i| Customer::new(&customer_id(i))));
    double.fail(
        Target::ListPage(3),
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    double.fail(Target::ListPage(4), Fault::ServerError, 1);
    let dir = workdir();

    let mut command = double.command(&db.url, dir.path(), &["backfill", "--json"]);
    command.env("RUST_LOG", "debug");
    let out = output(command).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["totals"]["inserted"], 500);
    assert_eq!(count(&db.pool, "public.stripe_customers").await, 500);

    let lists = double.list_requests();
    let page_3: Vec<_> = lists.iter().filter(|r| r.page == Some(3)).collect();
    assert_eq!(page_3.len(), 2, "one 429, one retry");
    assert_eq!(page_3[0].status, 429);
    assert!(
        page_3[1].at - page_3[0].at >= Duration::from_secs(1),
        "Retry-After: 1 was waited for"
    );
    let page_4: Vec<_> = lists.iter().filter(|r| r.page == Some(4)).collect();
    assert_eq!(page_4.len(), 2, "one 500, one retry");
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(!stderr.contains(TEST_API_KEY), "the key is never logged");
    assert!(
        !stderr.contains("@example.com"),
        "no email in the log, even at debug"
    );
}

#[tokio::test]
async fn webhook_newer_than_the_backfill_fetch_wins_and_an_older_one_loses() {
    let app = spawn_app().await;
    let double = StripeDouble::start().await;
    let [a, b, c, d] = ["cus_OrderA", "cus_OrderB", "cus_OrderC", "cus_OrderD"];
    double.add([a, b, c, d].map(|id| Customer::new(id).name(Some("from backfill"))));
    let hour = 3600;

    // Before the backfill: a webhook newer than its fetch (A), one older (D).
    let newer_a = CustomerEvent::updated(a, now() + hour).name("from newer webhook");
    app.deliver_expecting(&newer_a.json(), "processed").await;
    let older_d = CustomerEvent::updated(d, now() - hour).name("from older webhook");
    app.deliver_expecting(&older_d.json(), "processed").await;

    let dir = workdir();
    let run = backfill(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        totals(&run)["skipped"],
        serde_json::json!({"stale_event": 1})
    );
    assert_eq!(totals(&run)["inserted"], 2);
    assert_eq!(totals(&run)["updated"], 1);

    // After it: a webhook older than its fetch (B) loses, a newer one (C) wins.
    let older_b = CustomerEvent::updated(b, now() - hour).name("from older webhook");
    app.deliver_expecting(&older_b.json(), "skipped stale_event")
        .await;
    let newer_c = CustomerEvent::updated(c, now() + hour).name("from newer webhook");
    app.deliver_expecting(&newer_c.json(), "processed").await;

    let name = |row: Option<Value>| row.unwrap()["customer_name"].clone();
    assert_eq!(name(app.customer(a).await), "from newer webhook");
    assert_eq!(name(app.customer(b).await), "from backfill");
    assert_eq!(name(app.customer(c).await), "from newer webhook");
    assert_eq!(name(app.customer(d).await), "from backfill");
}

#[tokio::test]
async fn backfill_respects_tombstones_and_skips_customers_without_email_or_with_a_bad_id() {
    let app = spawn_app().await;
    let tombstone = "cus_Tomb1";
    app.deliver_expecting(
        &CustomerEvent::deleted(tombstone, now() - 60).json(),
        "processed",
    )
    .await;
    let double = StripeDouble::start().await;
    double.add([
        Customer::new("cus_Fine1"),
        Customer::new(tombstone).name(Some("revived?")),
        Customer::new("cus_NoEmail1").email(None),
        Customer::new("cus_bad-id"),
    ]);

    let dir = workdir();
    let run = backfill(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(totals(&run)["inserted"], 1);
    assert_eq!(
        totals(&run)["skipped"],
        serde_json::json!({"customer_deleted": 1, "invalid_customer_id": 1, "missing_email": 1})
    );
    assert_eq!(app.link_state(tombstone).await, LinkState::deleted());
    assert_eq!(app.customer_count().await, 2);
}

#[tokio::test]
async fn dry_run_reports_what_would_change_and_writes_nothing() {
    let db = migrated_database().await;
    let double = StripeDouble::start().await;
    double.add((0..250).map(|i| Customer::new(&customer_id(i))));
    let dir = workdir();

    let run = backfill(&double, &db.url, dir.path(), &["--dry-run"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.summary["dry_run"], true);
    assert_eq!(totals(&run)["inserted"], 250);
    assert_eq!(
        totals(&run)["unlinked"],
        serde_json::json!({"missing_user_id": 250})
    );
    assert_eq!(count(&db.pool, "public.stripe_customers").await, 0);
    assert_eq!(count(&db.pool, "public.stripe_customers_audit").await, 0);
    assert!(
        !dir.path().join(".stripe-customer-sync").exists(),
        "no checkpoint"
    );

    // The person's summary says "would".
    let out = output(double.command(&db.url, dir.path(), &["backfill", "--dry-run"])).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("would insert") && text.contains("250"),
        "{text}"
    );
}

#[tokio::test]
async fn keys_that_cannot_read_customers_are_refused_without_being_echoed() {
    let db = migrated_database().await;
    let double = StripeDouble::start().await;
    let dir = workdir();

    let mut publishable = double.command(&db.url, dir.path(), &["backfill"]);
    publishable.env("STRIPE_API_KEY", "pk_test_PublishableSecret");
    let out = output(publishable).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("STRIPE_API_KEY"), "{stderr}");
    assert!(!stderr.contains("PublishableSecret"), "{stderr}");

    // Well-formed, but not a key Stripe (the double) knows: 401, named, not echoed.
    let mut wrong = double.command(&db.url, dir.path(), &["backfill"]);
    wrong.env("STRIPE_API_KEY", "sk_test_WrongButWellFormed");
    let out = output(wrong).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused STRIPE_API_KEY"), "{stderr}");
    assert!(!stderr.contains("WrongButWellFormed"), "{stderr}");
}

#[tokio::test]
async fn a_change_stripe_stamps_after_the_read_wins_even_when_our_clock_runs_ahead() {
    let app = spawn_app().await;
    let double = StripeDouble::start().await;
    // Our clock 30 s ahead of Stripe's.
    double.set_clock_offset(-30);
    double.add([Customer::new("cus_Skew1").name(Some("as read"))]);
    let dir = workdir();
    let run = backfill(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);

    // Stripe changes the customer 5 s after the read, by Stripe's clock.
    let change = CustomerEvent::updated("cus_Skew1", now() - 30 + 5).name("changed after the read");
    app.deliver_expecting(&change.json(), "processed").await;
    assert_eq!(
        app.customer("cus_Skew1").await.unwrap()["customer_name"],
        "changed after the read"
    );
}
