//! Every error the webhook answers with: a status and `{"error":{"code","message"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::body::BodyError;
use crate::stripe::signature::SignatureError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("{0}")]
    MalformedPayload(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive within `REQUEST_BODY_TIMEOUT`; the connection is closed.
    #[error("the request body did not arrive within {0:?}")]
    RequestTimeout(std::time::Duration),
    /// Database unavailable or a transient failure: nothing was written, Stripe will retry.
    #[error("temporarily unavailable, retry later")]
    Unavailable,
    /// A thin event arrived and STRIPE_API_KEY is not set: nothing was written, and Stripe keeps
    /// the event (retrying it) until the operator sets the key.
    #[error("thin events need STRIPE_API_KEY to fetch the customer; it is not configured")]
    NotConfigured,
}

impl ApiError {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::Signature(e) => e.code(),
            ApiError::MalformedPayload(_) => "malformed_payload",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Unavailable => "unavailable",
            ApiError::NotConfigured => "not_configured",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Signature(_) | ApiError::MalformedPayload(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable | ApiError::NotConfigured => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unavailable => {
                response.insert_header(("Retry-After", "5"));
            }
            // The rest of the body may still come: nothing else can be read on this connection.
            ApiError::RequestTimeout(_) => {
                response.force_close();
            }
            _ => {}
        }
        response.json(error_body(self.code(), &self.to_string()))
    }
}

/// The one shape of every error answer: `{"error":{"code","message"}}`; a caller may add fields
/// beside them (`stripe_code`, …) under `error`.
pub(crate) fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!({ "error": { "code": code, "message": message } })
}

/// A route the service does not serve (or one that is off): 404 `not_found`.
pub(crate) fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(error_body("not_found", "no such route"))
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge(limit) => ApiError::PayloadTooLarge { limit },
            BodyError::Unreadable(_) => ApiError::MalformedPayload(error.to_string()),
            BodyError::TimedOut(deadline) => ApiError::RequestTimeout(deadline),
        }
    }
}
