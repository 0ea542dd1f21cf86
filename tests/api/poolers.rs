//! "The service works through every way a Supabase project is reached" (docs/design.md, Connection
//! poolers): the same suite against the direct connection and through PgBouncer (Debian's
//! package, stock configuration) in session mode and in transaction mode.
//!
//! Each rule is one function taking the [`Upstream`]; `through_each_upstream!` turns it into
//! three tests, `<rule>::direct`, `<rule>::pgbouncer_session`, `<rule>::pgbouncer_transaction`.
//! Without PgBouncer installed the PgBouncer tests print a notice and pass, except under CI
//! (`CI` set), where they fail.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use stripe_customer_sync::store::pool::{self, PoolMode};

use crate::helpers::events::thin_event;
use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::pgbouncer::{Route, Upstream};
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::stripe_double::{Customer, StripeDouble, TEST_API_KEY};
use crate::helpers::{
    DedicatedCluster, TestApp, TestDatabase, event_id_of, migrated_database, now,
    spawn_app_from_env,
};

macro_rules! through_each_upstream {
    ($($rule:ident),* $(,)?) => {$(
        mod $rule {
            use super::*;

            #[tokio::test]
            async fn direct() {
                super::$rule(Upstream::Direct).await;
            }

            #[tokio::test]
            async fn pgbouncer_session() {
                super::$rule(Upstream::PgBouncer(PoolMode::Session)).await;
            }

            #[tokio::test]
            async fn pgbouncer_transaction() {
                super::$rule(Upstream::PgBouncer(PoolMode::Transaction)).await;
            }
        }
    )*};
}

through_each_upstream!(
    events_are_applied_in_order_and_redeliveries_change_nothing,
    concurrent_events_on_shared_server_connections_are_all_applied,
    readiness_reports_ready,
    duplicates_across_two_serve_processes_are_applied_exactly_once_and_in_order,
    database_outage_answers_503_within_5_s_then_recovers_without_restart,
    statement_held_past_the_timeout_is_cancelled_by_the_server_and_answered_503,
    thin_events_and_the_background_catch_up_apply_what_stripe_holds,
);

/// The in-process app on `db`, reaching it through `upstream`; `None` when that needs a
/// PgBouncer that is not installed. The route must outlive the app.
async fn app_through(upstream: Upstream, db: TestDatabase) -> Option<(TestApp, Route)> {
    let route = Route::open(upstream, &db.url, &db.name)?;
    let env = vec![
        ("DATABASE_URL", route.url().to_owned()),
        ("DATABASE_POOL_MODE", route.pool_mode().as_str().to_owned()),
    ];
    let app = spawn_app_from_env(db, env, |_| {}).await;
    Some((app, route))
}

async fn events_are_applied_in_order_and_redeliveries_change_nothing(upstream: Upstream) {
    let Some((app, _route)) = app_through(upstream, migrated_database().await).await else {
        return;
    };
    let customer = new_customer_id();
    let created = CustomerEvent::created(&customer, T0);
    let newer = CustomerEvent::updated(&customer, T0 + 2).name("Ada King");
    let older = CustomerEvent::updated(&customer, T0 + 1).name("Ada Byron");

    app.deliver_expecting(&created.json(), "processed").await;
    app.deliver_expecting(&newer.json(), "processed").await;
    app.deliver_expecting(&older.json(), "skipped stale_event")
        .await;
    app.deliver_expecting(&created.json(), "duplicate").await;
    let invoice = json!({
        "id": "evt_pooler_invoice", "object": "event", "type": "invoice.paid",
        "created": T0, "livemode": false, "api_version": "2024-06-20",
        "data": { "object": { "id": "in_1", "object": "invoice" } }
    })
    .to_string();
    app.deliver_expecting(&invoice, "ignored").await;

    assert_eq!(
        app.customer(&customer).await.unwrap()["customer_name"],
        json!("Ada King"),
        "the newest event wins whatever the delivery order"
    );
    app.assert_recorded(&older.event_id, "skipped stale_event")
        .await;
    assert_eq!(app.ledger_count().await, 4);
    assert_eq!(app.audit_count().await, 2, "one insert, one update");
}

