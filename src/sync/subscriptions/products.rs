//! What the tier rules know of products (docs/design.md "Tiers"): a price that names no tier
//! itself takes its product's metadata, fetched once (`stripe_api::products`) before the
//! database is touched and kept in-process for a while, and a price that names no tier at all
//! is counted.
//!
//! The cache is small and bounded, and forgets an entry after [`TTL`], so that a product's
//! metadata changed in the dashboard is read again within minutes. A hand-written map rather
//! than a caching crate: one lookup and one insert per product is all it does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use serde_json::{Map, Value};

use super::rules;
use crate::configuration::TierSettings;
use crate::stripe::event::{EventObject, StripeEvent, SubscriptionObject};
use crate::stripe_api::products::metadata;
use crate::stripe_api::{ApiError, StripeClient};
use crate::sync::SyncSettings;

/// How long a product's metadata is trusted.
pub(crate) const TTL: Duration = Duration::from_secs(10 * 60);
/// Products kept at most; a catalogue is rarely larger, and an entry is a few hundred bytes.
pub(crate) const CAPACITY: usize = 1_000;

/// Shared by every worker of the process (cloning shares it).
#[derive(Clone, Default)]
pub struct ProductTiers(Arc<Inner>);

/// A product's metadata, and when it was read.
type Entry = (Instant, Map<String, Value>);

#[derive(Default)]
struct Inner {
    cache: Mutex<HashMap<String, Entry>>,
    /// `stripe_prices_without_tier_total`.
    without_tier: Counter,
}

impl std::fmt::Debug for ProductTiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductTiers").finish_non_exhaustive()
    }
}

/// A cache is not part of what settings say: any two compare equal.
impl PartialEq for ProductTiers {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ProductTiers {}

impl ProductTiers {
    /// The product's metadata, if it was read within [`TTL`].
    pub(crate) fn get(&self, product_id: &str) -> Option<Map<String, Value>> {
        self.get_at(product_id, Instant::now())
    }

    fn get_at(&self, product_id: &str, now: Instant) -> Option<Map<String, Value>> {
        let cache = self.0.cache.lock().expect("the product cache");
        let (read_at, metadata) = cache.get(product_id)?;
        (now.duration_since(*read_at) < TTL).then(|| metadata.clone())
    }

    pub(crate) fn insert(&self, product_id: &str, metadata: Map<String, Value>) {
        self.insert_at(product_id, metadata, Instant::now());
    }

    fn insert_at(&self, product_id: &str, metadata: Map<String, Value>, now: Instant) {
        let mut cache = self.0.cache.lock().expect("the product cache");
        if cache.len() >= CAPACITY && !cache.contains_key(product_id) {
            cache.retain(|_, (read_at, _)| now.duration_since(*read_at) < TTL);
            // Still full of fresh entries: the oldest makes room.
            if cache.len() >= CAPACITY
                && let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, (read_at, _))| *read_at)
                    .map(|(id, _)| id.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(product_id.to_owned(), (now, metadata));
    }

    /// A subscribed price names no tier, nor does its product: counted and logged (its id
    /// only), and it grants no tier.
    pub(crate) fn price_without_tier(&self, price_id: &str) {
        self.0.without_tier.inc();
        tracing::warn!(price = %price_id, "a subscribed price names no tier, nor does its product");
    }

    /// The counter `/metrics` exposes as `stripe_prices_without_tier_total`.
    pub fn without_tier_counter(&self) -> Counter {
        self.0.without_tier.clone()
    }
}

/// Gives every price of `subscription` that names no tier itself its product's metadata: from
/// the object when Stripe sent it expanded, else from the cache, else fetched (and cached).
/// Without a client, or with a key of the other mode than the subscription's, nothing is
/// fetched and such prices name no tier. An error of Stripe's is returned (a webhook answers
/// 503 and Stripe retries): a tier is never guessed.
pub(crate) async fn expand(
    client: Option<&StripeClient>,
    tiers: &TierSettings,
    subscription: &mut SubscriptionObject,
    livemode: bool,
) -> Result<(), ApiError> {
    let client = client.filter(|client| client.key_livemode() == livemode);
    for item in &mut subscription.items.data {
        let Some(price) = item.price.as_mut() else {
            continue;
        };
        if rules::own_tier(tiers, price).is_some() {
            continue;
        }
        let Some(product) = price.product.as_mut() else {
            continue;
        };
        if product.metadata.is_some() {
            continue;
        }
        if let Some(cached) = tiers.products.get(&product.id) {
            product.metadata = Some(cached);
            continue;
        }
        let Some(client) = client else { continue };
        let fetched = match metadata(client, &product.id).await? {
            Some(metadata) => metadata,
            None => {
                tracing::warn!(
                    product = %product.id,
                    "Stripe answered 404 resource_missing for a subscribed price's product"
                );
                Map::new()
            }
        };
        tiers.products.insert(&product.id, fetched.clone());
        product.metadata = Some(fetched);
    }
    Ok(())
}

/// [`expand`] for a snapshot event's subscription (webhook, catch-up, re-apply), when the
/// deployment keeps the event's mode; any other event is left as it is.
pub(crate) async fn expand_event(
    client: Option<&StripeClient>,
    settings: &SyncSettings,
    event: &mut StripeEvent<'_>,
) -> Result<(), ApiError> {
    match &mut event.object {
        EventObject::Subscription(subscription) if settings.mode.keeps(event.livemode) => {
            expand(client, &settings.tiers, subscription, event.livemode).await
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(tier: &str) -> Map<String, Value> {
        serde_json::json!({ "tier": tier })
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn a_product_is_forgotten_after_its_ttl() {
        let products = ProductTiers::default();
        let t0 = Instant::now();
        products.insert_at("prod_1", metadata("pro"), t0);
        assert_eq!(products.get_at("prod_1", t0), Some(metadata("pro")));
        assert_eq!(products.get_at("prod_1", t0 + TTL), None);
        assert_eq!(products.get_at("prod_2", t0), None);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let products = ProductTiers::default();
        let t0 = Instant::now();
        for i in 0..CAPACITY + 10 {
            products.insert_at(
                &format!("prod_{i}"),
                metadata("pro"),
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(products.0.cache.lock().unwrap().len(), CAPACITY);
        // The oldest went first.
        let last = t0 + Duration::from_secs(1);
        assert_eq!(products.get_at("prod_0", last), None);
        assert!(
            products
                .get_at(&format!("prod_{}", CAPACITY + 9), last)
                .is_some()
        );
    }
}
