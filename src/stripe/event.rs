//! Decoding a verified request body into the few facts the sync needs.
//!
//! Stripe renders `data.object` in the API version of the endpoint, so one deployment sees
//! customers shaped by 2020 and by this year's API. Only the fields the sync uses are read, each
//! optional but the id, so a verified event is never rejected for a field the sync does not use
//! (an enum value or field shape of another version, the `{"deleted": true}` tombstone). For the
//! API version async-stripe was generated from, a test checks that its `Customer` reads the same
//! facts. (Reading the whole typed `Customer` first, as this once did, cost an eighth of the
//! service's CPU per event at 16 concurrent senders and told the sync nothing more.)

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::domain::EventId;

/// A verified Stripe event, decoded.
#[derive(Debug, Clone)]
pub struct StripeEvent<'body> {
    pub id: EventId,
    pub event_type: &'body str,
    /// The event's `created`, Unix seconds (1-second resolution).
    pub created: i64,
    pub livemode: bool,
    pub api_version: Option<&'body str>,
    pub object: EventObject,
    /// The body kept for the ledger: exactly what Stripe signed unless `payload_sanitized`.
    pub raw: &'body str,
    /// Characters PostgreSQL cannot hold were replaced in `raw` (see `stripe::sanitize`).
    pub payload_sanitized: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventObject {
    Customer(CustomerObject),
    /// A `customer.subscription.*` event's subscription.
    Subscription(SubscriptionObject),
    /// Anything the service does not apply; only recorded.
    Other,
}

/// The customer fields the sync rules read, as Stripe sent them (not yet validated).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CustomerObject {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// `invoice_settings.default_payment_method`: an id, or the id of the expanded object.
    pub default_payment_method: Option<String>,
    pub metadata: Map<String, Value>,
}

/// The subscription fields the tier rules read (docs/design.md "Tiers"), as Stripe sent them.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct SubscriptionObject {
    pub id: String,
    /// The customer's id (or the expanded customer's).
    #[serde(default, deserialize_with = "id_or_object")]
    pub customer: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    /// Before the 2025 API versions the period end sits on the subscription.
    #[serde(default)]
    pub current_period_end: Option<i64>,
    #[serde(default)]
    pub items: SubscriptionItems,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct SubscriptionItems {
    #[serde(default)]
    pub data: Vec<SubscriptionItem>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct SubscriptionItem {
    #[serde(default)]
    pub price: Option<PriceObject>,
    /// From the 2025 API versions the period end sits on each item.
    #[serde(default)]
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct PriceObject {
    pub id: String,
    #[serde(default)]
    pub lookup_key: Option<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// The price's product: its id, or the expanded product. The tier rules read its metadata
    /// when the price names no tier itself (docs/design.md "Tiers"). A shape of neither kind is
    /// read as no product rather than refusing a verified event.
    #[serde(default, deserialize_with = "product_ref")]
    pub product: Option<ProductRef>,
}

/// A price's `product` as Stripe sends it: an id, or the expanded object. `metadata` is `None`
/// for an id not yet fetched (`stripe_api::products` fills it in).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProductRef {
    pub id: String,
    pub metadata: Option<Map<String, Value>>,
}

fn product_ref<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ProductRef>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(id) => Some(ProductRef { id, metadata: None }),
        Value::Object(mut object) => match object.remove("id") {
            // An expanded product without metadata has none to give.
            Some(Value::String(id)) => Some(ProductRef {
                id,
                metadata: Some(match object.remove("metadata") {
                    Some(Value::Object(metadata)) => metadata,
                    _ => Map::new(),
                }),
            }),
            _ => None,
        },
        _ => None,
    })
}

fn id_or_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<IdOrObject>::deserialize(d)?.map(|o| match o {
        IdOrObject::Id(id) | IdOrObject::Object { id } => id,
    }))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a Stripe event: {0}")]
pub struct MalformedEvent(String);

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    object: Option<&'a str>,
    #[serde(rename = "type", borrow)]
    event_type: &'a str,
    created: i64,
    #[serde(default)]
    livemode: bool,
    #[serde(borrow, default)]
    api_version: Option<&'a str>,
    #[serde(borrow)]
    data: EnvelopeData<'a>,
}