/// More events at once than the app has connections, each customer's events racing each
/// other: a transaction pooler reshuffles server connections between the app's connections all
/// the time, so a named prepared statement left on one would fail another ("prepared statement
/// … does not exist / already exists").
async fn concurrent_events_on_shared_server_connections_are_all_applied(upstream: Upstream) {
    let Some((app, route)) = app_through(upstream, migrated_database().await).await else {
        return;
    };
    let customers: Vec<String> = (0..12).map(|_| new_customer_id()).collect();
    let events: Vec<CustomerEvent> = customers
        .iter()
        .flat_map(|customer| {
            [
                CustomerEvent::created(customer, T0),
                CustomerEvent::updated(customer, T0 + 1).name("Ada King"),
                CustomerEvent::updated(customer, T0 + 2).name("Ada Lovelace-King"),
            ]
        })
        .collect();
    for round in 0..3 {
        let answers = join_all(
            events
                .iter()
                .map(|event| app.deliver_json_owned(event.json())),
        )
        .await;
        for (event, (status, body)) in events.iter().zip(&answers) {
            assert_eq!(
                status,
                &200,
                "{} (round {round}): {body}\n{}",
                event.event_id,
                route.log()
            );
        }
        if round == 0 {
            let processed = answers
                .iter()
                .filter(|(_, b)| b["status"] == "processed")
                .count();
            let stale = answers
                .iter()
                .filter(|(_, b)| b["reason"] == "stale_event")
                .count();
            assert_eq!(processed + stale, events.len(), "{answers:?}");
        } else {
            assert!(
                answers.iter().all(|(_, b)| b["status"] == "duplicate"),
                "{answers:?}"
            );
        }
    }
    for customer in &customers {
        assert_eq!(
            app.customer(customer).await.unwrap()["customer_name"],
            json!("Ada Lovelace-King")
        );
    }
    assert_eq!(app.ledger_count().await, events.len() as i64);
    if upstream == Upstream::PgBouncer(PoolMode::Transaction) {
        assert_no_prepared_statement_left_on_any_server_connection(&route, &app.db).await;
    }
}

/// Holds as many transactions open through the pooler as PostgreSQL has connections from it,
/// so that each is pinned to a different server connection, and looks at each one's prepared
/// statements: none may be left once the events' transactions are over.
async fn assert_no_prepared_statement_left_on_any_server_connection(
    route: &Route,
    db: &TestDatabase,
) {
    let server_connections: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid()
            and backend_type = 'client backend'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        server_connections > 1,
        "the pooler opened {server_connections} connections"
    );
    let mut clients = Vec::new();
    for _ in 0..server_connections {
        let options = pool::connect_options(route.url()).unwrap();
        let mut client = PgConnection::connect_with(&options).await.unwrap();
        // Simple queries: they leave no prepared statement of their own.
        sqlx::raw_sql("begin").execute(&mut client).await.unwrap();
        clients.push(client);
    }
    for client in &mut clients {
        let row = sqlx::raw_sql(
            "select count(*)::int, string_agg(name, ', ') from pg_prepared_statements",
        )
        .fetch_one(&mut *client)
        .await
        .unwrap();
        let (count, names): (i32, Option<String>) =
            (sqlx::Row::get(&row, 0), sqlx::Row::get(&row, 1));
        assert_eq!(
            count, 0,
            "prepared statements left on a server connection: {names:?}"
        );
    }
}

async fn readiness_reports_ready(upstream: Upstream) {
    let Some((app, route)) = app_through(upstream, migrated_database().await).await else {
        return;
    };
    for _ in 0..3 {
        let response = app
            .client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (status, &body),
            (200, &json!({"status": "ready"})),
            "{}",
            route.log()
        );
    }
}

