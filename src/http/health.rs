//! Liveness, readiness and metrics: what an operator's tooling polls.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::startup::AppState;
use crate::store::schema;

/// The process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Prometheus text exposition of [`crate::metrics::Metrics`].
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render(&state.pool))
}

/// Ready to take webhooks: the database answers and every migration is applied.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match schema::is_current(&state.pool).await {
        Ok(true) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Ok(false) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "not_ready", "reason": "migrations_pending" })),
        Err(error) => {
            tracing::warn!(error = %error, "readiness check: database unavailable");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "not_ready", "reason": "database_unavailable" }))
        }
    }
}
