//! Every error the service answers over HTTP, on every route: a status and
//! `{"error":{"code","message"}}` (docs/design.md lists them). The body is written in one place,
//! [`ApiError::error_response`]; a handler only says which error it is.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::body::BodyError;
use crate::auth::TokenError;
use crate::ensure_customer::EnsureError;
use crate::stripe::signature::SignatureError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400: the webhook's `Stripe-Signature` is missing or does not match (its own code).
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// 400: a verified webhook body that is not a Stripe event, or one that could not be read.
    #[error("{0}")]
    MalformedPayload(String),
    /// 400: `POST /customers`' body (or path) is not what it must be.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive within `REQUEST_BODY_TIMEOUT`; the connection is closed.
    #[error("the request body did not arrive within {0:?}")]
    RequestTimeout(Duration),
    /// 401: missing, malformed, expired, badly signed, another audience, an unknown key. The
    /// reason is for the log, not the caller.
    #[error("missing, malformed, expired or not signed by this project")]
    InvalidToken(&'static str),
    /// 403: a valid token whose role may not call (`anon`).
    #[error("this token may not create customers")]
    Forbidden,
    /// 403: a user's token naming another user.
    #[error("a user's token may only ask for that user's own customer")]
    OtherUser,
    /// 403: not an active member of the organization with an admin role
    /// (`ORGANIZATION_ADMIN_ROLES`), or no member at all.
    #[error("only the organization's active owners and admins may create its customer")]
    NotAnAdmin,
    /// 404: a route the service does not serve (or one that is off).
    #[error("no such route")]
    NoSuchRoute,
    /// 404: organization billing is off (its tables do not exist).
    #[error("no such route: organization billing is off")]
    OrganizationsOff,
    /// What getting or creating a customer ended with: 404, 422, 502 or 503.
    #[error(transparent)]
    Ensure(#[from] EnsureError),
    /// The JWKS could not be fetched: 503.
    #[error("the signing keys cannot be fetched right now")]
    KeysUnavailable,
    /// Database unavailable or a transient failure: nothing was written, Stripe will retry.
    #[error("temporarily unavailable, retry later")]
    Unavailable,
    /// A thin event arrived and STRIPE_API_KEY is not set: nothing was written, and Stripe keeps
    /// the event (retrying it) until the operator sets the key.
    #[error(
        "thin events need STRIPE_API_KEY to fetch their customer or subscription; it is not \
         configured"
    )]
    NotConfigured,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Signature(error) => (StatusCode::BAD_REQUEST, error.code()),
            Self::MalformedPayload(_) => (StatusCode::BAD_REQUEST, "malformed_payload"),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            Self::Forbidden | Self::OtherUser | Self::NotAnAdmin => {
                (StatusCode::FORBIDDEN, "forbidden")
            }
            Self::NoSuchRoute | Self::OrganizationsOff => (StatusCode::NOT_FOUND, "not_found"),
            Self::Ensure(EnsureError::UnknownUser) => (StatusCode::NOT_FOUND, "unknown_user"),
            Self::Ensure(EnsureError::UnknownOrganization) => {
                (StatusCode::NOT_FOUND, "unknown_organization")
            }
            Self::Ensure(EnsureError::MissingEmail) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "missing_email")
            }
            // Stripe refused these values: not a fault of ours to retry, nor of the caller's
            // request; permanent until the user's email or name changes (or a back-off).
            Self::Ensure(EnsureError::Refused(_)) => (StatusCode::BAD_GATEWAY, "stripe_refused"),
            Self::Ensure(_) | Self::KeysUnavailable | Self::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::NotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "not_configured"),
        }
    }

    /// The metrics' outcome of a refusal of `POST /customers` (or an organization's) before
    /// the use case ran; `None` for what the use case counts itself.
    pub(crate) fn request_outcome(&self) -> Option<&'static str> {
        match self {
            Self::InvalidToken(_) => Some("invalid_token"),
            Self::Forbidden | Self::OtherUser | Self::NotAnAdmin => Some("forbidden"),
            Self::NoSuchRoute | Self::OrganizationsOff => Some("not_found"),
            Self::Signature(_)
            | Self::MalformedPayload(_)
            | Self::InvalidRequest(_)
            | Self::PayloadTooLarge { .. }
            | Self::RequestTimeout(_) => Some("bad_request"),
            Self::KeysUnavailable | Self::Unavailable | Self::NotConfigured => Some("unavailable"),
            Self::Ensure(_) => None,
        }
    }

    /// What the caller reads in `message`.
    fn message(&self) -> String {
        match self {
            Self::Ensure(error) if self.status_code() == StatusCode::SERVICE_UNAVAILABLE => {
                // The cause is the operator's to read, not the caller's.
                tracing::error!(error = %error, "answering 503");
                "temporarily unavailable, retry later".to_owned()
            }
            Self::InvalidToken(reason) => {
                tracing::info!(reason, "token refused");
                self.to_string()
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// The one place an error body is written.
    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        let mut response = HttpResponse::build(status);
        match self {
            // The webhook's `not_configured` is no "retry in 5 s": nothing changes until the
            // operator sets the key.
            Self::NotConfigured => {}
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header(("Retry-After", "5"));
            }
            Self::InvalidToken(_) => {
                response.insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""));
            }
            // The rest of the body may still come: nothing else can be read on this connection.
            Self::RequestTimeout(_) => {
                response.force_close();
            }
            _ => {}
        }
        let mut body = json!({ "error": { "code": code, "message": self.message() } });
        if let Self::Ensure(EnsureError::Refused(refused)) = self {
            // Stripe's error code and type (never its message, which can quote the email).
            let error = &mut body["error"];
            error["stripe_status"] = json!(refused.status);
            error["stripe_code"] = json!(refused.code);
            error["stripe_type"] = json!(refused.kind);
            error["retry_after_secs"] = json!(refused.retry_in.as_secs().max(1));
        }
        response.json(body)
    }
}

/// A body too large, too slow, or broken. A webhook's broken body is a `malformed_payload`
/// (the webhook maps that one itself); elsewhere an `invalid_request`.
impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge(limit) => Self::PayloadTooLarge { limit },
            BodyError::Unreadable(_) => Self::InvalidRequest(error.to_string()),
            BodyError::TimedOut(deadline) => Self::RequestTimeout(deadline),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Invalid(reason) => Self::InvalidToken(reason),
            TokenError::Forbidden => Self::Forbidden,
            TokenError::KeysUnavailable(error) => {
                tracing::error!(error = %error, "cannot verify an asymmetric token");
                Self::KeysUnavailable
            }
        }
    }
}

/// The default service: a route the service does not serve (or one that is off).
pub(crate) async fn not_found() -> HttpResponse {
    ApiError::NoSuchRoute.error_response()
}
