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
//! - a log of every request (path, query, `Stripe-Version`, time), to check what was sent.
//!
//! Customers are kept as small specs and rendered per request in the shape of API version
//! 2026-09-30.endive, so 100,000 of them cost a few megabytes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::Service;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// The key the double accepts.
pub const TEST_API_KEY: &str = "sk_test_51DoubleKey0000000000000000";

/// One customer as the double holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub default_payment_method: Option<String>,
    pub metadata: Value,
}

impl Customer {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            email: Some(format!("{}@example.com", id.to_lowercase())),
            name: Some("Grace Hopper".into()),
            default_payment_method: None,
            metadata: json!({}),
        }
    }

    pub fn for_user(mut self, user_id: impl ToString) -> Self {
        self.metadata["user_id"] = json!(user_id.to_string());
        self
    }

    pub fn email(mut self, email: Option<&str>) -> Self {
        self.email = email.map(str::to_owned);
        self
    }

    pub fn name(mut self, name: Option<&str>) -> Self {
        self.name = name.map(str::to_owned);
        self
    }

    pub fn payment_method(mut self, pm: Option<&str>) -> Self {
        self.default_payment_method = pm.map(str::to_owned);
        self
    }

    pub fn metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata[key] = json!(value);
        self
    }

    /// The customer object as Stripe's API renders it at 2026-09-30.endive.
    pub fn render(&self) -> Value {
        json!({
            "id": self.id,
            "object": "customer",
            "address": null,
            "balance": 0,
            "business_name": null,
            "created": 1_795_018_062,
            "currency": null,
            "customer_account": null,
            "default_source": null,
            "delinquent": false,
            "description": null,
            "discount": null,
            "email": self.email,
            "individual_name": null,
            "invoice_prefix": "7A3E0F9C",
            "invoice_settings": {
                "custom_fields": null,
                "default_payment_method": self.default_payment_method,
                "footer": null,
                "rendering_options": null
            },
            "livemode": false,
            "metadata": self.metadata,
            "name": self.name,
            "next_invoice_sequence": 1,
            "phone": null,
            "preferred_locales": ["en-US"],
            "shipping": null,
            "tax_exempt": "none",
            "test_clock": null
        })
    }
}

/// What a scripted fault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: <secs>`.
    RateLimited { retry_after_secs: u64 },
    /// 500 with Stripe's `api_error` body.
    ServerError,
    /// No answer until [`StripeDouble::release_hangs`] (or the client gives up).
    Hang,
    /// 503, as while Stripe is down.
    Unavailable,
    /// (Creates only) the customer is created and its key stored, then no answer until
    /// released (then a 500): Stripe did the work, the caller never heard.
    HangAfterCreating,
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The list request for page N (1-based: page 1 has no cursor).
    ListPage(usize),
    /// The list requests for page N and every later one.
    ListPagesFrom(usize),
    /// Retrieving this customer.
    Retrieve(String),
    /// The events list request for page N (1-based: page 1 has no cursor).
    EventsPage(usize),
    /// The events list requests for page N and every later one.
    EventsPagesFrom(usize),
    /// Updating this customer.
    Update(String),
    /// `POST /v1/customers`.
    Create,
}

#[derive(Debug, Clone)]
struct Rule {
    target: Target,
    fault: Fault,
    /// How many more requests it applies to.
    remaining: usize,
}

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
struct State {
    /// List order: newest first, as Stripe lists.
    order: Vec<String>,
    position: HashMap<String, usize>,
    customers: HashMap<String, Customer>,
    /// Each customer's JSON, rendered once (until it changes): the double's own CPU is not
    /// what a measurement of `backfill` should measure.
    rendered: HashMap<String, String>,
    deleted: HashSet<String>,
    rules: Vec<Rule>,
    requests: Vec<Request>,
    /// Events as Stripe lists them: newest first (by `created`; among equals, the later added).
    events: Vec<Event>,
    events_added: u64,
    hang_generation: u64,
    /// Added to every answer, as a network and Stripe's own time would.
    latency: Duration,
    /// Seconds Stripe's clock (the `Date` of every answer) runs ahead of ours; negative: behind.
    clock_offset: i64,
    in_flight: usize,
    max_in_flight: usize,
    /// Answers by idempotency key: the parameters, and the customer as answered.
    idempotent: HashMap<String, (Vec<(String, String)>, Value)>,
    /// Creations by idempotency key: the form first used, and the first answer's body.
    idempotency: HashMap<String, (Vec<(String, String)>, String)>,
    created: u64,
    /// When each customer was created here, for the search lag.
    created_at: HashMap<String, Instant>,
    search_lag: Duration,
    jwks: Value,
}

