//! Scripted faults, and the error answers Stripe gives.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;
use std::time::{Duration, Instant};

use super::state::{Shared, State, refused, set_last_status};

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
    /// 404 for the URL itself, as Stripe answers a path it does not know (and a mock without
    /// that API).
    UnknownUrl,
    /// (Creates only) the customer is created and its key stored, then no answer until
    /// released (then a 500): Stripe did the work, the caller never heard.
    HangAfterCreating,
    /// Exactly this answer: one of Stripe's own (a 404 `resource_missing`, a 401), or what
    /// something in its place answers (a proxy's HTML page, a cut-off body).
    Canned {
        status: u16,
        content_type: &'static str,
        body: &'static str,
    },
    /// Answered normally, this much later (a slow Stripe).
    Delay(Duration),
    /// 400 `invalid_request_error` `email_invalid` on `email`, its message quoting the email,
    /// as Stripe refuses an address it finds invalid.
    InvalidEmail,
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
    /// `GET /v1/customers/search`.
    Search,
    /// The start-up check: `GET /v1/customers?limit=1`.
    StartupCheck,
    /// `GET /jwks.json` (the project's JWKS, not Stripe's).
    Jwks,
    /// Retrieving this subscription.
    Subscription(String),
    /// The subscriptions list request for page N (1-based).
    SubscriptionsPage(usize),
    /// Retrieving this product.
    Product(String),
}

#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub(super) target: Target,
    pub(super) fault: Fault,
    /// How many more requests it applies to.
    pub(super) remaining: usize,
}

/// What a request asks for, as far as faults care.
pub(super) enum Asked<'a> {
    CustomersPage(usize),
    Customer(&'a str),
    EventsPage(usize),
    Update(&'a str),
    Create,
    Search,
    StartupCheck,
    Jwks,
    Subscription(&'a str),
    SubscriptionsPage(usize),
    Product(&'a str),
}

impl State {
    pub(super) fn fault_for(&mut self, asked: Asked<'_>) -> Option<Fault> {
        let rule = self.rules.iter_mut().find(|rule| {
            rule.remaining > 0
                && match (&rule.target, &asked) {
                    (Target::ListPage(n), Asked::CustomersPage(p)) => n == p,
                    (Target::ListPagesFrom(n), Asked::CustomersPage(p)) => p >= n,
                    (Target::Retrieve(id), Asked::Customer(asked)) => id == asked,
                    (Target::EventsPage(n), Asked::EventsPage(p)) => n == p,
                    (Target::EventsPagesFrom(n), Asked::EventsPage(p)) => p >= n,
                    (Target::Update(id), Asked::Update(asked)) => id == asked,
                    (Target::Subscription(id), Asked::Subscription(asked)) => id == asked,
                    (Target::SubscriptionsPage(n), Asked::SubscriptionsPage(p)) => n == p,
                    (Target::Product(id), Asked::Product(asked)) => id == asked,
                    (Target::Create, Asked::Create)
                    | (Target::Search, Asked::Search)
                    | (Target::StartupCheck, Asked::StartupCheck)
                    | (Target::Jwks, Asked::Jwks) => true,
                    _ => false,
                }
        })?;
        rule.remaining -= 1;
        Some(rule.fault)
    }
}

pub(super) fn stripe_error(
    status: u16,
    kind: &str,
    code: Option<&str>,
    message: &str,
) -> HttpResponse {
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

pub(super) fn fault_response(fault: Fault) -> HttpResponse {
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
        Fault::Canned {
            status,
            content_type,
            body,
        } => HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .insert_header(("Request-Id", "req_double"))
            .content_type(content_type)
            .body(body),
        Fault::InvalidEmail => HttpResponse::BadRequest()
            .insert_header(("Request-Id", "req_double_refused"))
            .json(json!({"error": {
                "type": "invalid_request_error",
                "code": "email_invalid",
                "param": "email",
                "message": "Invalid email address: refused@example.com",
            }})),
        Fault::UnknownUrl => stripe_error(
            404,
            "invalid_request_error",
            None,
            "Unrecognized request URL (GET: /v1/v1/customers/search). Please see \
             https://stripe.com/docs or we can help at https://support.stripe.com/.",
        ),
        // Answered normally after the delay, never here.
        Fault::Delay(_) => stripe_error(500, "api_error", None, "a delay is not an answer"),
    }
}

/// The answer to a request a fault was set for (`None`: no fault, answer normally); a hang
/// answers only when released.
pub(super) async fn answer_fault(state: &Shared, fault: Option<Fault>) -> Option<HttpResponse> {
    match fault? {
        Fault::Hang => Some(hang(state).await),
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
        fault => {
            let response = fault_response(fault);
            set_last_status(state, response.status().as_u16());
            Some(response)
        }
    }
}

/// Waits until the hangs are released (then answers 500), or 10 minutes.
pub(super) async fn hang(state: &Shared) -> HttpResponse {
    let generation = state.lock().unwrap().hang_generation;
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline && state.lock().unwrap().hang_generation == generation {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fault_response(Fault::ServerError)
}

/// What Stripe answers a path its API does not have: a 404 without a code.
pub(super) async fn unrecognized_url(request: actix_web::HttpRequest) -> HttpResponse {
    stripe_error(
        404,
        "invalid_request_error",
        None,
        &format!(
            "Unrecognized request URL ({}: {}). Please see https://stripe.com/docs or we can \
             help at https://support.stripe.com/.",
            request.method(),
            request.path()
        ),
    )
}

/// What is answered before a request's own answer, if anything: the 401 of a wrong key, or the
/// fault a test set for what is asked.
pub(super) async fn refused_or_faulted(
    state: &Shared,
    request: &HttpRequest,
    asked: Asked<'_>,
) -> Option<HttpResponse> {
    if let Some(response) = refused(state, request, None) {
        return Some(response);
    }
    let fault = state.lock().unwrap().fault_for(asked);
    answer_fault(state, fault).await
}

/// Stripe's 404 for an id the key's account and mode do not know.
pub(super) fn no_such(state: &Shared, object: &str, id: &str) -> HttpResponse {
    set_last_status(state, 404);
    stripe_error(
        404,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {object}: '{id}'"),
    )
}
