//! Get or create a user's Stripe customer, exactly once (docs/design.md "The app's side"): the use
//! case behind `POST /customers` and `stripe-customer-sync ensure-customer`.
//!
//! Exactly one customer per user, whatever the concurrency, the replicas or the crashes:
//!
//! - callers for one user queue in memory first ([`user_locks`]), then on a per-user
//!   transaction-scoped advisory lock in PostgreSQL, held for each step of the creation,
//!   Stripe call included (bounded by [`STRIPE_DEADLINE`] and the step's timeouts);
//! - a user with a live linked row gets it at once, without a call to Stripe;
//! - each creation is an attempt N, recorded (committed) before Stripe is called, whose
//!   `Idempotency-Key` is `<user_id>:<N>`: any retry of the attempt, from any replica, makes
//!   Stripe replay its first answer rather than create again;
//! - an attempt found unfinished and older than a step can last was interrupted (a crash
//!   between Stripe's answer and the row): the customer is looked up in Stripe by the metadata
//!   user id first, then the same key is sent again (Stripe keeps keys ≥ 24 h); only when that
//!   key expired and the look-up found nothing does a new attempt start ([`plan`]).
//!
//! The customer Stripe returns is written through the one apply loop
//! ([`crate::sync::created`]), so the `customer.created` webhook, before or after, is applied
//! by the ordinary rules; the attempt is marked finished in the same transaction.

pub mod plan;
pub mod user_locks;

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::{ColumnName, StripeCustomerId};
use crate::metrics::customers::CustomerMetrics;
use crate::store::StoreError;
use crate::store::customer_creations::{self as store, Attempt};
use crate::stripe::event::CustomerObject;
use crate::stripe_api::customer_creation::{self as stripe, NewCustomer};
use crate::stripe_api::customers::ApiCustomer;
use crate::stripe_api::{ApiError, RetryPolicy, StripeClient};
use crate::sync::created::{CreatedCustomer, apply_created};
use crate::sync::{SyncError, SyncSettings};
use plan::{AfterSearch, Step};
use user_locks::UserLocks;

/// How long one Stripe call (all its retries) may take while the user's lock is held.
pub const STRIPE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a step may wait for the user's lock (another creation's step) and run a statement.
const STEP_WAIT: Duration = Duration::from_secs(15);
/// A step whose process stopped mid-way (frozen, cut off from the network) loses the lock
/// after this long idle: the server ends its session. Above [`STRIPE_DEADLINE`].
const STEP_IDLE: Duration = Duration::from_secs(20);
/// How long a caller waits behind others of the same user in this process.
const QUEUE_WAIT: Duration = Duration::from_secs(25);
/// Steps of one call: start an attempt, (search,) create; a restart after an expired key.
const MAX_STEPS: usize = 4;

/// Retries within [`STRIPE_DEADLINE`]: a blip or a rate limit is ridden out, an outage is a
/// 503 for the app to retry (the same key then).
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(2),
        max_retry_after: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(5),
    }
}

/// The user's customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    pub stripe_customer_id: String,
    pub user_id: Uuid,
    /// This call created (or, after an interrupted attempt, recovered and linked) it.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    #[error("no such user in auth.users")]
    UnknownUser,
    #[error("the user has no email in auth.users, and the customer row needs one")]
    MissingEmail,
    #[error("Stripe: {0}")]
    Stripe(#[from] ApiError),
    #[error("Stripe did not answer within {STRIPE_DEADLINE:?}")]
    StripeTimedOut,
    #[error("the database: {0}")]
    Store(#[from] StoreError),
    #[error("applying the customer: {0}")]
    Sync(#[from] SyncError),
    #[error("another creation for this user is taking too long")]
    Busy,
    #[error("the customer {0} was written but the rules did not link it to the user")]
    NotLinked(String),
}

impl From<sqlx::Error> for EnsureError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

impl EnsureError {
    /// The metrics' outcome label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::MissingEmail => "missing_email",
            _ => "unavailable",
        }
    }
}

