//! Deleted is terminal: tombstones, recorded deletes, and a delete ordered before a live row's state.

use super::*;

#[test]
fn deleted_is_terminal_for_later_events() {
    let f = Fixture::new();
    let last = EventOrder::new(T, CustomerEventKind::Deleted);
    for kind in [
        CustomerEventKind::Created,
        CustomerEventKind::Updated,
        CustomerEventKind::Deleted,
    ] {
        let decision = decide(
            &f.event(kind, T + 5),
            Some(&stored(SyncStatus::Deleted, last)),
            UserFacts::default(),
            Utc::now(),
        );
        assert!(
            matches!(
                decision,
                Decision::Skip {
                    reason: SkipReason::CustomerDeleted,
                    ..
                }
            ),
            "{kind:?}"
        );
    }
}

#[test]
fn a_recorded_delete_without_a_row_keeps_every_later_state_from_creating_one() {
    let f = Fixture::new();
    for kind in [CustomerEventKind::Created, CustomerEventKind::Updated] {
        let decision = crate::sync::rules::decide(
            &f.event(kind, T + 5),
            None,
            known_free_user(),
            true,
            Utc::now(),
        );
        assert_eq!(
            decision,
            Decision::Skip {
                reason: SkipReason::CustomerDeleted,
                version: None
            },
            "{kind:?}"
        );
    }
}

#[test]
fn a_delete_ordered_before_the_last_applied_event_still_tombstones_a_live_row() {
    let f = Fixture::new();
    let last = EventOrder::new(T + 5, CustomerEventKind::Updated);
    let decision = decide(
        &f.event(CustomerEventKind::Deleted, T),
        Some(&stored(SyncStatus::Synced, last)),
        known_free_user(),
        Utc::now(),
    );
    assert_eq!(sync_field(&decision, "status"), "deleted");
}

#[test]
fn delete_writes_a_tombstone_that_frees_the_user() {
    let f = Fixture::new();
    let mut event = f.event(CustomerEventKind::Deleted, T + 2);
    event.link = LinkCandidate::User(Uuid::new_v4());
    let last = EventOrder::new(T, CustomerEventKind::Created);
    let decision = decide(
        &event,
        Some(&stored(SyncStatus::Synced, last)),
        known_free_user(),
        Utc::now(),
    );
    let Decision::Update { row, .. } = &decision else {
        panic!("expected update")
    };
    assert_eq!(row.user_id, None);
    assert_eq!(sync_field(&decision, "status"), "deleted");
    assert_eq!(sync_field(&decision, "last_event_type"), "customer.deleted");
}
