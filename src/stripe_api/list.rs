//! The body of a Stripe list or search answer (`{"data": […], "has_more": …}`), read once for
//! every list the service asks for: customers, events, a customer search.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::Answer;
use super::ApiError;
use crate::stripe::sanitize;

#[derive(Deserialize)]
struct ListBody<'a> {
    /// `list`, or `search_result` for a search.
    #[serde(borrow)]
    object: &'a str,
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
    #[serde(default)]
    has_more: bool,
}

/// The decoded items of a list answer, and whether Stripe has more.
pub(super) struct Items<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

/// One item of a list as the decoder gets it: cleaned of what PostgreSQL cannot hold
/// (`stripe::sanitize`, as a webhook body is), and whether the cleaning changed it.
pub(super) struct Item<'a> {
    pub json: &'a str,
    pub sanitized: bool,
}

/// Decodes each item of `answer`'s list with `decode`; any item that does not decode makes the
/// whole answer malformed, naming the item.
pub(super) fn items<T>(
    answer: &Answer,
    decode: impl Fn(Item<'_>) -> Result<T, String>,
) -> Result<Items<T>, ApiError> {
    let malformed = |detail: String| ApiError::Malformed {
        url: answer.url.clone(),
        detail,
    };
    let body = answer
        .body
        .as_deref()
        .ok_or_else(|| malformed("a list answered 404 resource_missing".into()))?;
    let list: ListBody<'_> =
        serde_json::from_slice(body).map_err(|e| malformed(format!("not a list: {e}")))?;
    if !matches!(list.object, "list" | "search_result") {
        return Err(malformed(format!("a {:?} object, not a list", list.object)));
    }
    let items = list
        .data
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let storable = sanitize::storable(item.get().as_bytes());
            let json = std::str::from_utf8(&storable.body).map_err(|e| e.to_string());
            json.and_then(|json| {
                decode(Item {
                    json,
                    sanitized: storable.sanitized,
                })
            })
            .map_err(|e| malformed(format!("data[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if list.has_more && items.is_empty() {
        return Err(malformed("an empty page that has more".into()));
    }
    Ok(Items {
        items,
        has_more: list.has_more,
    })
}