/// One event the double lists.
#[derive(Debug, Clone)]
struct Event {
    id: String,
    event_type: String,
    created: i64,
    sequence: u64,
    json: String,
}

/// What a request asks for, as far as faults care.
enum Asked<'a> {
    CustomersPage(usize),
    Customer(&'a str),
    EventsPage(usize),
    Update(&'a str),
    Create,
}

impl State {
    fn fault_for(&mut self, asked: Asked<'_>) -> Option<Fault> {
        let rule = self.rules.iter_mut().find(|rule| {
            rule.remaining > 0
                && match (&rule.target, &asked) {
                    (Target::ListPage(n), Asked::CustomersPage(p)) => n == p,
                    (Target::ListPagesFrom(n), Asked::CustomersPage(p)) => p >= n,
                    (Target::Retrieve(id), Asked::Customer(asked)) => id == asked,
                    (Target::EventsPage(n), Asked::EventsPage(p)) => n == p,
                    (Target::EventsPagesFrom(n), Asked::EventsPage(p)) => p >= n,
                    (Target::Update(id), Asked::Update(asked)) => id == asked,
                    (Target::Create, Asked::Create) => true,
                    _ => false,
                }
        })?;
        rule.remaining -= 1;
        Some(rule.fault)
    }
}

type Shared = Arc<Mutex<State>>;

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
                    let offset = clock.lock().unwrap().clock_offset;
                    let answer = service.call(request);
                    async move {
                        let mut response = answer.await?;
                        if offset != 0 {
                            let stripe_now = chrono::Utc::now() + chrono::Duration::seconds(offset);
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

    /// Every request to Stripe's API (the JWKS aside).
    pub fn api_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/v1/"))
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

    /// The list requests received, in order.
    pub fn list_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/v1/customers")
            .collect()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn stripe_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> HttpResponse {
    let mut error = json!({
        "type": kind,
        "message": message,
        "request_log_url": "https://dashboard.stripe.com/test/logs/req_double",
    });
    if let Some(code) = code {
        error["code"] = json!(code);
        error["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            code.replace('_', "-")
        ));
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .insert_header(("Request-Id", "req_double"))
        .json(json!({ "error": error }))
}

fn fault_response(fault: Fault) -> HttpResponse {
    match fault {
        Fault::RateLimited { retry_after_secs } => {
            let mut response = stripe_error(
                429,
                "invalid_request_error",
                Some("rate_limit"),
                "Request rate limit exceeded. Learn more about rate limits here \
                 https://stripe.com/docs/rate-limits.",
            );
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_str(&retry_after_secs.to_string())
                    .unwrap(),
            );
            response
        }
        Fault::ServerError | Fault::Hang | Fault::HangAfterCreating => stripe_error(
            500,
            "api_error",
            None,
            "An unknown error occurred while processing your request.",
        ),
        Fault::Unavailable => {
            stripe_error(503, "api_error", None, "Stripe is temporarily unavailable.")
        }
    }
}

/// Logs the request; the 401 to answer unless the key is right.
fn refused(state: &Shared, request: &HttpRequest, page: Option<usize>) -> Option<HttpResponse> {
    recorded_or_refused(state, request, page, Vec::new()).1
}

/// Records the request with its form body and says where: with two replicas calling at once,
/// "the last request recorded" may already be another one.
fn recorded_or_refused(
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

fn set_last_status(state: &Shared, status: u16) {
    if let Some(last) = state.lock().unwrap().requests.last_mut() {
        last.status = status;
    }
}

/// Waits until the hangs are released (then answers 500), or 10 minutes.
async fn hang(state: &Shared) -> HttpResponse {
    let generation = state.lock().unwrap().hang_generation;
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline && state.lock().unwrap().hang_generation == generation {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fault_response(Fault::ServerError)
}

async fn list(request: HttpRequest, state: web::Data<Shared>) -> HttpResponse {
    let _in_flight = InFlight::enter(&state).await;
    let query = web::Query::<HashMap<String, String>>::from_query(request.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let limit: usize = match query.get("limit").map(|l| l.parse()) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                "Invalid integer: limit must be between 1 and 100",
            );
        }
    };
    let start = {
        let state = state.lock().unwrap();
        match query.get("starting_after") {
            None => Ok(0),
            Some(cursor) => state
                .position
                .get(cursor)
                .map(|p| p + 1)
                .ok_or_else(|| cursor.clone()),
        }
    };
    let start = match start {
        Ok(start) => start,
        Err(cursor) => {
            return stripe_error(
                400,
                "invalid_request_error",
                Some("resource_missing"),
                &format!("No such customer: '{cursor}'"),
            );
        }
    };
    let page = start / limit + 1;
    if let Some(response) = refused(&state, &request, Some(page)) {
        return response;
    }
    let fault = state.lock().unwrap().fault_for(Asked::CustomersPage(page));
    match fault {
        Some(Fault::Hang) => return hang(&state).await,
        Some(fault) => {
            let response = fault_response(fault);
            set_last_status(&state, response.status().as_u16());
            return response;
        }
        None => {}
    }
    let body = {
        let mut guard = state.lock().unwrap();
        let state = &mut *guard;
        let end = (start + limit).min(state.order.len());
        let mut body = String::from(r#"{"object":"list","data":["#);
        for (n, id) in state.order[start.min(end)..end].iter().enumerate() {
            if n > 0 {
                body.push(',');
            }
            let customers = &state.customers;
            let json = state
                .rendered
                .entry(id.clone())
                .or_insert_with(|| customers[id].render().to_string());
            body.push_str(json);
        }
        body.push_str(&format!(
            r#"],"has_more":{},"url":"/v1/customers"}}"#,
            end < state.order.len()
        ));
        body
    };
    HttpResponse::Ok()
        .insert_header(("Request-Id", "req_double"))
        .content_type("application/json")
        .body(body)
}

/// The query string's pairs, decoded, in order.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://double/?{query}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

async fn list_events(request: HttpRequest, state: web::Data<Shared>) -> HttpResponse {
    let _in_flight = InFlight::enter(&state).await;
    let pairs = query_pairs(request.query_string());
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let types: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "types[]")
        .map(|(_, v)| v.clone())
        .collect();
    let limit: usize = match get("limit").map(|l| l.parse()) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                "Invalid integer: limit must be between 1 and 100",
            );
        }
    };
    let gte: i64 = match get("created[gte]").map(|g| g.parse()) {
        None => i64::MIN,
        Some(Ok(t)) => t,
        Some(Err(_)) => {
            return stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                "Invalid integer: created[gte]",
            );
        }
    };
    let matching: Vec<Event> = {
        let state = state.lock().unwrap();
        state
            .events
            .iter()
            .filter(|e| e.created >= gte && (types.is_empty() || types.contains(&e.event_type)))
            .cloned()
            .collect()
    };
    let start = match get("starting_after") {
        None => 0,
        Some(cursor) => match matching.iter().position(|e| e.id == cursor) {
            Some(p) => p + 1,
            None => {
                return stripe_error(
                    400,
                    "invalid_request_error",
                    Some("resource_missing"),
                    &format!("No such event: '{cursor}'"),
                );
            }
        },
    };
    let page = start / limit + 1;
    if let Some(response) = refused(&state, &request, Some(page)) {
        return response;
    }
    let fault = state.lock().unwrap().fault_for(Asked::EventsPage(page));
    match fault {
        Some(Fault::Hang) => return hang(&state).await,
        Some(fault) => {
            let response = fault_response(fault);
            set_last_status(&state, response.status().as_u16());
            return response;
        }
        None => {}
    }
    let end = (start + limit).min(matching.len());
    let data: Vec<&str> = matching[start.min(end)..end]
        .iter()
        .map(|e| e.json.as_str())
        .collect();
    let body = format!(
        r#"{{"object":"list","data":[{}],"has_more":{},"url":"/v1/events"}}"#,
        data.join(","),
        end < matching.len()
    );
    HttpResponse::Ok()
        .insert_header(("Request-Id", "req_double"))
        .content_type("application/json")
        .body(body)
}

