//! A stand-in for Stripe's API on 127.0.0.1, so that no test reaches the real Stripe.
//!
//! An actix-web app started inside the test (actix-web is the crate's server already, so no
//! mock-server crate is needed). It serves what `backfill` and `verify` read:
//!
//! - `GET /v1/customers?limit=&starting_after=`: Stripe's list object (`data`, `has_more`,
//!   `url`), newest first, `limit` 1–100, an unknown cursor answered as Stripe does (400);
//! - `GET /v1/customers/{id}`: the customer, `{"id","object":"customer","deleted":true}` for a
//!   deleted one, a 404 `resource_missing` for one it never had;
//! - `GET /v1/events?types[]=&created[gte]=&limit=&starting_after=`: the events it was given,
//!   newest first (by `created`, then the later added first), filtered by type and time;
//! - `POST /v1/customers/{id}` (form-encoded `email`, `name`): applies them to the customer
//!   and answers it; a repeated `Idempotency-Key` replays the first answer without applying
//!   again (`Idempotent-Replayed: true`), and one with other parameters is refused (400), as
//!   Stripe does;
//! - `POST /v1/customers` (form-encoded `email`, `name`, `metadata[k]`): creates a customer;
//!   honours `Idempotency-Key` as Stripe does (a replay answers the first answer with
//!   `Idempotent-Replayed: true`; other parameters under the same key: 400 `idempotency_error`);
//! - `GET /v1/customers/search?query=metadata['k']:'v'`: the live customers whose metadata
//!   matches, newest first, leaving out those created within the search lag (Stripe's search is
//!   eventually consistent);
//! - `GET /jwks.json`: a JWKS the test sets (Supabase's signing keys), no key needed;
//! - 401 without the right `Authorization: Bearer` key;
//! - scripted faults: a 429 with `Retry-After`, a 500, or no answer at all (a hang) for a
//!   chosen page or customer;
//! - `GET /v1/subscriptions?status=all&limit=&starting_after=`, `GET /v1/subscriptions/{id}`
//!   and `GET /v1/products/{id}`: the subscriptions and products a test put (JSON as Stripe
//!   answers them), a 404 `resource_missing` for others;
//! - any other path: Stripe's 404 "Unrecognized request URL", without a code;
//! - a log of every request (path, query, `Stripe-Version`, time), to check what was sent.
//!
//! Customers are kept as small specs and rendered per request in the shape of API version
//! 2026-09-30.endive, so 100,000 of them cost a few megabytes.

pub mod answers;
mod customer;
mod customers_api;
mod events_api;
mod faults;
mod jwks;
mod process;
mod state;
mod subscriptions_api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Service;
use actix_web::{App, HttpServer, web};
use serde_json::Value;

pub use customer::Customer;
pub use faults::{Fault, Target};
pub use process::{BINARY, output};
pub use state::Request;

use customers_api::{create, list, retrieve, search, update};
use events_api::list_events;
use faults::Rule;
use faults::unrecognized_url;
use jwks::jwks;
use state::{Event, Shared};
use subscriptions_api::{list_subscriptions, retrieve_product, retrieve_subscription};

/// The key the double accepts.
pub const TEST_API_KEY: &str = "sk_test_51DoubleKey0000000000000000";

pub struct StripeDouble {
    pub base_url: String,
    state: Shared,
    handle: actix_web::dev::ServerHandle,
}

