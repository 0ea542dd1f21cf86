//! Get or create an owner's Stripe customer, exactly once (docs/design.md "The app's side"): the
//! use case behind `POST /customers`, `POST /organizations/{id}/customer` and
//! `stripe-customer-sync ensure-customer`. The owner is a user or an organization
//! ([`Owner`]); everything below holds for both, keyed by the owner (what the docs below call
//! "the user" is either).
//!
//! Exactly one customer per user, whatever the concurrency, the replicas or the crashes, and no
//! database connection held while Stripe answers (docs/design.md "Capacity"):
//!
//! - callers for one user queue in memory first ([`user_locks`]);
//! - a short transaction under a per-user transaction-scoped advisory lock decides the step
//!   ([`plan`]): a user with a live linked row gets it at once, without a call to Stripe;
//!   otherwise the request takes the attempt's LEASE (the attempt row says "in flight, by me,
//!   until then") and commits; a request that finds the lease held by another (here or on
//!   another replica) waits for that one's result, polling, instead of calling Stripe too;
//! - Stripe is called with no connection held; a short transaction records the result: the
//!   customer row and the attempt finished, or a refusal, or the lease given back;
//! - each creation is an attempt N, recorded (committed) before Stripe is called, whose
//!   `Idempotency-Key` is `<user_id>:<N>` (`organization:<id>:<N>`): any retry of the attempt, from any replica, makes
//!   Stripe replay its first answer rather than create again;
//! - an attempt whose lease ran out unreleased was interrupted (a crash between Stripe's answer
//!   and the row): the customer is looked up in Stripe by the metadata user id first, then the
//!   same key is sent again (Stripe keeps keys >= 24 h); only when that key expired and the
//!   look-up found nothing does a new attempt start;
//! - a creation Stripe refuses (a 4xx other than 429, to the create or to that look-up) is
//!   recorded with the attempt, for every replica to see: no new call for the user until a
//!   back-off passes or their email or name changed ([`refusal`]).
//!
//! The customer Stripe returns is written through the one apply loop
//! ([`crate::sync::apply_created`]), so the `customer.created` webhook, before or after, is applied
//! by the ordinary rules; the attempt is marked finished in the same transaction.

pub(crate) mod plan;
pub(crate) mod refusal;
pub(crate) mod user_locks;

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio::time::Instant;
use uuid::Uuid;

use crate::configuration::OrganizationSettings;
use crate::domain::{ColumnName, Owner, StripeCustomerId};
use crate::metrics::customers::CustomerMetrics;
use crate::store::StoreError;
use crate::store::customer_creations::{self as store, Attempt, Lease, Refusal, RefusedStep};
use crate::store::organizations;
pub(crate) use crate::store::organizations::Membership;
use crate::stripe::event::CustomerObject;
use crate::stripe_api::customer_creation::{self as stripe, NewCustomer};
use crate::stripe_api::customers::ApiCustomer;
use crate::stripe_api::{ApiError, RetryPolicy, StripeClient};
use crate::sync::request::CreatedCustomer;
use crate::sync::{ORGANIZATION_ID_METADATA_KEY, SyncError, SyncSettings, apply_created};
use plan::{AfterSearch, LEASE, Step, Values, refusal_backoff};
pub(crate) use refusal::Refused;
use user_locks::UserLocks;

/// How long one Stripe call (all its retries) may take; no connection is held meanwhile.
pub(crate) const STRIPE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a step may wait for the user's lock (another request's short step) and run a
/// statement.
const STEP_WAIT: Duration = Duration::from_secs(5);
/// A step's transaction never waits on the network: one idle this long belongs to a process
/// that stopped mid-way, and the server ends its session (and frees the lock).
const STEP_IDLE: Duration = Duration::from_secs(5);
/// How long a caller waits for its turn: behind others of the same user in this process, and
/// for another request's call to Stripe (on any replica) to finish.
const QUEUE_WAIT: Duration = Duration::from_secs(25);
/// Polling another request's lease: first after this, doubling up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(1);

