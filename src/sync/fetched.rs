//! Applying customers as Stripe's API returned them (`backfill`, `verify --fix`): the same
//! rules as a webhook event ([`rules::decide`]), with the request's start as the order.
//!
//! A page is read → decided → written in two statements (`store::backfill`). Rows whose write
//! lost a race to a concurrent writer (a webhook, on any replica) are decided again one by one,
//! as the webhook path does. No ledger row is written: there is no event. A customer whose
//! state would not change the row (a backfill run again) is not written at all.

use std::collections::HashSet;

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use super::outcome::SkipReason;
use super::rules::{
    self, CustomerEventKind, Decision, FetchCommand, IncomingCustomer, LinkCandidate, Origin,
    RowWrite, UserFacts,
};
use super::{MAX_ATTEMPTS, SyncError, SyncSettings};
use crate::domain::StripeCustomerId;
use crate::store::StoreError;
use crate::store::backfill::{self as store, FetchedSnapshot, RowToWrite, SnapshotKey};
use crate::stripe::event::CustomerObject;

/// A run of a fetching command: what the rows it writes record, and whether it writes at all.
#[derive(Debug, Clone)]
pub struct FetchRun {
    pub command: FetchCommand,
    /// `backfill:<start>-<random>`: `sync.last_event_id` and the audit trail's `event_id`.
    pub run_id: String,
    /// Decide and count, write nothing.
    pub dry_run: bool,
    /// The mode of the API key the customers were read with (`sync.livemode`).
    pub livemode: bool,
}

impl FetchRun {
    pub fn new(command: FetchCommand, dry_run: bool, livemode: bool) -> Self {
        let now = Utc::now().format("%Y%m%dT%H%M%SZ");
        let random = Uuid::new_v4().simple().to_string();
        Self {
            command,
            run_id: format!("{}:{now}-{}", command.as_str(), &random[..8]),
            dry_run,
            livemode,
        }
    }
}

/// One customer as fetched.
#[derive(Debug, Clone, Copy)]
pub struct FetchedCustomer<'a> {
    pub customer: &'a CustomerObject,
    /// Stripe answered `{"id", "deleted": true}` (or, for `verify`, that it has no such customer).
    pub deleted: bool,
    /// Unix seconds at which the request that returned it started.
    pub requested_at: i64,
}

/// What applying a fetched customer did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Inserted,
    Updated,
    /// The row already holds these values: nothing was written.
    Unchanged,
    Skipped(SkipReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedCustomer {
    pub applied: Applied,
    /// The row stands (after this customer) unlinked for this reason (`sync.error`).
    pub unlinked: Option<&'static str>,
}

impl AppliedCustomer {
    fn skipped(reason: SkipReason) -> Self {
        Self {
            applied: Applied::Skipped(reason),
            unlinked: None,
        }
    }
}

/// A customer ready for the rules: its id parsed, its link candidate read.
struct Prepared<'a> {
    index: usize,
    id: StripeCustomerId,
    fetched: FetchedCustomer<'a>,
    link: LinkCandidate,
}

impl Prepared<'_> {
    fn incoming<'s>(&'s self, run: &'s FetchRun) -> IncomingCustomer<'s> {
        let customer = self.fetched.customer;
        IncomingCustomer {
            kind: if self.fetched.deleted {
                CustomerEventKind::Deleted
            } else {
                CustomerEventKind::Updated
            },
            origin: Origin::Fetched {
                command: run.command,
                run_id: &run.run_id,
            },
            created: self.fetched.requested_at,
            customer_id: &self.id,
            email: customer.email.as_deref(),
            name: customer.name.as_deref(),
            default_payment_method: customer.default_payment_method.as_deref(),
            stripe_metadata: &customer.metadata,
            link: self.link,
            livemode: run.livemode,
        }
    }
}

/// What the rules decided for one prepared customer.
enum Plan {
    Done(AppliedCustomer),
    Write {
        version: Option<String>,
        row: RowWrite,
        result: AppliedCustomer,
    },
}

