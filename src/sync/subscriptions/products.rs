//! What the tier rules know of products (docs/design.md "Tiers"): a price that names no tier
//! itself takes its product's metadata, fetched once and kept in-process for a while, and a
//! price that names no tier at all is counted.
//!
//! The cache is small and bounded, and forgets an entry after [`TTL`], so that a product's
//! metadata changed in the dashboard is read again within minutes. A hand-written map rather
//! than a caching crate: one lookup and one insert per product is all it does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use serde_json::{Map, Value};

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
