//! What code outside `sync` hands to it, by origin: the type of a request says where its
//! customer states come from, and so how they are ordered and what applying them records
//! (`apply::Recording`). A delivered snapshot event is a `StripeEvent` (through the webhook
//! writers, `super::EventWriter`, or alone, `super::apply_event`), a delivered thin event a
//! `ThinEvent` (`super::apply_thin`); a fetching command's run is a [`FetchRun`] with its
//! [`FetchedCustomer`]s and [`FetchedSubscriptions`]; a customer created for a user is a
//! [`CreatedCustomer`].

use chrono::Utc;
use uuid::Uuid;

pub(crate) use super::apply::{Applied, AppliedCustomer};
use crate::domain::StripeCustomerId;
pub(crate) use crate::domain::event_order::FetchCommand;
use crate::stripe::event::{CustomerObject, SubscriptionObject};

/// A run of a fetching command (`backfill`, `verify --fix`): what the rows it writes record,
/// and whether it writes at all. No ledger row (there is no event), the run's id in the audit
/// trail, and a customer whose state would not change the row (a backfill run again) is not
/// written at all.
#[derive(Debug, Clone)]
pub(crate) struct FetchRun {
    pub command: FetchCommand,
    /// `backfill:<start>-<random>`: `sync.last_event_id` and the audit trail's `event_id`.
    pub run_id: String,
    /// Decide and count, write nothing.
    pub dry_run: bool,
    /// The mode of the API key the customers were read with (`sync.livemode`).
    pub livemode: bool,
}

impl FetchRun {
    pub(crate) fn new(command: FetchCommand, dry_run: bool, livemode: bool) -> Self {
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

/// One customer as a run fetched it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchedCustomer<'a> {
    pub customer: &'a CustomerObject,
    /// Stripe answered `{"id", "deleted": true}` (or, for `verify`, that it has no such customer).
    pub deleted: bool,
    /// Unix seconds at which the request that returned it started.
    pub requested_at: i64,
}

/// One page of subscriptions as a run fetched them (`backfill`), their prices' products
/// already read (`super::expand_subscription_products`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchedSubscriptions<'a> {
    pub subscriptions: &'a [SubscriptionObject],
    /// Unix seconds at which the request that returned the page started.
    pub requested_at: i64,
}

/// A customer as Stripe's create or search answered it (`POST /customers`, `ensure-customer`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CreatedCustomer<'a> {
    pub id: &'a StripeCustomerId,
    pub customer: &'a CustomerObject,
    /// Unix second no later than Stripe's creation (the request's start).
    pub requested_at: i64,
    /// The API key's mode.
    pub livemode: bool,
    /// `ensure-customer:<user_id>:<attempt>`
    pub source_id: &'a str,
}
