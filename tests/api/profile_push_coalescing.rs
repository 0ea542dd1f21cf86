//! One user's edits do not become a stream of Stripe calls (docs/design.md "Profile changes reach
//! Stripe"): at most one push per user per `PROFILE_PUSH_MIN_INTERVAL` (1 s by default), the
//! latest values always pushed last; and after a push Stripe refused, an edit ends the back-off
//! only when the values to push changed.

use std::time::{Duration, Instant};

use crate::helpers::schema::{create_profiles, outbox_row};
use crate::profile_push::{has, setup, setup_with};

/// The default `PROFILE_PUSH_MIN_INTERVAL`, less a margin for the clocks' resolution.
const MIN_GAP: Duration = Duration::from_millis(950);

#[tokio::test]
async fn a_hundred_edits_in_2_s_make_at_most_one_push_a_second_and_the_last_value_goes_last() {
    let s = setup(2, async |_| {}).await;
    let started = Instant::now();
    for n in 1..=100u32 {
        s.set_email(&format!("edit-{n}@example.com")).await;
        let next = started + Duration::from_millis(20) * n;
        tokio::time::sleep(next.saturating_duration_since(Instant::now())).await;
    }
    s.wait_for_applied("email", "edit-100@example.com", Duration::from_secs(5))
        .await;
    s.wait_until_done(Duration::from_secs(3)).await;
    // Time for a push after the last, were there to be one.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let updates = s.double.update_requests(&s.customer);
    let edits_took = started.elapsed().as_secs() + 1;
    assert!(
        (1..=edits_took as usize + 1).contains(&updates.len()),
        "{} pushes: {updates:#?}",
        updates.len()
    );
    for pair in updates.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= MIN_GAP, "two pushes {gap:?} apart: {updates:#?}");
    }
    assert!(updates.iter().all(|r| r.status == 200), "{updates:#?}");
    let last = updates.last().unwrap();
    assert!(has(last, "email", "edit-100@example.com"), "{last:#?}");
    assert_eq!(
        s.double.customer(&s.customer).unwrap().email.as_deref(),
        Some("edit-100@example.com")
    );
}

#[tokio::test]
async fn after_a_refused_push_an_edit_that_changes_nothing_pushed_waits_and_a_new_value_goes_at_once()
 {
    let s = setup_with(1, &[("PROFILE_PUSH_MAX_BACKOFF", "10m")], async |pool| {
        create_profiles(pool).await
    })
    .await;
    sqlx::query("insert into public.profiles (id) values ($1)")
        .bind(s.user)
        .execute(&s.db.pool)
        .await
        .unwrap();
    // Stripe refuses the first push (an address it finds invalid); it would take the second.
    s.double.fail(
        crate::helpers::stripe_double::Target::Update(s.customer.clone()),
        crate::helpers::stripe_double::Fault::InvalidEmail,
        1,
    );
    s.set_email("refused@example.com").await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while outbox_row(&s.db.pool, s.user).await.unwrap()["attempts"] != 1 {
        assert!(Instant::now() < deadline, "the refusal was not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A profile save that changes neither the email nor the name: the refused values wait.
    sqlx::query("update public.profiles set avatar_url = 'ada.png' where id = $1")
        .bind(s.user)
        .execute(&s.db.pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        s.double.update_requests(&s.customer).len(),
        1,
        "no new call for the refused values"
    );
    let row = outbox_row(&s.db.pool, s.user).await.unwrap();
    assert_eq!(row["attempts"], 1, "the back-off goes on: {row}");

    // A new email: pushed at once.
    let changed = Instant::now();
    s.set_email("fixed@example.com").await;
    let pushed = s
        .wait_for_applied("email", "fixed@example.com", Duration::from_secs(3))
        .await;
    assert!(pushed - changed < Duration::from_secs(3));
    assert_eq!(s.double.update_requests(&s.customer).len(), 2);
}
