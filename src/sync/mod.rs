//! The rules of docs/design.md ("Sync rules"), in one place, and the one way in for every
//! customer state, whatever its origin. Code outside `sync` uses this module's entry points
//! and the request types of [`request`], nothing else of it:
//!
//! - a delivered snapshot event: [`EventWriter`] (the webhook's writers, which apply the
//!   events waiting together: group commit, a private strategy of `batch`), or
//!   [`apply_event`] alone (`catch-up`);
//! - a delivered thin event: [`apply_thin`] (its customer fetched, then applied);
//! - a failed event applied again: [`reapply`];
//! - a fetching run's customers: [`apply_page`], [`apply_fetched`] (`backfill`, `verify --fix`),
//!   and [`fetched_row`] for what applying one would write (`verify`'s drift);
//! - a customer created for a user: [`apply_created`] (`POST /customers`, `ensure-customer`);
//! - a fetching run's subscriptions: [`apply_subscription_page`] (`backfill`);
//! - the products a subscription's prices need for their tier, read from Stripe before the
//!   database is: [`expand_products`] for a snapshot event (webhook, `catch-up`; `reapply`
//!   reads its own), [`expand_subscription_products`] for a fetched subscription; the cache
//!   they keep is the tier settings' [`ProductTiers`].
//!
//! Inside, `rules::decide` decides (pure), `apply` is the one loop through which every state
//! reaches the table, and `store` reads and writes. The type of a request fixes its origin
//! (`apply::Recording`): how its states are ordered and what applying them records.

mod apply;
mod batch;
mod created;
mod event;
mod fetched;
mod ledger_entry;
mod reapply;
pub(crate) mod request;
mod rules;
mod subscriptions;
mod thin;

// What became of an event is a domain type: the ledger, the metrics and the HTTP answer name it.
pub use crate::domain::outcome::{FailReason, IgnoreReason, Outcome, SkipReason};

pub use batch::EventWriter;
pub(crate) use created::apply_created;
pub(crate) use event::apply_event;
pub(crate) use fetched::{apply_one as apply_fetched, apply_page};
pub(crate) use reapply::reapply;
pub(crate) use rules::ORGANIZATION_ID_METADATA_KEY;
pub(crate) use subscriptions::fetched::apply_page as apply_subscription_page;
pub use subscriptions::linked::TierRecomputeFailures;
pub use subscriptions::products::ProductTiers;
pub(crate) use subscriptions::products::{
    expand as expand_subscription_products, expand_event as expand_products,
};
pub(crate) use thin::{ThinEventError, apply_thin};

use crate::domain::{RowWrite, StoredCustomer, StripeMode, UserFacts};
use crate::store::StoreError;
use crate::store::pool::ConnectionPolicy;
use request::{FetchRun, FetchedCustomer};
use rules::Decision;

/// Concurrent writers on one customer are rare; this many lost races in a row means
/// contention worth a 503 and a retry from Stripe rather than a spin.
const MAX_ATTEMPTS: usize = 8;

#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// The Stripe customer metadata key that carries the Supabase user id.
    pub user_id_metadata_key: String,
    /// The Stripe mode(s) this deployment keeps; events of another are `ignored`.
    pub mode: StripeMode,
    /// How the database is reached (`DATABASE_POOL_MODE`) and the statement timeout.
    pub connection: ConnectionPolicy,
    /// Which tiers exist and where an owner's tier is written (docs/design.md "Tiers").
    pub tiers: crate::configuration::TierSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("gave up after {MAX_ATTEMPTS} concurrent changes to the same customer")]
    Contention,
    /// The batch the event was written in failed for want of the database; nothing of it
    /// was written.
    #[error("the event's batch was not written: {0}")]
    BatchUnavailable(String),
    /// The request stopped waiting before the event's write was done; the event is answered
    /// 503, and a redelivery finds it recorded only if a write already sent committed.
    #[error("the event was not written before its deadline")]
    DeadlinePassed,
    /// The writers are gone (the service is shutting down).
    #[error("no writer is taking events")]
    WriterStopped,
}

/// What applying `fetched` (of `run`) would write over `stored`, its order aside: the row the
/// rules decide with the owner taken as it is; `None` when they would write nothing (or the id
/// is not a customer's). `verify` compares it with the row to report drift.
pub(crate) fn fetched_row(
    user_id_metadata_key: &str,
    run: &FetchRun,
    fetched: FetchedCustomer<'_>,
    stored: &StoredCustomer,
) -> Option<RowWrite> {
    let applying = fetched::applying(user_id_metadata_key, run, fetched)?;
    let unordered = StoredCustomer {
        last_applied: None,
        ..stored.clone()
    };
    let decided = rules::decide(
        applying.state(),
        Some(&unordered),
        UserFacts::default(),
        false,
        chrono::Utc::now(),
    );
    match decided {
        Decision::Insert(row) | Decision::Update { row, .. } => Some(row),
        Decision::Skip { .. } => None,
    }
}
