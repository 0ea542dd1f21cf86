//! The next step of a creation, from the user's last attempt: a pure function, so that every
//! case of "exactly one customer" is tested without a database or Stripe.

use std::time::Duration;

use crate::store::customer_creations::Attempt;

/// An unfinished attempt younger than this may still be in flight on another replica (a
/// creation step is bounded well below it); one older was interrupted.
pub const IN_FLIGHT_AT_MOST: Duration = Duration::from_secs(30);
/// Stripe keeps an idempotency key at least 24 hours; an attempt younger than this (an hour of
/// margin) can send its key again and get the first answer replayed.
pub const KEY_WINDOW: Duration = Duration::from_secs(23 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// Record attempt N as started (committed before Stripe is called), then go on.
    Start(i64),
    /// Create with this attempt's key and parameters (a key Stripe saw replays its first
    /// answer).
    Create(&'a Attempt),
    /// This attempt was interrupted: look the customer up in Stripe first; link it if found,
    /// else `then`.
    SearchThen {
        attempt: &'a Attempt,
        then: AfterSearch,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterSearch {
    /// Within the key window: the same key again.
    Create,
    /// The key expired and the customer was not found: a new attempt.
    Start,
}

/// `last`: the user's last attempt as stored; `mine`: the attempt this request started.
pub fn next_step<'a>(last: Option<&'a Attempt>, mine: Option<&Attempt>) -> Step<'a> {
    let Some(last) = last else {
        return Step::Start(1);
    };
    if last.finished {
        // Its customer was linked and is no longer (deleted, or unlinked by hand): a new one.
        return Step::Start(last.attempt + 1);
    }
    let started_here =
        mine.is_some_and(|mine| mine.attempt == last.attempt && mine.started_at == last.started_at);
    if started_here || last.age < IN_FLIGHT_AT_MOST {
        return Step::Create(last);
    }
    let then = if last.age < KEY_WINDOW {
        AfterSearch::Create
    } else {
        AfterSearch::Start
    };
    Step::SearchThen {
        attempt: last,
        then,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn attempt(n: i64, age_secs: u64, finished: bool) -> Attempt {
        Attempt {
            attempt: n,
            started_at: Utc::now() - chrono::Duration::seconds(age_secs as i64),
            age: Duration::from_secs(age_secs),
            finished,
            email: "a@example.com".into(),
            name: None,
        }
    }

    #[test]
    fn a_first_creation_starts_attempt_1_then_creates_with_its_key() {
        assert_eq!(next_step(None, None), Step::Start(1));
        let mine = attempt(1, 0, false);
        assert_eq!(next_step(Some(&mine), Some(&mine)), Step::Create(&mine));
    }

    #[test]
    fn a_customer_deleted_after_a_finished_attempt_gets_a_new_attempt() {
        assert_eq!(
            next_step(Some(&attempt(3, 9_999, true)), None),
            Step::Start(4)
        );
    }

    #[test]
    fn an_attempt_in_flight_elsewhere_is_joined_with_the_same_key() {
        let elsewhere = attempt(2, 1, false);
        assert_eq!(next_step(Some(&elsewhere), None), Step::Create(&elsewhere));
    }

    #[test]
    fn an_interrupted_attempt_is_looked_up_then_retried_with_its_key_within_the_window() {
        let interrupted = attempt(1, 120, false);
        assert_eq!(
            next_step(Some(&interrupted), None),
            Step::SearchThen {
                attempt: &interrupted,
                then: AfterSearch::Create
            }
        );
    }

    #[test]
    fn an_interrupted_attempt_whose_key_expired_is_looked_up_then_replaced() {
        let expired = attempt(1, 25 * 3600, false);
        assert_eq!(
            next_step(Some(&expired), None),
            Step::SearchThen {
                attempt: &expired,
                then: AfterSearch::Start
            }
        );
    }

    #[test]
    fn only_the_attempt_this_request_started_counts_as_its_own() {
        let mine = attempt(1, 120, false);
        let other = Attempt {
            started_at: mine.started_at - chrono::Duration::seconds(1),
            ..mine.clone()
        };
        assert_eq!(next_step(Some(&mine), Some(&mine)), Step::Create(&mine));
        assert!(matches!(
            next_step(Some(&other), Some(&mine)),
            Step::SearchThen { .. }
        ));
    }
}
