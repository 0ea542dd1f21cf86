//! `POST /v1/customers` (with an idempotency key) and `GET /v1/customers/search` by the owner's
//! id in the metadata: what `POST /customers` (and `POST /organizations/{id}/customer`) needs
//! to create an owner's customer exactly once.

use super::customers::{self, ApiCustomer};
use super::list;
use super::{ApiError, StripeClient};

/// What a new customer is created with.
#[derive(Debug, Clone)]
pub(crate) struct NewCustomer<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    /// `USER_ID_METADATA_KEY` (`organization_id` for an organization's customer)
    pub user_id_key: &'a str,
    /// The user's (or the organization's) id.
    pub user_id: uuid::Uuid,
}

impl NewCustomer<'_> {
    /// Stripe's form encoding: `metadata[key]=value`.
    fn form(&self) -> Vec<(String, String)> {
        let mut form = vec![("email".to_owned(), self.email.to_owned())];
        if let Some(name) = self.name {
            form.push(("name".to_owned(), name.to_owned()));
        }
        form.push((
            format!("metadata[{}]", self.user_id_key),
            self.user_id.to_string(),
        ));
        form
    }
}

/// A customer Stripe created (or, for a key it had seen, created before).
#[derive(Debug, Clone)]
pub(crate) struct Created {
    pub customer: ApiCustomer,
    /// Unix second no later than Stripe's creation: the order the state is applied with.
    pub requested_at: i64,
    /// Stripe replayed the first answer to this idempotency key.
    pub replayed: bool,
}

/// `POST /v1/customers` with `Idempotency-Key: idempotency_key`.
pub(crate) async fn create(
    client: &StripeClient,
    customer: &NewCustomer<'_>,
    idempotency_key: &str,
) -> Result<Created, ApiError> {
    let url = client.url(&["v1", "customers"], &[])?;
    let answer = client
        .post_form(url, &customer.form(), idempotency_key)
        .await?;
    let malformed = |detail: String| ApiError::Malformed {
        url: answer.url.clone(),
        detail,
    };
    let body = answer
        .body
        .as_deref()
        .ok_or_else(|| no_such_endpoint(&answer.url))?;
    let customer = customers::decode_answer(body, client.key_livemode()).map_err(malformed)?;
    if customer.deleted {
        return Err(malformed("a create answered a deleted customer".into()));
    }
    Ok(Created {
        customer,
        requested_at: answer.requested_at,
        replayed: answer.replayed,
    })
}

/// A 404 `resource_missing` to `POST /v1/customers` or `GET /v1/customers/search`, paths that
/// know no ids: not Stripe's API as documented (an unknown URL is caught before, as
/// [`ApiError::UnknownUrl`]). A refusal like any other 4xx: the same request fails the same way
/// until the configuration changes.
fn no_such_endpoint(request_line: &str) -> ApiError {
    ApiError::Rejected {
        status: 404,
        url: request_line.to_owned(),
        message: "no such endpoint: is STRIPE_API_BASE Stripe's API (https://api.stripe.com, \
                  without /v1)?"
            .into(),
        fields: Default::default(),
    }
}

/// Stripe's search query for customers whose metadata `key` holds `user_id`.
pub(crate) fn user_query(key: &str, user_id: uuid::Uuid) -> String {
    // The query language quotes with `'`; a key with a quote or backslash is escaped.
    let key = key.replace('\\', "\\\\").replace('\'', "\\'");
    format!("metadata['{key}']:'{user_id}'")
}

/// `GET /v1/customers/search?query=metadata['key']:'user_id'`: the live customers that carry
/// the user id, and when the request started. Eventually consistent: a customer created a few
/// seconds ago may not be found yet.
pub(crate) async fn search_by_user(
    client: &StripeClient,
    key: &str,
    user_id: uuid::Uuid,
) -> Result<(Vec<ApiCustomer>, i64), ApiError> {
    let query = user_query(key, user_id);
    let url = client.url(
        &["v1", "customers", "search"],
        &[("query", query.as_str()), ("limit", "10")],
    )?;
    let answer = client.get(url).await?;
    if answer.body.is_none() {
        return Err(no_such_endpoint(&answer.url));
    }
    let livemode = client.key_livemode();
    let found = list::items(&answer, |item| customers::decode(item.json, livemode))?;
    Ok((found.items, answer.requested_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_carries_email_name_and_the_user_id_under_the_metadata_key() {
        let user = uuid::Uuid::nil();
        let form = NewCustomer {
            email: "a@example.com",
            name: Some("Ada"),
            user_id_key: "supabase_user_id",
            user_id: user,
        }
        .form();
        assert_eq!(
            form,
            [
                ("email".to_owned(), "a@example.com".to_owned()),
                ("name".to_owned(), "Ada".to_owned()),
                ("metadata[supabase_user_id]".to_owned(), user.to_string()),
            ]
        );
    }

    #[test]
    fn the_search_query_quotes_the_key() {
        let user = uuid::Uuid::nil();
        assert_eq!(
            user_query("user_id", user),
            format!("metadata['user_id']:'{user}'")
        );
        assert_eq!(
            user_query("it's", user),
            format!("metadata['it\\'s']:'{user}'")
        );
    }
}
