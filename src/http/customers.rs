//! `POST /customers`: bearer token verified ([`Authenticated`]) → body read (only then, and with
//! a deadline) → the user it may act for → get or create that user's Stripe customer → JSON
//! out. The work is `ensure_customer`'s; this reads and answers.

use std::sync::Arc;

use actix_web::{HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::AppState;
use super::authenticated::Authenticated;
use super::error::ApiError;
use crate::auth::{Caller, JwksCache, TokenVerifier};
use crate::configuration::Settings;
use crate::domain::{Owner, StripeMode};
use crate::ensure_customer::{self, CustomerCreator};
use crate::metrics::Metrics;
use crate::store::pool;
use crate::stripe_api::StripeClient;

/// A body names at most a user id.
pub(crate) const MAX_BODY_BYTES: usize = 4096;

/// What `POST /customers` and `POST /organizations/{id}/customer` need: registered (as its own
/// `web::Data`) only with those routes, which exist only when the endpoint is on.
#[derive(Debug)]
pub(crate) struct CustomersEndpoint {
    pub verifier: TokenVerifier,
    pub creator: CustomerCreator,
}

impl CustomersEndpoint {
    /// The endpoint, when STRIPE_API_KEY and a token setting are configured; its own
    /// connections beside the webhooks' pool (never theirs).
    pub(crate) fn for_serve(
        settings: &Settings,
        pool: &PgPool,
        metrics: &Arc<Metrics>,
    ) -> std::io::Result<Option<Self>> {
        let (Some(api), None) = (&settings.stripe_api, settings.customers_endpoint_off()) else {
            return Ok(None);
        };
        let client = StripeClient::new(api, ensure_customer::retry_policy())
            .map_err(std::io::Error::other)?;
        let customers = &settings.customers;
        let jwks = (customers.jwks_url.clone())
            .map(|url| JwksCache::new(url, customers.jwks_min_refetch, customers.jwks_max_age))
            .transpose()
            .map_err(std::io::Error::other)?;
        let verifier = TokenVerifier::new(customers.jwt_secret.as_ref(), jwks, customers.issuer());
        let creator = CustomerCreator::new(
            pool::pool_beside(pool, pool::CUSTOMERS_CONNECTIONS, settings.connection()),
            client,
            settings.sync.clone(),
            api.mode == StripeMode::Live,
            settings.profile_push.name_column.clone(),
            settings.organizations.clone(),
            metrics.clone(),
        );
        Ok(Some(Self { verifier, creator }))
    }

    /// `error`, counted as a refusal when it came before the use case (which counts its own).
    pub(crate) fn refused(&self, error: ApiError) -> ApiError {
        if let Some(outcome) = error.request_outcome() {
            self.creator.count_refusal(outcome);
        }
        error
    }
}

#[derive(Debug, Default, Deserialize)]
struct Body {
    #[serde(default)]
    user_id: Option<String>,
}

#[tracing::instrument(name = "ensure_customer", skip_all, fields(user_id = tracing::field::Empty))]
pub(crate) async fn ensure(
    caller: Result<Authenticated, ApiError>,
    body: web::Payload,
    endpoint: web::Data<CustomersEndpoint>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let answer = match caller {
        Ok(Authenticated(caller)) => handle(caller, body, &endpoint, state.body_timeout).await,
        Err(error) => Err(error),
    };
    answer.unwrap_or_else(|error| endpoint.refused(error).error_response())
}

async fn handle(
    caller: Caller,
    body: web::Payload,
    endpoint: &CustomersEndpoint,
    body_timeout: std::time::Duration,
) -> Result<HttpResponse, ApiError> {
    let body = super::body::read(body, MAX_BODY_BYTES, body_timeout).await?;
    let body: Body = if body.iter().all(u8::is_ascii_whitespace) {
        Body::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| bad_request("the body must be {\"user_id\": \"…\"}"))?
    };
    let named = body
        .user_id
        .as_deref()
        .map(|id| Uuid::try_parse(id.trim()).map_err(|_| bad_request("user_id must be a UUID")))
        .transpose()?;
    let user_id = match (caller, named) {
        (Caller::User(user), None) => user,
        (Caller::User(user), Some(named)) if named == user => user,
        (Caller::User(_), Some(_)) => return Err(ApiError::OtherUser),
        (Caller::ServiceRole, Some(named)) => named,
        (Caller::ServiceRole, None) => {
            return Err(bad_request(
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

pub(super) fn bad_request(message: &str) -> ApiError {
    ApiError::InvalidRequest(message.to_owned())
}
