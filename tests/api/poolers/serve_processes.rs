//! `serve` processes through each upstream: two replicas sharing the duplicates, and the
//! paths that call Stripe (thin events, the background catch-up).

use super::*;

pub(super) async fn duplicates_across_two_serve_processes_are_applied_exactly_once_and_in_order(
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

/// The paths that talk to Stripe, through each upstream: a thin event (the ledger read, the
/// fetch, then the apply, no transaction held across the fetch) and serve's background
/// catch-up (its run holds a transaction-scoped lock; in transaction mode it runs on the
/// session connection, MIGRATION_DATABASE_URL).
pub(super) async fn thin_events_and_the_background_catch_up_apply_what_stripe_holds(
    upstream: Upstream,
) {
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
