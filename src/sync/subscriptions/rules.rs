//! The tier rules (docs/design.md "Tiers"), pure: how a subscription event is ordered against
//! the stored state, when a subscription has ended, a price's tier, and an owner's tier.

use serde_json::{Map, Value};

use crate::configuration::TierSettings;
use crate::stripe::event::PriceObject;
use crate::sync::SkipReason;

/// The three subscription events, in their tie-breaking rank within one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscriptionEventKind {
    Created,
    Updated,
    Deleted,
}

impl SubscriptionEventKind {
    pub(crate) fn from_event_type(event_type: &str) -> Option<Self> {
        match event_type {
            "customer.subscription.created" => Some(Self::Created),
            "customer.subscription.updated" => Some(Self::Updated),
            "customer.subscription.deleted" => Some(Self::Deleted),
            _ => None,
        }
    }

    /// `created` < `updated` < `deleted` among events of the same second; an unknown type
    /// (none is stored) ranks lowest.
    pub(crate) fn rank_of(event_type: &str) -> u8 {
        match Self::from_event_type(event_type) {
            Some(Self::Created) => 1,
            Some(Self::Updated) => 2,
            Some(Self::Deleted) => 3,
            None => 0,
        }
    }
}

/// Statuses from which a subscription never comes back (Stripe's own terminal states).
const ENDED_STATUSES: [&str; 2] = ["canceled", "incomplete_expired"];

/// Whether an event leaves its subscription ended: a deletion, or a terminal status.
pub(crate) fn is_ended(kind: SubscriptionEventKind, status: &str) -> bool {
    kind == SubscriptionEventKind::Deleted || ENDED_STATUSES.contains(&status)
}

pub(crate) use crate::domain::subscription_order::StoredOrder;

/// Whether an event's state is written over the stored one.
#[cfg(test)]
pub(crate) fn decide(
    kind: SubscriptionEventKind,
    created: i64,
    stored: Option<&StoredOrder>,
) -> Result<(), SkipReason> {
    let rank = SubscriptionEventKind::rank_of(kind.as_event_type());
    decide_at(created, rank, stored)
}

/// The rank of a state read from Stripe's API (a thin event's fetch, `backfill`): below every
/// event of its second, as a fetched customer's (`EventOrder::fetched`). A stored row that
/// records such a state reads back at this rank too: its type (`v1.customer.subscription.*`,
/// `backfill`) is none of the three events'.
pub(crate) const FETCHED_RANK: u8 = 0;

/// [`decide`] for a state of (`created`, `rank`).
pub(crate) fn decide_at(
    created: i64,
    rank: u8,
    stored: Option<&StoredOrder>,
) -> Result<(), SkipReason> {
    let Some(stored) = stored else {
        return Ok(());
    };
    if stored.ended {
        return Err(SkipReason::SubscriptionEnded);
    }
    let last = (
        stored.created,
        SubscriptionEventKind::rank_of(&stored.event_type),
    );
    // Equal order applies: the later delivery wins, as for customers.
    if (created, rank) < last {
        Err(SkipReason::StaleEvent)
    } else {
        Ok(())
    }
}

impl SubscriptionEventKind {
    pub(crate) fn as_event_type(self) -> &'static str {
        match self {
            Self::Created => "customer.subscription.created",
            Self::Updated => "customer.subscription.updated",
            Self::Deleted => "customer.subscription.deleted",
        }
    }
}

/// A price's tier: its metadata `TIER_METADATA_KEY` when that names a tier, else its
/// `lookup_key` when that names one, else its product's metadata `TIER_METADATA_KEY` (when the
/// product was sent expanded, or fetched: see `stripe_api::products`).
pub(crate) fn price_tier(settings: &TierSettings, price: &PriceObject) -> Option<String> {
    own_tier(settings, price).or_else(|| {
        let metadata = price.product.as_ref()?.metadata.as_ref()?;
        metadata_tier(settings, metadata).map(str::to_owned)
    })
}

/// The tier a price names itself (metadata, else lookup key), without its product's.
pub(crate) fn own_tier(settings: &TierSettings, price: &PriceObject) -> Option<String> {
    let named = |value: &str| settings.tiers.iter().any(|tier| tier == value);
    let from_metadata = price
        .metadata
        .as_ref()
        .and_then(|metadata| metadata_tier(settings, metadata));
    from_metadata
        .or(price.lookup_key.as_deref().filter(|key| named(key)))
        .map(str::to_owned)
}

fn metadata_tier<'m>(settings: &TierSettings, metadata: &'m Map<String, Value>) -> Option<&'m str> {
    metadata
        .get(&settings.metadata_key)
        .and_then(Value::as_str)
        .filter(|value| settings.tiers.iter().any(|tier| tier == value))
}

