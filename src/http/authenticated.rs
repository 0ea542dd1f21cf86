//! The caller of `POST /customers` and `POST /organizations/{id}/customer`, as an extractor: the
//! bearer token verified before the handler runs, and so before it reads a body (a caller
//! without a valid token cannot make the service wait for one).
//!
//! Handlers take it as `Result<Authenticated, ApiError>` and answer a refusal themselves (and
//! count it): an error handed back to actix would be logged by `tracing-actix-web` with its
//! `Debug`, at warn for every bad token.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};

use super::customers::CustomersEndpoint;
use super::error::ApiError;
use crate::auth::Caller;

/// Who the verified bearer token says is calling.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authenticated(pub(crate) Caller);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let endpoint = request.app_data::<web::Data<CustomersEndpoint>>().cloned();
        let token = bearer_token(request).map(str::to_owned);
        Box::pin(async move {
            // Registered with the routes that extract this: its absence is a wiring error.
            let endpoint = endpoint.ok_or(ApiError::NoSuchRoute)?;
            let token = token.ok_or(ApiError::InvalidToken("no bearer token"))?;
            Ok(Self(endpoint.verifier.verify(&token).await?))
        })
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer_token(request: &HttpRequest) -> Option<&str> {
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
