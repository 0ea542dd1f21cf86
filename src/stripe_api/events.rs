//! `GET /v1/events`: the customer events Stripe still holds (30 days), a page at a time.
//!
//! Stripe lists newest first and pages with `starting_after` (the last event id of the page
//! before). Each event is kept as the exact JSON Stripe listed it: it is decoded by
//! `stripe::event::decode` and stored in the ledger as its payload, as a delivered one is.

use serde::Deserialize;

use super::list;
use super::{ApiError, StripeClient};

/// Stripe's largest page.
pub(crate) const PAGE_SIZE: usize = 100;

/// The event types `catch-up` lists: the ones the sync applies (customers, and the
/// subscriptions the tiers follow).
pub(crate) const CUSTOMER_EVENT_TYPES: [&str; 6] = [
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
];

/// One listed event: what ordering needs, and the JSON itself.
#[derive(Debug, Clone)]
pub(crate) struct ListedEvent {
    pub id: String,
    pub event_type: String,
    /// Unix seconds.
    pub created: i64,
    /// The event as listed, cleaned of what PostgreSQL cannot hold (`stripe::sanitize`).
    pub json: String,
    /// The cleaning changed it: it is not byte for byte what Stripe listed.
    pub sanitized: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct EventPage {
    pub events: Vec<ListedEvent>,
    pub has_more: bool,
    /// Unix seconds at which the request that got this page started.
    pub requested_at: i64,
}

impl EventPage {
    /// The `starting_after` of the next page: the id of this page's last event.
    pub(crate) fn cursor(&self) -> Option<&str> {
        self.events.last().map(|e| e.id.as_str())
    }
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    object: String,
    #[serde(rename = "type")]
    event_type: String,
    created: i64,
    livemode: bool,
}

/// The page of customer events created at or after `created_gte` (Unix seconds) that follows
/// `starting_after` (the first page without it), `limit=100`.
pub(crate) async fn list_page(
    client: &StripeClient,
    created_gte: i64,
    starting_after: Option<&str>,
) -> Result<EventPage, ApiError> {
    let limit = PAGE_SIZE.to_string();
    let gte = created_gte.to_string();
    let mut query: Vec<(&str, &str)> = CUSTOMER_EVENT_TYPES
        .iter()
        .map(|event_type| ("types[]", *event_type))
        .collect();
    query.push(("created[gte]", &gte));
    query.push(("limit", &limit));
    if let Some(cursor) = starting_after {
        query.push(("starting_after", cursor));
    }
    let answer = client.get(client.url(&["v1", "events"], &query)?).await?;
    let key_livemode = client.key_livemode();
    let page = list::items(&answer, |item| {
        let envelope: Envelope =
            serde_json::from_str(item.json).map_err(|e| format!("not an event: {e}"))?;
        if envelope.object != "event" {
            return Err(format!("{} object, not an event", envelope.object));
        }
        // Stripe lists a key's own mode only: another mode is not Stripe's answer.
        if envelope.livemode != key_livemode {
            return Err(format!(
                "event {} of the other mode than the key's",
                envelope.id
            ));
        }
        Ok(ListedEvent {
            id: envelope.id,
            event_type: envelope.event_type,
            created: envelope.created,
            json: item.json.to_owned(),
            sanitized: item.sanitized,
        })
    })?;
    Ok(EventPage {
        events: page.items,
        has_more: page.has_more,
        requested_at: answer.requested_at,
    })
}
