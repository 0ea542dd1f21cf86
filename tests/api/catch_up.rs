//! `catch-up`: the customer events Stripe (the double's `GET /v1/events`) still holds that the
//! ledger lacks, applied through the webhook's apply loop; resumable, one run at a time.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::commands::workdir;
use crate::helpers::count;
use crate::helpers::events::CustomerEvent;
use crate::helpers::stripe_double::{Fault, StripeDouble, TEST_API_KEY, Target, output};
use crate::helpers::{TestApp, create_auth_user_with_id, event_id_of, now, spawn_app};

/// The answer of one `catch-up --json` run.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) summary: Value,
    pub(crate) stderr: String,
}

pub(crate) async fn catch_up(
    double: &StripeDouble,
    database_url: &str,
    dir: &Path,
    extra: &[&str],
) -> Run {
    let mut args = vec!["catch-up", "--json"];
    args.extend_from_slice(extra);
    let out = output(double.command(database_url, dir, &args)).await;
    Run {
        code: out.status.code(),
        summary: serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// 300 customer events of 100 customers, three each, and which 200 the service got by webhook.
struct Scenario {
    /// Every event, in the order Stripe created them.
    in_order: Vec<String>,
    /// The webhook deliveries: 200 distinct events, some out of order, some twice.
    delivered: Vec<String>,
    /// The 100 that never arrived.
    missed: Vec<String>,
    /// Users that customers link to (they must exist in every database the events go to).
    users: Vec<Uuid>,
}

pub(crate) fn customer(i: usize) -> String {
    format!("cus_Cu{i:04}")
}

/// Customer `i`: created at `t`, updated 10 s later, then updated again (or, every fourth,
/// deleted) 10 s after that. The service missed: for customers 0–39 their last event (the
/// table must change), for 40–69 the middle one, for 70–99 the first (both stale by then).
fn scenario() -> Scenario {
    let base = now() - 3 * 86_400;
    let mut in_order = Vec::new();
    let mut delivered = Vec::new();
    let mut missed = Vec::new();
    let mut users = Vec::new();
    for i in 0..100 {
        let id = customer(i);
        let t = base + i as i64 * 60;
        let user = (i % 5 == 0).then(|| Uuid::from_u128(0x00C0_FFEE_0000 + i as u128));
        users.extend(user);
        let link = |event: CustomerEvent| match user {
            Some(user) => event.for_user(user),
            None => event,
        };
        let first = link(CustomerEvent::created(&id, t).name("first"));
        let second = link(
            CustomerEvent::updated(&id, t + 10)
                .name("second")
                .payment_method("pm_2"),
        );
        let third = if i % 4 == 3 {
            link(
                CustomerEvent::deleted(&id, t + 20)
                    .name("second")
                    .payment_method("pm_2"),
            )
        } else {
            let email = format!("third-{i}@example.com");
            link(
                CustomerEvent::updated(&id, t + 20)
                    .name("third")
                    .email(Some(&email))
                    .payment_method("pm_3"),
            )
        };
        let events = [first.json(), second.json(), third.json()];
        let missing = match i {
            0..40 => 2,
            40..70 => 1,
            _ => 0,
        };
        let mut got: Vec<String> = events
            .iter()
            .enumerate()
            .filter(|(n, _)| *n != missing)
            .map(|(_, e)| e.clone())
            .collect();
        if i % 2 == 0 {
            got.reverse(); // out of order
        }
        if i % 10 == 0 {
            got.push(got[0].clone()); // twice
        }
        delivered.extend(got);
        missed.push(events[missing].clone());
        in_order.extend(events);
    }
    delivered.reverse(); // the customers out of order too
    Scenario {
        in_order,
        delivered,
        missed,
        users,
    }
}

async fn create_users(pool: &PgPool, users: &[Uuid]) {
    for user in users {
        create_auth_user_with_id(pool, *user).await;
    }
}

async fn deliver_all(app: &TestApp, events: &[String]) {
    for event in events {
        let (status, body) = app.deliver_json(event).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Every row as the rules wrote it (the time of the write left out), by customer id.
async fn table(pool: &PgPool) -> Vec<Value> {
    sqlx::query_scalar(
        "select jsonb_build_object(
                'id', stripe_customer_id, 'user_id', user_id, 'email', customer_email,
                'name', customer_name, 'payment_method', default_payment_method,
                'metadata', customer_metadata #- '{sync,synced_at}')
           from public.stripe_customers order by stripe_customer_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Every row, whole (`updated_at` included), by customer id.
async fn whole_rows(pool: &PgPool) -> HashMap<String, Value> {
    let rows: Vec<(String, Value)> =
        sqlx::query_as("select stripe_customer_id, to_jsonb(c) from public.stripe_customers c")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter().collect()
}

/// The table that delivering all 300 events in order, once each, gives.
async fn in_order_table(scenario: &Scenario) -> Vec<Value> {
    let reference = spawn_app().await;
    create_users(&reference.db.pool, &scenario.users).await;
    deliver_all(&reference, &scenario.in_order).await;
    table(&reference.db.pool).await
}

/// An app that got the scenario's 200 deliveries, and a double that lists all 300 events.
async fn missed_100() -> (Scenario, StripeDouble, TestApp) {
    let scenario = scenario();
    let double = StripeDouble::start().await;
    double.add_events(scenario.in_order.iter().map(String::as_str));
    let app = spawn_app().await;
    create_users(&app.db.pool, &scenario.users).await;
    deliver_all(&app, &scenario.delivered).await;
    assert_eq!(app.ledger_count().await, 200);
    (scenario, double, app)
}

#[tokio::test]
async fn catch_up_applies_the_missed_events_and_nothing_else() {
    let (scenario, double, app) = missed_100().await;
    let pool = &app.db.pool;
    let dir = workdir();
    let before = whole_rows(pool).await;
    let audit_before = app.audit_count().await;

    // A dry run says what it would apply and writes nothing.
    let dry = catch_up(&double, &app.db.url, dir.path(), &["--dry-run"]).await;
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    assert_eq!(dry.summary["seen"], 300);
    assert_eq!(dry.summary["already_recorded"], 200);
    let would: u64 = dry.summary["missing"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(would, 100);
    assert_eq!(app.ledger_count().await, 200);
    assert_eq!(count(pool, "public.stripe_catch_up_runs").await, 0);

    let run = catch_up(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let s = &run.summary;
    assert_eq!(s["window_start"], "first_run", "no run yet: all 30 days");
    assert_eq!(
        (&s["seen"], &s["already_recorded"]),
        (&300.into(), &200.into())
    );
    assert_eq!(
        s["applied"],
        serde_json::json!({"processed": 40, "skipped": 60})
    );
    assert_eq!(s["skipped"], serde_json::json!({"stale_event": 60}));
    assert_eq!(s["pages"], 3);

    // Each missed event is in the ledger as Stripe listed it; nothing else was added.
    assert_eq!(app.ledger_count().await, 300);
    for missed in &scenario.missed {
        let row = app.ledger_row(&event_id_of(missed)).await.unwrap();
        assert_eq!(
            row["payload"],
            serde_json::from_str::<Value>(missed).unwrap()
        );
    }
    // Only the 40 customers whose last event was missed changed, once each.
    assert_eq!(app.audit_count().await, audit_before + 40);
    let after = whole_rows(pool).await;
    for i in 40..100 {
        assert_eq!(after[&customer(i)], before[&customer(i)], "{}", customer(i));
    }
    for i in 0..40 {
        assert_ne!(after[&customer(i)], before[&customer(i)], "{}", customer(i));
    }
    // The table is what in-order delivery of all 300 gives.
    assert_eq!(table(pool).await, in_order_table(&scenario).await);

    // What it asked Stripe: customer events of the window, 100 at a time, with the key.
    let lists = double.event_list_requests();
    let first = &lists.last().unwrap().query_pairs;
    let types: Vec<&str> = first
        .iter()
        .filter(|(k, _)| k == "types[]")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "customer.created",
            "customer.updated",
            "customer.deleted",
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.deleted",
        ]
    );
    assert!(first.iter().any(|(k, _)| k == "created[gte]"));
    assert!(first.contains(&("limit".into(), "100".into())));
    assert!(lists.iter().all(|r| r.authorized));

    // A second run starts shortly before the first one did, and applies nothing.
    let table_before = table(pool).await;
    let again = catch_up(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.summary["window_start"], "last_run");
    assert_eq!(again.summary["applied"], serde_json::json!({}));
    // And so does one that looks back over everything.
    let all = catch_up(&double, &app.db.url, dir.path(), &["--since", "30d"]).await;
    assert_eq!(all.code, Some(0), "{}", all.stderr);
    assert_eq!(all.summary["window_start"], "since");
    assert_eq!(all.summary["already_recorded"], 300);
    assert_eq!(all.summary["applied"], serde_json::json!({}));
    assert_eq!(table(pool).await, table_before);
    assert_eq!(app.ledger_count().await, 300);
    assert_eq!(count(pool, "public.stripe_catch_up_runs").await, 3);
    assert!(
        !run.stderr.contains(TEST_API_KEY),
        "the key is never logged"
    );
    assert!(!run.stderr.contains("@example.com"), "no email in the log");
}

#[tokio::test]
async fn catch_up_interrupted_by_stripe_finishes_on_a_rerun_with_the_same_end_state() {
    let (scenario, double, app) = missed_100().await;
    let dir = workdir();
    // Page 2 is never answered: the run is killed while it waits.
    double.fail(Target::EventsPagesFrom(2), Fault::Hang, usize::MAX);
    let mut child = double
        .command(&app.db.url, dir.path(), &["catch-up", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !double
        .event_list_requests()
        .iter()
        .any(|r| r.page == Some(2))
    {
        assert!(Instant::now() < deadline, "page 2 was never asked for");
        assert!(child.try_wait().unwrap().is_none(), "catch-up ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        count(&app.db.pool, "public.stripe_catch_up_runs").await,
        0,
        "an interrupted run is not a completed one"
    );
    // The killed run's lease runs out (30 s after its last renewal; aged here).
    sqlx::query("update public.stripe_catch_up_lease set held_until = now() - interval '1 second'")
        .execute(&app.db.pool)
        .await
        .unwrap();

    // The rerun meets a rate limit and a server error, waits them out, and finishes.
    double.release_hangs();
    double.clear_requests();
    double.fail(
        Target::EventsPage(1),
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    double.fail(Target::EventsPage(3), Fault::ServerError, 1);
    let rerun = catch_up(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(rerun.code, Some(0), "{}", rerun.stderr);
    assert_eq!(
        rerun.summary["window_start"], "first_run",
        "the interrupted run's window is listed again"
    );
    assert_eq!(rerun.summary["applied"]["processed"], 40);
    assert_eq!(app.ledger_count().await, 300);
    assert_eq!(table(&app.db.pool).await, in_order_table(&scenario).await);

    let lists = double.event_list_requests();
    let page_1: Vec<_> = lists.iter().filter(|r| r.page == Some(1)).collect();
    assert_eq!(page_1.len(), 2, "one 429, one retry");
    assert!(
        page_1[1].at - page_1[0].at >= Duration::from_secs(1),
        "Retry-After waited for"
    );
    assert_eq!(
        lists.iter().filter(|r| r.page == Some(3)).count(),
        2,
        "one 500, one retry"
    );
}
