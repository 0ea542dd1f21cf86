//! States read from Stripe's API (backfill, verify, thin events, customers created for a user): ordered at the request's start; an unchanged one is not written.

use super::*;

#[test]
fn fetched_state_ranks_below_every_event_of_its_second() {
    let f = Fixture::new();
    for kind in [
        CustomerEventKind::Created,
        CustomerEventKind::Updated,
        CustomerEventKind::Deleted,
    ] {
        // The event came first: the fetch of the same second is stale.
        let status = match kind {
            CustomerEventKind::Deleted => SyncStatus::Deleted,
            _ => SyncStatus::Synced,
        };
        let decision = decide(
            &fetched(&f, T),
            Some(&stored(status, EventOrder::new(T, kind))),
            UserFacts::default(),
            Utc::now(),
        );
        assert!(
            matches!(
                decision,
                Decision::Skip {
                    reason: SkipReason::StaleEvent,
                    ..
                }
            ),
            "{kind:?}"
        );
        // The fetch came first: the event of the same second applies.
        let decision = decide(
            &f.event(kind, T),
            Some(&stored(SyncStatus::Synced, EventOrder::fetched(T))),
            UserFacts::default(),
            Utc::now(),
        );
        assert!(matches!(decision, Decision::Update { .. }), "{kind:?}");
    }
}

#[test]
fn fetched_state_wins_over_older_events_and_loses_to_newer_ones() {
    let f = Fixture::new();
    let older = EventOrder::new(T - 1, CustomerEventKind::Updated);
    let decision = decide(
        &fetched(&f, T),
        Some(&stored(SyncStatus::Synced, older)),
        UserFacts::default(),
        Utc::now(),
    );
    assert!(matches!(decision, Decision::Update { .. }));
    let newer = EventOrder::new(T + 1, CustomerEventKind::Created);
    let decision = decide(
        &fetched(&f, T),
        Some(&stored(SyncStatus::Synced, newer)),
        UserFacts::default(),
        Utc::now(),
    );
    assert!(matches!(
        decision,
        Decision::Skip {
            reason: SkipReason::StaleEvent,
            ..
        }
    ));
}

#[test]
fn fetched_state_records_its_command_and_run_and_reads_back_as_fetched() {
    let f = Fixture::new();
    let decision = decide(&fetched(&f, T), None, UserFacts::default(), Utc::now());
    assert_eq!(sync_field(&decision, "last_event_type"), "backfill");
    assert_eq!(sync_field(&decision, "last_event_id"), "backfill:run1");
    assert_eq!(sync_field(&decision, "last_event_created"), T);
    assert_eq!(
        EventOrder::from_recorded(T, "backfill"),
        EventOrder::fetched(T)
    );
    assert_eq!(
        EventOrder::from_recorded(T, "verify"),
        EventOrder::fetched(T)
    );
}

#[test]
fn thin_event_is_ordered_as_its_fetch_and_recorded_under_its_own_id_and_type() {
    let f = Fixture::new();
    let thin = IncomingCustomer {
        origin: Origin::ThinEvent {
            id: &f.event_id,
            event_type: "v1.customer.updated",
        },
        ..f.event(CustomerEventKind::Updated, T)
    };
    assert_eq!(thin.order(), EventOrder::fetched(T));
    let decision = decide(&thin, None, UserFacts::default(), Utc::now());
    assert_eq!(sync_field(&decision, "last_event_id"), "evt_1");
    assert_eq!(
        sync_field(&decision, "last_event_type"),
        "v1.customer.updated"
    );
    for thin_type in THIN_EVENT_TYPES {
        assert_eq!(
            EventOrder::from_recorded(T, thin_type),
            EventOrder::fetched(T)
        );
    }
    // A snapshot event of the fetch's second that arrives later still applies; an older
    // one is stale.
    let after_thin = stored(SyncStatus::Synced, EventOrder::fetched(T));
    let same_second = decide(
        &f.event(CustomerEventKind::Created, T),
        Some(&after_thin),
        UserFacts::default(),
        Utc::now(),
    );
    assert!(matches!(same_second, Decision::Update { .. }));
    let older = decide(
        &f.event(CustomerEventKind::Updated, T - 1),
        Some(&after_thin),
        UserFacts::default(),
        Utc::now(),
    );
    assert!(matches!(
        older,
        Decision::Skip {
            reason: SkipReason::StaleEvent,
            ..
        }
    ));
}

