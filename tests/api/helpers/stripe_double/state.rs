//! What the double holds: customers, events, faults to play, and a log of every request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;

use super::TEST_API_KEY;
use super::customer::Customer;
use super::faults::{Rule, stripe_error};

/// One request the double received.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub query: HashMap<String, String>,
    pub stripe_version: Option<String>,
    pub authorized: bool,
    pub at: Instant,
    /// The list page it asked for (1-based), for list requests (customers or events).
    pub page: Option<usize>,
    /// The query's pairs in order, repeated keys (`types[]`) included.
    pub query_pairs: Vec<(String, String)>,
    /// The answer's status; 0 while (or if never) answered, for updates.
    pub status: u16,
    pub method: String,
    /// A POST's form-encoded body, decoded, in order.
    pub form: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    /// Answered from an earlier request with the same idempotency key: nothing applied.
    pub replayed: bool,
}

#[derive(Default)]
pub(super) struct State {
    /// List order: newest first, as Stripe lists.
    pub(super) order: Vec<String>,
    pub(super) position: HashMap<String, usize>,
    pub(super) customers: HashMap<String, Customer>,
    /// Each customer's JSON, rendered once (until it changes): the double's own CPU is not
    /// what a measurement of `backfill` should measure.
    pub(super) rendered: HashMap<String, String>,
    pub(super) deleted: HashSet<String>,
    pub(super) rules: Vec<Rule>,
    pub(super) requests: Vec<Request>,
    /// Events as Stripe lists them: newest first (by `created`; among equals, the later added).
    pub(super) events: Vec<Event>,
    pub(super) events_added: u64,
    pub(super) hang_generation: u64,
    /// Added to every answer, as a network and Stripe's own time would.
    pub(super) latency: Duration,
    /// Seconds Stripe's clock (the `Date` of every answer) runs ahead of ours; negative: behind.
    pub(super) clock_offset: i64,
    /// The `Date` of every answer, when set (overrides `clock_offset`).
    pub(super) fixed_date: Option<i64>,
    pub(super) in_flight: usize,
    pub(super) max_in_flight: usize,
    /// Answers by idempotency key: the parameters, and the customer as answered.
    pub(super) idempotent: HashMap<String, (Vec<(String, String)>, Value)>,
    /// Creations by idempotency key: the form first used, and the first answer's body.
    pub(super) idempotency: HashMap<String, (Vec<(String, String)>, String)>,
    pub(super) created: u64,
    /// When each customer was created here, for the search lag.
    pub(super) created_at: HashMap<String, Instant>,
    pub(super) search_lag: Duration,
    pub(super) jwks: Value,
    /// Subscriptions as Stripe lists them: newest first.
    pub(super) subscriptions: Vec<Value>,
    /// Products by id.
    pub(super) products: HashMap<String, Value>,
}

/// One event the double lists.
#[derive(Debug, Clone)]
pub(super) struct Event {
    pub(super) id: String,
    pub(super) event_type: String,
    pub(super) created: i64,
    pub(super) sequence: u64,
    pub(super) json: String,
}

pub(super) type Shared = Arc<Mutex<State>>;

/// Logs the request; the 401 to answer unless the key is right.
pub(super) fn refused(
    state: &Shared,
    request: &HttpRequest,
    page: Option<usize>,
) -> Option<HttpResponse> {
    recorded_or_refused(state, request, page, Vec::new()).1
}

/// Records the request with its form body and says where: with two replicas calling at once,
/// "the last request recorded" may already be another one.
pub(super) fn recorded_or_refused(
    state: &Shared,
    request: &HttpRequest,
    page: Option<usize>,
    form: Vec<(String, String)>,
) -> (usize, Option<HttpResponse>) {
    let authorized = request
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TEST_API_KEY}"));
    let query_pairs = query_pairs(request.query_string());
    let query = query_pairs.iter().cloned().collect();
    let mut recorded = state.lock().unwrap();
    recorded.requests.push(Request {
        path: request.path().to_owned(),
        query,
        query_pairs,
        stripe_version: request
            .headers()
            .get("Stripe-Version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        authorized,
        at: Instant::now(),
        page,
        status: if authorized { 200 } else { 401 },
        method: request.method().to_string(),
        form,
        idempotency_key: request
            .headers()
            .get("Idempotency-Key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        replayed: false,
    });
    let index = recorded.requests.len() - 1;
    drop(recorded);
    let refusal = (!authorized).then(|| {
        stripe_error(
            401,
            "invalid_request_error",
            None,
            "Invalid API Key provided: sk_test_********",
        )
    });
    (index, refusal)
}

pub(super) fn set_last_status(state: &Shared, status: u16) {
    if let Some(last) = state.lock().unwrap().requests.last_mut() {
        last.status = status;
    }
}

/// The query string's pairs, decoded, in order.
pub(super) fn query_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://double/?{query}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// Counts a request in flight for as long as it lives, after the double's latency.
pub(super) struct InFlight(Shared);

impl InFlight {
    pub(super) async fn enter(state: &Shared) -> Self {
        let latency = {
            let mut s = state.lock().unwrap();
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
            s.latency
        };
        // The guard first: a request dropped during the latency still leaves the count.
        let guard = Self(state.clone());
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        guard
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().unwrap().in_flight -= 1;
    }
}
