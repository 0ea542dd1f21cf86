//! Thin events (Stripe's event destinations, `object: "v2.core.event"`): a verified body that
//! carries the event's id, type and time and the id of the object it is about, but not the
//! object. For `v1.customer.*` the service fetches the customer itself (docs/design.md,
//! "Thin events"), and for `v1.customer.subscription.*` the subscription ("Tiers").
//!
//! Shape: `{"id":"evt_…","object":"v2.core.event","type":"v1.customer.updated",
//! "created":"<RFC 3339>","livemode":…,"related_object":{"id":"cus_…","type":"customer",
//! "url":"/v1/customers/cus_…"},"reason":…,"context":…,"changes":…}`. Unlike a snapshot
//! event's Unix `created`, a thin event's is an RFC 3339 string.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::event::{self, MalformedEvent, StripeEvent};
use crate::domain::EventId;

/// The `object` of every thin event.
pub(crate) const THIN_EVENT_OBJECT: &str = "v2.core.event";

/// A verified thin event, decoded.
#[derive(Debug, Clone)]
pub(crate) struct ThinEvent<'body> {
    pub id: EventId,
    /// As sent, e.g. `v1.customer.updated`: what the ledger records.
    pub event_type: String,
    pub created: DateTime<Utc>,
    pub livemode: bool,
    /// The customer a `v1.customer.*` event is about (its id as sent, not yet validated);
    /// `None` for every other type, which the service records as `ignored`.
    pub customer_id: Option<String>,
    /// The subscription a `v1.customer.subscription.*` event is about (as sent, not yet
    /// validated); `None` for every other type.
    pub subscription_id: Option<String>,
    /// The body kept for the ledger: exactly what Stripe signed unless `payload_sanitized`.
    pub raw: &'body str,
    /// Characters PostgreSQL cannot hold were replaced in `raw` (see `stripe::sanitize`).
    pub payload_sanitized: bool,
}

