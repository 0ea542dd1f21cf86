//! `POST /organizations/{organization_id}/customer`: bearer token verified ([`Authenticated`]) → the caller's
//! membership of the organization → get or create the organization's Stripe customer → JSON
//! out (docs/design.md "Organizations"). The work is `ensure_customer`'s, as for a user's.

use actix_web::{HttpResponse, ResponseError, web};
use serde_json::json;
use uuid::Uuid;

use super::authenticated::Authenticated;
use super::customers::{CustomersEndpoint, bad_request};
use super::error::ApiError;
use crate::auth::Caller;
use crate::domain::Owner;
use crate::ensure_customer::Membership;

#[tracing::instrument(
    name = "ensure_organization_customer",
    skip_all,
    fields(organization_id = tracing::field::Empty, user_id = tracing::field::Empty)
)]
pub(crate) async fn ensure(
    caller: Result<Authenticated, ApiError>,
    path: web::Path<String>,
    endpoint: web::Data<CustomersEndpoint>,
) -> HttpResponse {
    let answer = match caller {
        Ok(Authenticated(caller)) => handle(caller, &path, &endpoint).await,
        Err(error) => Err(error),
    };
    answer.unwrap_or_else(|error| endpoint.refused(error).error_response())
}

async fn handle(
    caller: Caller,
    organization_id: &str,
    endpoint: &CustomersEndpoint,
) -> Result<HttpResponse, ApiError> {
    let organization = Uuid::try_parse(organization_id.trim())
        .map_err(|_| bad_request("the organization id must be a UUID"))?;
    let span = tracing::Span::current();
    span.record("organization_id", tracing::field::display(organization));
    // A user must be an active member with an admin role; the backend's service_role may act
    // for any organization (as it may name any user on POST /customers).
    let user = match caller {
        Caller::User(user) => Some(user),
        Caller::ServiceRole => None,
    };
    if let Some(user) = user {
        span.record("user_id", tracing::field::display(user));
    }
    let membership = endpoint
        .creator
        .membership(user.unwrap_or(Uuid::nil()), organization)
        .await?;
    match (membership, user) {
        (Membership::Off, _) => return Err(ApiError::OrganizationsOff),
        (_, None) => {}
        (Membership::Member { role, active: true }, Some(_))
            if endpoint.creator.is_admin_role(&role) => {}
        // Other members and strangers alike: 403, which tells a stranger nothing a 404 would
        // not (the id is a UUID nobody guesses).
        (Membership::Member { .. } | Membership::None, Some(_)) => {
            return Err(ApiError::NotAnAdmin);
        }
    }
    let ensured = endpoint
        .creator
        .ensure(Owner::Organization(organization))
        .await?;
    tracing::info!(created = ensured.created, "organization customer ensured");
    let body = json!({
        "stripe_customer_id": ensured.stripe_customer_id,
        "organization_id": organization,
        "created": ensured.created,
    });
    Ok(if ensured.created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}