pub struct CustomerCreator {
    pool: PgPool,
    client: StripeClient,
    sync: SyncSettings,
    /// The API key's mode: what the created customers are.
    livemode: bool,
    profile_name_column: ColumnName,
    queue: UserLocks,
    metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for CustomerCreator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerCreator")
            .field("livemode", &self.livemode)
            .finish_non_exhaustive()
    }
}

impl CustomerCreator {
    /// `client` should retry as [`retry_policy`] says.
    pub fn new(
        pool: PgPool,
        client: StripeClient,
        sync: SyncSettings,
        livemode: bool,
        profile_name_column: ColumnName,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            pool,
            client,
            sync,
            livemode,
            profile_name_column,
            queue: UserLocks::default(),
            metrics,
        }
    }

    fn counters(&self) -> &CustomerMetrics {
        &self.metrics.customers
    }

    /// The user's live linked customer, created first if there is none. Counted in the
    /// metrics by outcome.
    pub async fn ensure(&self, user_id: Uuid) -> Result<Ensured, EnsureError> {
        let result = self.get_or_create(user_id).await;
        self.counters().request(match &result {
            Ok(ensured) if ensured.created => "created",
            Ok(_) => "existing",
            Err(error) => error.outcome(),
        });
        result
    }

    /// Counts a call refused before it got here (a bad token, a bad body).
    pub fn count_refusal(&self, outcome: &'static str) {
        self.counters().request(outcome);
    }

    async fn get_or_create(&self, user_id: Uuid) -> Result<Ensured, EnsureError> {
        let _queued = tokio::time::timeout(QUEUE_WAIT, self.queue.lock(user_id))
            .await
            .map_err(|_| EnsureError::Busy)?;
        let mut mine: Option<Attempt> = None;
        for _ in 0..MAX_STEPS {
            let mut tx = self.pool.begin().await?;
            store::lock_user(&mut tx, user_id, STEP_WAIT, STEP_IDLE).await?;
            if let Some(linked) = store::linked_customer(&mut tx, user_id).await? {
                tx.commit().await?;
                return Ok(Ensured {
                    stripe_customer_id: linked,
                    user_id,
                    created: false,
                });
            }
            let user = store::user_record(&mut tx, user_id, &self.profile_name_column)
                .await?
                .ok_or(EnsureError::UnknownUser)?;
            let email = user.email.as_deref().ok_or(EnsureError::MissingEmail)?;
            let name = user.name.as_deref();
            let last = store::last_attempt(&mut tx, user_id).await?;
            let (started, after_search) = match plan::next_step(last.as_ref(), mine.as_ref()) {
                Step::Start(attempt) => {
                    // Committed before Stripe hears of it: a crash from here on leaves a trace.
                    let started = store::start_attempt(&mut tx, user_id, attempt, email, name);
                    mine = Some(started.await?);
                    tx.commit().await?;
                    continue;
                }
                Step::Create(started) => (started, None),
                Step::SearchThen { attempt, then } => (attempt, Some(then)),
            };
            let attempt = started.attempt;
            if let Some(then) = after_search {
                tracing::warn!(
                    attempt,
                    "an earlier creation of this user's customer was interrupted; looking it up \
                     in Stripe first"
                );
                if let Some((found, requested_at)) = self.search(user_id).await? {
                    return self
                        .link(tx, user_id, attempt, &found.customer, requested_at)
                        .await;
                }
                if then == AfterSearch::Start {
                    let started = store::start_attempt(&mut tx, user_id, attempt + 1, email, name);
                    mine = Some(started.await?);
                    tx.commit().await?;
                    continue;
                }
            }
            // The attempt's own parameters, whatever the user's are now: the key is sent again
            // with exactly what it was first sent with, or Stripe would refuse it.
            let new_customer = NewCustomer {
                email: &started.email,
                name: started.name.as_deref(),
                user_id_key: &self.sync.user_id_metadata_key,
                user_id,
            };
            let key = format!("{user_id}:{attempt}");
            let created = tokio::time::timeout(
                STRIPE_DEADLINE,
                stripe::create(&self.client, &new_customer, &key),
            )
            .await
            .map_err(|_| EnsureError::StripeTimedOut)
            .and_then(|created| created.map_err(EnsureError::from))
            .inspect_err(|_| self.counters().stripe_call("create", "failed"))?;
            let outcome = if created.replayed {
                "replayed"
            } else {
                "created"
            };
            self.counters().stripe_call("create", outcome);
            tracing::info!(
                attempt,
                replayed = created.replayed,
                "Stripe customer created"
            );
            // A replay is the customer as it was when the attempt first reached Stripe, not as
            // it is now: ordered at the attempt's start, so a change since (its webhook applied
            // meanwhile) is never overwritten by it.
            let state_at = if created.replayed {
                created.requested_at.min(started.started_at.timestamp())
            } else {
                created.requested_at
            };
            return self
                .link(tx, user_id, attempt, &created.customer.customer, state_at)
                .await;
        }
        Err(EnsureError::Busy)
    }

    /// A live customer Stripe holds for the user, if its search finds one.
    async fn search(&self, user_id: Uuid) -> Result<Option<(ApiCustomer, i64)>, EnsureError> {
        let searched = tokio::time::timeout(
            STRIPE_DEADLINE,
            stripe::search_by_user(&self.client, &self.sync.user_id_metadata_key, user_id),
        )
        .await
        .map_err(|_| EnsureError::StripeTimedOut)
        .and_then(|searched| searched.map_err(EnsureError::from))
        .inspect_err(|_| self.counters().stripe_call("search", "failed"))?;
        let (mut customers, requested_at) = searched;
        self.counters().stripe_call(
            "search",
            if customers.is_empty() {
                "not_found"
            } else {
                "found"
            },
        );
        // This service makes one per attempt key, so there is one; several would have been made
        // outside it, and any of them is the user's (the double lists newest first, so the
        // last is the oldest there).
        if customers.len() > 1 {
            tracing::warn!(
                found = customers.len(),
                "Stripe holds several customers for this user; linking one"
            );
        }
        Ok(customers.pop().map(|customer| (customer, requested_at)))
    }

    /// Writes the customer through the one apply loop, marks the attempt finished, commits.
    async fn link(
        &self,
        mut tx: Transaction<'static, Postgres>,
        user_id: Uuid,
        attempt: i64,
        customer: &CustomerObject,
        requested_at: i64,
    ) -> Result<Ensured, EnsureError> {
        let id = StripeCustomerId::parse(&customer.id).map_err(|_| {
            EnsureError::Stripe(ApiError::Malformed {
                url: "POST /v1/customers".into(),
                detail: "the customer id is not cus_…".into(),
            })
        })?;
        let source_id = format!("ensure-customer:{user_id}:{attempt}");
        let conn: &mut PgConnection = &mut tx;
        let outcome = apply_created(
            conn,
            &self.sync,
            CreatedCustomer {
                id: &id,
                customer,
                requested_at,
                livemode: self.livemode,
                source_id: &source_id,
            },
        )
        .await?;
        let linked = store::linked_customer(&mut tx, user_id).await?;
        store::finish_attempt(&mut tx, user_id, attempt, id.as_str()).await?;
        tx.commit().await?;
        tracing::info!(
            status = outcome.status(),
            reason = outcome.reason(),
            "customer row written for the user"
        );
        match linked {
            Some(linked) => Ok(Ensured {
                created: linked == id.as_str(),
                stripe_customer_id: linked,
                user_id,
            }),
            None => Err(EnsureError::NotLinked(id.as_str().to_owned())),
        }
    }
}
