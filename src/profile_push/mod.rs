//! Profile changes reach Stripe (docs/design.md "Profile changes reach Stripe"): one queued user
//! at a time, taken from `public.stripe_customer_outbox`, decided and pushed.
//!
//! The values pushed are read at push time (so any number of quick edits give one push of the
//! latest), and compared with what Stripe holds: the table's `customer_email`/`customer_name`,
//! or, for a few minutes after a push, what that push set (the table hears back only with the
//! `customer.updated` that follows, and an edit in between must be compared with Stripe's
//! present values, not the table's older ones). Only differing fields are sent. Stripe's answer
//! is not written to the table: the `customer.updated` it sends back is applied by the ordinary
//! rules, and queues nothing (it writes `stripe_customers`, which no trigger watches).

pub(crate) mod serving;
pub(crate) mod worker;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::configuration::ProfilePushSettings;
use crate::domain::Owner;
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::outbox::{self, Claimed, ProfileName, PushState};
use crate::stripe_api::customers::{self, CustomerUpdate};
use crate::stripe_api::{ApiError, Posted, StripeClient};

/// For this long after a push, the row remembers what it set in Stripe and later edits are
/// compared with that: far longer than Stripe takes to send `customer.updated` back.
pub(crate) const ECHO_WINDOW: Duration = Duration::from_secs(300);
/// A request Stripe refuses (a 4xx other than 429: an email it finds invalid, a customer it
/// does not have) fails the same way until something changes: the row keeps its error, visible,
/// and is tried again this much later (or at once after the user's next edit).
const REJECTED_RETRY: Duration = Duration::from_secs(3600);
/// The first back-off after a 429/5xx; it doubles per failed attempt up to the configured cap.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Beyond the push's own time limit, the lease covers the state read before it and the finish
/// after it (each bounded by the pool's statement timeout), so a lease runs out only when its
/// holder is gone.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// How one change taken from the outbox ended (the `outcome` label of
/// `stripe_profile_pushes_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stripe accepted the update.
    Pushed,
    /// Stripe already holds the latest email and name.
    Unchanged,
    /// The user has no live linked customer (any more), or no longer exists.
    NotLinked,
    /// The linked customer is of the mode the API key cannot write (test vs live).
    OtherMode,
    /// 429, 5xx or no answer: tried again after the back-off.
    Retrying,
    /// The values to push are those whose push failed, and their back-off has not ended: put
    /// back until it does, no call (an edit that changed nothing pushed).
    BackingOff,
    /// Stripe refused the update (another 4xx, or the key): kept with its error.
    Rejected,
    /// The row was not this worker's any more when the push finished: the lease ran out
    /// (another worker has it) or the user was deleted.
    LeaseLost,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pushed => "pushed",
            Self::Unchanged => "unchanged",
            Self::NotLinked => "not_linked",
            Self::OtherMode => "other_mode",
            Self::Retrying => "retrying",
            Self::BackingOff => "backing_off",
            Self::Rejected => "rejected",
            Self::LeaseLost => "lease_lost",
        }
    }
}

/// Pushes queued changes, one at a time.
pub(crate) struct Pusher {
    pub pool: PgPool,
    pub client: StripeClient,
    pub settings: ProfilePushSettings,
    pub metrics: Arc<Metrics>,
    /// The API key's mode: it can only write customers of that mode.
    pub key_livemode: bool,
    /// This process's lease holder id.
    pub worker_id: String,
}

impl Pusher {
    /// How long a claim keeps other workers off a row.
    pub(crate) fn lease(&self) -> Duration {
        self.settings.timeout + LEASE_MARGIN
    }

    /// Claims the longest-waiting due row and pushes it; `None` when no row is due.
    pub(crate) async fn push_next(&self) -> Result<Option<Outcome>, StoreError> {
        let claimed = outbox::claim(
            &self.pool,
            &self.worker_id,
            self.lease(),
            self.settings.min_interval,
        );
        let Some(claimed) = claimed.await? else {
            return Ok(None);
        };
        let outcome = self.push(claimed).await?;
        self.metrics.profile_push_finished(outcome.as_str());
        Ok(Some(outcome))
    }

