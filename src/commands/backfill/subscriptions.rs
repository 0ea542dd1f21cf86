//! `backfill`'s second part: every subscription (`GET /v1/subscriptions?status=all`, pages of
//! 100, newest first) applied as a state read from Stripe's API under the subscription rules
//! (docs/design.md "Tiers"), after the customers, so that the owners' rows are there when the
//! tiers are written. A fetched state is ordered at its page's request, below every event of
//! that second: it never overrides a newer event, as a fetched customer never does.
//!
//! Not checkpointed: a rerun lists the subscriptions again (a few pages for most accounts),
//! and applying a state again changes nothing but its order.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::PgPool;

use super::BackfillError;
use crate::stripe_api::{StripeClient, subscriptions};
use crate::sync::request::{FetchRun, FetchedSubscriptions};
use crate::sync::{self, SyncSettings};

/// What the run did with the subscriptions it listed. `applied` and `skipped` partition
/// `seen`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct SubscriptionTotals {
    pub seen: u64,
    /// Written (in a dry run: would be).
    pub applied: u64,
    /// Not written, by reason (`stale_event`, `subscription_ended`, …).
    pub skipped: BTreeMap<String, u64>,
}

/// Lists and applies every subscription, as rows of `run` (a dry run writes nothing).
pub(super) async fn run(
    pool: &PgPool,
    client: &StripeClient,
    settings: &SyncSettings,
    run: &FetchRun,
) -> Result<SubscriptionTotals, BackfillError> {
    let mut totals = SubscriptionTotals::default();
    let mut cursor: Option<String> = None;
    loop {
        let mut page = subscriptions::list_page(client, cursor.as_deref()).await?;
        // Products first, with no connection held while Stripe answers.
        for subscription in &mut page.subscriptions {
            let livemode = client.key_livemode();
            sync::expand_subscription_products(
                Some(client),
                &settings.tiers,
                subscription,
                livemode,
            )
            .await?;
        }
        let fetched = FetchedSubscriptions {
            subscriptions: &page.subscriptions,
            requested_at: page.requested_at,
        };
        for applied in sync::apply_subscription_page(pool, settings, run, fetched).await? {
            totals.seen += 1;
            match applied {
                Ok(()) => totals.applied += 1,
                Err(reason) => {
                    *totals
                        .skipped
                        .entry(reason.as_str().to_owned())
                        .or_default() += 1;
                }
            }
        }
        tracing::debug!(subscriptions = totals.seen, "subscription page applied");
        match (page.has_more, page.cursor()) {
            (true, Some(next)) => cursor = Some(next.to_owned()),
            _ => break,
        }
    }
    tracing::info!(
        run_id = %run.run_id,
        seen = totals.seen,
        applied = totals.applied,
        "backfill of subscriptions complete"
    );
    Ok(totals)
}
