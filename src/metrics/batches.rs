//! The metrics of group commit: how many events each batch took, and how many of them the
//! batch left to the single-event path.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug)]
pub struct BatchMetrics {
    size: Histogram,
    one_by_one: Counter,
}

impl BatchMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            // 1 … 64 events
            size: Histogram::new(exponential_buckets(1.0, 2.0, 7)),
            one_by_one: Counter::default(),
        };
        registry.register(
            "stripe_webhook_batch_events",
            "Events applied together by one snapshot read and one write (group commit), per batch",
            metrics.size.clone(),
        );
        registry.register(
            "stripe_webhook_events_applied_one_by_one",
            "Events a batch left to the single-event path: a second event of one customer or user in the batch, a guard that no longer held at the write, or a batch the database refused",
            metrics.one_by_one.clone(),
        );
        metrics
    }

    /// A batch of `events` was taken together.
    pub fn batch(&self, events: usize) {
        self.size.observe(events as f64);
    }

    /// An event was applied on its own after its batch.
    pub fn applied_one_by_one(&self) {
        self.one_by_one.inc();
    }
}
