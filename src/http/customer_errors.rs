//! What `POST /customers` answers when it does not answer a customer: a status and
//! `{"error":{"code","message"}}`, as docs/design.md lists them.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::json;

use super::body::BodyError;
use crate::auth::TokenError;
use crate::ensure_customer::EnsureError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CustomersError {
    /// 401: missing, malformed, expired, badly signed, another audience, an unknown key.
    #[error("invalid token")]
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
    /// 404: organization billing is off (its tables do not exist).
    #[error("no such route: organization billing is off")]
    OrganizationsOff,
    /// 400: the body is not `{"user_id": "…"}`.
    #[error("{0}")]
    BadRequest(&'static str),
    #[error(transparent)]
    Ensure(#[from] EnsureError),
    /// 413, 408 (and the connection closed) or 400: the body is too large, too slow or broken.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The JWKS could not be fetched: 503.
    #[error("the signing keys cannot be fetched right now")]
    KeysUnavailable,
}

impl From<TokenError> for CustomersError {
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

impl CustomersError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            Self::Forbidden | Self::OtherUser | Self::NotAnAdmin => {
                (StatusCode::FORBIDDEN, "forbidden")
            }
            Self::OrganizationsOff => (StatusCode::NOT_FOUND, "not_found"),
            Self::BadRequest(_) | Self::Body(BodyError::Unreadable(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            Self::Body(BodyError::TooLarge(_)) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            Self::Body(BodyError::TimedOut(_)) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
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
            Self::Ensure(_) | Self::KeysUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        }
    }

    /// The metrics' outcome of a refusal before the use case ran (it counts its own).
    pub(crate) fn request_outcome(&self) -> Option<&'static str> {
        match self {
            Self::InvalidToken(_) => Some("invalid_token"),
            Self::Forbidden | Self::OtherUser | Self::NotAnAdmin => Some("forbidden"),
            Self::OrganizationsOff => Some("not_found"),
            Self::BadRequest(_) | Self::Body(_) => Some("bad_request"),
            Self::KeysUnavailable => Some("unavailable"),
            Self::Ensure(_) => None,
        }
    }

    pub(crate) fn response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        let message = match self {
            Self::Ensure(error) if status == StatusCode::SERVICE_UNAVAILABLE => {
                // The cause is the operator's to read, not the caller's.
                tracing::error!(error = %error, "POST /customers: answering 503");
                "temporarily unavailable, retry later".to_owned()
            }
            Self::InvalidToken(reason) => {
                tracing::info!(reason, "POST /customers: token refused");
                "missing, malformed, expired or not signed by this project".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(status);
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header(("Retry-After", "5"));
            }
            StatusCode::UNAUTHORIZED => {
                response.insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""));
            }
            // The rest of the body may still come: nothing else can be read on this connection.
            StatusCode::REQUEST_TIMEOUT => {
                response.force_close();
            }
            _ => {}
        }
        let mut body = super::error::error_body(code, &message);
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