/// An owner's tier: the highest tier among its subscriptions (status, tiers of their prices)
/// whose status grants access, else the lowest tier.
pub(crate) fn owner_tier<'s>(
    settings: &'s TierSettings,
    subscriptions: &[(String, Vec<Option<String>>)],
) -> &'s str {
    subscriptions
        .iter()
        .filter(|(status, _)| settings.access_statuses.contains(status))
        .flat_map(|(_, tiers)| tiers.iter().flatten())
        .filter_map(|tier| settings.tiers.iter().position(|t| t == tier))
        .max()
        .map_or(settings.tiers[0].as_str(), |highest| {
            settings.tiers[highest].as_str()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn price(lookup_key: Option<&str>, metadata: Value) -> PriceObject {
        PriceObject {
            id: "price_1".into(),
            lookup_key: lookup_key.map(str::to_owned),
            metadata: metadata.as_object().cloned(),
            product: None,
        }
    }

    fn subs(list: &[(&str, &[&str])]) -> Vec<(String, Vec<Option<String>>)> {
        list.iter()
            .map(|(status, tiers)| {
                let tiers = tiers.iter().map(|t| Some((*t).to_owned())).collect();
                ((*status).to_owned(), tiers)
            })
            .collect()
    }

    #[test]
    fn a_prices_metadata_names_its_tier_before_its_lookup_key() {
        let settings = TierSettings::default();
        let both = price(Some("pro"), json!({"tier": "enterprise"}));
        assert_eq!(price_tier(&settings, &both).as_deref(), Some("enterprise"));
        let key_only = price(Some("pro"), json!({"tier": "gold"}));
        assert_eq!(price_tier(&settings, &key_only).as_deref(), Some("pro"));
        let neither = price(Some("pro_monthly"), json!({}));
        assert_eq!(price_tier(&settings, &neither), None);
    }

    #[test]
    fn a_price_that_names_no_tier_takes_its_products() {
        let settings = TierSettings::default();
        let product = |metadata: Option<Value>| crate::stripe::event::ProductRef {
            id: "prod_1".into(),
            metadata: metadata.and_then(|m| m.as_object().cloned()),
        };
        let mut plain = price(Some("plan_monthly"), json!({}));
        plain.product = Some(product(Some(json!({"tier": "pro"}))));
        assert_eq!(price_tier(&settings, &plain).as_deref(), Some("pro"));
        assert_eq!(own_tier(&settings, &plain), None);
        // The price's own tier comes first; a product not read yet names none.
        let mut own = price(Some("enterprise"), json!({}));
        own.product = Some(product(Some(json!({"tier": "pro"}))));
        assert_eq!(price_tier(&settings, &own).as_deref(), Some("enterprise"));
        plain.product = Some(product(None));
        assert_eq!(price_tier(&settings, &plain), None);
        plain.product = Some(product(Some(json!({"tier": "gold"}))));
        assert_eq!(price_tier(&settings, &plain), None);
    }

    #[test]
    fn a_fetched_state_ranks_below_every_event_of_its_second() {
        let stored = |created, event_type: &str| StoredOrder {
            created,
            event_type: event_type.into(),
            ended: false,
        };
        let created_at_10 = stored(10, "customer.subscription.created");
        assert_eq!(
            decide_at(10, FETCHED_RANK, Some(&created_at_10)),
            Err(SkipReason::StaleEvent)
        );
        assert_eq!(decide_at(11, FETCHED_RANK, Some(&created_at_10)), Ok(()));
        // A stored fetch reads back at the fetched rank: an event of its second applies.
        for fetched in ["backfill", "v1.customer.subscription.updated"] {
            let at_10 = stored(10, fetched);
            assert_eq!(
                decide(SubscriptionEventKind::Created, 10, Some(&at_10)),
                Ok(())
            );
            assert_eq!(decide_at(10, FETCHED_RANK, Some(&at_10)), Ok(()));
        }
    }

    #[test]
    fn the_owners_tier_is_the_highest_that_grants_access_else_the_lowest() {
        let settings = TierSettings::default();
        let tier = |list: &[(&str, &[&str])]| owner_tier(&settings, &subs(list)).to_owned();
        assert_eq!(tier(&[("active", &["pro"])]), "pro");
        assert_eq!(
            tier(&[("active", &["pro"]), ("trialing", &["enterprise"])]),
            "enterprise"
        );
        assert_eq!(
            tier(&[("active", &["pro"]), ("canceled", &["enterprise"])]),
            "pro"
        );
        assert_eq!(tier(&[("unpaid", &["pro"])]), "free");
        assert_eq!(tier(&[]), "free");
    }

    #[test]
    fn an_ended_subscription_stays_ended_and_older_events_are_stale() {
        let stored = |created, event_type: &str, ended| StoredOrder {
            created,
            event_type: event_type.into(),
            ended,
        };
        let updated = SubscriptionEventKind::Updated;
        let deleted = stored(10, "customer.subscription.deleted", true);
        assert_eq!(
            decide(updated, 20, Some(&deleted)),
            Err(SkipReason::SubscriptionEnded)
        );
        let live = stored(10, "customer.subscription.updated", false);
        assert_eq!(decide(updated, 9, Some(&live)), Err(SkipReason::StaleEvent));
        assert_eq!(
            decide(SubscriptionEventKind::Created, 10, Some(&live)),
            Err(SkipReason::StaleEvent)
        );
        assert_eq!(decide(updated, 10, Some(&live)), Ok(()));
        assert_eq!(decide(updated, 1, None), Ok(()));
        assert!(
            is_ended(updated, "canceled") && is_ended(SubscriptionEventKind::Deleted, "active")
        );
        assert!(!is_ended(updated, "past_due"));
    }
}
