//! The body of a Stripe list or search answer (`{"data": […], "has_more": …}`), read once for
//! every list the service asks for: customers, events, a customer search.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::Answer;
use super::ApiError;

#[derive(Deserialize)]
struct ListBody<'a> {
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
    #[serde(default)]
    has_more: bool,
}

/// The decoded items of a list answer, and whether Stripe has more.
pub struct Items<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

/// Decodes each item of `answer`'s list with `decode`; any item that does not decode makes the
/// whole answer malformed, naming the item.
pub fn items<T>(
    answer: &Answer,
    decode: impl Fn(&str) -> Result<T, String>,
) -> Result<Items<T>, ApiError> {
    let malformed = |detail: String| ApiError::Malformed {
        url: answer.url.clone(),
        detail,
    };
    let body = answer
        .body
        .as_deref()
        .ok_or_else(|| malformed("404: is STRIPE_API_BASE Stripe's API?".into()))?;
    let list: ListBody<'_> =
        serde_json::from_slice(body).map_err(|e| malformed(format!("not a list: {e}")))?;
    let items = list
        .data
        .iter()
        .enumerate()
        .map(|(i, item)| decode(item.get()).map_err(|e| malformed(format!("data[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if list.has_more && items.is_empty() {
        return Err(malformed("an empty page that has more".into()));
    }
    Ok(Items {
        items,
        has_more: list.has_more,
    })
}
