//! `/v1/subscriptions` and `/v1/products/{id}`, as Stripe answers them: the list (newest
//! first, `status=all` to include ended ones, `limit`, `starting_after`), one subscription, one
//! product; a 404 `resource_missing` for an id the double does not hold.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::faults::{Asked, answer_fault, no_such, refused_or_faulted, stripe_error};
use super::state::{InFlight, Shared, query_pairs, refused};

/// Without `status=all` Stripe leaves these out.
const ENDED: [&str; 2] = ["canceled", "incomplete_expired"];

pub(super) async fn list_subscriptions(
    request: HttpRequest,
    state: web::Data<Shared>,
) -> HttpResponse {
    let _in_flight = InFlight::enter(&state).await;
    let pairs = query_pairs(request.query_string());
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
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
    let all = get("status").as_deref() == Some("all");
    let listed: Vec<Value> = {
        let state = state.lock().unwrap();
        state
            .subscriptions
            .iter()
            .filter(|s| all || !ENDED.contains(&s["status"].as_str().unwrap_or_default()))
            .cloned()
            .collect()
    };
    let start = match get("starting_after") {
        None => 0,
        Some(cursor) => match listed.iter().position(|s| s["id"] == json!(cursor)) {
            Some(position) => position + 1,
            None => {
                return stripe_error(
                    400,
                    "invalid_request_error",
                    Some("resource_missing"),
                    &format!("No such subscription: '{cursor}'"),
                );
            }
        },
    };
    let page = start / limit + 1;
    if let Some(response) = refused(&state, &request, Some(page)) {
        return response;
    }
    let fault = state
        .lock()
        .unwrap()
        .fault_for(Asked::SubscriptionsPage(page));
    if let Some(response) = answer_fault(&state, fault).await {
        return response;
    }
    let end = (start + limit).min(listed.len());
    HttpResponse::Ok()
        .insert_header(("Request-Id", "req_double"))
        .json(json!({
            "object": "list",
            "data": &listed[start.min(end)..end],
            "has_more": end < listed.len(),
            "url": "/v1/subscriptions",
        }))
}

pub(super) async fn retrieve_subscription(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<Shared>,
) -> HttpResponse {
    let id = path.into_inner();
    let _in_flight = InFlight::enter(&state).await;
    if let Some(response) = refused_or_faulted(&state, &request, Asked::Subscription(&id)).await {
        return response;
    }
    let found = {
        let state = state.lock().unwrap();
        state
            .subscriptions
            .iter()
            .find(|s| s["id"] == json!(id))
            .cloned()
    };
    match found {
        Some(subscription) => HttpResponse::Ok().json(subscription),
        None => no_such(&state, "subscription", &id),
    }
}

pub(super) async fn retrieve_product(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<Shared>,
) -> HttpResponse {
    let id = path.into_inner();
    let _in_flight = InFlight::enter(&state).await;
    if let Some(response) = refused_or_faulted(&state, &request, Asked::Product(&id)).await {
        return response;
    }
    let found = state.lock().unwrap().products.get(&id).cloned();
    match found {
        Some(product) => HttpResponse::Ok().json(product),
        None => no_such(&state, "product", &id),
    }
}
