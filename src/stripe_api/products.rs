//! `GET /v1/products/{id}`: a product's metadata, for a price that names no tier itself
//! (docs/design.md "Tiers"), read exactly as customers are. Which products are read, and the
//! in-process cache that keeps them, are the tier rules' (`sync`).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ApiError, StripeClient};
use crate::stripe::sanitize;

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
