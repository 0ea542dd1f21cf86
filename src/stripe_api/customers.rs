//! `GET /v1/customers` (a page) and `GET /v1/customers/{id}`, decoded into the same
//! [`CustomerObject`] a webhook's `data.object` becomes; `POST /v1/customers/{id}` (the
//! profile push).

use serde::Deserialize;

use super::list;
use super::{ApiError, Posted, StripeClient};
use crate::stripe::event::{CustomerObject, decode_customer_object};
use crate::stripe::sanitize;

/// Stripe's largest page.
pub(crate) const PAGE_SIZE: usize = 100;

/// A customer as Stripe's API returned it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiCustomer {
    pub customer: CustomerObject,
    /// `{"id", "object": "customer", "deleted": true}`: the customer was deleted.
    pub deleted: bool,
}

/// One page of `GET /v1/customers`, newest customers first.
#[derive(Debug, Clone)]
pub(crate) struct CustomerPage {
    pub customers: Vec<ApiCustomer>,
    pub has_more: bool,
    /// Unix seconds at which the request that got this page started.
    pub requested_at: i64,
}

impl CustomerPage {
    /// The `starting_after` of the next page: the id of this page's last customer.
    pub(crate) fn cursor(&self) -> Option<&str> {
        self.customers.last().map(|c| c.customer.id.as_str())
    }
}

/// What `GET /v1/customers/{id}` said.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Retrieved {
    /// The customer, live or (`deleted: true`) deleted by Stripe.
    Found(ApiCustomer),
    /// 404 `resource_missing`: this key's account and mode do not know the id (a wrong key,
    /// account or mode, test data wiped in the dashboard). Not a deletion: never a tombstone.
    ResourceMissing,
}

/// What an object says of itself before it is read as a customer.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    object: Option<&'a str>,
    #[serde(default)]
    deleted: bool,
    /// Absent from a deleted customer's stub.
    #[serde(default)]
    livemode: Option<bool>,
}

/// The page after `starting_after` (the first page without it), `limit=100`.
pub(crate) async fn list_page(
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
    let livemode = client.key_livemode();
    let page = list::items(&answer, |item| decode(item.json, livemode))?;
    Ok(CustomerPage {
        customers: page.items,
        has_more: page.has_more,
        requested_at: answer.requested_at,
    })
}

/// One customer by id; also returns when the request started.
pub(crate) async fn retrieve(
    client: &StripeClient,
    id: &str,
) -> Result<(Retrieved, i64), ApiError> {
    let answer = client
        .get(client.url(&["v1", "customers", id], &[])?)
        .await?;
    let Some(body) = answer.body.as_deref() else {
        return Ok((Retrieved::ResourceMissing, answer.requested_at));
    };
    let customer =
        decode_answer(body, client.key_livemode()).map_err(|detail| ApiError::Malformed {
            url: answer.url.clone(),
            detail,
        })?;
    if customer.customer.id != id {
        return Err(ApiError::Malformed {
            url: answer.url.clone(),
            detail: format!("customer {} answered for {id}", customer.customer.id),
        });
    }
    Ok((Retrieved::Found(customer), answer.requested_at))
}

/// The fields a profile push sets; `None` leaves a field as Stripe has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CustomerUpdate<'a> {
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
}

impl CustomerUpdate<'_> {
    pub(crate) fn is_empty(&self) -> bool {
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

/// `POST /v1/customers/{id}` with `update`, once, under `idempotency_key`. Stripe's answer is
/// read only to know it is Stripe's: the updated customer, of this id and the key's mode (a
/// proxy's 200 page is no push). The `customer.updated` event that follows brings the values
/// into the table through the sync rules.
pub(crate) async fn update(
    client: &StripeClient,
    id: &str,
    update: &CustomerUpdate<'_>,
    idempotency_key: &str,
) -> Result<Posted, ApiError> {
    let url = client.url(&["v1", "customers", id], &[])?;
    let posted = client
        .post_form_once(url.clone(), &update.form(), idempotency_key)
        .await?;
    if let Posted::Done(body) = &posted {
        let malformed = |detail: String| ApiError::Malformed {
            url: format!("POST {url}"),
            detail,
        };
        let customer = decode_answer(body, client.key_livemode()).map_err(malformed)?;
        if customer.customer.id != id || customer.deleted {
            return Err(malformed(format!(
                "customer {} answered for {id}",
                customer.customer.id
            )));
        }
    }
    Ok(posted)
}

/// A whole answer's body as one customer: cleaned of what PostgreSQL cannot hold first, as
/// every JSON from Stripe is (`stripe::sanitize`).
pub(super) fn decode_answer(body: &[u8], key_livemode: bool) -> Result<ApiCustomer, String> {
    let storable = sanitize::storable(body);
    let text = std::str::from_utf8(&storable.body).map_err(|_| "not UTF-8".to_owned())?;
    decode(text, key_livemode)
}

/// A customer object as Stripe's API documents it: `object` is `customer`, and its mode is the
/// key's (Stripe answers a key with its own mode's objects only).
pub(super) fn decode(object_json: &str, key_livemode: bool) -> Result<ApiCustomer, String> {
    let probe: Probe<'_> =
        serde_json::from_str(object_json).map_err(|e| format!("not a JSON object: {e}"))?;
    if probe.object != Some("customer") {
        return Err(format!(
            "{} object, not a customer",
            probe.object.unwrap_or("an untyped")
        ));
    }
    if let Some(livemode) = probe.livemode
        && livemode != key_livemode
    {
        return Err(format!(
            "a {} customer answered to a {} key",
            mode_name(livemode),
            mode_name(key_livemode)
        ));
    }
    let customer = decode_customer_object(object_json).map_err(|e| e.to_string())?;
    Ok(ApiCustomer {
        customer,
        deleted: probe.deleted,
    })
}

fn mode_name(livemode: bool) -> &'static str {
    if livemode { "live-mode" } else { "test-mode" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_customer_is_its_id_and_the_flag() {
        let decoded = decode(
            r#"{"id":"cus_D1","object":"customer","deleted":true}"#,
            false,
        )
        .unwrap();
        assert!(decoded.deleted);
        assert_eq!(decoded.customer.id, "cus_D1");
        assert_eq!(decoded.customer.email, None);
    }

    #[test]
    fn live_customer_is_decoded_like_a_webhook_object() {
        let decoded = decode(
            r#"{"id":"cus_L1","object":"customer","email":"l@example.com","name":null,
            "invoice_settings":{"default_payment_method":"pm_1"},"metadata":{"user_id":"u"}}"#,
            false,
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
        assert!(decode(r#"{"id":"in_1","object":"invoice"}"#, false).is_err());
        assert!(decode(r#"{"object":"customer"}"#, false).is_err());
        assert!(decode(r#"{"id":"cus_1"}"#, false).is_err());
    }

    #[test]
    fn a_customer_of_the_other_mode_than_the_key_is_refused() {
        let live = r#"{"id":"cus_L1","object":"customer","livemode":true,"email":"l@example.com"}"#;
        assert!(decode(live, true).is_ok());
        let error = decode(live, false).unwrap_err();
        assert!(
            error.contains("live-mode customer answered to a test-mode key"),
            "{error}"
        );
    }

    #[test]
    fn characters_postgresql_cannot_hold_are_cleaned_from_an_answer() {
        let body = br#"{"id":"cus_N1","object":"customer","name":"Ada\u0000","metadata":{}}"#;
        let decoded = decode_answer(body, false).unwrap();
        assert_eq!(decoded.customer.name.as_deref(), Some("Ada\u{FFFD}"));
    }
}