/// Retries within [`STRIPE_DEADLINE`]: a blip or a rate limit is ridden out, an outage is a
/// 503 for the app to retry (the same key then).
pub(crate) fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(2),
        max_retry_after: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(5),
    }
}

/// The owner's customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ensured {
    pub stripe_customer_id: String,
    pub owner: Owner,
    /// This call created (or, after an interrupted attempt, recovered and linked) it.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EnsureError {
    #[error("no such user in auth.users")]
    UnknownUser,
    #[error("no such organization")]
    UnknownOrganization,
    #[error(
        "the user has no email in auth.users (or the organization no billing_email), and the customer row needs one"
    )]
    MissingEmail,
    /// Stripe refused these values (now, or earlier and the back-off has not passed).
    #[error("{0}")]
    Refused(Refused),
    /// Told without Stripe's message, which can quote the email.
    #[error("Stripe: {}", refusal::describe(.0))]
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
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::UnknownOrganization => "unknown_organization",
            Self::MissingEmail => "missing_email",
            Self::Refused(_) => "stripe_refused",
            _ => "unavailable",
        }
    }
}

/// The user's present values, owned: what a new attempt sends.
#[derive(Debug, Clone)]
struct Current {
    email: String,
    name: Option<String>,
}

/// What the deciding transaction concluded.
enum Decision {
    Linked(String),
    Refused(Refused),
    Wait,
    /// Call Stripe (the lease is ours).
    Call(Box<(Call, Current)>),
}

enum Call {
    Create(Attempt),
    Search { attempt: Attempt, then: AfterSearch },
}

/// Gives the request's lease back when it is dropped unsettled: cut off mid-call, or ended by
/// an error that recorded nothing (only `owner`'s lease: never another request's).
struct LeaseGuard {
    pool: PgPool,
    owner: Owner,
    lease_owner: Uuid,
    settled: bool,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime left: the lease runs out by itself
        };
        let (pool, owner, lease_owner) = (self.pool.clone(), self.owner, self.lease_owner);
        runtime.spawn(async move {
            let released = async {
                let mut conn = pool.acquire().await?;
                store::release_lease(&mut conn, owner, lease_owner).await
            };
            if let Err(error) = released.await {
                tracing::warn!(error = %error, "could not give a creation's lease back; it runs out by itself");
            }
        });
    }
}

