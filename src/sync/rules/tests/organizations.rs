//! The organization link: a customer whose metadata names an organization is that
//! organization's, under the user link's rules, and never a user's too.

use super::*;

fn event_for(f: &Fixture, link: LinkCandidate) -> IncomingCustomer<'_> {
    IncomingCustomer {
        link,
        ..f.event(CustomerEventKind::Created, T)
    }
}

#[test]
fn existing_unheld_organization_is_linked_and_no_user_is() {
    let f = Fixture::new();
    let organization = Uuid::new_v4();
    let event = event_for(&f, LinkCandidate::Organization(organization));
    let decision = decide(&event, None, known_free_user(), Utc::now());
    let Decision::Insert(row) = &decision else {
        panic!("expected insert")
    };
    assert_eq!(row.organization_id, Some(organization));
    assert_eq!(row.user_id, None);
    assert_eq!(sync_field(&decision, "status"), "synced");
}

#[test]
fn each_unlinkable_organization_gives_an_unlinked_row_with_its_reason() {
    let f = Fixture::new();
    let organization = Uuid::new_v4();
    let cases = [
        (
            LinkCandidate::InvalidOrganization,
            known_free_user(),
            "invalid_organization_id",
        ),
        (
            LinkCandidate::Organization(organization),
            UserFacts::default(),
            "unknown_organization",
        ),
        (
            LinkCandidate::Organization(organization),
            UserFacts {
                exists: true,
                linked_elsewhere: true,
            },
            "organization_already_linked",
        ),
    ];
    for (link, facts, reason) in cases {
        let decision = decide(&event_for(&f, link), None, facts, Utc::now());
        let Decision::Insert(row) = &decision else {
            panic!("expected insert for {reason}")
        };
        assert_eq!((row.user_id, row.organization_id), (None, None), "{reason}");
        assert_eq!(sync_field(&decision, "status"), "unlinked", "{reason}");
        assert_eq!(sync_field(&decision, "error"), reason);
    }
}

#[test]
fn metadata_naming_an_organization_and_a_user_makes_the_organization_the_candidate() {
    let user = Uuid::new_v4();
    let organization = Uuid::new_v4();
    let both = LinkCandidate::from_owner_metadata(
        Some(&json!(user.to_string())),
        Some(&json!(organization.to_string())),
    );
    assert_eq!(both, LinkCandidate::Organization(organization));
    // An organization id that is no id is still the organization's customer: never the user's.
    let invalid =
        LinkCandidate::from_owner_metadata(Some(&json!(user.to_string())), Some(&json!("acme")));
    assert_eq!(invalid, LinkCandidate::InvalidOrganization);
    // No organization: the user key as before.
    for absent in [None, Some(json!(null)), Some(json!(" "))] {
        assert_eq!(
            LinkCandidate::from_owner_metadata(Some(&json!(user.to_string())), absent.as_ref()),
            LinkCandidate::User(user)
        );
    }
}

#[test]
fn deleted_organization_customer_is_a_tombstone_that_frees_the_organization() {
    let f = Fixture::new();
    let organization = Uuid::new_v4();
    let event = IncomingCustomer {
        link: LinkCandidate::Organization(organization),
        ..f.event(CustomerEventKind::Deleted, T + 1)
    };
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
    assert_eq!(row.organization_id, None);
    assert_eq!(sync_field(&decision, "status"), "deleted");
}

#[test]
fn organization_unlink_reasons_read_back() {
    for reason in [
        UnlinkReason::InvalidOrganizationId,
        UnlinkReason::UnknownOrganization,
        UnlinkReason::OrganizationAlreadyLinked,
    ] {
        assert_eq!(UnlinkReason::parse(reason.as_str()), Some(reason));
    }
}
