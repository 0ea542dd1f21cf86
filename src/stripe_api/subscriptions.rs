//! `GET /v1/subscriptions/{id}` (a thin `v1.customer.subscription.*` event's subscription) and
//! `GET /v1/subscriptions?status=all` (a `backfill` page), read exactly as customers are
//! (`stripe_api::customers`): cleaned first, the object's type, id and mode checked, a 404
//! `resource_missing` told from an unknown URL. Decoded into the same [`SubscriptionObject`] a
//! webhook's `data.object` becomes.

use serde::Deserialize;

use super::list;
use super::{ApiError, StripeClient};
use crate::stripe::event::SubscriptionObject;
use crate::stripe::sanitize;

/// Stripe's largest page.
pub(crate) const PAGE_SIZE: usize = 100;

/// What `GET /v1/subscriptions/{id}` said.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Retrieved {
    /// The subscription (a canceled one too: Stripe keeps them).
    Found(SubscriptionObject),
    /// 404 `resource_missing`: this key's account and mode do not know the id. Never an end
    /// of the subscription.
    ResourceMissing,
}

/// One page of `GET /v1/subscriptions?status=all`, newest first.
#[derive(Debug, Clone)]
pub(crate) struct SubscriptionPage {
    pub subscriptions: Vec<SubscriptionObject>,
    pub has_more: bool,
    /// Unix seconds no later than Stripe's read of the page.
    pub requested_at: i64,
}

impl SubscriptionPage {
    /// The `starting_after` of the next page.
    pub(crate) fn cursor(&self) -> Option<&str> {
        self.subscriptions.last().map(|s| s.id.as_str())
    }
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    object: Option<&'a str>,
    #[serde(default)]
    livemode: Option<bool>,
}

/// One subscription by id; also returns when the request started.
pub(crate) async fn retrieve(
    client: &StripeClient,
    id: &str,
) -> Result<(Retrieved, i64), ApiError> {
    let answer = client
        .get(client.url(&["v1", "subscriptions", id], &[])?)
        .await?;
    let Some(body) = answer.body.as_deref() else {
        return Ok((Retrieved::ResourceMissing, answer.requested_at));
    };
    let malformed = |detail: String| ApiError::Malformed {
        url: answer.url.clone(),
        detail,
    };
    let storable = sanitize::storable(body);
    let text = std::str::from_utf8(&storable.body).map_err(|_| malformed("not UTF-8".into()))?;
    let subscription = decode(text, client.key_livemode()).map_err(malformed)?;
    if subscription.id != id {
        return Err(malformed(format!(
            "subscription {} answered for {id}",
            subscription.id
        )));
    }
    Ok((Retrieved::Found(subscription), answer.requested_at))
}

/// The page after `starting_after` (the first page without it): every status (`status=all`;
/// without it Stripe leaves canceled subscriptions out), `limit=100`.
pub(crate) async fn list_page(
    client: &StripeClient,
    starting_after: Option<&str>,
) -> Result<SubscriptionPage, ApiError> {
    let limit = PAGE_SIZE.to_string();
    let mut query = vec![("status", "all"), ("limit", limit.as_str())];
    if let Some(cursor) = starting_after {
        query.push(("starting_after", cursor));
    }
    let answer = client
        .get(client.url(&["v1", "subscriptions"], &query)?)
        .await?;
    let livemode = client.key_livemode();
    let page = list::items(&answer, |item| decode(item.json, livemode))?;
    Ok(SubscriptionPage {
        subscriptions: page.items,
        has_more: page.has_more,
        requested_at: answer.requested_at,
    })
}

/// A subscription object as Stripe's API documents it: `object` is `subscription`, and its
/// mode is the key's.
fn decode(object_json: &str, key_livemode: bool) -> Result<SubscriptionObject, String> {
    let probe: Probe<'_> =
        serde_json::from_str(object_json).map_err(|e| format!("not a JSON object: {e}"))?;
    if probe.object != Some("subscription") {
        return Err(format!(
            "{} object, not a subscription",
            probe.object.unwrap_or("an untyped")
        ));
    }
    if let Some(livemode) = probe.livemode
        && livemode != key_livemode
    {
        return Err(format!(
            "a {} subscription answered to a {} key",
            mode_name(livemode),
            mode_name(key_livemode)
        ));
    }
    serde_json::from_str(object_json).map_err(|e| format!("not a subscription: {e}"))
}

fn mode_name(livemode: bool) -> &'static str {
    if livemode { "live-mode" } else { "test-mode" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_is_decoded_with_its_prices_and_products() {
        let decoded = decode(
            r#"{"id":"sub_1","object":"subscription","livemode":false,"customer":"cus_1",
            "status":"active","items":{"object":"list","data":[{"price":{"id":"price_1",
            "lookup_key":null,"metadata":{},"product":"prod_1"}}]}}"#,
            false,
        )
        .unwrap();
        assert_eq!(decoded.customer.as_deref(), Some("cus_1"));
        let price = decoded.items.data[0].price.as_ref().unwrap();
        let product = price.product.as_ref().unwrap();
        assert_eq!((product.id.as_str(), &product.metadata), ("prod_1", &None));
    }

    #[test]
    fn an_expanded_product_gives_its_metadata_and_an_odd_one_none() {
        let with = |product: &str| {
            let json = format!(
                r#"{{"id":"sub_1","object":"subscription","items":{{"data":[{{"price":
                {{"id":"price_1","product":{product}}}}}]}}}}"#
            );
            let decoded = decode(&json, false).unwrap();
            decoded.items.data[0].price.clone().unwrap().product
        };
        let expanded =
            with(r#"{"id":"prod_1","object":"product","metadata":{"tier":"pro"}}"#).unwrap();
        assert_eq!(expanded.id, "prod_1");
        assert_eq!(expanded.metadata.unwrap()["tier"], "pro");
        let bare = with(r#"{"id":"prod_2","object":"product"}"#).unwrap();
        assert_eq!(bare.metadata, Some(serde_json::Map::new()));
        for odd in ["null", "42", r#"{"object":"product"}"#] {
            assert_eq!(with(odd), None, "{odd}");
        }
    }

    #[test]
    fn objects_that_are_not_subscriptions_of_the_keys_mode_are_refused() {
        assert!(decode(r#"{"id":"cus_1","object":"customer"}"#, false).is_err());
        assert!(decode(r#"{"id":"sub_1"}"#, false).is_err());
        let live = r#"{"id":"sub_1","object":"subscription","livemode":true}"#;
        assert!(decode(live, true).is_ok());
        assert!(
            decode(live, false)
                .unwrap_err()
                .contains("live-mode subscription answered to a test-mode key")
        );
    }
}