    async fn push(&self, claimed: Claimed) -> Result<Outcome, StoreError> {
        // The connection goes back before Stripe is called: no connection waits on Stripe.
        let (state, name) = {
            let mut conn = self.pool.acquire().await?;
            let state = outbox::push_state(
                &mut *conn,
                claimed.owner,
                &self.settings.organizations_table,
                ECHO_WINDOW,
            );
            let Some(state) = state.await? else {
                return Ok(Outcome::NotLinked); // the user was deleted: the row went with them
            };
            let name = match claimed.owner {
                Owner::User(user_id) => {
                    outbox::profile_name(&mut conn, user_id, &self.settings.name_column).await?
                }
                Owner::Organization(_) => ProfileName::Value(state.organization_name.clone()),
            };
            (state, name)
        };
        // The values read are those of the newest change queued so far.
        let claimed = Claimed {
            version: state.version,
            attempts: state.attempts,
            ..claimed
        };
        let finished = |finished: bool, outcome: Outcome| {
            if finished {
                outcome
            } else {
                tracing::warn!(
                    owner = %claimed.owner,
                    "the outbox row was not ours any more when the push finished (lease run \
                     out, or the user deleted)"
                );
                Outcome::LeaseLost
            }
        };
        let Some(customer_id) = state.stripe_customer_id.as_deref() else {
            let done = outbox::finish_unchanged(&self.pool, &self.worker_id, &claimed).await?;
            return Ok(finished(done, Outcome::NotLinked));
        };
        if state.livemode.is_some_and(|live| live != self.key_livemode) {
            tracing::warn!(
                owner = %claimed.owner,
                stripe_customer_id = customer_id,
                "profile change not pushed: the linked customer is of the other Stripe mode than \
                 STRIPE_API_KEY"
            );
            let done = outbox::finish_unchanged(&self.pool, &self.worker_id, &claimed).await?;
            return Ok(finished(done, Outcome::OtherMode));
        }
        let latest = Latest::of(&state, &name);
        let update = latest.update_for(&state);
        if update.is_empty() {
            let done = outbox::finish_unchanged(&self.pool, &self.worker_id, &claimed).await?;
            return Ok(finished(done, Outcome::Unchanged));
        }
        // An edit ends the back-off of a failed push only when the values to push changed.
        let values = values_digest(&update);
        let same_as_failed = state.failed_values.as_deref() == Some(values.as_str());
        if same_as_failed && state.backing_off {
            let done = outbox::defer(&self.pool, &self.worker_id, &claimed).await?;
            return Ok(finished(done, Outcome::BackingOff));
        }
        // Failures of these values so far (the back-off grows with them).
        let claimed = Claimed {
            attempts: if same_as_failed { claimed.attempts } else { 0 },
            ..claimed
        };
        let key = idempotency_key(&claimed, &update);
        let fields = update.fields();
        match customers::update(&self.client, customer_id, &update, &key).await {
            Ok(Posted::Done(_)) => {
                tracing::info!(
                    owner = %claimed.owner,
                    stripe_customer_id = customer_id,
                    fields = %fields,
                    "pushed the profile change to Stripe"
                );
                let done = outbox::finish_pushed(
                    &self.pool,
                    &self.worker_id,
                    &claimed,
                    latest.email.as_deref(),
                    latest.name.as_deref(),
                )
                .await?;
                Ok(finished(done, Outcome::Pushed))
            }
            Ok(Posted::Retry {
                problem,
                retry_after,
            }) => {
                let wait = retry_after.unwrap_or_else(|| backoff(claimed.attempts, &self.settings));
                tracing::warn!(
                    owner = %claimed.owner,
                    stripe_customer_id = customer_id,
                    problem = %problem,
                    attempt = claimed.attempts + 1,
                    retry_in_ms = wait.as_millis() as u64,
                    "profile push failed; retrying later"
                );
                let done = outbox::finish_failed(
                    &self.pool,
                    &self.worker_id,
                    &claimed,
                    &values,
                    &problem,
                    wait,
                )
                .await?;
                Ok(finished(done, Outcome::Retrying))
            }
            Ok(Posted::Rejected {
                status,
                message,
                error,
            }) => {
                // Stripe's message may quote the email: it goes to the row, not the log.
                tracing::error!(
                    owner = %claimed.owner,
                    stripe_customer_id = customer_id,
                    status,
                    stripe_error = %error.fields.loggable(),
                    "Stripe refused the profile push; see last_error in \
                     public.stripe_customer_outbox"
                );
                let error = format!("{status}: {message}");
                let wait = REJECTED_RETRY.max(self.settings.max_backoff);
                let done = outbox::finish_failed(
                    &self.pool,
                    &self.worker_id,
                    &claimed,
                    &values,
                    &error,
                    wait,
                )
                .await?;
                Ok(finished(done, Outcome::Rejected))
            }
            Err(error) => {
                // The key (401/403) or a request that cannot be built: nothing a retry soon
                // fixes, and it is the operator's to fix.
                tracing::error!(error = %error, "profile push failed");
                let wait = REJECTED_RETRY.max(self.settings.max_backoff);
                let message = error.to_string();
                let done = outbox::finish_failed(
                    &self.pool,
                    &self.worker_id,
                    &claimed,
                    &values,
                    &message,
                    wait,
                )
                .await?;
                let outcome = match error {
                    ApiError::Unauthorized { .. } | ApiError::Request(_) => Outcome::Rejected,
                    _ => Outcome::Retrying,
                };
                Ok(finished(done, outcome))
            }
        }
    }
}