impl StripeDouble {
    pub async fn start() -> Self {
        let state: Shared = Arc::default();
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the double");
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let clock = data.clone();
            App::new()
                .wrap_fn(move |request, service| {
                    let (offset, fixed) = {
                        let state = clock.lock().unwrap();
                        (state.clock_offset, state.fixed_date)
                    };
                    let answer = service.call(request);
                    async move {
                        let mut response = answer.await?;
                        if offset != 0 || fixed.is_some() {
                            let stripe_now = match fixed {
                                Some(at) => chrono::DateTime::from_timestamp(at, 0).unwrap(),
                                None => chrono::Utc::now() + chrono::Duration::seconds(offset),
                            };
                            let date = stripe_now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                            response.headers_mut().insert(
                                actix_web::http::header::DATE,
                                date.parse().expect("an HTTP date"),
                            );
                        }
                        Ok(response)
                    }
                })
                .app_data(data.clone())
                .route("/v1/customers", web::get().to(list))
                .route("/v1/customers", web::post().to(create))
                .route("/v1/customers/search", web::get().to(search))
                .route("/v1/customers/{id}", web::get().to(retrieve))
                .route("/v1/customers/{id}", web::post().to(update))
                .route("/jwks.json", web::get().to(jwks))
                .route("/v1/events", web::get().to(list_events))
                .route("/v1/subscriptions", web::get().to(list_subscriptions))
                .route(
                    "/v1/subscriptions/{id}",
                    web::get().to(retrieve_subscription),
                )
                .route("/v1/products/{id}", web::get().to(retrieve_product))
                .default_service(web::to(unrecognized_url))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            state,
            handle,
        }
    }

    /// Adds customers at the END of the list (as the oldest so far).
    pub fn add(&self, customers: impl IntoIterator<Item = Customer>) {
        let mut state = self.state.lock().unwrap();
        for customer in customers {
            let position = state.order.len();
            state.order.push(customer.id.clone());
            state.position.insert(customer.id.clone(), position);
            state.customers.insert(customer.id.clone(), customer);
        }
    }

    /// Changes a customer, as an API call or the dashboard would.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Customer)) {
        let mut state = self.state.lock().unwrap();
        change(
            state
                .customers
                .get_mut(id)
                .expect("a customer of the double"),
        );
        state.rendered.remove(id);
    }

    /// Deletes a customer: gone from the list, retrieve answers `{"deleted": true}`.
    pub fn delete(&self, id: &str) {
        let mut state = self.state.lock().unwrap();
        state.customers.remove(id);
        state.deleted.insert(id.to_owned());
        state.order.retain(|c| c != id);
        let order = state.order.clone();
        state.position = order.into_iter().enumerate().map(|(i, c)| (c, i)).collect();
    }

    /// Forgets a customer entirely: retrieve answers 404.
    pub fn forget(&self, id: &str) {
        self.delete(id);
        self.state.lock().unwrap().deleted.remove(id);
    }

    /// Answers the next `times` requests that `target` matches with `fault`.
    pub fn fail(&self, target: Target, fault: Fault, times: usize) {
        self.state.lock().unwrap().rules.push(Rule {
            target,
            fault,
            remaining: times,
        });
    }

    /// Clears every fault, and lets hanging requests go (they are answered with a 500).
    pub fn release_hangs(&self) {
        let mut state = self.state.lock().unwrap();
        state.rules.clear();
        state.hang_generation += 1;
    }

    /// Delays every answer by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    /// Makes Stripe's clock (the `Date` of its answers) run `seconds` ahead of ours.
    pub fn set_clock_offset(&self, seconds: i64) {
        self.state.lock().unwrap().clock_offset = seconds;
    }

    /// Makes every answer's `Date` this Unix second: a fetch is then ordered at the second
    /// before (see the service's `read_no_later_than`), whatever our clock says.
    pub fn set_fixed_date(&self, unix_seconds: i64) {
        self.state.lock().unwrap().fixed_date = Some(unix_seconds);
    }

    /// The most requests that were ever being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// The customers the double holds now (not deleted).
    pub fn customers(&self) -> Vec<Customer> {
        let state = self.state.lock().unwrap();
        state
            .order
            .iter()
            .map(|id| state.customers[id].clone())
            .collect()
    }

    /// Customers created through `POST /v1/customers` are found by search only this long after.
    pub fn set_search_lag(&self, lag: Duration) {
        self.state.lock().unwrap().search_lag = lag;
    }

    /// Forgets every idempotency key, as Stripe does after 24 hours or more.
    pub fn expire_idempotency_keys(&self) {
        self.state.lock().unwrap().idempotency.clear();
    }

    /// The JWKS `GET /jwks.json` answers.
    pub fn set_jwks(&self, jwks: Value) {
        self.state.lock().unwrap().jwks = jwks;
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.base_url)
    }

    /// The `POST /v1/customers` requests received, in order.
    pub fn create_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == "/v1/customers")
            .collect()
    }

    /// The search requests received, in order.
    pub fn search_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/v1/customers/search")
            .collect()
    }

    /// Every request to Stripe's API for the work itself (the JWKS and the start-up check of
    /// `serve` and the commands aside: see [`Self::startup_checks`]).
    pub fn api_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/v1/"))
            .filter(|r| !(r.path == "/v1/customers" && r.page.is_none() && r.method == "GET"))
            .collect()
    }

    /// Waits until `done` holds of the double (10 s at most).
    pub async fn wait_for(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(self) {
            assert!(Instant::now() < deadline, "waited 10 s for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Adds events (their JSON, as Stripe would list them) to the events list.
    pub fn add_events<'a>(&self, events: impl IntoIterator<Item = &'a str>) {
        let mut state = self.state.lock().unwrap();
        for json in events {
            let value: Value = serde_json::from_str(json).expect("event JSON");
            state.events_added += 1;
            let event = Event {
                id: value["id"].as_str().expect("event id").to_owned(),
                event_type: value["type"].as_str().expect("event type").to_owned(),
                created: value["created"].as_i64().expect("event created"),
                sequence: state.events_added,
                json: json.to_owned(),
            };
            state.events.push(event);
        }
        state
            .events
            .sort_by_key(|e| std::cmp::Reverse((e.created, e.sequence)));
    }

    /// The events list requests received, in order.
    pub fn event_list_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/v1/events")
            .collect()
    }

    /// The retrieve requests received for one customer.
    pub fn retrieve_requests(&self, id: &str) -> Vec<Request> {
        let path = format!("/v1/customers/{id}");
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .collect()
    }

    /// The list requests for pages received, in order (the start-up check aside).
    pub fn list_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/v1/customers" && r.page.is_some())
            .collect()
    }

    /// The start-up checks received (`GET /v1/customers?limit=1`).
    pub fn startup_checks(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r.path == "/v1/customers"
                    && r.page.is_none()
                    && r.query.get("limit").map(String::as_str) == Some("1")
            })
            .collect()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