/// A verified body: a snapshot event (`object: "event"`) or a thin one.
#[derive(Debug, Clone)]
pub(crate) enum Delivery<'body> {
    Snapshot(StripeEvent<'body>),
    Thin(ThinEvent<'body>),
}

impl Delivery<'_> {
    /// Says that the body was what `stripe::sanitize` made of the signed one, not that body.
    pub(crate) fn sanitized(mut self, sanitized: bool) -> Self {
        match &mut self {
            Self::Snapshot(event) => event.payload_sanitized = sanitized,
            Self::Thin(event) => event.payload_sanitized = sanitized,
        }
        self
    }

    pub(crate) fn id(&self) -> &EventId {
        match self {
            Self::Snapshot(event) => &event.id,
            Self::Thin(event) => &event.id,
        }
    }

    pub(crate) fn event_type(&self) -> &str {
        match self {
            Self::Snapshot(event) => event.event_type,
            Self::Thin(event) => &event.event_type,
        }
    }

    /// The event's `created`, Unix seconds.
    pub(crate) fn created(&self) -> i64 {
        match self {
            Self::Snapshot(event) => event.created,
            Self::Thin(event) => event.created.timestamp(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a Stripe thin event: {0}")]
pub(crate) struct MalformedThinEvent(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MalformedDelivery {
    #[error(transparent)]
    Snapshot(#[from] MalformedEvent),
    #[error(transparent)]
    Thin(#[from] MalformedThinEvent),
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    object: Option<&'a str>,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    created: String,
    #[serde(default)]
    livemode: bool,
    #[serde(default)]
    related_object: Option<RelatedObject>,
}

#[derive(Deserialize)]
struct RelatedObject {
    id: String,
    #[serde(rename = "type")]
    object_type: String,
}

const CUSTOMER_TYPES: [&str; 3] = [
    "v1.customer.created",
    "v1.customer.updated",
    "v1.customer.deleted",
];

const SUBSCRIPTION_TYPES: [&str; 3] = [
    "v1.customer.subscription.created",
    "v1.customer.subscription.updated",
    "v1.customer.subscription.deleted",
];

/// Decodes a verified body as a snapshot event, or, when it is not one, as a thin event. The
/// snapshot path is tried first and costs nothing more than before; only a body that fails it
/// is looked at again.
pub(crate) fn decode_delivery(body: &[u8]) -> Result<Delivery<'_>, MalformedDelivery> {
    match event::decode(body) {
        Ok(event) => Ok(Delivery::Snapshot(event)),
        Err(snapshot_error) => match decode(body) {
            Ok(Some(thin)) => Ok(Delivery::Thin(thin)),
            Ok(None) => Err(snapshot_error.into()),
            Err(thin_error) => Err(thin_error.into()),
        },
    }
}

/// Decodes a thin event; `Ok(None)` when the body is not one (its `object` is not
/// `v2.core.event`).
pub(crate) fn decode(body: &[u8]) -> Result<Option<ThinEvent<'_>>, MalformedThinEvent> {
    let malformed = |why: String| MalformedThinEvent(why);
    let raw = std::str::from_utf8(body).map_err(|_| malformed("body is not UTF-8".into()))?;
    let Ok(probe) = serde_json::from_str::<Probe<'_>>(raw) else {
        return Ok(None);
    };
    if probe.object != Some(THIN_EVENT_OBJECT) {
        return Ok(None);
    }
    let envelope: Envelope = serde_json::from_str(raw).map_err(|e| malformed(e.to_string()))?;
    let id = EventId::parse(&envelope.id).map_err(|e| malformed(e.to_string()))?;
    let created = DateTime::parse_from_rfc3339(&envelope.created)
        .map_err(|e| malformed(format!("`created` is not an RFC 3339 time: {e}")))?
        .with_timezone(&Utc);
    let subscription_id = related_id(&envelope, &SUBSCRIPTION_TYPES, "subscription")?;
    let customer_id = if CUSTOMER_TYPES.contains(&envelope.event_type.as_str()) {
        match envelope.related_object {
            Some(related) if related.object_type == "customer" => Some(related.id),
            _ => {
                return Err(malformed(format!(
                    "a {} event without a related customer",
                    envelope.event_type
                )));
            }
        }
    } else {
        None
    };
    Ok(Some(ThinEvent {
        id,
        event_type: envelope.event_type,
        created,
        livemode: envelope.livemode,
        customer_id,
        subscription_id,
        raw,
        payload_sanitized: false,
    }))
}

/// The id of the related object of `object_type` that an event of one of `types` is about;
/// `None` for an event of another type.
fn related_id(
    envelope: &Envelope,
    types: &[&str],
    object_type: &str,
) -> Result<Option<String>, MalformedThinEvent> {
    if !types.contains(&envelope.event_type.as_str()) {
        return Ok(None);
    }
    match &envelope.related_object {
        Some(related) if related.object_type == object_type => Ok(Some(related.id.clone())),
        _ => Err(MalformedThinEvent(format!(
            "a {} event without a related {object_type}",
            envelope.event_type
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thin(event_type: &str, related: &str) -> String {
        format!(
            r#"{{"id":"evt_test_65R9Ijk1","object":"v2.core.event","type":"{event_type}",
            "created":"2026-11-26T09:15:02.371Z","livemode":false,{related}
            "reason":{{"type":"request","request":{{"id":"req_v2abc","idempotency_key":null}}}},
            "context":null,"changes":{{}}}}"#
        )
    }

    const CUSTOMER: &str =
        r#""related_object":{"id":"cus_Thin1","type":"customer","url":"/v1/customers/cus_Thin1"},"#;

    #[test]
    fn thin_customer_event_gives_its_id_type_time_and_customer() {
        let body = thin("v1.customer.updated", CUSTOMER);
        let Delivery::Thin(event) = decode_delivery(body.as_bytes()).unwrap() else {
            panic!("not thin")
        };
        assert_eq!(event.id.as_str(), "evt_test_65R9Ijk1");
        assert_eq!(event.event_type, "v1.customer.updated");
        assert_eq!(event.created.timestamp(), 1_795_684_502);
        assert_eq!(event.customer_id.as_deref(), Some("cus_Thin1"));
        assert_eq!(event.raw, body);
    }

    #[test]
    fn thin_subscription_event_gives_its_subscription() {
        let body = thin(
            "v1.customer.subscription.updated",
            r#""related_object":{"id":"sub_1","type":"subscription","url":"/v1/subscriptions/sub_1"},"#,
        );
        let event = decode(body.as_bytes()).unwrap().unwrap();
        assert_eq!(event.subscription_id.as_deref(), Some("sub_1"));
        assert_eq!(event.customer_id, None);
        // One without its subscription is malformed.
        let without = thin("v1.customer.subscription.updated", CUSTOMER);
        assert!(decode(without.as_bytes()).is_err());
    }

    #[test]
    fn thin_events_of_other_types_have_no_customer() {
        let body = thin(
            "v1.invoice.paid",
            r#""related_object":{"id":"in_1","type":"invoice","url":"/v1/invoices/in_1"},"#,
        );
        let event = decode(body.as_bytes()).unwrap().unwrap();
        assert_eq!(event.customer_id, None);
    }

    #[test]
    fn snapshot_events_still_decode_as_snapshots() {
        let body = r#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1,
            "livemode":false,"data":{"object":{"id":"in_1","object":"invoice"}}}"#;
        assert!(matches!(
            decode_delivery(body.as_bytes()),
            Ok(Delivery::Snapshot(_))
        ));
        assert!(matches!(decode(body.as_bytes()), Ok(None)));
    }

    #[test]
    fn malformed_thin_events_are_refused() {
        for body in [
            thin("v1.customer.updated", ""),
            thin(
                "v1.customer.updated",
                r#""related_object":{"id":"in_1","type":"invoice","url":"/v1/invoices/in_1"},"#,
            ),
            thin("v1.customer.updated", CUSTOMER).replace("2026-11-26T09:15:02.371Z", "yesterday"),
            thin("v1.customer.updated", CUSTOMER).replace("evt_test_65R9Ijk1", "nope"),
        ] {
            assert!(
                matches!(
                    decode_delivery(body.as_bytes()),
                    Err(MalformedDelivery::Thin(_))
                ),
                "{body}"
            );
        }
        // Neither kind: the snapshot decoder's complaint is the one reported.
        assert!(matches!(
            decode_delivery(b"{}"),
            Err(MalformedDelivery::Snapshot(_))
        ));
    }
}
