//! `/v1/customers`: list, retrieve, update, create and search, as Stripe answers them.

use std::collections::HashMap;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::customer::Customer;
use super::faults::{
    Asked, Fault, answer_fault, fault_response, hang, no_such, refused_or_faulted, stripe_error,
};
use super::state::{InFlight, Shared, query_pairs, recorded_or_refused, refused, set_last_status};

pub(super) async fn list(request: HttpRequest, state: web::Data<Shared>) -> HttpResponse {
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
    // A list of one from the start is the service's start-up check, not a page of a listing.
    let startup_check = limit == 1 && start == 0;
    let page = start / limit + 1;
    if let Some(response) = refused(&state, &request, (!startup_check).then_some(page)) {
        return response;
    }
    let asked = if startup_check {
        Asked::StartupCheck
    } else {
        Asked::CustomersPage(page)
    };
    let fault = state.lock().unwrap().fault_for(asked);
    if let Some(response) = answer_fault(&state, fault).await {
        return response;
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

pub(super) async fn retrieve(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<Shared>,
) -> HttpResponse {
    let id = path.into_inner();
    let _in_flight = InFlight::enter(&state).await;
    if let Some(response) = refused_or_faulted(&state, &request, Asked::Customer(&id)).await {
        return response;
    }
    let state_now = state.lock().unwrap();
    if let Some(customer) = state_now.customers.get(&id) {
        return HttpResponse::Ok().json(customer.render());
    }
    if state_now.deleted.contains(&id) {
        return HttpResponse::Ok().json(json!({"id": id, "object": "customer", "deleted": true}));
    }
    drop(state_now);
    no_such(&state, "customer", &id)
}

/// `POST /v1/customers/{id}`: Stripe's update, with its idempotency.
pub(super) async fn update(
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
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
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

pub(super) async fn create(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Shared>,
) -> HttpResponse {
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
    // Hanging after creating is the create's own fault, handled below.
    let before_creating = fault.filter(|fault| !matches!(fault, Fault::HangAfterCreating));
    if let Some(response) = answer_fault(&state, before_creating).await {
        return response;
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

pub(super) async fn search(request: HttpRequest, state: web::Data<Shared>) -> HttpResponse {
    let _in_flight = InFlight::enter(&state).await;
    if let Some(response) = refused_or_faulted(&state, &request, Asked::Search).await {
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
