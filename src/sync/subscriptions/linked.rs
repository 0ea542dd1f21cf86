//! A subscription event may arrive before its customer is linked to an owner (Stripe does not
//! deliver in order; a checkout sends `customer.subscription.created` and `customer.updated`
//! within a second): it is kept, and no tier is written, since there is no owner to write it
//! to. When a customer state that names an owner is then written, the owner's tier is computed
//! from the kept subscriptions right after the customer's write (a webhook's, catch-up's, a thin
//! event's, a backfill page's or `verify --fix`'s), on the same connection:
//! inside the same transaction behind a transaction pooler (the writer's batch is one), and in
//! the next one otherwise, each under the customer's subscription lock so that it serializes
//! with the customer's subscription events. So both delivery orders end in the same tier.

use prometheus_client::metrics::counter::Counter;

use crate::domain::outcome::Outcome;
use crate::store::StoreError;
use crate::store::session::EventScope;
use crate::store::subscriptions as store;
use crate::sync::SyncSettings;
use crate::sync::rules::IncomingCustomer;

/// Owners' tiers that were not computed after a customer's link (`/metrics`:
/// `stripe_tier_recomputes_failed_total`): each is logged, and the owner keeps its tier until
/// the customer's next subscription event. Shared by every clone of the settings.
#[derive(Clone, Default)]
pub struct TierRecomputeFailures(Counter);

impl TierRecomputeFailures {
    /// The counter `/metrics` exposes.
    pub fn counter(&self) -> Counter {
        self.0.clone()
    }
}

impl std::fmt::Debug for TierRecomputeFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TierRecomputeFailures")
            .finish_non_exhaustive()
    }
}

/// A count is not part of what settings say: any two compare equal.
impl PartialEq for TierRecomputeFailures {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for TierRecomputeFailures {}

/// Whether an event with this outcome may give its customer's owner a tier. A duplicate does
/// too: the first delivery's write commits before the tier is computed, so a process that
/// stops in between leaves the tier behind, and Stripe, which got no answer, delivers the
/// event again. The recompute writes only a change, so a redelivery otherwise changes nothing.
pub(crate) fn may_give_a_tier(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Processed | Outcome::Duplicate)
}

/// The customer of `state` when it names an owner (a user or an organization), whose tier the
/// kept subscriptions may now give.
pub(crate) fn names_an_owner<'a>(state: &'a IncomingCustomer<'_>) -> Option<&'a str> {
    (state.link.user().is_some() || state.link.organization().is_some())
        .then(|| state.customer_id.as_str())
}

/// Recomputes the owner's tier of each of `customers` that has kept subscriptions. A failure
/// is logged and leaves the customer's write as it is (the next subscription event of the
/// customer writes the tier): the customer event itself was applied.
pub(crate) async fn recompute_for(
    scope: &mut EventScope<'_>,
    settings: &SyncSettings,
    customers: &[&str],
) {
    if customers.is_empty() {
        return;
    }
    if let Err(error) = recompute(scope, settings, customers).await {
        settings.tiers.recompute_failures.0.inc();
        tracing::error!(
            error = %error,
            "a linked customer's tier was not computed from its subscriptions"
        );
    }
}

async fn recompute(
    scope: &mut EventScope<'_>,
    settings: &SyncSettings,
    customers: &[&str],
) -> Result<(), StoreError> {
    for customer in store::customers_with_subscriptions(scope, customers).await? {
        // A savepoint inside the caller's transaction: a refused tier undoes only itself.
        let (mut transaction, policy) = scope.nested().await?;
        let recomputed = {
            let mut inner = EventScope::within(&mut transaction, policy);
            async {
                store::lock_customer(&mut inner, &customer).await?;
                super::recompute_tier(&mut inner, settings, &customer).await
            }
            .await
        };
        match recomputed {
            Ok(_) => transaction.commit().await?,
            Err(error) => {
                settings.tiers.recompute_failures.0.inc();
                tracing::error!(
                    error = %error,
                    "the tier of a linked customer's owner was not written"
                );
            }
        }
    }
    Ok(())
}