/// Applies one page of fetched customers; the result is in the order of `customers`.
pub async fn apply_page(
    pool: &PgPool,
    settings: &SyncSettings,
    run: &FetchRun,
    customers: &[FetchedCustomer<'_>],
) -> Result<Vec<AppliedCustomer>, SyncError> {
    let mut results: Vec<Option<AppliedCustomer>> = vec![None; customers.len()];
    let mut batch: Vec<Prepared<'_>> = Vec::with_capacity(customers.len());
    // Decided one by one after the page: a customer listed twice (Stripe does not do that,
    // but the rules must not see two writes of one row in one statement).
    let mut one_by_one: Vec<Prepared<'_>> = Vec::new();
    let mut seen = HashSet::with_capacity(customers.len());
    for (index, fetched) in customers.iter().enumerate() {
        match prepare(settings, index, *fetched) {
            Err(skipped) => results[index] = Some(skipped),
            Ok(prepared) if !seen.insert(prepared.id.as_str().to_owned()) => {
                one_by_one.push(prepared)
            }
            Ok(prepared) => batch.push(prepared),
        }
    }

    let keys: Vec<SnapshotKey<'_>> = batch
        .iter()
        .map(|p| SnapshotKey {
            stripe_customer_id: p.id.as_str(),
            candidate_user: p.link.user(),
        })
        .collect();
    let snapshots = store::snapshot(pool, &keys).await?;

    // Decided in page order, as a webhook consumer would apply them one after the other: a
    // user claimed by an earlier customer of the page is linked elsewhere for the later ones.
    let mut claimed: HashSet<Uuid> = HashSet::new();
    let mut plans = Vec::with_capacity(batch.len());
    for (prepared, snapshot) in batch.iter().zip(&snapshots) {
        let mut plan = plan(run, prepared, snapshot, snapshot.user);
        if let Plan::Write { row, .. } = &plan
            && let Some(user) = row.user_id
            && !claimed.insert(user)
        {
            let taken = UserFacts {
                exists: true,
                linked_elsewhere: true,
            };
            plan = self::plan(run, prepared, snapshot, taken);
        }
        plans.push(plan);
    }

    let mut writes = Vec::new();
    let mut written_as = Vec::new();
    for (prepared, plan) in batch.iter().zip(&plans) {
        match plan {
            Plan::Done(result) => results[prepared.index] = Some(*result),
            Plan::Write {
                version,
                row,
                result,
            } => {
                writes.push(RowToWrite {
                    stripe_customer_id: prepared.id.as_str(),
                    version: version.as_deref(),
                    row,
                });
                written_as.push((prepared, *result));
            }
        }
    }

    if run.dry_run {
        for (prepared, result) in written_as {
            results[prepared.index] = Some(result);
        }
    } else {
        let written = match store::write(pool, &run.run_id, &writes).await {
            Ok(written) => written,
            // A race on a user or on auth.users failed the whole statement: nothing was written.
            Err(StoreError::Conflict) => vec![false; writes.len()],
            Err(error) => return Err(error.into()),
        };
        for ((prepared, result), done) in written_as.into_iter().zip(written) {
            results[prepared.index] = Some(if done {
                result
            } else {
                apply_prepared(pool, run, prepared).await?
            });
        }
    }
    for prepared in &one_by_one {
        results[prepared.index] = Some(apply_prepared(pool, run, prepared).await?);
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every customer of the page has a result"))
        .collect())
}

/// Applies one fetched customer on its own (verify's fixes; a page's lost races).
pub async fn apply_one(
    pool: &PgPool,
    settings: &SyncSettings,
    run: &FetchRun,
    customer: FetchedCustomer<'_>,
) -> Result<AppliedCustomer, SyncError> {
    match prepare(settings, 0, customer) {
        Err(skipped) => Ok(skipped),
        Ok(prepared) => apply_prepared(pool, run, &prepared).await,
    }
}

fn prepare<'a>(
    settings: &SyncSettings,
    index: usize,
    fetched: FetchedCustomer<'a>,
) -> Result<Prepared<'a>, AppliedCustomer> {
    let id = StripeCustomerId::parse(&fetched.customer.id)
        .map_err(|_| AppliedCustomer::skipped(SkipReason::InvalidCustomerId))?;
    let link = LinkCandidate::from_metadata(
        fetched
            .customer
            .metadata
            .get(&settings.user_id_metadata_key),
    );
    Ok(Prepared {
        index,
        id,
        fetched,
        link,
    })
}

/// The read → decide → write loop of one customer, deciding again after a lost race.
async fn apply_prepared(
    pool: &PgPool,
    run: &FetchRun,
    prepared: &Prepared<'_>,
) -> Result<AppliedCustomer, SyncError> {
    let key = SnapshotKey {
        stripe_customer_id: prepared.id.as_str(),
        candidate_user: prepared.link.user(),
    };
    for _ in 0..MAX_ATTEMPTS {
        let snapshot = store::snapshot(pool, &[key])
            .await?
            .pop()
            .expect("one snapshot per key");
        let (version, row, result) = match plan(run, prepared, &snapshot, snapshot.user) {
            Plan::Done(result) => return Ok(result),
            Plan::Write {
                version,
                row,
                result,
            } => (version, row, result),
        };
        if run.dry_run {
            return Ok(result);
        }
        let write = RowToWrite {
            stripe_customer_id: prepared.id.as_str(),
            version: version.as_deref(),
            row: &row,
        };
        match store::write(pool, &run.run_id, &[write]).await {
            Ok(written) if written == [true] => return Ok(result),
            Ok(_) | Err(StoreError::Conflict) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(SyncError::Contention)
}

fn plan(
    run: &FetchRun,
    prepared: &Prepared<'_>,
    snapshot: &FetchedSnapshot,
    user: UserFacts,
) -> Plan {
    let decision = rules::decide(
        &prepared.incoming(run),
        snapshot.stored.as_ref().map(|(stored, _)| stored),
        user,
        snapshot.deletion_recorded,
        Utc::now(),
    );
    match decision {
        Decision::Skip { reason, .. } => Plan::Done(AppliedCustomer::skipped(reason)),
        Decision::Insert(row) => Plan::Write {
            version: None,
            result: AppliedCustomer {
                applied: Applied::Inserted,
                unlinked: unlink_reason(&row),
            },
            row,
        },
        Decision::Update { version, row } => {
            let unlinked = unlink_reason(&row);
            let unchanged = snapshot
                .stored
                .as_ref()
                .is_some_and(|(_, values)| rules::is_unchanged(values, &row));
            if unchanged {
                Plan::Done(AppliedCustomer {
                    applied: Applied::Unchanged,
                    unlinked,
                })
            } else {
                Plan::Write {
                    version: Some(version),
                    row,
                    result: AppliedCustomer {
                        applied: Applied::Updated,
                        unlinked,
                    },
                }
            }
        }
    }
}

/// `sync.error` of an unlinked row, as one of the rules' static names.
fn unlink_reason(row: &RowWrite) -> Option<&'static str> {
    let sync = &row.customer_metadata["sync"];
    if sync["status"] != "unlinked" {
        return None;
    }
    use super::outcome::UnlinkReason::*;
    [MissingUserId, InvalidUserId, UnknownUser, UserAlreadyLinked]
        .into_iter()
        .map(|reason| reason.as_str())
        .find(|reason| sync["error"] == *reason)
}
