//! The metrics of `POST /customers` (and `ensure-customer`): every call by outcome, and every
//! call to Stripe it made by outcome.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StripeCallLabels {
    call: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Default)]
pub struct CustomerMetrics {
    requests: Family<RequestLabels, Counter>,
    stripe_calls: Family<StripeCallLabels, Counter>,
}

impl CustomerMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "stripe_customer_requests",
            "Calls of POST /customers and ensure-customer, by outcome (existing, created, invalid_token, forbidden, bad_request, unknown_user, missing_email, stripe_refused, unavailable)",
            metrics.requests.clone(),
        );
        registry.register(
            "stripe_customer_api_calls",
            "Stripe API calls made to create users' customers, by call (create, search) and outcome (created, replayed, found, not_found, refused, failed)",
            metrics.stripe_calls.clone(),
        );
        metrics
    }

    /// A call of `POST /customers` or `ensure-customer` ended with `outcome`.
    pub fn request(&self, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { outcome })
            .inc();
    }

    /// A call to Stripe (`create`, `search`) ended with `outcome`.
    pub fn stripe_call(&self, call: &'static str, outcome: &'static str) {
        self.stripe_calls
            .get_or_create(&StripeCallLabels { call, outcome })
            .inc();
    }
}
