//! What `GET /metrics` exposes, in Prometheus' text format.

pub(crate) mod batches;
pub(crate) mod customers;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sqlx::PgPool;

use crate::domain::outcome::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    r#type: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PushLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    result: &'static str,
}

/// How a background catch-up run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUpResult {
    Completed,
    Failed,
    /// Another replica held the advisory lock: this one did nothing.
    Locked,
}

impl CatchUpResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Locked => "locked",
        }
    }
}

/// The service's metrics; one instance per process, shared by every worker.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    signature_failures: Family<ReasonLabels, Counter>,
    request_duration: Family<StatusLabels, Histogram>,
    event_lag: Histogram,
    pool_connections: Family<PoolLabels, Gauge>,
    catch_up_runs: Family<RunLabels, Counter>,
    catch_up_events: Family<OutcomeLabels, Counter>,
    catch_up_last_completed: Gauge,
    /// `created` (Unix seconds) of the newest event this process knows to be in the ledger;
    /// 0 until it knows one.
    newest_recorded: AtomicI64,
    newest_recorded_lag: Gauge,
    profile_pushes: Family<PushLabels, Counter>,
    profile_push_queue_depth: Gauge,
    profile_push_oldest_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    stripe_api_unreachable_at_start: Gauge,
    ledger_rows_removed: Counter,
    ledger_size: Gauge,
    /// `POST /customers` and `ensure-customer`.
    pub customers: customers::CustomerMetrics,
    /// Group commit of webhook events.
    pub batches: batches::BatchMetrics,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~8 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Counter::default(), Counter::default())
    }
}

impl Metrics {
    /// The metrics, with the two counts the tier rules keep: subscribed prices that name no
    /// tier (`TierSettings::products`) and owners' tiers not computed after a customer's link
    /// (`TierSettings::recompute_failures`).
    pub fn new(prices_without_tier: Counter, tier_recomputes_failed: Counter) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "stripe_prices_without_tier",
            "Subscribed prices applied that name no tier (neither their metadata, lookup key nor product's metadata): they grant none",
            prices_without_tier,
        );
        registry.register(
            "stripe_tier_recomputes_failed",
            "Owners' tiers not computed from kept subscriptions after a customer's link (logged; the owner keeps its tier until the customer's next subscription event)",
            tier_recomputes_failed,
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "stripe_webhook_events",
            "Verified events handled, by event type and outcome (processed, duplicate, ignored, skipped)",
            events.clone(),
        );
        let signature_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "stripe_webhook_signature_failures",
            "Deliveries refused before decoding, by reason (the error code answered)",
            signature_failures.clone(),
        );
        let request_duration = Family::<StatusLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "stripe_webhook_request_duration_seconds",
            "Time from request to response of POST /webhooks/stripe, by HTTP status",
            request_duration.clone(),
        );
        // Seconds to ~3 days: Stripe retries for up to three days.
        let event_lag = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        registry.register(
            "stripe_webhook_event_lag_seconds",
            "Age of an event (now minus its Stripe `created`) when it reached the ledger",
            event_lag.clone(),
        );
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "database_pool_connections",
            "Connections of the database pool, by state (in_use, idle)",
            pool_connections.clone(),
        );
        let catch_up_runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "stripe_catch_up_runs",
            "Background catch-up runs, by result (completed, failed, locked: another replica held the advisory lock)",
            catch_up_runs.clone(),
        );
        let catch_up_events = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "stripe_catch_up_events",
            "Events that catch-up found missing from the ledger and applied, by outcome (processed, skipped, ignored, duplicate)",
            catch_up_events.clone(),
        );
        let catch_up_last_completed = Gauge::default();
        registry.register(
            "stripe_catch_up_last_completed_timestamp_seconds",
            "When this process last completed a catch-up run (Unix seconds); 0 before the first",
            catch_up_last_completed.clone(),
        );
        let newest_recorded_lag = Gauge::default();
        registry.register(
            "stripe_newest_recorded_event_lag_seconds",
            "Age of the newest event known to be in the ledger (now minus its Stripe `created`), from webhooks and catch-up; absent until one is known",
            newest_recorded_lag.clone(),
        );
        let profile_pushes = Family::<PushLabels, Counter>::default();
        registry.register(
            "stripe_profile_pushes",
            "Profile changes taken from public.stripe_customer_outbox, by outcome (pushed, unchanged: Stripe had the values, not_linked, other_mode, retrying: 429/5xx/no answer, rejected: another 4xx, backing_off: the failed values still wait)",
            profile_pushes.clone(),
        );
        let profile_push_queue_depth = Gauge::default();
        registry.register(
            "stripe_profile_push_queue_depth",
            "Users in public.stripe_customer_outbox with a change not yet pushed to Stripe (as of this process's last look: every sweep and after each batch)",
            profile_push_queue_depth.clone(),
        );
        let ledger_rows_removed = Counter::default();
        registry.register(
            "stripe_ledger_rows_removed",
            "Ledger rows removed by LEDGER_RETENTION",
            ledger_rows_removed.clone(),
        );
        let ledger_size = Gauge::default();
        registry.register(
            "stripe_ledger_size_bytes",
            "The ledger's size on disk (table, TOAST, indexes), read at each retention pass",
            ledger_size.clone(),
        );
        let stripe_api_unreachable_at_start = Gauge::default();
        registry.register(
            "stripe_api_unreachable_at_start",
            "1 when Stripe's API did not answer serve's start-up check (serve started all the same)",
            stripe_api_unreachable_at_start.clone(),
        );
        let profile_push_oldest_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "stripe_profile_push_oldest_age_seconds",
            "How long the oldest change not yet pushed to Stripe has waited (as of this process's last look); 0 when none waits",
            profile_push_oldest_age.clone(),
        );
        let customers = customers::CustomerMetrics::register(&mut registry);
        let batches = batches::BatchMetrics::register(&mut registry);
        Self {
            customers,
            batches,
            registry,
            events,
            signature_failures,
            request_duration,
            event_lag,
            pool_connections,
            catch_up_runs,
            catch_up_events,
            catch_up_last_completed,
            newest_recorded: AtomicI64::new(0),
            newest_recorded_lag,
            profile_pushes,
            profile_push_queue_depth,
            profile_push_oldest_age,
            stripe_api_unreachable_at_start,
            ledger_rows_removed,
            ledger_size,
        }
    }
}

