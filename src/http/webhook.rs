//! `POST /webhooks/stripe`: raw body in → signature verified → event decoded (a snapshot
//! event, or a thin one whose customer is fetched) → rule applied → JSON out. A 2xx goes out
//! only after the event's statement has committed.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;
use tracing::Instrument;

use super::AppState;
use super::body::BodyError;
use super::error::ApiError;
use crate::stripe::sanitize;
use crate::stripe::thin_event::{self, Delivery};
use crate::sync::{self, EventWriter, Outcome, ThinEventError};

/// Stripe's events are a few KB; anything this large is not one.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Answer 503 well within the 5 s promised to senders, even if the database hangs.
const PROCESSING_DEADLINE: Duration = Duration::from_millis(4500);

pub(crate) async fn receive(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    events: web::Data<EventWriter>,
) -> HttpResponse {
    let started = Instant::now();
    let response = handle(&request, body, &state, &events)
        .await
        .unwrap_or_else(|error| error.error_response());
    state
        .metrics
        .request_finished(response.status().as_u16(), started.elapsed());
    response
}

async fn handle(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    events: &EventWriter,
) -> Result<HttpResponse, ApiError> {
    let body = super::body::read(body, MAX_BODY_BYTES, state.body_timeout)
        .await
        .map_err(|error| match error {
            // A webhook's body that cannot be read is not a Stripe event.
            BodyError::Unreadable(_) => ApiError::MalformedPayload(error.to_string()),
            error => error.into(),
        })?;
    let header = request
        .headers()
        .get("Stripe-Signature")
        .map(|value| value.as_bytes());
    state
        .verifier
        .verify(header, &body, chrono::Utc::now().timestamp())
        .inspect_err(|error| {
            state.metrics.signature_rejected(error.code());
            tracing::warn!(reason = error.code(), "rejected webhook signature");
        })?;

    let storable = sanitize::storable(&body);
    let mut delivery = thin_event::decode_delivery(&storable.body)
        .map_err(|error| ApiError::MalformedPayload(error.to_string()))?
        .sanitized(storable.sanitized);
    // Opened once the event is known, with its fields: the JSON log format parses and rewrites
    // a span's stored fields at every `record`, once per event for nothing.
    let span = tracing::info_span!(
        "stripe_webhook",
        event_id = delivery.id().as_str(),
        event_type = delivery.event_type()
    );
    let deadline = tokio::time::Instant::now() + PROCESSING_DEADLINE;
    let outcome = async {
        tokio::time::timeout_at(deadline, apply(state, events, &mut delivery, deadline))
            .await
            .map_err(|_| {
                tracing::error!("event not applied within {PROCESSING_DEADLINE:?}; answering 503");
                ApiError::Unavailable
            })?
    }
    .instrument(span.clone())
    .await?;

    span.in_scope(|| {
        tracing::info!(
            status = outcome.status(),
            reason = outcome.reason(),
            "event handled"
        )
    });
    let now = chrono::Utc::now().timestamp();
    state
        .metrics
        .event_handled(delivery.event_type(), outcome, delivery.created(), now);
    let mut response = json!({ "status": outcome.status(), "event_id": delivery.id().as_str() });
    if let Some(reason) = outcome.reason() {
        response["reason"] = json!(reason);
    }
    Ok(HttpResponse::Ok().json(response))
}

/// A snapshot event carries its customer or subscription (whose prices' products are read
/// first); a thin one names it, and it is fetched.
async fn apply(
    state: &AppState,
    events: &EventWriter,
    delivery: &mut Delivery<'_>,
    deadline: tokio::time::Instant,
) -> Result<Outcome, ApiError> {
    match delivery {
        Delivery::Snapshot(event) => {
            // The products a subscription's prices need, read before the database is: a
            // transient failure is a 503 (Stripe retries), never a guessed tier.
            sync::expand_products(state.stripe_api.as_ref(), &state.sync, event)
                .await
                .map_err(|error| {
                    tracing::error!(error = %error, "a product not read; answering 503");
                    ApiError::Unavailable
                })?;
            events.apply(event, deadline).await.map_err(|error| {
                tracing::error!(error = %error, "event not applied; answering 503");
                ApiError::Unavailable
            })
        }
        Delivery::Thin(event) => {
            sync::apply_thin(&state.pool, &state.sync, state.stripe_api.as_ref(), event)
                .await
                .map_err(|error| match error {
                    ThinEventError::NotConfigured => {
                        tracing::error!(
                            "thin event not applied: STRIPE_API_KEY is not set, so its customer \
                             or subscription cannot be fetched; answering 503 not_configured \
                             (Stripe keeps the event and retries it once the key is set)"
                        );
                        ApiError::NotConfigured
                    }
                    error => {
                        tracing::error!(error = %error, "thin event not applied; answering 503");
                        ApiError::Unavailable
                    }
                })
        }
    }
}