#[derive(Deserialize)]
struct EnvelopeData<'a> {
    #[serde(borrow)]
    object: &'a RawValue,
}

/// The raw-JSON reading of a customer: every field optional but the id.
#[derive(Deserialize)]
struct RawCustomer {
    id: String,
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    invoice_settings: Option<RawInvoiceSettings>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct RawInvoiceSettings {
    #[serde(default)]
    default_payment_method: Option<IdOrObject>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdOrObject {
    Id(String),
    Object { id: String },
}

/// Decodes a body whose signature has already been verified.
pub fn decode(body: &[u8]) -> Result<StripeEvent<'_>, MalformedEvent> {
    let raw = std::str::from_utf8(body).map_err(|_| MalformedEvent("body is not UTF-8".into()))?;
    let envelope: Envelope<'_> =
        serde_json::from_str(raw).map_err(|e| MalformedEvent(e.to_string()))?;
    if envelope.object.is_some_and(|o| o != "event") {
        return Err(MalformedEvent("`object` is not \"event\"".into()));
    }
    let id = EventId::parse(envelope.id).map_err(|e| MalformedEvent(e.to_string()))?;
    let object = if is_customer_event(envelope.event_type) {
        EventObject::Customer(decode_customer(envelope.data.object.get())?)
    } else if is_subscription_event(envelope.event_type) {
        EventObject::Subscription(
            serde_json::from_str(envelope.data.object.get())
                .map_err(|e| MalformedEvent(format!("data.object is not a subscription: {e}")))?,
        )
    } else {
        EventObject::Other
    };
    Ok(StripeEvent {
        id,
        event_type: envelope.event_type,
        created: envelope.created,
        livemode: envelope.livemode,
        api_version: envelope.api_version,
        object,
        raw,
        payload_sanitized: false,
    })
}

fn is_customer_event(event_type: &str) -> bool {
    matches!(
        event_type,
        "customer.created" | "customer.updated" | "customer.deleted"
    )
}

fn is_subscription_event(event_type: &str) -> bool {
    matches!(
        event_type,
        "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted"
    )
}

/// The fields the sync uses, read from the raw JSON, each optional but the id.
fn decode_customer(object_json: &str) -> Result<CustomerObject, MalformedEvent> {
    let raw: RawCustomer = serde_json::from_str(object_json)
        .map_err(|e| MalformedEvent(format!("data.object is not a customer: {e}")))?;
    if raw.object.as_deref().is_some_and(|o| o != "customer") {
        return Err(MalformedEvent("data.object is not a customer".into()));
    }
    Ok(CustomerObject {
        id: raw.id,
        email: raw.email,
        name: raw.name,
        default_payment_method: raw
            .invoice_settings
            .and_then(|s| s.default_payment_method)
            .map(|pm| match pm {
                IdOrObject::Id(id) | IdOrObject::Object { id } => id,
            }),
        metadata: raw.metadata.unwrap_or_default(),
    })
}

/// A customer object from Stripe's API that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a Stripe customer object ({0})")]
pub(crate) struct MalformedCustomer(String);

/// Decodes ONE customer object as Stripe's API returns it (an item of a list's `data`, or the
/// body of a retrieve) with the same robust decoding as a webhook's `data.object`. A deleted
/// customer, `{"id", "object": "customer", "deleted": true}`, decodes to its id alone: whether
/// an object is deleted is the caller's to read (`stripe_api::customers`).
pub(crate) fn decode_customer_object(
    object_json: &str,
) -> Result<CustomerObject, MalformedCustomer> {
    decode_customer(object_json).map_err(|MalformedEvent(why)| MalformedCustomer(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(object: &str, event_type: &str) -> String {
        format!(
            r#"{{"id":"evt_1","object":"event","api_version":"2024-06-20","created":1718703665,
            "livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},
            "type":"{event_type}","data":{{"object":{object}}}}}"#
        )
    }

    #[test]
    fn customer_fields_are_taken_from_data_object() {
        let body = event(
            r#"{"id":"cus_A1","object":"customer","email":"a@example.com","name":"Ada",
            "invoice_settings":{"default_payment_method":"pm_1"},"metadata":{"user_id":"u"}}"#,
            "customer.updated",
        );
        let decoded = decode(body.as_bytes()).unwrap();
        assert_eq!(decoded.id.as_str(), "evt_1");
        assert_eq!(decoded.created, 1718703665);
        let EventObject::Customer(customer) = decoded.object else {
            panic!("not a customer")
        };
        assert_eq!(customer.id, "cus_A1");
        assert_eq!(customer.email.as_deref(), Some("a@example.com"));
        assert_eq!(customer.default_payment_method.as_deref(), Some("pm_1"));
        assert_eq!(
            customer.metadata.get("user_id"),
            Some(&Value::String("u".into()))
        );
    }