impl Metrics {
    pub fn event_handled(&self, event_type: &str, outcome: Outcome, event_created: i64, now: i64) {
        let labels = EventLabels {
            r#type: event_type.to_owned(),
            outcome: outcome.status(),
        };
        self.events.get_or_create(&labels).inc();
        self.event_recorded(event_created);
        if outcome != Outcome::Duplicate {
            self.event_lag
                .observe(now.saturating_sub(event_created).max(0) as f64);
        }
    }

    /// An event created at `created` (Unix seconds) is in the ledger.
    pub fn event_recorded(&self, created: i64) {
        self.newest_recorded.fetch_max(created, Ordering::Relaxed);
    }

    /// A background catch-up run ended; `applied` counts its applied events by outcome status.
    pub fn catch_up_finished<'a>(
        &self,
        result: CatchUpResult,
        applied: impl IntoIterator<Item = (&'a str, u64)>,
        now: i64,
    ) {
        self.catch_up_runs
            .get_or_create(&RunLabels {
                result: result.as_str(),
            })
            .inc();
        for (outcome, count) in applied {
            self.catch_up_events
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.to_owned(),
                })
                .inc_by(count);
        }
        if result == CatchUpResult::Completed {
            self.catch_up_last_completed.set(now);
        }
    }

    /// One change taken from the outbox ended with `outcome` (see `profile_push::Outcome`).
    pub fn profile_push_finished(&self, outcome: &'static str) {
        self.profile_pushes
            .get_or_create(&PushLabels { outcome })
            .inc();
    }

    /// What the outbox holds now.
    pub fn profile_push_queue(&self, depth: i64, oldest_age_secs: f64) {
        self.profile_push_queue_depth.set(depth);
        self.profile_push_oldest_age.set(oldest_age_secs);
    }

    /// A retention pass removed `rows` ledger rows.
    pub fn ledger_rows_removed(&self, rows: u64) {
        self.ledger_rows_removed.inc_by(rows);
    }

    /// The ledger's size on disk, in bytes.
    pub fn ledger_size(&self, bytes: i64) {
        self.ledger_size.set(bytes);
    }

    /// Stripe's API did not answer `serve`'s start-up check.
    pub fn stripe_api_unreachable_at_start(&self) {
        self.stripe_api_unreachable_at_start.set(1);
    }

    pub fn signature_rejected(&self, reason: &'static str) {
        self.signature_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn request_finished(&self, status: u16, elapsed: Duration) {
        self.request_duration
            .get_or_create(&StatusLabels { status })
            .observe(elapsed.as_secs_f64());
    }

    /// The exposition text, with the pool gauges and the newest event's lag read now.
    pub fn render(&self, pool: &PgPool) -> String {
        let newest = self.newest_recorded.load(Ordering::Relaxed);
        if newest > 0 {
            let now = chrono::Utc::now().timestamp();
            self.newest_recorded_lag
                .set(now.saturating_sub(newest).max(0));
        }
        let idle = pool.num_idle() as i64;
        let size = i64::from(pool.size());
        self.pool_connections
            .get_or_create(&PoolLabels { state: "idle" })
            .set(idle);
        self.pool_connections
            .get_or_create(&PoolLabels { state: "in_use" })
            .set((size - idle).max(0));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::SkipReason;

    fn render(metrics: &Metrics) -> String {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://localhost/none")
            .unwrap();
        metrics.render(&pool)
    }

    #[tokio::test]
    async fn events_are_counted_by_type_and_outcome() {
        let metrics = Metrics::default();
        metrics.event_handled("customer.created", Outcome::Processed, 0, 5);
        metrics.event_handled("customer.created", Outcome::Processed, 0, 5);
        metrics.event_handled(
            "customer.updated",
            Outcome::Skipped(SkipReason::StaleEvent),
            0,
            5,
        );
        let text = render(&metrics);
        assert!(
            text.contains(
                r#"stripe_webhook_events_total{type="customer.created",outcome="processed"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"stripe_webhook_events_total{type="customer.updated",outcome="skipped"} 1"#
        ));
    }

    #[tokio::test]
    async fn catch_up_runs_and_their_events_are_counted_and_the_newest_event_ages() {
        let metrics = Metrics::default();
        metrics.catch_up_finished(CatchUpResult::Locked, [], 100);
        metrics.catch_up_finished(
            CatchUpResult::Completed,
            [("processed", 3), ("skipped", 1)],
            200,
        );
        metrics.event_recorded(chrono::Utc::now().timestamp() - 60);
        metrics.event_recorded(1);
        let text = render(&metrics);
        for line in [
            r#"stripe_catch_up_runs_total{result="locked"} 1"#,
            r#"stripe_catch_up_runs_total{result="completed"} 1"#,
            r#"stripe_catch_up_events_total{outcome="processed"} 3"#,
            "stripe_catch_up_last_completed_timestamp_seconds 200",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        let lag: i64 = text
            .lines()
            .find_map(|l| l.strip_prefix("stripe_newest_recorded_event_lag_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((60..65).contains(&lag), "{lag}");
    }

    #[tokio::test]
    async fn profile_pushes_are_counted_by_outcome_and_the_queue_shows() {
        let metrics = Metrics::default();
        metrics.profile_push_finished("pushed");
        metrics.profile_push_finished("retrying");
        metrics.profile_push_finished("retrying");
        metrics.profile_push_queue(3, 12.5);
        let text = render(&metrics);
        for line in [
            r#"stripe_profile_pushes_total{outcome="pushed"} 1"#,
            r#"stripe_profile_pushes_total{outcome="retrying"} 2"#,
            "stripe_profile_push_queue_depth 3",
            "stripe_profile_push_oldest_age_seconds 12.5",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[tokio::test]
    async fn signature_failures_are_counted_by_reason() {
        let metrics = Metrics::default();
        metrics.signature_rejected("invalid_signature");
        let text = render(&metrics);
        assert!(
            text.contains(
                r#"stripe_webhook_signature_failures_total{reason="invalid_signature"} 1"#
            ),
            "{text}"
        );
    }
}