/// The user's present values, as far as they are pushed: an email (auth.users) and a name
/// (public.profiles, when kept). Empty values are never pushed: a push never blanks a field
/// in Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Latest {
    email: Option<String>,
    name: Option<String>,
}

impl Latest {
    fn of(state: &PushState, name: &ProfileName) -> Self {
        let present = |value: Option<&str>| {
            value
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Self {
            email: present(state.user_email.as_deref()),
            name: match name {
                ProfileName::NotKept => None,
                ProfileName::Value(value) => present(value.as_deref()),
            },
        }
    }

    /// The fields whose latest value differs from what Stripe holds.
    fn update_for<'a>(&'a self, state: &PushState) -> CustomerUpdate<'a> {
        let (stripe_email, stripe_name) = if state.pushed_recently {
            (&state.pushed_email, &state.pushed_name)
        } else {
            (&state.customer_email, &state.customer_name)
        };
        let differs = |latest: &'a Option<String>, stripe: &Option<String>| {
            latest.as_deref().filter(|v| Some(*v) != stripe.as_deref())
        };
        CustomerUpdate {
            email: differs(&self.email, stripe_email),
            name: differs(&self.name, stripe_name),
        }
    }
}

/// A digest of the values an update sends (which fields, and their values): what a failed push
/// is remembered by, without keeping the values themselves twice.
fn values_digest(update: &CustomerUpdate<'_>) -> String {
    let mut hash = Sha256::new();
    hash.update(update.email.unwrap_or_default().as_bytes());
    hash.update([0]);
    hash.update(update.name.unwrap_or_default().as_bytes());
    hash.update([
        u8::from(update.email.is_some()),
        u8::from(update.name.is_some()),
    ]);
    let digest = hash.finalize();
    hex::encode(&digest[..8])
}

/// The same change with the same values, tried again after a crash or a lost answer, carries
/// the same key, so Stripe replays its first answer rather than applying it twice. A change's
/// version is never reused; the attempt count moves on after a recorded failure, so a retry
/// after a 5xx (which Stripe may have stored under the key) is a fresh request; the values'
/// digest keeps one key from ever carrying two different sets of values (Stripe refuses that).
fn idempotency_key(claimed: &Claimed, update: &CustomerUpdate<'_>) -> String {
    format!(
        "profile-push:{}:{}:{}:{}",
        claimed.owner,
        claimed.version,
        claimed.attempts,
        values_digest(update)
    )
}

/// Exponential back-off with equal jitter, after `attempts` earlier failures.
fn backoff(attempts: i64, settings: &ProfilePushSettings) -> Duration {
    let exponent = attempts.clamp(0, 20) as u32;
    let full = FIRST_BACKOFF
        .saturating_mul(1 << exponent)
        .min(settings.max_backoff);
    // uuid's v4 generator is the one random source already in the crate.
    let random = (uuid::Uuid::new_v4().as_u128() % 1_000) as f64 / 1_000.0;
    full.mul_f64(0.5 + random / 2.0)
}

impl CustomerUpdate<'_> {
    /// The names of the fields set, for logs (never their values).
    fn fields(&self) -> String {
        match (self.email.is_some(), self.name.is_some()) {
            (true, true) => "email,name",
            (true, false) => "email",
            (false, true) => "name",
            (false, false) => "",
        }
        .to_owned()
    }
}

#[cfg(test)]
mod tests;