    #[test]
    fn expanded_default_payment_method_yields_its_id() {
        let body = event(
            r#"{"id":"cus_A1","object":"customer","email":null,
            "invoice_settings":{"default_payment_method":{"id":"pm_9","object":"payment_method","type":"weird_new_type"}}}"#,
            "customer.updated",
        );
        let EventObject::Customer(customer) = decode(body.as_bytes()).unwrap().object else {
            panic!("not a customer")
        };
        assert_eq!(customer.default_payment_method.as_deref(), Some("pm_9"));
    }

    #[test]
    fn tombstone_customer_object_is_accepted() {
        let body = event(
            r#"{"id":"cus_T1","object":"customer","deleted":true}"#,
            "customer.deleted",
        );
        let EventObject::Customer(customer) = decode(body.as_bytes()).unwrap().object else {
            panic!("not a customer")
        };
        assert_eq!(customer.id, "cus_T1");
        assert_eq!(customer.email, None);
    }

    #[test]
    fn unknown_event_types_are_decoded_as_other() {
        let body = event(r#"{"id":"in_1","object":"invoice"}"#, "invoice.paid");
        assert_eq!(decode(body.as_bytes()).unwrap().object, EventObject::Other);
    }

    #[test]
    fn bodies_that_are_not_stripe_events_are_malformed() {
        for body in [
            "",
            "not json",
            "[]",
            r#"{"id":"evt_1"}"#,
            r#"{"id":"x","object":"event","type":"a.b","created":1,"data":{"object":{}}}"#,
            &event(r#"{"object":"customer"}"#, "customer.created"),
            &event(r#"{"id":"in_1","object":"invoice"}"#, "customer.created"),
        ] {
            assert!(decode(body.as_bytes()).is_err(), "{body}");
        }
    }

    /// Stripe's own model of a customer (async-stripe's, generated from the current API version)
    /// and this decoding read the same facts from the current version's customers.
    #[test]
    fn current_api_version_customers_read_as_async_stripe_reads_them() {
        for fixture in [
            include_str!("../../fixtures/2026-09-30.endive/01_customer.created.json"),
            include_str!("../../fixtures/2026-09-30.endive/02_customer.updated.json"),
            include_str!("../../fixtures/2026-09-30.endive/03_customer.deleted.json"),
        ] {
            let envelope: Value = serde_json::from_str(fixture).unwrap();
            let object = envelope["data"]["object"].to_string();
            let typed = miniserde::json::from_str::<stripe_shared::Customer>(&object)
                .expect("async-stripe's Customer reads the current API version");
            let typed = from_typed(typed);
            assert!(
                typed.email.is_some() && !typed.metadata.is_empty(),
                "{typed:?}"
            );
            assert_eq!(typed, decode_customer(&object).unwrap());
        }
    }

    fn from_typed(customer: stripe_shared::Customer) -> CustomerObject {
        CustomerObject {
            id: customer.id.as_str().to_owned(),
            email: customer.email,
            name: customer.name,
            default_payment_method: customer
                .invoice_settings
                .and_then(|s| s.default_payment_method)
                .map(|pm| pm.id().as_str().to_owned()),
            metadata: customer
                .metadata
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        }
    }
}