impl StripeDouble {
    /// Adds or replaces a subscription (its JSON as Stripe's API answers it); a new one is
    /// listed as the newest.
    pub fn put_subscription(&self, subscription: Value) {
        let mut state = self.state.lock().unwrap();
        let id = subscription["id"].clone();
        match state.subscriptions.iter_mut().find(|s| s["id"] == id) {
            Some(existing) => *existing = subscription,
            None => state.subscriptions.insert(0, subscription),
        }
    }

    /// Adds or replaces a product.
    pub fn put_product(&self, product: Value) {
        let id = product["id"].as_str().expect("a product id").to_owned();
        self.state.lock().unwrap().products.insert(id, product);
    }

    /// The requests received for one path (`/v1/products/prod_…`), in order.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// The update requests received for one customer, in order (answered or not).
    pub fn update_requests(&self, id: &str) -> Vec<Request> {
        let path = format!("/v1/customers/{id}");
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .collect()
    }

    /// The updates of one customer that were applied: answered 200, not replayed.
    pub fn applied_updates(&self, id: &str) -> Vec<Request> {
        self.update_requests(id)
            .into_iter()
            .filter(|r| r.status == 200 && !r.replayed)
            .collect()
    }

    /// The customer as the double holds it now.
    pub fn customer(&self, id: &str) -> Option<Customer> {
        self.state.lock().unwrap().customers.get(id).cloned()
    }
}
