//! `GET /v1/events`: the events list, filtered by type and time.

use actix_web::{HttpRequest, HttpResponse, web};

use super::faults::{Asked, answer_fault, stripe_error};
use super::state::{Event, InFlight, Shared, query_pairs, refused};

pub(super) async fn list_events(request: HttpRequest, state: web::Data<Shared>) -> HttpResponse {
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
    if let Some(response) = answer_fault(&state, fault).await {
        return response;
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
