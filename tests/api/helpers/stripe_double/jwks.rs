//! `GET /jwks.json`: the JWKS a test sets (Supabase's signing keys).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::state::{Shared, refused, set_last_status};

pub(super) async fn jwks(request: HttpRequest, state: web::Data<Shared>) -> HttpResponse {
    let _ = refused(&state, &request, None);
    set_last_status(&state, 200);
    let jwks = state.lock().unwrap().jwks.clone();
    HttpResponse::Ok().json(if jwks.is_null() {
        json!({ "keys": [] })
    } else {
        jwks
    })
}
