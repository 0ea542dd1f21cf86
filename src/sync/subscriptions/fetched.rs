//! A fetching run's subscriptions (`backfill`, after its customers): each applied as a state
//! read from Stripe's API under the subscription rules, ordered at its page's request, below
//! every event of that second (it never overrides a newer event, as a fetched customer never
//! does). No ledger row: the run's id and command are what the subscription's row records.

use super::rules::FETCHED_RANK;
use super::{SubscriptionState, apply_fetched};
use crate::store::session::EventScope;
use crate::sync::request::{FetchRun, FetchedSubscriptions};
use crate::sync::{SkipReason, SyncError, SyncSettings};

/// Applies one page of `run`'s subscriptions in one scope (each in a transaction of its own
/// inside it, rolled back in a dry run). Per subscription, in order: `Ok(())` written (in a dry
/// run: would be), or why not.
pub(crate) async fn apply_page(
    pool: &sqlx::PgPool,
    settings: &SyncSettings,
    run: &FetchRun,
    page: FetchedSubscriptions<'_>,
) -> Result<Vec<Result<(), SkipReason>>, SyncError> {
    let mut scope = EventScope::begin(pool, settings.connection).await?;
    let mut applied = Vec::with_capacity(page.subscriptions.len());
    for subscription in page.subscriptions {
        let state = SubscriptionState {
            subscription,
            created: page.requested_at,
            rank: FETCHED_RANK,
            recorded_type: run.command.as_str(),
            source_id: &run.run_id,
            deleted: false,
            livemode: run.livemode,
        };
        applied.push(apply_fetched(&mut scope, settings, &state, run.dry_run).await?);
    }
    scope.commit().await?;
    Ok(applied)
}
