//! `GET /jwks.json`: the JWKS a test sets (Supabase's signing keys), or the fault it scripts
//! (`Target::Jwks`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::faults::{Asked, answer_fault};
use super::state::{Shared, refused, set_last_status};

pub(super) async fn jwks(request: HttpRequest, state: web::Data<Shared>) -> HttpResponse {
    let _ = refused(&state, &request, None);
    let fault = state.lock().unwrap().fault_for(Asked::Jwks);
    if let Some(response) = answer_fault(&state, fault).await {
        return response;
    }
    set_last_status(&state, 200);
    let jwks = state.lock().unwrap().jwks.clone();
    HttpResponse::Ok().json(if jwks.is_null() {
        json!({ "keys": [] })
    } else {
        jwks
    })
}