async fn duplicates_across_two_serve_processes_are_applied_exactly_once_and_in_order(
    upstream: Upstream,
) {
    let db = migrated_database().await;
    let Some(route) = Route::open(upstream, &db.url, &db.name) else {
        return;
    };
    // Migrations (none pending: the database is a migrated copy) go over the direct URL, as
    // README tells transaction-pooler users to do.
    let (first, second) = tokio::join!(
        serve_through(&route, &db.url, &[]),
        serve_through(&route, &db.url, &[])
    );

    let customers: Vec<String> = (0..6).map(|_| new_customer_id()).collect();
    let events: Vec<String> = customers
        .iter()
        .map(|customer| CustomerEvent::created(customer, T0).json())
        .collect();
    // Each event three times to each process, all at once.
    let deliveries = events.iter().flat_map(|event| {
        [&first, &second, &first, &second, &first, &second].map(|serve| serve.deliver(event))
    });
    let answers = join_all(deliveries).await;
    for (event, answers) in events.iter().zip(answers.chunks(6)) {
        let mut statuses: Vec<&str> = answers
            .iter()
            .map(|(status, body)| {
                assert_eq!(*status, 200, "{body}\n{}", route.log());
                body["status"].as_str().unwrap()
            })
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            ["duplicate"; 5]
                .iter()
                .chain(&["processed"])
                .copied()
                .collect::<Vec<_>>(),
            "answers to {event}"
        );
    }
    let counts: (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from public.stripe_webhook_events),
                (select count(*) from public.stripe_customers),
                (select count(*) from public.stripe_customers_audit)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        counts,
        (6, 6, 6),
        "one ledger row, one row, one audit row per event"
    );

    // Ordering across the processes: each customer's newer update and an older one, each to
    // both processes at once. The newer one wins wherever and whenever it lands.
    let updates: Vec<(String, String)> = customers
        .iter()
        .map(|customer| {
            (
                CustomerEvent::updated(customer, T0 + 2)
                    .name("Ada King")
                    .json(),
                CustomerEvent::updated(customer, T0 + 1)
                    .name("Ada Byron")
                    .json(),
            )
        })
        .collect();
    let deliveries = updates.iter().flat_map(|(newer, older)| {
        [
            first.deliver(older),
            second.deliver(newer),
            first.deliver(newer),
            second.deliver(older),
        ]
    });
    for (status, body) in join_all(deliveries).await {
        assert_eq!(status, 200, "{body}\n{}", route.log());
    }
    let names: Vec<String> = sqlx::query_scalar(
        "select customer_name from public.stripe_customers order by stripe_customer_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        names,
        vec!["Ada King"; 6],
        "the newer update wins on every row"
    );
    let ledger: i64 = sqlx::query_scalar("select count(*) from public.stripe_webhook_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(ledger, 6 + 12, "each update recorded once");
    assert!(
        first.terminate().await && second.terminate().await,
        "serve exits 0 on SIGTERM"
    );
}

async fn database_outage_answers_503_within_5_s_then_recovers_without_restart(upstream: Upstream) {
    let mut cluster = DedicatedCluster::start().await;
    let Some((app, route)) = app_through(upstream, cluster.migrated_database().await).await else {
        return;
    };
    let customer = new_customer_id();
    app.deliver_expecting(&CustomerEvent::created(&customer, T0).json(), "processed")
        .await;

    cluster.stop().await;
    let update = CustomerEvent::updated(&customer, T0 + 1).name("Ada King");
    let started = Instant::now();
    let (status, body) = app.deliver_json(&update.json()).await;
    let waited = started.elapsed();
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("unavailable")),
        "{body}"
    );
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    // Readiness too answers promptly, though a transaction pooler queues the query rather
    // than fail it while the database is gone.
    let started = Instant::now();
    assert_eq!(app.readyz_status().await, 503);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "/readyz answered after {waited:?}"
    );

    // The same app and the same PgBouncer: both reconnect on their own. PgBouncer waits
    // `server_login_retry` (15 s by default) after a failed server login before trying again,
    // and Stripe keeps retrying meanwhile; so do we.
    cluster.restart().await;
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (status, body) = app.deliver_json(&update.json()).await;
        if status == 200 {
            assert_eq!(body["status"], "processed", "{body}");
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "no recovery within 45 s:\n{}",
            route.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(app.readyz_status().await, 200);
    assert_eq!(app.ledger_count().await, 2);
    assert_eq!(
        app.customer(&customer).await.unwrap()["customer_name"],
        json!("Ada King")
    );
}

