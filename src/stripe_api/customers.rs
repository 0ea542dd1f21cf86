//! `GET /v1/customers` (a page) and `GET /v1/customers/{id}`, decoded into the same
//! [`CustomerObject`] a webhook's `data.object` becomes; `POST /v1/customers/{id}` (the
//! profile push).

use serde::Deserialize;

use super::list;
use super::{ApiError, Posted, StripeClient};
use crate::stripe::event::{CustomerObject, decode_customer_object};

/// Stripe's largest page.
pub const PAGE_SIZE: usize = 100;

/// A customer as Stripe's API returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCustomer {
    pub customer: CustomerObject,
    /// `{"id", "object": "customer", "deleted": true}`: the customer was deleted.
    pub deleted: bool,
}

/// One page of `GET /v1/customers`, newest customers first.
#[derive(Debug, Clone)]
pub struct CustomerPage {
    pub customers: Vec<ApiCustomer>,
    pub has_more: bool,
    /// Unix seconds at which the request that got this page started.
    pub requested_at: i64,
}

impl CustomerPage {
    /// The `starting_after` of the next page: the id of this page's last customer.
    pub fn cursor(&self) -> Option<&str> {
        self.customers.last().map(|c| c.customer.id.as_str())
    }
}

/// What `GET /v1/customers/{id}` said.
#[derive(Debug, Clone, PartialEq)]
pub enum Retrieved {
    Found(ApiCustomer),
    /// 404: Stripe has no customer with this id (in this account and mode).
    Missing,
}

#[derive(Deserialize)]
struct DeletedFlag {
    #[serde(default)]
    deleted: bool,
}

/// The page after `starting_after` (the first page without it), `limit=100`.
pub async fn list_page(
    client: &StripeClient,
    starting_after: Option<&str>,
) -> Result<CustomerPage, ApiError> {
    let limit = PAGE_SIZE.to_string();
    let mut query = vec![("limit", limit.as_str())];
    if let Some(cursor) = starting_after {
        query.push(("starting_after", cursor));
    }
    let answer = client
        .get(client.url(&["v1", "customers"], &query)?)
        .await?;
    let page = list::items(&answer, decode)?;
    Ok(CustomerPage {
        customers: page.items,
        has_more: page.has_more,
        requested_at: answer.requested_at,
    })
}

/// One customer by id; also returns when the request started.
pub async fn retrieve(client: &StripeClient, id: &str) -> Result<(Retrieved, i64), ApiError> {
    let answer = client
        .get(client.url(&["v1", "customers", id], &[])?)
        .await?;
    let Some(body) = answer.body.as_deref() else {
        return Ok((Retrieved::Missing, answer.requested_at));
    };
    let text = std::str::from_utf8(body).map_err(|_| ApiError::Malformed {
        url: answer.url.clone(),
        detail: "not UTF-8".into(),
    })?;
    let customer = decode(text).map_err(|detail| ApiError::Malformed {
        url: answer.url.clone(),
        detail,
    })?;
    Ok((Retrieved::Found(customer), answer.requested_at))
}

/// The fields a profile push sets; `None` leaves a field as Stripe has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CustomerUpdate<'a> {
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
}

impl CustomerUpdate<'_> {
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.name.is_none()
    }

    fn form(&self) -> Vec<(&str, &str)> {
        let mut form = Vec::new();
        if let Some(email) = self.email {
            form.push(("email", email));
        }
        if let Some(name) = self.name {
            form.push(("name", name));
        }
        form
    }
}

/// `POST /v1/customers/{id}` with `update`, once, under `idempotency_key`. Stripe's answer
/// (the updated customer) is not read: the `customer.updated` event that follows brings it
/// into the table through the sync rules.
pub async fn update(
    client: &StripeClient,
    id: &str,
    update: &CustomerUpdate<'_>,
    idempotency_key: &str,
) -> Result<Posted, ApiError> {
    let url = client.url(&["v1", "customers", id], &[])?;
    client
        .post_form_once(url, &update.form(), idempotency_key)
        .await
}

fn decode(object_json: &str) -> Result<ApiCustomer, String> {
    let customer = decode_customer_object(object_json).map_err(|e| e.to_string())?;
    let DeletedFlag { deleted } =
        serde_json::from_str(object_json).map_err(|e| format!("not an object: {e}"))?;
    Ok(ApiCustomer { customer, deleted })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_customer_is_its_id_and_the_flag() {
        let decoded = decode(r#"{"id":"cus_D1","object":"customer","deleted":true}"#).unwrap();
        assert!(decoded.deleted);
        assert_eq!(decoded.customer.id, "cus_D1");
        assert_eq!(decoded.customer.email, None);
    }

    #[test]
    fn live_customer_is_decoded_like_a_webhook_object() {
        let decoded = decode(
            r#"{"id":"cus_L1","object":"customer","email":"l@example.com","name":null,
            "invoice_settings":{"default_payment_method":"pm_1"},"metadata":{"user_id":"u"}}"#,
        )
        .unwrap();
        assert!(!decoded.deleted);
        assert_eq!(decoded.customer.email.as_deref(), Some("l@example.com"));
        assert_eq!(
            decoded.customer.default_payment_method.as_deref(),
            Some("pm_1")
        );
    }

    #[test]
    fn objects_that_are_not_customers_are_refused() {
        assert!(decode(r#"{"id":"in_1","object":"invoice"}"#).is_err());
        assert!(decode(r#"{"object":"customer"}"#).is_err());
    }
}
