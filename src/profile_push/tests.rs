use super::*;
use uuid::Uuid;

fn state() -> PushState {
    PushState {
        version: 7,
        attempts: 0,
        organization_name: None,
        user_email: Some("new@example.com".into()),
        stripe_customer_id: Some("cus_A".into()),
        customer_email: Some("old@example.com".into()),
        customer_name: Some("Ada".into()),
        livemode: Some(false),
        pushed_recently: false,
        pushed_email: None,
        pushed_name: None,
        failed_values: None,
        backing_off: false,
    }
}

#[test]
fn only_the_fields_that_differ_from_stripe_are_pushed() {
    let state = state();
    let latest = Latest::of(&state, &ProfileName::Value(Some("Ada".into())));
    assert_eq!(
        latest.update_for(&state),
        CustomerUpdate {
            email: Some("new@example.com"),
            name: None
        }
    );
    let latest = Latest::of(&state, &ProfileName::Value(Some("Ada L".into())));
    assert_eq!(latest.update_for(&state).name, Some("Ada L"));
}

#[test]
fn names_are_not_pushed_without_profiles_and_nothing_is_ever_blanked() {
    let mut state = state();
    state.user_email = Some("  ".into());
    let latest = Latest::of(&state, &ProfileName::NotKept);
    assert!(latest.update_for(&state).is_empty());
    let latest = Latest::of(&state, &ProfileName::Value(None));
    assert!(latest.update_for(&state).is_empty());
}

#[test]
fn after_a_push_the_pushed_values_stand_for_stripe_until_the_echo_window_ends() {
    // Pushed "new", then the user went back to "old" before Stripe's customer.updated came
    // back: the table still says "old", yet Stripe holds "new", so "old" must be pushed.
    let mut state = state();
    state.user_email = Some("old@example.com".into());
    state.pushed_recently = true;
    state.pushed_email = Some("new@example.com".into());
    state.pushed_name = Some("Ada".into());
    let latest = Latest::of(&state, &ProfileName::Value(Some("Ada".into())));
    assert_eq!(latest.update_for(&state).email, Some("old@example.com"));
    state.pushed_recently = false;
    assert!(latest.update_for(&state).is_empty());
}

#[test]
fn the_idempotency_key_changes_with_the_change_the_attempt_and_the_values() {
    let claimed = Claimed {
        id: Uuid::nil(),
        owner: crate::domain::Owner::User(Uuid::nil()),
        version: 7,
        attempts: 0,
    };
    let update = CustomerUpdate {
        email: Some("a@example.com"),
        name: None,
    };
    let key = idempotency_key(&claimed, &update);
    assert_eq!(key, idempotency_key(&claimed, &update), "stable");
    assert!(key.starts_with("profile-push:00000000-0000-0000-0000-000000000000:7:0:"));
    assert!(key.len() <= 255, "Stripe's limit");
    assert!(!key.contains("example.com"), "no email in a header");
    for other in [
        idempotency_key(
            &Claimed {
                version: 8,
                ..claimed
            },
            &update,
        ),
        idempotency_key(
            &Claimed {
                attempts: 1,
                ..claimed
            },
            &update,
        ),
        idempotency_key(
            &claimed,
            &CustomerUpdate {
                email: None,
                name: Some("a@example.com"),
            },
        ),
    ] {
        assert_ne!(key, other);
    }
}

#[test]
fn backoff_doubles_within_jitter_up_to_the_cap() {
    let settings = ProfilePushSettings {
        max_backoff: Duration::from_secs(30),
        ..ProfilePushSettings::default()
    };
    for attempts in 0..10 {
        let wait = backoff(attempts, &settings);
        let full = Duration::from_secs(1 << attempts).min(Duration::from_secs(30));
        assert!(wait >= full / 2 && wait <= full, "{attempts}: {wait:?}");
    }
}
