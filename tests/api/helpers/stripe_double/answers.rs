//! Every kind of answer a request to Stripe's API can get, as the double gives it: Stripe's
//! documented answers (the object, a deleted customer, `resource_missing`, the key refused,
//! rate limits and server errors) and what something in Stripe's place answers (an unknown
//! URL, a proxy's HTML, a cut-off body, an object that is not the one asked for).

use super::{Fault, StripeDouble, Target};

/// One kind of answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeAnswer {
    /// 200 with the object (the double's own answer).
    Object,
    /// 200 `{"id", "object": "customer", "deleted": true}`.
    Deleted,
    /// 404 `resource_missing`: this key's account and mode do not know the id.
    ResourceMissing,
    /// 404 `invalid_request_error` without a code: "Unrecognized request URL".
    UnknownUrl,
    /// 401: the key is not valid.
    Unauthorized,
    /// 403: a restricted key without the permission.
    Forbidden,
    /// 429, every time.
    RateLimited,
    /// 500, every time.
    ServerError,
    /// 502 with a proxy's HTML page.
    BadGatewayHtml,
    /// 200 whose JSON is cut off.
    TruncatedJson,
    /// 200 with another object than asked: another customer's id, or an invoice in a list.
    AnotherObject,
    /// 200 with a live-mode object to the double's test key.
    AnotherMode,
    /// No answer at all.
    Timeout,
}

/// Every kind, in an order that leaves the hang for last (releasing it clears every fault).
pub const EVERY_ANSWER: [StripeAnswer; 13] = [
    StripeAnswer::Object,
    StripeAnswer::Deleted,
    StripeAnswer::ResourceMissing,
    StripeAnswer::UnknownUrl,
    StripeAnswer::Unauthorized,
    StripeAnswer::Forbidden,
    StripeAnswer::RateLimited,
    StripeAnswer::ServerError,
    StripeAnswer::BadGatewayHtml,
    StripeAnswer::TruncatedJson,
    StripeAnswer::AnotherObject,
    StripeAnswer::AnotherMode,
    StripeAnswer::Timeout,
];

/// What the answer is to: one customer (by id), a list of customers, a list of events.
#[derive(Debug, Clone, Copy)]
pub enum Asked<'a> {
    Customer(&'a str),
    Customers,
    Events,
}

const JSON: &str = "application/json";

fn canned(status: u16, content_type: &'static str, body: String) -> Fault {
    Fault::Canned {
        status,
        content_type,
        body: Box::leak(body.into_boxed_str()),
    }
}

fn stripe_error(status: u16, error: serde_json::Value) -> Fault {
    canned(
        status,
        JSON,
        serde_json::json!({ "error": error }).to_string(),
    )
}

impl StripeAnswer {
    /// Makes the double give this answer to the next requests `target` matches (`asked`
    /// says what the body must look like). `Object` is the double's own answer: the caller sets
    /// the customer up.
    pub fn script(self, double: &StripeDouble, target: Target, asked: Asked<'_>) {
        self.script_times(double, target, asked, 1_000);
    }

    /// [`Self::script`] for the next `times` requests only.
    pub fn script_times(
        self,
        double: &StripeDouble,
        target: Target,
        asked: Asked<'_>,
        times: usize,
    ) {
        if let Some(fault) = self.fault(asked) {
            double.fail(target, fault, times);
        }
    }

    fn fault(self, asked: Asked<'_>) -> Option<Fault> {
        let path = match asked {
            Asked::Customer(id) => format!("/v1/customers/{id}"),
            Asked::Customers => "/v1/customers".into(),
            Asked::Events => "/v1/events".into(),
        };
        Some(match self {
            Self::Object => return None,
            Self::Deleted => match asked {
                Asked::Customer(id) => canned(
                    200,
                    JSON,
                    format!(r#"{{"id":"{id}","object":"customer","deleted":true}}"#),
                ),
                // A list holds live customers only.
                Asked::Customers | Asked::Events => return None,
            },
            Self::ResourceMissing => stripe_error(
                404,
                serde_json::json!({"type": "invalid_request_error", "code": "resource_missing",
                    "param": "id", "message": "No such customer: 'cus_Unknown'"}),
            ),
            Self::UnknownUrl => stripe_error(
                404,
                serde_json::json!({"type": "invalid_request_error",
                    "message": format!("Unrecognized request URL (GET: /v1{path}). Please see \
                        https://stripe.com/docs or we can help at https://support.stripe.com/.")}),
            ),
            Self::Unauthorized => stripe_error(
                401,
                serde_json::json!({"type": "invalid_request_error",
                    "message": "Invalid API Key provided: sk_test_********0000"}),
            ),
            Self::Forbidden => stripe_error(
                403,
                serde_json::json!({"type": "invalid_request_error",
                    "message": "The provided key 'rk_test_***0000' does not have the required \
                        permissions for this endpoint. Having the 'rak_customer_read' permission \
                        would allow this request to continue."}),
            ),
            Self::RateLimited => Fault::RateLimited {
                retry_after_secs: 0,
            },
            Self::ServerError => Fault::ServerError,
            Self::BadGatewayHtml => canned(
                502,
                "text/html",
                "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>".into(),
            ),
            Self::TruncatedJson => canned(
                200,
                JSON,
                match asked {
                    Asked::Customer(_) => r#"{"id":"cus_Trunc","object":"custo"#.into(),
                    _ => r#"{"object":"list","data":[{"id":"cus_Trunc","#.into(),
                },
            ),
            Self::AnotherObject => canned(
                200,
                JSON,
                match asked {
                    Asked::Customer(_) => r#"{"id":"cus_SomeoneElse1","object":"customer",
                        "livemode":false,"email":"else@example.com","metadata":{}}"#
                        .into(),
                    _ => format!(
                        r#"{{"object":"list","data":[{{"id":"in_1","object":"invoice",
                        "livemode":false,"type":"invoice.paid","created":1}}],
                        "has_more":false,"url":"{path}"}}"#
                    ),
                },
            ),
            Self::AnotherMode => canned(
                200,
                JSON,
                match asked {
                    Asked::Customer(id) => format!(
                        r#"{{"id":"{id}","object":"customer","livemode":true,
                        "email":"live@example.com","metadata":{{}}}}"#
                    ),
                    Asked::Customers => r#"{"object":"list","data":[{"id":"cus_Live1",
                        "object":"customer","livemode":true,"email":"live@example.com",
                        "metadata":{}}],"has_more":false,"url":"/v1/customers"}"#
                        .into(),
                    Asked::Events => format!(
                        r#"{{"object":"list","data":[{{"id":"evt_Live1","object":"event",
                        "livemode":true,"type":"customer.created","created":{},
                        "data":{{"object":{{"id":"cus_Live1","object":"customer",
                        "livemode":true,"email":"live@example.com","metadata":{{}}}}}}}}],
                        "has_more":false,"url":"/v1/events"}}"#,
                        chrono::Utc::now().timestamp() - 60
                    ),
                },
            ),
            Self::Timeout => Fault::Hang,
        })
    }
}