pub(crate) struct CustomerCreator {
    pool: PgPool,
    client: StripeClient,
    sync: SyncSettings,
    /// The API key's mode: what the created customers are.
    livemode: bool,
    profile_name_column: ColumnName,
    /// Where an organization's billing email and name are read.
    organizations: OrganizationSettings,
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
    /// `client` should retry as [`retry_policy`] says. `pool`: connections of its own, never
    /// the webhooks' (each is held for a few statements at a time).
    pub(crate) fn new(
        pool: PgPool,
        client: StripeClient,
        sync: SyncSettings,
        livemode: bool,
        profile_name_column: ColumnName,
        organizations: OrganizationSettings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            pool,
            client,
            sync,
            livemode,
            profile_name_column,
            organizations,
            queue: UserLocks::default(),
            metrics,
        }
    }

    fn counters(&self) -> &CustomerMetrics {
        &self.metrics.customers
    }

    /// The owner's live linked customer, created first if there is none. Counted in the
    /// metrics by outcome.
    pub(crate) async fn ensure(&self, owner: Owner) -> Result<Ensured, EnsureError> {
        let result = self.get_or_create(owner).await;
        self.counters().request(match &result {
            Ok(ensured) if ensured.created => "created",
            Ok(_) => "existing",
            Err(error) => error.outcome(),
        });
        result
    }

    /// The user's standing in the organization (`POST /organizations/{id}/customer` lets only
    /// active members with an admin role through).
    pub(crate) async fn membership(
        &self,
        user: Uuid,
        organization: Uuid,
    ) -> Result<Membership, EnsureError> {
        Ok(organizations::membership(&self.pool, &self.organizations, user, organization).await?)
    }

    /// Whether `role` may create its organization's customer (`ORGANIZATION_ADMIN_ROLES`).
    pub(crate) fn is_admin_role(&self, role: &str) -> bool {
        self.organizations.admin_roles.iter().any(|r| r == role)
    }

    /// Counts a call refused before it got here (a bad token, a bad body).
    pub(crate) fn count_refusal(&self, outcome: &'static str) {
        self.counters().request(outcome);
    }

    async fn get_or_create(&self, owner: Owner) -> Result<Ensured, EnsureError> {
        let deadline = Instant::now() + QUEUE_WAIT;
        // Users' and organizations' ids are UUIDs drawn apart: one map serves both.
        let _queued = tokio::time::timeout_at(deadline, self.queue.lock(owner.id()))
            .await
            .map_err(|_| EnsureError::Busy)?;
        // This request's lease holder id.
        let lease_owner = Uuid::new_v4();
        let mut poll = POLL_FIRST;
        let (call, current) = loop {
            match self.decide(owner, lease_owner).await? {
                Decision::Linked(stripe_customer_id) => {
                    return Ok(Ensured {
                        stripe_customer_id,
                        owner,
                        created: false,
                    });
                }
                Decision::Refused(refused) => {
                    tracing::info!(
                        status = refused.status,
                        stripe_code = refused.code.as_deref(),
                        retry_in_s = refused.retry_in.as_secs(),
                        "Stripe refused this user's customer earlier; not calling it again yet"
                    );
                    return Err(EnsureError::Refused(refused));
                }
                // Another request is calling Stripe for the user: its result, not a second call.
                Decision::Wait => {
                    if Instant::now() + poll > deadline {
                        return Err(EnsureError::Busy);
                    }
                    tokio::time::sleep(poll).await;
                    poll = (poll * 2).min(POLL_MAX);
                }
                Decision::Call(call) => break *call,
            }
        };
        // A request cut off mid-call (the client went away and the server dropped it) gives
        // its lease back, so that the user's next request goes on at once with the same key
        // rather than waiting for the lease to run out.
        let mut lease = LeaseGuard {
            pool: self.pool.clone(),
            owner,
            lease_owner,
            settled: false,
        };
        let result = self.call_stripe(owner, lease_owner, call, current).await;
        // Ended with the result (linked, or the refusal recorded): nothing to give back.
        lease.settled = matches!(result, Ok(_) | Err(EnsureError::Refused(_)));
        result
    }

    /// One short transaction under the user's lock: what to do, and the lease when it is to
    /// call Stripe.
    async fn decide(&self, owner: Owner, lease_owner: Uuid) -> Result<Decision, EnsureError> {
        let mut tx = self.pool.begin().await?;
        store::lock_owner(&mut tx, owner, STEP_WAIT, STEP_IDLE).await?;
        if let Some(linked) = store::linked_customer(&mut tx, owner).await? {
            tx.commit().await?;
            return Ok(Decision::Linked(linked));
        }
        let user = match owner {
            Owner::User(user_id) => store::user_record(&mut tx, user_id, &self.profile_name_column)
                .await?
                .ok_or(EnsureError::UnknownUser)?,
            Owner::Organization(organization) => {
                store::organization_record(&mut tx, organization, &self.organizations)
                    .await?
                    .ok_or(EnsureError::UnknownOrganization)?
            }
        };
        let email = user.email.ok_or(EnsureError::MissingEmail)?;
        let current = Current {
            email,
            name: user.name,
        };
        let values = Values {
            email: &current.email,
            name: current.name.as_deref(),
        };
        let last = store::last_attempt(&mut tx, owner).await?;
        let decision = match plan::next_step(last.as_ref(), values) {
            Step::Refused(stored) => {
                Decision::Refused(Refused::from_stored(stored, refusal_backoff(stored.count)))
            }
            Step::Wait => Decision::Wait,
            Step::Start(attempt) => {
                // Committed before Stripe hears of it: a crash from here on leaves a trace.
                let started = store::start_attempt(
                    &mut tx,
                    owner,
                    attempt,
                    &current.email,
                    current.name.as_deref(),
                    lease_owner,
                    LEASE,
                )
                .await?;
                Decision::Call(Box::new((Call::Create(started), current)))
            }
            Step::Create(attempt) => {
                store::take_lease(&mut tx, owner, attempt.attempt, lease_owner, LEASE).await?;
                Decision::Call(Box::new((Call::Create(attempt.clone()), current)))
            }
            Step::SearchThen { attempt, then } => {
                store::take_lease(&mut tx, owner, attempt.attempt, lease_owner, LEASE).await?;
                let call = Call::Search {
                    attempt: attempt.clone(),
                    then,
                };
                Decision::Call(Box::new((call, current)))
            }
        };
        tx.commit().await?;
        Ok(decision)
    }

    /// Calls Stripe with no connection held, then records the result.
    async fn call_stripe(
        &self,
        owner: Owner,
        lease_owner: Uuid,
        call: Call,
        current: Current,
    ) -> Result<Ensured, EnsureError> {
        let started = match call {
            Call::Create(attempt) => attempt,
            Call::Search { attempt, then } => {
                tracing::warn!(
                    attempt = attempt.attempt,
                    "an earlier creation of this user's customer was interrupted; looking it up \
                     in Stripe first"
                );
                match self.search(owner).await {
                    Ok(Some((found, requested_at))) => {
                        return self
                            .link(owner, attempt.attempt, &found.customer, requested_at)
                            .await;
                    }
                    Ok(None) if then == AfterSearch::Create => attempt,
                    Ok(None) => self.replace(owner, &attempt, lease_owner, &current).await?,
                    Err(error) => {
                        let refused = Refusal {
                            step: RefusedStep::Search,
                            status: 0,
                            kind: None,
                            code: None,
                            email: Some(current.email),
                            name: current.name,
                        };
                        return Err(self
                            .failed(owner, attempt.attempt, lease_owner, refused, error)
                            .await);
                    }
                }
            }
        };
        let attempt = started.attempt;
        // The attempt's own parameters, whatever the user's are now: the key is sent again
        // with exactly what it was first sent with, or Stripe would refuse it.
        let new_customer = NewCustomer {
            email: &started.email,
            name: started.name.as_deref(),
            user_id_key: self.metadata_key(owner),
            user_id: owner.id(),
        };
        let key = format!("{owner}:{attempt}");
        let created = tokio::time::timeout(
            STRIPE_DEADLINE,
            stripe::create(&self.client, &new_customer, &key),
        )
        .await
        .map_err(|_| EnsureError::StripeTimedOut)
        .and_then(|created| created.map_err(EnsureError::from));
        let created = match created {
            Ok(created) => created,
            Err(error) => {
                // What was refused: the values sent.
                let refused = Refusal {
                    step: RefusedStep::Create,
                    status: 0,
                    kind: None,
                    code: None,
                    email: Some(started.email.clone()),
                    name: started.name.clone(),
                };
                return Err(self
                    .failed(owner, attempt, lease_owner, refused, error)
                    .await);
            }
        };
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
        self.link(owner, attempt, &created.customer.customer, state_at)
            .await
    }

    /// The metadata key that names the owner in Stripe: `USER_ID_METADATA_KEY`, or
    /// `organization_id`.
    fn metadata_key(&self, owner: Owner) -> &str {
        match owner {
            Owner::User(_) => &self.sync.user_id_metadata_key,
            Owner::Organization(_) => ORGANIZATION_ID_METADATA_KEY,
        }
    }

    /// The key of `old` expired and Stripe holds no customer for the user: a new attempt, with
    /// the lease, if this request still holds `old`'s.
    async fn replace(
        &self,
        owner: Owner,
        old: &Attempt,
        lease_owner: Uuid,
        current: &Current,
    ) -> Result<Attempt, EnsureError> {
        let mut tx = self.pool.begin().await?;
        store::lock_owner(&mut tx, owner, STEP_WAIT, STEP_IDLE).await?;
        let last = store::last_attempt(&mut tx, owner).await?;
        let still_ours = last.is_some_and(|last| {
            last.attempt == old.attempt
                && !last.finished
                && matches!(last.lease, Lease::Held { owner: o } | Lease::RunOut { owner: o } if o == lease_owner)
        });
        if !still_ours {
            return Err(EnsureError::Busy);
        }
        let started = store::start_attempt(
            &mut tx,
            owner,
            old.attempt + 1,
            &current.email,
            current.name.as_deref(),
            lease_owner,
            LEASE,
        )
        .await?;
        tx.commit().await?;
        Ok(started)
    }

    /// Records a failed call: a refusal (kept, shared by every replica) or, for an outage,
    /// the lease given back so that the next request calls at once. Returns what to answer.
    async fn failed(
        &self,
        owner: Owner,
        attempt: i64,
        lease_owner: Uuid,
        mut refused: Refusal,
        error: EnsureError,
    ) -> EnsureError {
        let call = match refused.step {
            RefusedStep::Create => "create",
            RefusedStep::Search => "search",
        };
        let refusal = match &error {
            EnsureError::Stripe(api) => refusal::refusal_of(api),
            _ => None,
        };
        let Some((status, kind, code)) = refusal else {
            self.counters().stripe_call(call, "failed");
            let released = async {
                let mut conn = self.pool.acquire().await?;
                store::release_lease(&mut conn, owner, lease_owner).await
            };
            if let Err(release) = released.await {
                tracing::warn!(error = %release, "could not give the creation's lease back; it runs out by itself");
            }
            return error;
        };
        self.counters().stripe_call(call, "refused");
        refused.status = status;
        refused.kind = kind;
        refused.code = code;
        let recorded = async {
            let mut conn = self.pool.acquire().await?;
            store::record_refusal(&mut conn, owner, attempt, &refused).await
        };
        let count = match recorded.await {
            Ok(count) => count,
            Err(record) => {
                tracing::warn!(error = %record, "could not record Stripe's refusal");
                1
            }
        };
        let fields = match &error {
            EnsureError::Stripe(ApiError::Rejected { fields, .. }) => (**fields).clone(),
            _ => Default::default(),
        };
        // Stripe's type, code, param and request id; never its message (it can quote the email).
        tracing::error!(
            call,
            attempt,
            status,
            stripe_type = fields.kind.as_deref(),
            stripe_code = fields.code.as_deref(),
            stripe_param = fields.param.as_deref(),
            request_id = fields.request_id.as_deref(),
            "Stripe refused the creation of this user's customer; no new call until the user's \
             email or name changes or the back-off passes"
        );
        EnsureError::Refused(Refused {
            step: refused.step,
            status,
            kind: refused.kind,
            code: refused.code,
            retry_in: refusal_backoff(count),
        })
    }

    /// A live customer Stripe holds for the owner, if its search finds one.
    async fn search(&self, owner: Owner) -> Result<Option<(ApiCustomer, i64)>, EnsureError> {
        let searched = tokio::time::timeout(
            STRIPE_DEADLINE,
            stripe::search_by_user(&self.client, self.metadata_key(owner), owner.id()),
        )
        .await
        .map_err(|_| EnsureError::StripeTimedOut)
        .and_then(|searched| searched.map_err(EnsureError::from))?;
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

    /// Writes the customer through the one apply loop, marks the attempt finished (its lease
    /// ends with it), commits: one short transaction under the user's lock.
    async fn link(
        &self,
        owner: Owner,
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
        let source_id = format!("ensure-customer:{owner}:{attempt}");
        let mut tx = self.pool.begin().await?;
        store::lock_owner(&mut tx, owner, STEP_WAIT, STEP_IDLE).await?;
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
        let linked = store::linked_customer(&mut tx, owner).await?;
        store::finish_attempt(&mut tx, owner, attempt, id.as_str()).await?;
        tx.commit().await?;
        tracing::info!(
            status = outcome.status(),
            reason = outcome.reason(),
            "customer row written for the owner"
        );
        match linked {
            Some(linked) => Ok(Ensured {
                created: linked == id.as_str(),
                stripe_customer_id: linked,
                owner,
            }),
            None => Err(EnsureError::NotLinked(id.as_str().to_owned())),
        }
    }
}
