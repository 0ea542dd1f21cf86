//! Liveness, readiness and metrics: what an operator's tooling polls.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::store::schema;

/// The process is up and serving HTTP.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Prometheus text exposition of [`crate::metrics::Metrics`].
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render(&state.pool))
}

/// How long readiness waits for the database. A transaction pooler whose database is gone
/// queues the query instead of failing it (PgBouncer's `query_wait_timeout`: 120 s), and a
/// probe that hangs tells an orchestrator less than a prompt 503.
const READINESS_DEADLINE: Duration = Duration::from_secs(2);

/// Ready to take webhooks: the database answers and every migration is applied.
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let checked = tokio::time::timeout(READINESS_DEADLINE, schema::is_current(&state.health_pool))
        .await
        .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut));
    match checked {
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
