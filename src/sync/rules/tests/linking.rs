//! What a written row holds: the email rule and the user link (or why not).

use super::*;

#[test]
fn no_row_and_no_email_is_skipped_for_missing_email() {
    let f = Fixture::new();
    for kind in [CustomerEventKind::Created, CustomerEventKind::Deleted] {
        let mut event = f.event(kind, T);
        event.email = None;
        let decision = decide(&event, None, UserFacts::default(), Utc::now());
        assert_eq!(
            decision,
            Decision::Skip {
                reason: SkipReason::MissingEmail,
                version: None
            }
        );
    }
}

#[test]
fn existing_row_without_incoming_email_keeps_the_stored_email_and_applies_the_rest() {
    let f = Fixture::new();
    let mut event = f.event(CustomerEventKind::Updated, T + 1);
    event.email = Some("");
    let last = EventOrder::new(T, CustomerEventKind::Created);
    let decision = decide(
        &event,
        Some(&stored(SyncStatus::Synced, last)),
        UserFacts::default(),
        Utc::now(),
    );
    let Decision::Update { row, .. } = decision else {
        panic!("expected update")
    };
    assert_eq!(row.email, None);
    assert_eq!(row.name.as_deref(), Some("Ada"));
}

#[test]
fn valid_existing_unheld_user_is_linked() {
    let f = Fixture::new();
    let user = Uuid::new_v4();
    let mut event = f.event(CustomerEventKind::Created, T);
    event.link = LinkCandidate::User(user);
    let decision = decide(&event, None, known_free_user(), Utc::now());
    let Decision::Insert(row) = &decision else {
        panic!("expected insert")
    };
    assert_eq!(row.user_id, Some(user));
    assert_eq!(sync_field(&decision, "status"), "synced");
    assert_eq!(sync_field(&decision, "error"), &Value::Null);
}

#[test]
fn each_unlinkable_user_id_gives_an_unlinked_row_with_its_reason() {
    let f = Fixture::new();
    let user = Uuid::new_v4();
    let cases = [
        (LinkCandidate::Missing, known_free_user(), "missing_user_id"),
        (LinkCandidate::Invalid, known_free_user(), "invalid_user_id"),
        (
            LinkCandidate::User(user),
            UserFacts {
                exists: false,
                linked_elsewhere: false,
            },
            "unknown_user",
        ),
        (
            LinkCandidate::User(user),
            UserFacts {
                exists: true,
                linked_elsewhere: true,
            },
            "user_already_linked",
        ),
    ];
    for (link, facts, reason) in cases {
        let mut event = f.event(CustomerEventKind::Created, T);
        event.link = link;
        let decision = decide(&event, None, facts, Utc::now());
        let Decision::Insert(row) = &decision else {
            panic!("expected insert")
        };
        assert_eq!(row.user_id, None, "{reason}");
        assert_eq!(sync_field(&decision, "status"), "unlinked", "{reason}");
        assert_eq!(sync_field(&decision, "error"), reason);
    }
}

#[test]
fn metadata_user_id_is_parsed_from_strings_only() {
    assert_eq!(LinkCandidate::from_metadata(None), LinkCandidate::Missing);
    assert_eq!(
        LinkCandidate::from_metadata(Some(&json!(""))),
        LinkCandidate::Missing
    );
    assert_eq!(
        LinkCandidate::from_metadata(Some(&json!("nope"))),
        LinkCandidate::Invalid
    );
    assert_eq!(
        LinkCandidate::from_metadata(Some(&json!(42))),
        LinkCandidate::Invalid
    );
    let id = Uuid::new_v4();
    assert_eq!(
        LinkCandidate::from_metadata(Some(&json!(id.to_string()))),
        LinkCandidate::User(id)
    );
}
