//! The next step of a creation, from the user's last attempt: a pure function, so that every
//! case of "exactly one customer" is tested without a database or Stripe.

use std::time::Duration;

use crate::store::customer_creations::{Attempt, Lease, RefusedStep, StoredRefusal};

/// How long a request may call Stripe for an attempt before its lease runs out: a look-up and a
/// create, each bounded by [`super::STRIPE_DEADLINE`], and the result's transaction. A lease
/// that runs out unreleased means its holder stopped mid-call.
pub(crate) const LEASE: Duration = Duration::from_secs(30);
/// Stripe keeps an idempotency key at least 24 hours; an attempt younger than this (an hour of
/// margin) can send its key again and get the first answer replayed.
pub(crate) const KEY_WINDOW: Duration = Duration::from_secs(23 * 3600);
/// After a refusal, no new call for the same values for this long; it doubles with each
/// refusal of the same values in a row, up to [`REFUSAL_BACKOFF_MAX`].
pub(crate) const REFUSAL_BACKOFF: Duration = Duration::from_secs(60);
pub(crate) const REFUSAL_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// The user's present email and name, as a new customer would get them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Values<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// Stripe refused these values, and the back-off has not passed: no call.
    Refused(&'a StoredRefusal),
    /// Another request (here or on another replica) is calling Stripe for the user: wait for
    /// its result.
    Wait,
    /// Record attempt N as started with the lease (committed before Stripe is called), then
    /// create with its key.
    Start(i64),
    /// Take the lease, then create with this attempt's key and parameters (a key Stripe saw
    /// replays its first answer).
    Create(&'a Attempt),
    /// This attempt was interrupted: take the lease, look the customer up in Stripe first;
    /// link it if found, else `then`.
    SearchThen {
        attempt: &'a Attempt,
        then: AfterSearch,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterSearch {
    /// Within the key window: the same key again.
    Create,
    /// The key expired and the customer was not found: a new attempt.
    Start,
}

/// How long a refusal counted `count` times in a row holds.
pub(crate) fn refusal_backoff(count: u32) -> Duration {
    REFUSAL_BACKOFF
        .saturating_mul(1 << count.saturating_sub(1).min(16))
        .min(REFUSAL_BACKOFF_MAX)
}

/// `last`: the user's last attempt as stored, read under the user's lock; `now`: the user's
/// present values.
pub(crate) fn next_step<'a>(last: Option<&'a Attempt>, now: Values<'_>) -> Step<'a> {
    let Some(last) = last else {
        return Step::Start(1);
    };
    if last.finished {
        // Its customer was linked and is no longer (deleted, or unlinked by hand): a new one.
        return Step::Start(last.attempt + 1);
    }
    if let Some(stored) = &last.refusal {
        let refused = &stored.refusal;
        let same_values =
            refused.email.as_deref() == Some(now.email) && refused.name.as_deref() == now.name;
        if same_values && stored.age < refusal_backoff(stored.count) {
            return Step::Refused(stored);
        }
        if refused.step == RefusedStep::Create {
            // Nothing was created under the refused key: a new key, with the present values.
            return Step::Start(last.attempt + 1);
        }
        // The look-up was refused: whether the attempt created is still unknown; go on as for
        // any attempt whose outcome is unknown.
    }
    match last.lease {
        Lease::Held { .. } => Step::Wait,
        // Given back after Stripe was unavailable: the outcome is unknown, the key still
        // replays it.
        Lease::Free if last.age < KEY_WINDOW => Step::Create(last),
        Lease::Free => Step::SearchThen {
            attempt: last,
            then: AfterSearch::Start,
        },
        Lease::RunOut { .. } => Step::SearchThen {
            attempt: last,
            then: if last.age < KEY_WINDOW {
                AfterSearch::Create
            } else {
                AfterSearch::Start
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::customer_creations::Refusal;
    use chrono::Utc;
    use uuid::Uuid;

    const NOW: Values<'static> = Values {
        email: "a@example.com",
        name: None,
    };

    fn attempt(n: i64, age_secs: u64, finished: bool, lease: Lease) -> Attempt {
        Attempt {
            attempt: n,
            started_at: Utc::now() - chrono::Duration::seconds(age_secs as i64),
            age: Duration::from_secs(age_secs),
            finished,
            email: "a@example.com".into(),
            name: None,
            lease,
            refusal: None,
        }
    }

    fn refused(step: RefusedStep, email: &str, age_secs: u64, count: u32) -> Attempt {
        Attempt {
            refusal: Some(StoredRefusal {
                refusal: Refusal {
                    step,
                    status: 400,
                    kind: Some("invalid_request_error".into()),
                    code: Some("email_invalid".into()),
                    email: Some(email.into()),
                    name: None,
                },
                age: Duration::from_secs(age_secs),
                count,
            }),
            ..attempt(1, age_secs, false, Lease::Free)
        }
    }

    #[test]
    fn a_first_creation_starts_attempt_1() {
        assert_eq!(next_step(None, NOW), Step::Start(1));
    }

    #[test]
    fn a_customer_deleted_after_a_finished_attempt_gets_a_new_attempt() {
        let finished = attempt(3, 9_999, true, Lease::Free);
        assert_eq!(next_step(Some(&finished), NOW), Step::Start(4));
    }

    #[test]
    fn an_attempt_in_flight_elsewhere_is_waited_for_not_called_again() {
        let elsewhere = attempt(2, 1, false, Lease::Held { owner: Uuid::nil() });
        assert_eq!(next_step(Some(&elsewhere), NOW), Step::Wait);
    }

    #[test]
    fn an_attempt_given_back_after_an_outage_is_sent_again_with_its_key() {
        let released = attempt(1, 120, false, Lease::Free);
        assert_eq!(next_step(Some(&released), NOW), Step::Create(&released));
    }

    #[test]
    fn an_interrupted_attempt_is_looked_up_then_retried_with_its_key_within_the_window() {
        let interrupted = attempt(1, 120, false, Lease::RunOut { owner: Uuid::nil() });
        assert_eq!(
            next_step(Some(&interrupted), NOW),
            Step::SearchThen {
                attempt: &interrupted,
                then: AfterSearch::Create
            }
        );
    }

    #[test]
    fn an_attempt_whose_key_expired_is_looked_up_then_replaced() {
        for lease in [Lease::Free, Lease::RunOut { owner: Uuid::nil() }] {
            let expired = attempt(1, 25 * 3600, false, lease);
            assert_eq!(
                next_step(Some(&expired), NOW),
                Step::SearchThen {
                    attempt: &expired,
                    then: AfterSearch::Start
                }
            );
        }
    }

    #[test]
    fn a_refusal_holds_for_the_same_values_until_its_back_off_passes() {
        let fresh = refused(RefusedStep::Create, NOW.email, 5, 1);
        assert!(matches!(next_step(Some(&fresh), NOW), Step::Refused(_)));
        let passed = refused(RefusedStep::Create, NOW.email, 61, 1);
        assert_eq!(next_step(Some(&passed), NOW), Step::Start(2));
        let third = refused(RefusedStep::Create, NOW.email, 200, 3);
        assert!(matches!(next_step(Some(&third), NOW), Step::Refused(_)));
    }

    #[test]
    fn a_refused_create_with_changed_values_starts_a_new_attempt_at_once() {
        let other = refused(RefusedStep::Create, "old@example.com", 5, 1);
        assert_eq!(next_step(Some(&other), NOW), Step::Start(2));
    }

    #[test]
    fn a_refused_search_never_starts_a_new_attempt_whose_predecessor_may_have_created() {
        let search = refused(RefusedStep::Search, "old@example.com", 5, 1);
        assert_eq!(next_step(Some(&search), NOW), Step::Create(&search));
    }

    #[test]
    fn the_refusal_back_off_doubles_up_to_its_cap() {
        assert_eq!(refusal_backoff(1), Duration::from_secs(60));
        assert_eq!(refusal_backoff(2), Duration::from_secs(120));
        assert_eq!(refusal_backoff(40), REFUSAL_BACKOFF_MAX);
    }
}
