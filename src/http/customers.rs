//! `POST /customers`: bearer token verified → body read (only then, and with a deadline: a
//! caller without a valid token cannot make the service wait for a body) → the user it may act
//! for → get or create that user's Stripe customer → JSON out. The work is `ensure_customer`'s;
//! this reads and answers.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use super::customer_errors::CustomersError;
use crate::auth::{Caller, TokenVerifier};
use crate::domain::Owner;
use crate::ensure_customer::CustomerCreator;

/// A body names at most a user id.
pub(crate) const MAX_BODY_BYTES: usize = 4096;

/// What `POST /customers` needs; present only when the endpoint is on.
#[derive(Debug)]
pub(crate) struct CustomersEndpoint {
    pub verifier: TokenVerifier,
    pub creator: CustomerCreator,
}

#[derive(Debug, Default, Deserialize)]
struct Body {
    #[serde(default)]
    user_id: Option<String>,
}

#[tracing::instrument(name = "ensure_customer", skip_all, fields(user_id = tracing::field::Empty))]
pub(crate) async fn ensure(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(endpoint) = state.customers.as_ref() else {
        return super::error::not_found();
    };
    match handle(&request, body, endpoint, state.body_timeout).await {
        Ok(response) => response,
        Err(error) => {
            if let Some(outcome) = error.request_outcome() {
                // Refusals before the use case; it counts its own outcomes.
                endpoint.creator.count_refusal(outcome);
            }
            error.response()
        }
    }
}

async fn handle(
    request: &HttpRequest,
    body: web::Payload,
    endpoint: &CustomersEndpoint,
    body_timeout: std::time::Duration,
) -> Result<HttpResponse, CustomersError> {
    let token = bearer_token(request).ok_or(CustomersError::InvalidToken("no bearer token"))?;
    let caller = endpoint.verifier.verify(token).await?;
    let body = super::body::read(body, MAX_BODY_BYTES, body_timeout).await?;
    let body: Body = if body.iter().all(u8::is_ascii_whitespace) {
        Body::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| CustomersError::BadRequest("the body must be {\"user_id\": \"…\"}"))?
    };
    let named = body
        .user_id
        .as_deref()
        .map(|id| {
            Uuid::try_parse(id.trim())
                .map_err(|_| CustomersError::BadRequest("user_id must be a UUID"))
        })
        .transpose()?;
    let user_id = match (caller, named) {
        (Caller::User(user), None) => user,
        (Caller::User(user), Some(named)) if named == user => user,
        (Caller::User(_), Some(_)) => return Err(CustomersError::OtherUser),
        (Caller::ServiceRole, Some(named)) => named,
        (Caller::ServiceRole, None) => {
            return Err(CustomersError::BadRequest(
                "a service_role token must name the user: {\"user_id\": \"…\"}",
            ));
        }
    };
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    let ensured = endpoint.creator.ensure(Owner::User(user_id)).await?;
    tracing::info!(created = ensured.created, "customer ensured");
    let body = json!({
        "stripe_customer_id": ensured.stripe_customer_id,
        "user_id": user_id,
        "created": ensured.created,
    });
    Ok(if ensured.created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
pub(super) fn bearer_token(request: &HttpRequest) -> Option<&str> {
    bearer_token_of(request.headers().get(AUTHORIZATION)?.as_bytes())
}

/// The token of an `Authorization` header's value, `Bearer <token>` (the scheme in any case).
pub(crate) fn bearer_token_of(value: &[u8]) -> Option<&str> {
    // As `HeaderValue::to_str`: visible ASCII and tabs only.
    if !value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