/// Counts a request in flight for as long as it lives, after the double's latency.
struct InFlight(Shared);

impl InFlight {
    async fn enter(state: &Shared) -> Self {
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

async fn retrieve(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<Shared>,
) -> HttpResponse {
    let id = path.into_inner();
    let _in_flight = InFlight::enter(&state).await;
    if let Some(response) = refused(&state, &request, None) {
        return response;
    }
    let fault = state.lock().unwrap().fault_for(Asked::Customer(&id));
    match fault {
        Some(Fault::Hang) => return hang(&state).await,
        Some(fault) => {
            let response = fault_response(fault);
            set_last_status(&state, response.status().as_u16());
            return response;
        }
        None => {}
    }
    let state_now = state.lock().unwrap();
    if let Some(customer) = state_now.customers.get(&id) {
        return HttpResponse::Ok().json(customer.render());
    }
    if state_now.deleted.contains(&id) {
        return HttpResponse::Ok().json(json!({"id": id, "object": "customer", "deleted": true}));
    }
    drop(state_now);
    set_last_status(&state, 404);
    stripe_error(
        404,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such customer: '{id}'"),
    )
}

/// `POST /v1/customers/{id}`: Stripe's update, with its idempotency.
async fn update(
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<Shared>,
) -> HttpResponse {
    let id = path.into_inner();
    let _in_flight = InFlight::enter(&state).await;
    let form = query_pairs(std::str::from_utf8(&body).unwrap_or_default());
    let (index, refusal) = recorded_or_refused(&state, &request, None, form.clone());
    if let Some(response) = refusal {
        return response;
    }
    state.lock().unwrap().requests[index].status = 0;
    let answer = |status: u16, replayed: bool, response: HttpResponse| {
        let mut state = state.lock().unwrap();
        state.requests[index].status = status;
        state.requests[index].replayed = replayed;
        response
    };
    let fault = state.lock().unwrap().fault_for(Asked::Update(&id));
    match fault {
        Some(Fault::Hang) => {
            let response = hang(&state).await;
            return answer(500, false, response);
        }
        Some(fault) => {
            let response = fault_response(fault);
            let status = response.status().as_u16();
            return answer(status, false, response);
        }
        None => {}
    }
    let key = request
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut guard = state.lock().unwrap();
    if let Some((params, customer)) = key.as_ref().and_then(|k| guard.idempotent.get(k)) {
        let response = if *params == form {
            HttpResponse::Ok()
                .insert_header(("Idempotent-Replayed", "true"))
                .json(customer)
        } else {
            stripe_error(
                400,
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters they \
                 were first used with.",
            )
        };
        let status = response.status().as_u16();
        drop(guard);
        return answer(status, status == 200, response);
    }
    let Some(customer) = guard.customers.get_mut(&id) else {
        drop(guard);
        let response = stripe_error(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such customer: '{id}'"),
        );
        return answer(404, false, response);
    };
    for (field, value) in &form {
        match field.as_str() {
            "email" => customer.email = Some(value.clone()),
            "name" => customer.name = Some(value.clone()),
            _ => {}
        }
    }
    let rendered = customer.render();
    guard.rendered.remove(&id);
    if let Some(key) = key {
        guard.idempotent.insert(key, (form, rendered.clone()));
    }
    drop(guard);
    answer(200, false, HttpResponse::Ok().json(rendered))
}

impl StripeDouble {
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

async fn jwks(request: HttpRequest, state: web::Data<Shared>) -> HttpResponse {
    let _ = refused(&state, &request, None);
    set_last_status(&state, 200);
    let jwks = state.lock().unwrap().jwks.clone();
    HttpResponse::Ok().json(if jwks.is_null() {
        json!({ "keys": [] })
    } else {
        jwks
    })
}

async fn create(request: HttpRequest, body: web::Bytes, state: web::Data<Shared>) -> HttpResponse {
    let _in_flight = InFlight::enter(&state).await;
    let form = query_pairs(std::str::from_utf8(&body).unwrap_or_default());
    if let (_, Some(response)) = recorded_or_refused(&state, &request, None, form.clone()) {
        return response;
    }
    let key = request
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let replay = {
        let guard = state.lock().unwrap();
        key.as_ref()
            .and_then(|key| guard.idempotency.get(key))
            .cloned()
    };
    if let Some((first_form, first_body)) = replay {
        if first_form != form {
            set_last_status(&state, 400);
            return stripe_error(
                400,
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters they \
                 were first used with.",
            );
        }
        if let Some(last) = state.lock().unwrap().requests.last_mut() {
            last.replayed = true;
        }
        return HttpResponse::Ok()
            .insert_header(("Idempotent-Replayed", "true"))
            .insert_header(("Request-Id", "req_double"))
            .content_type("application/json")
            .body(first_body);
    }
    let fault = state.lock().unwrap().fault_for(Asked::Create);
    match fault {
        Some(Fault::Hang) => return hang(&state).await,
        Some(Fault::HangAfterCreating) | None => {}
        Some(fault) => {
            let response = fault_response(fault);
            set_last_status(&state, response.status().as_u16());
            return response;
        }
    }
    let body = {
        let mut guard = state.lock().unwrap();
        guard.created += 1;
        let id = format!(
            "cus_Dbl{:04}{}",
            guard.created,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut customer = Customer::new(&id).email(None).name(None);
        for (field, value) in &form {
            match field.as_str() {
                "email" => customer.email = Some(value.clone()),
                "name" => customer.name = Some(value.clone()),
                other => {
                    if let Some(key) = other
                        .strip_prefix("metadata[")
                        .and_then(|k| k.strip_suffix(']'))
                    {
                        customer.metadata[key] = json!(value);
                    }
                }
            }
        }
        let body = customer.render().to_string();
        if let Some(key) = &key {
            guard.idempotency.insert(key.clone(), (form, body.clone()));
        }
        guard.created_at.insert(id.clone(), Instant::now());
        drop(guard);
        self_add(&state, customer);
        body
    };
    if fault == Some(Fault::HangAfterCreating) {
        return hang(&state).await;
    }
    HttpResponse::Ok()
        .insert_header(("Request-Id", "req_double"))
        .content_type("application/json")
        .body(body)
}

/// Adds a customer as the newest (the front of the list).
fn self_add(state: &Shared, customer: Customer) {
    let mut state = state.lock().unwrap();
    state.order.insert(0, customer.id.clone());
    state.customers.insert(customer.id.clone(), customer);
    let order = state.order.clone();
    state.position = order.into_iter().enumerate().map(|(i, c)| (c, i)).collect();
}

/// Reads `metadata['key']:'value'`, the one query form the service sends.
fn metadata_query(query: &str) -> Option<(String, String)> {
    let rest = query.trim().strip_prefix("metadata['")?;
    let (key, rest) = rest.split_once("']:'")?;
    let value = rest.strip_suffix('\'')?;
    Some((key.replace("\\'", "'"), value.to_owned()))
}

async fn search(request: HttpRequest, state: web::Data<Shared>) -> HttpResponse {
    let _in_flight = InFlight::enter(&state).await;
    if let Some(response) = refused(&state, &request, None) {
        return response;
    }
    let pairs = query_pairs(request.query_string());
    let Some((key, value)) = pairs
        .iter()
        .find(|(k, _)| k == "query")
        .and_then(|(_, q)| metadata_query(q))
    else {
        set_last_status(&state, 400);
        return stripe_error(
            400,
            "invalid_request_error",
            None,
            "Search query is malformed.",
        );
    };
    let data: Vec<Value> = {
        let state = state.lock().unwrap();
        state
            .order
            .iter()
            .map(|id| &state.customers[id])
            .filter(|c| c.metadata[&key] == json!(value))
            .filter(|c| {
                state
                    .created_at
                    .get(&c.id)
                    .is_none_or(|at| at.elapsed() >= state.search_lag)
            })
            .map(Customer::render)
            .collect()
    };
    HttpResponse::Ok()
        .insert_header(("Request-Id", "req_double"))
        .json(json!({
            "object": "search_result",
            "data": data,
            "has_more": false,
            "next_page": null,
            "url": "/v1/customers/search"
        }))
}

/// The built binary, as an operator runs it against a database and Stripe (the double).
pub const BINARY: &str = env!("CARGO_BIN_EXE_stripe-customer-sync");

impl StripeDouble {
    /// `stripe-customer-sync <args>` against `database_url` and this double, in `workdir`
    /// (where the default checkpoint lands; away from any developer `.env`).
    pub fn command(
        &self,
        database_url: &str,
        workdir: &std::path::Path,
        args: &[&str],
    ) -> std::process::Command {
        let mut command = std::process::Command::new(BINARY);
        command
            .args(args)
            .current_dir(workdir)
            .env("DATABASE_URL", database_url)
            .env("STRIPE_API_KEY", TEST_API_KEY)
            .env("STRIPE_API_BASE", &self.base_url)
            .env("LOG_FORMAT", "json")
            .env_remove("USER_ID_METADATA_KEY")
            .env_remove("RUST_LOG");
        command
    }
}

/// Runs a command to its end off the async runtime (the double answers meanwhile).
pub async fn output(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("run the binary"))
        .await
        .unwrap()
}