#[test]
fn customer_created_for_a_user_ranks_below_its_own_customer_created_event() {
    let f = Fixture::new();
    let created = IncomingCustomer {
        origin: Origin::Created {
            id: "ensure-customer:u:1",
        },
        ..f.event(CustomerEventKind::Updated, T)
    };
    assert_eq!(created.order(), EventOrder::fetched(T));
    let decision = decide(&created, None, known_free_user(), Utc::now());
    assert!(matches!(decision, Decision::Insert(_)));
    assert_eq!(
        sync_field(&decision, "last_event_id"),
        "ensure-customer:u:1"
    );
    assert_eq!(sync_field(&decision, "last_event_type"), CREATED_FOR_USER);
    assert_eq!(
        EventOrder::from_recorded(T, CREATED_FOR_USER),
        EventOrder::fetched(T)
    );
    // Its `customer.created` (stamped in the creation's second) applies after it, and the
    // creation written after that event is stale: one row either way.
    let after_creation = stored(SyncStatus::Synced, EventOrder::fetched(T));
    let webhook = decide(
        &f.event(CustomerEventKind::Created, T),
        Some(&after_creation),
        known_free_user(),
        Utc::now(),
    );
    assert!(matches!(webhook, Decision::Update { .. }));
    let after_webhook = stored(
        SyncStatus::Synced,
        EventOrder::new(T, CustomerEventKind::Created),
    );
    let late_creation = decide(
        &created,
        Some(&after_webhook),
        known_free_user(),
        Utc::now(),
    );
    assert!(matches!(
        late_creation,
        Decision::Skip {
            reason: SkipReason::StaleEvent,
            ..
        }
    ));
}

#[test]
fn fetched_state_never_revives_a_tombstone() {
    let f = Fixture::new();
    let last = EventOrder::new(T, CustomerEventKind::Deleted);
    let decision = decide(
        &fetched(&f, T + 60),
        Some(&stored(SyncStatus::Deleted, last)),
        UserFacts::default(),
        Utc::now(),
    );
    assert!(matches!(
        decision,
        Decision::Skip {
            reason: SkipReason::CustomerDeleted,
            ..
        }
    ));
}

#[test]
fn write_that_changes_only_the_bookkeeping_is_unchanged() {
    let f = Fixture::new();
    let Decision::Insert(row) = decide(&fetched(&f, T), None, UserFacts::default(), Utc::now())
    else {
        panic!("expected insert")
    };
    let values = StoredValues {
        user_id: None,
        organization_id: None,
        email: "a@example.com".into(),
        name: Some("Ada".into()),
        default_payment_method: None,
        stripe_metadata: json!({}),
        status: Some(SyncStatus::Unlinked),
        error: Some(UnlinkReason::MissingUserId),
        livemode: Some(false),
    };
    assert!(is_unchanged(&values, &row));
    let mut no_email = row.clone();
    no_email.email = None;
    assert!(
        is_unchanged(&values, &no_email),
        "a kept email is no change"
    );
    for changed in [
        StoredValues {
            name: Some("Grace".into()),
            ..values.clone()
        },
        StoredValues {
            email: "b@example.com".into(),
            ..values.clone()
        },
        StoredValues {
            default_payment_method: Some("pm_1".into()),
            ..values.clone()
        },
        StoredValues {
            stripe_metadata: json!({"plan": "pro"}),
            ..values.clone()
        },
        StoredValues {
            error: Some(UnlinkReason::UnknownUser),
            ..values.clone()
        },
        StoredValues {
            user_id: Some(Uuid::new_v4()),
            status: Some(SyncStatus::Synced),
            error: None,
            ..values.clone()
        },
    ] {
        assert!(!is_unchanged(&changed, &row), "{changed:?}");
    }
}