/// The timeout must be the SERVER's (a client-side deadline alone leaves the statement running
/// and holding its locks): with the default settings a statement blocked behind a lock is
/// cancelled by PostgreSQL after 4 s, before the handler's own 4.5 s deadline, and afterwards
/// nothing of ours still waits on the server. Supavisor, for one, silently drops a timeout sent
/// as a startup parameter; this is what would catch it.
async fn statement_held_past_the_timeout_is_cancelled_by_the_server_and_answered_503(
    upstream: Upstream,
) {
    let Some((app, route)) = app_through(upstream, migrated_database().await).await else {
        return;
    };
    let customer = new_customer_id();
    app.deliver_expecting(&CustomerEvent::created(&customer, T0).json(), "processed")
        .await;

    let mut locker = PgConnection::connect(&app.db.url).await.unwrap();
    sqlx::raw_sql("begin; lock table public.stripe_customers in access exclusive mode")
        .execute(&mut locker)
        .await
        .unwrap();
    let update = CustomerEvent::updated(&customer, T0 + 1).name("Ada King");
    let started = Instant::now();
    let (status, body) = app.deliver_json(&update.json()).await;
    let waited = started.elapsed();
    let still_waiting: Vec<String> = sqlx::query_scalar(
        "select query from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("unavailable")),
        "{body}"
    );
    assert!(
        waited >= pool::STATEMENT_TIMEOUT - Duration::from_millis(100),
        "answered after {waited:?}: before the statement timeout, so it did not wait for it"
    );
    assert!(
        waited < Duration::from_millis(4500),
        "answered after {waited:?}: the handler's own deadline, not the server's timeout\n{}",
        route.log()
    );
    assert_eq!(
        still_waiting,
        Vec::<String>::new(),
        "the server still runs the blocked statement: no server-side statement timeout"
    );

    sqlx::raw_sql("rollback")
        .execute(&mut locker)
        .await
        .unwrap();
    app.deliver_expecting(&update.json(), "processed").await;
    assert_eq!(
        app.customer(&customer).await.unwrap()["customer_name"],
        json!("Ada King")
    );
}

/// The paths that talk to Stripe, through each upstream: a thin event (the ledger read, the
/// fetch, then the apply, no transaction held across the fetch) and serve's background
/// catch-up (its run holds a transaction-scoped lock; in transaction mode it runs on the
/// session connection, MIGRATION_DATABASE_URL).
async fn thin_events_and_the_background_catch_up_apply_what_stripe_holds(upstream: Upstream) {
    let db = migrated_database().await;
    let Some(route) = Route::open(upstream, &db.url, &db.name) else {
        return;
    };
    let double = StripeDouble::start().await;
    // Named, so that its connections can be told from the pooler's in pg_stat_activity.
    let session_url = format!("{}&application_name=scs-session-connection", db.url);
    let missed: Vec<String> = (0..5)
        .map(|_| CustomerEvent::created(&new_customer_id(), now() - 60).json())
        .collect();
    double.add_events(missed.iter().map(String::as_str));
    let fetched = new_customer_id();
    double.add([Customer::new(&fetched)]);
    let serve = serve_through(
        &route,
        &session_url,
        &[
            ("STRIPE_API_KEY", TEST_API_KEY),
            ("STRIPE_API_BASE", &double.base_url),
            ("CATCH_UP_INTERVAL", "1s"),
        ],
    )
    .await;

    let thin = thin_event("v1.customer.updated", &fetched);
    let (status, body) = serve.deliver(&thin).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("processed")),
        "{body}\n{}",
        route.log()
    );
    let (status, body) = serve.deliver(&thin).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("duplicate")),
        "{body}"
    );

    let missed_ids: Vec<String> = missed.iter().map(|event| event_id_of(event)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let caught_up: i64 = sqlx::query_scalar(
            "select count(*) from public.stripe_webhook_events where id = any($1)",
        )
        .bind(&missed_ids)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if caught_up == missed_ids.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background catch-up applied {caught_up} of {} events in 30 s",
            missed_ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if upstream.pool_mode() == PoolMode::Transaction {
        let on_the_session_connection: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
              where datname = current_database() and application_name = 'scs-session-connection'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert!(
            on_the_session_connection > 0,
            "behind a transaction pooler the catch-up runs on MIGRATION_DATABASE_URL"
        );
    }
    assert!(serve.terminate().await, "serve exits 0 on SIGTERM");
}

impl TestApp {
    async fn deliver_json_owned(&self, payload: String) -> (u16, Value) {
        self.deliver_json(&payload).await
    }

    async fn readyz_status(&self) -> u16 {
        self.client
            .get(format!("{}/readyz", self.address))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// A `serve` process through `route` (its migrations over `migration_url`), with `env` on top,
/// once it answers `/readyz`; killed if the test fails half-way.
async fn serve_through(route: &Route, migration_url: &str, env: &[(&str, &str)]) -> ServeProcess {
    ServeProcess::command(route.url())
        .migrating()
        .envs(env)
        .env("DATABASE_POOL_MODE", route.pool_mode().as_str())
        .env("MIGRATION_DATABASE_URL", migration_url)
        // Both modes' events, as a deployment without STRIPE_MODE keeps them.
        .env_remove("STRIPE_MODE")
        .start()
        .await
        .ready()
        .await
}
