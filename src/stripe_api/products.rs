//! `GET /v1/products/{id}`: a product's metadata, for a price that names no tier itself
//! (docs/design.md "Tiers"), read exactly as customers are and kept in the in-process cache
//! (`sync::subscriptions::products`).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ApiError, StripeClient};
use crate::configuration::TierSettings;
use crate::stripe::event::{EventObject, StripeEvent, SubscriptionObject};
use crate::stripe::sanitize;
use crate::sync::SyncSettings;
use crate::sync::subscriptions::rules;

#[derive(Deserialize)]
struct Product<'a> {
    id: String,
    #[serde(borrow, default)]
    object: Option<&'a str>,
    #[serde(default)]
    livemode: Option<bool>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

/// The product's metadata; `None` when Stripe answers 404 `resource_missing` (this key does
/// not know it). A deleted product has none.
pub(crate) async fn metadata(
    client: &StripeClient,
    id: &str,
) -> Result<Option<Map<String, Value>>, ApiError> {
    let answer = client
        .get(client.url(&["v1", "products", id], &[])?)
        .await?;
    let Some(body) = answer.body.as_deref() else {
        return Ok(None);
    };
    let malformed = |detail: String| ApiError::Malformed {
        url: answer.url.clone(),
        detail,
    };
    let storable = sanitize::storable(body);
    let product: Product<'_> = serde_json::from_slice(&storable.body)
        .map_err(|e| malformed(format!("not a product: {e}")))?;
    if product.object != Some("product") {
        return Err(malformed(format!(
            "{} object, not a product",
            product.object.unwrap_or("an untyped")
        )));
    }
    if product.id != id {
        return Err(malformed(format!(
            "product {} answered for {id}",
            product.id
        )));
    }
    if product
        .livemode
        .is_some_and(|livemode| livemode != client.key_livemode())
    {
        return Err(malformed(
            "a product of the other mode than the key's".into(),
        ));
    }
    Ok(Some(product.metadata.unwrap_or_default()))
}

/// Gives every price of `subscription` that names no tier itself its product's metadata: from
/// the object when Stripe sent it expanded, else from the cache, else fetched (and cached).
/// Without a client, or with a key of the other mode than the subscription's, nothing is
/// fetched and such prices name no tier. An error of Stripe's is returned (a webhook answers
/// 503 and Stripe retries): a tier is never guessed.
pub(crate) async fn expand(
    client: Option<&StripeClient>,
    tiers: &TierSettings,
    subscription: &mut SubscriptionObject,
    livemode: bool,
) -> Result<(), ApiError> {
    let client = client.filter(|client| client.key_livemode() == livemode);
    for item in &mut subscription.items.data {
        let Some(price) = item.price.as_mut() else {
            continue;
        };
        if rules::own_tier(tiers, price).is_some() {
            continue;
        }
        let Some(product) = price.product.as_mut() else {
            continue;
        };
        if product.metadata.is_some() {
            continue;
        }
        if let Some(cached) = tiers.products.get(&product.id) {
            product.metadata = Some(cached);
            continue;
        }
        let Some(client) = client else { continue };
        let fetched = match metadata(client, &product.id).await? {
            Some(metadata) => metadata,
            None => {
                tracing::warn!(
                    product = %product.id,
                    "Stripe answered 404 resource_missing for a subscribed price's product"
                );
                Map::new()
            }
        };
        tiers.products.insert(&product.id, fetched.clone());
        product.metadata = Some(fetched);
    }
    Ok(())
}

/// [`expand`] for a snapshot event's subscription (webhook, catch-up, re-apply), when the
/// deployment keeps the event's mode; any other event is left as it is.
pub(crate) async fn expand_event(
    client: Option<&StripeClient>,
    settings: &SyncSettings,
    event: &mut StripeEvent<'_>,
) -> Result<(), ApiError> {
    match &mut event.object {
        EventObject::Subscription(subscription) if settings.mode.keeps(event.livemode) => {
            expand(client, &settings.tiers, subscription, event.livemode).await
        }
        _ => Ok(()),
    }
}
