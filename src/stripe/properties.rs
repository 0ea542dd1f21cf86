//! Properties of the event envelopes (snapshot and thin) and of the cleaning of what PostgreSQL
//! cannot hold, over any body: decoding never panics, and reads back exactly what an event
//! says; cleaning never panics, leaves a body without U+0000 byte for byte as signed, and
//! otherwise gives JSON without U+0000 that equals the input but for those characters.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::event::{self, EventObject};
use super::sanitize;
use super::thin_event::{self, Delivery};
use crate::properties::{any_text, config, json_object, json_value, small_json_value, text};

fn event_id() -> impl Strategy<Value = String> {
    "evt_[A-Za-z0-9_]{1,60}"
}

/// Types as Stripe writes them (and any text that JSON carries without an escape: the envelope
/// borrows `type` and `api_version` from the body, so an escaped one is refused as malformed).
fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("customer.created".to_owned()),
        Just("customer.updated".to_owned()),
        Just("customer.deleted".to_owned()),
        "[a-z_.]{1,40}",
        unescaped_text(),
    ]
}

fn unescaped_text() -> impl Strategy<Value = String> {
    "[^\"\\\\\\x00-\\x1f]{0,40}"
}

/// A customer object as Stripe may render it: any strings, any metadata, an id or expanded
/// object as the default payment method, any other fields.
fn customer() -> impl Strategy<Value = Value> {
    (
        text(),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of((text(), any::<bool>())),
        json_object(text().prop_map(Value::String)),
        json_object(small_json_value()),
    )
        .prop_map(|(id, email, name, payment_method, metadata, extra)| {
            let mut object = extra.as_object().cloned().unwrap_or_default();
            let payment_method = payment_method.map(|(id, expanded)| {
                if expanded {
                    json!({ "id": id, "object": "payment_method" })
                } else {
                    json!(id)
                }
            });
            for (key, value) in [
                ("id", json!(id)),
                ("object", json!("customer")),
                ("email", json!(email)),
                ("name", json!(name)),
                ("metadata", metadata),
                (
                    "invoice_settings",
                    json!({ "default_payment_method": payment_method }),
                ),
            ] {
                object.insert(key.to_owned(), value);
            }
            Value::Object(object)
        })
}

fn snapshot_event() -> impl Strategy<Value = Value> {
    (
        event_id(),
        event_type(),
        any::<i64>(),
        any::<bool>(),
        prop::option::of(unescaped_text()),
        customer(),
    )
        .prop_map(|(id, event_type, created, livemode, api_version, object)| {
            json!({
                "id": id, "object": "event", "type": event_type, "created": created,
                "livemode": livemode, "api_version": api_version,
                "data": { "object": object, "previous_attributes": {} },
                "pending_webhooks": 1, "request": { "id": null, "idempotency_key": null }
            })
        })
}

fn thin_event() -> impl Strategy<Value = Value> {
    (
        event_id(),
        prop_oneof![
            Just("v1.customer.created".to_owned()),
            Just("v1.customer.updated".to_owned()),
            Just("v1.customer.deleted".to_owned()),
            "v1\\.[a-z_.]{1,30}",
        ],
        // Any instant from year 1 to 9999, with milliseconds.
        -62_135_596_800_000i64..253_402_300_799_000,
        any::<bool>(),
        "cus_[A-Za-z0-9]{1,30}",
    )
        .prop_map(|(id, event_type, millis, livemode, customer)| {
            let created = DateTime::<Utc>::from_timestamp_millis(millis).unwrap();
            json!({
                "id": id, "object": "v2.core.event", "type": event_type,
                "created": created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "livemode": livemode,
                "related_object": { "id": customer, "type": "customer",
                                    "url": format!("/v1/customers/{customer}") },
                "reason": null, "context": null, "changes": {}
            })
        })
}

/// A valid event with one field replaced by any JSON, or removed.
fn mutated(event: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    (
        event,
        any::<prop::sample::Index>(),
        small_json_value(),
        any::<bool>(),
    )
        .prop_map(|(mut event, index, value, remove)| {
            let object = event.as_object_mut().unwrap();
            let key = object
                .keys()
                .nth(index.index(object.len()))
                .unwrap()
                .clone();
            if remove {
                object.remove(&key);
            } else {
                object.insert(key, value);
            }
            event
        })
}

