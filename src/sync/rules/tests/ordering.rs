//! Ordering: (created, type rank); stale states change nothing; equal order applies.

use super::*;

#[test]
fn first_event_for_a_customer_inserts_a_row() {
    let f = Fixture::new();
    let decision = decide(
        &f.event(CustomerEventKind::Updated, T),
        None,
        UserFacts::default(),
        Utc::now(),
    );
    assert!(matches!(decision, Decision::Insert(_)));
}

#[test]
fn event_ordered_before_the_last_applied_one_is_stale() {
    let f = Fixture::new();
    let last = EventOrder::new(T + 1, CustomerEventKind::Updated);
    let decision = decide(
        &f.event(CustomerEventKind::Updated, T),
        Some(&stored(SyncStatus::Synced, last)),
        UserFacts::default(),
        Utc::now(),
    );
    assert_eq!(
        decision,
        Decision::Skip {
            reason: SkipReason::StaleEvent,
            version: Some("7".into())
        }
    );
}

#[test]
fn created_is_ordered_before_updated_of_the_same_second() {
    let f = Fixture::new();
    let last = EventOrder::new(T, CustomerEventKind::Updated);
    let decision = decide(
        &f.event(CustomerEventKind::Created, T),
        Some(&stored(SyncStatus::Synced, last)),
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
fn equal_order_applies_so_the_later_delivery_wins() {
    let f = Fixture::new();
    let last = EventOrder::new(T, CustomerEventKind::Updated);
    let decision = decide(
        &f.event(CustomerEventKind::Updated, T),
        Some(&stored(SyncStatus::Synced, last)),
        UserFacts::default(),
        Utc::now(),
    );
    assert!(matches!(decision, Decision::Update { .. }));
}
