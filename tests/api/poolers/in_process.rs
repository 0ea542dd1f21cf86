//! The in-process app through each upstream: events in order, concurrency on shared server
//! connections, readiness, an outage, the server's statement timeout.

use super::*;

pub(super) async fn events_are_applied_in_order_and_redeliveries_change_nothing(
    upstream: Upstream,
) {
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
pub(super) async fn concurrent_events_on_shared_server_connections_are_all_applied(
    upstream: Upstream,
) {
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

pub(super) async fn readiness_reports_ready(upstream: Upstream) {
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

pub(super) async fn database_outage_answers_503_within_5_s_then_recovers_without_restart(
    upstream: Upstream,
) {
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
pub(super) async fn statement_held_past_the_timeout_is_cancelled_by_the_server_and_answered_503(
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