/// `value` with every U+0000 of its strings and keys replaced by U+FFFD.
fn without_nul(value: &Value) -> Value {
    let clean = |s: &str| s.replace('\0', "\u{FFFD}");
    match value {
        Value::String(s) => Value::String(clean(s)),
        Value::Array(items) => Value::Array(items.iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (clean(k), without_nul(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decoding_never_panics_on_any_bytes(body in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = thin_event::decode_delivery(&body);
    }

    #[test]
    fn decoding_never_panics_on_any_json(body in json_value()) {
        let _ = thin_event::decode_delivery(body.to_string().as_bytes());
    }

    #[test]
    fn decoding_never_panics_on_an_event_with_any_field_changed(
        body in prop_oneof![mutated(snapshot_event()), mutated(thin_event())],
    ) {
        let _ = thin_event::decode_delivery(body.to_string().as_bytes());
    }

    #[test]
    fn a_snapshot_event_reads_back_what_it_says(body in snapshot_event()) {
        let text = body.to_string();
        let decoded = event::decode(text.as_bytes()).unwrap();
        prop_assert_eq!(decoded.id.as_str(), body["id"].as_str().unwrap());
        prop_assert_eq!(decoded.event_type, body["type"].as_str().unwrap());
        prop_assert_eq!(decoded.created, body["created"].as_i64().unwrap());
        prop_assert_eq!(decoded.livemode, body["livemode"].as_bool().unwrap());
        prop_assert_eq!(decoded.api_version, body["api_version"].as_str());
        prop_assert_eq!(decoded.raw, text.as_str());
        let object = &body["data"]["object"];
        match decoded.object {
            EventObject::Customer(customer) => {
                prop_assert!(decoded.event_type.starts_with("customer."));
                prop_assert_eq!(customer.id.as_str(), object["id"].as_str().unwrap());
                prop_assert_eq!(customer.email.as_deref(), object["email"].as_str());
                prop_assert_eq!(customer.name.as_deref(), object["name"].as_str());
                let payment_method = &object["invoice_settings"]["default_payment_method"];
                prop_assert_eq!(
                    customer.default_payment_method.as_deref(),
                    payment_method.as_str().or(payment_method["id"].as_str())
                );
                prop_assert_eq!(&Value::Object(customer.metadata), &object["metadata"]);
            }
            EventObject::Subscription(subscription) => {
                prop_assert!(decoded.event_type.starts_with("customer.subscription."));
                prop_assert_eq!(subscription.id.as_str(), object["id"].as_str().unwrap());
            }
            EventObject::Other => prop_assert!(!matches!(
                decoded.event_type,
                "customer.created" | "customer.updated" | "customer.deleted"
            )),
        }
    }

    #[test]
    fn a_thin_event_reads_back_what_it_says(body in thin_event()) {
        let text = body.to_string();
        let Delivery::Thin(decoded) = thin_event::decode_delivery(text.as_bytes()).unwrap() else {
            panic!("a thin event decoded as a snapshot");
        };
        prop_assert_eq!(decoded.id.as_str(), body["id"].as_str().unwrap());
        prop_assert_eq!(decoded.event_type.as_str(), body["type"].as_str().unwrap());
        let created = DateTime::parse_from_rfc3339(body["created"].as_str().unwrap()).unwrap();
        prop_assert_eq!(decoded.created, created);
        prop_assert_eq!(decoded.livemode, body["livemode"].as_bool().unwrap());
        let customer_event = decoded.event_type.starts_with("v1.customer.")
            && ["created", "updated", "deleted"]
                .iter()
                .any(|action| decoded.event_type.ends_with(action)
                    && decoded.event_type.len() == "v1.customer.".len() + action.len());
        prop_assert_eq!(
            decoded.customer_id.as_deref(),
            customer_event.then(|| body["related_object"]["id"].as_str().unwrap())
        );
    }

    #[test]
    fn cleaning_never_panics_on_any_bytes(body in prop::collection::vec(any::<u8>(), 0..400)) {
        let cleaned = sanitize::storable(&body);
        if cleaned.sanitized {
            let value: Value = serde_json::from_slice(&cleaned.body).unwrap();
            prop_assert!(!has_nul(&value));
        } else {
            prop_assert_eq!(&*cleaned.body, &body[..]);
        }
    }

    #[test]
    fn cleaning_keeps_a_body_without_nul_as_signed_and_replaces_nul_in_any_other(
        value in json_value(),
        text in any_text(),
    ) {
        // Ledger payloads are objects; the cleaning takes any JSON.
        for value in [value.clone(), json!({ "data": value, "name": text })] {
            let body = serde_json::to_vec(&value).unwrap();
            let cleaned = sanitize::storable(&body);
            if has_nul(&value) {
                prop_assert!(cleaned.sanitized);
                let text = std::str::from_utf8(&cleaned.body).unwrap();
                prop_assert!(!text.contains("\\u0000"));
                let read: Value = serde_json::from_str(text).unwrap();
                prop_assert!(!has_nul(&read));
                prop_assert_eq!(read, without_nul(&value));
            } else {
                prop_assert!(!cleaned.sanitized);
                prop_assert_eq!(&*cleaned.body, &body[..]);
            }
        }
    }
}
