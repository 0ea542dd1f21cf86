//! What a log may say of Stripe's error answer: its `type`, `code` and `param`, and the
//! `Request-Id` header (which Stripe's support finds the request by). Never its `message`,
//! which can quote the customer's email or name.

use reqwest::header::HeaderMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ErrorFields {
    /// `error.type`, e.g. `invalid_request_error`.
    pub kind: Option<String>,
    /// `error.code`, e.g. `email_invalid`, `resource_missing`.
    pub code: Option<String>,
    /// `error.param`, e.g. `email`.
    pub param: Option<String>,
    /// The answer's `Request-Id` header.
    pub request_id: Option<String>,
}

impl ErrorFields {
    /// Reads them from an error answer's headers and body (any body: HTML gives none).
    pub(super) fn read(headers: &HeaderMap, body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Body {
            error: Detail,
        }
        #[derive(serde::Deserialize)]
        struct Detail {
            #[serde(default, rename = "type")]
            kind: Option<String>,
            #[serde(default)]
            code: Option<String>,
            #[serde(default)]
            param: Option<String>,
        }
        let detail = serde_json::from_slice::<Body>(body).ok().map(|b| b.error);
        let (kind, code, param) = detail.map_or((None, None, None), |d| (d.kind, d.code, d.param));
        Self {
            kind,
            code,
            param,
            request_id: headers
                .get("Request-Id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

impl ErrorFields {
    /// One line for a log: the fields Stripe gave, by name.
    pub(crate) fn loggable(&self) -> String {
        let parts: Vec<String> = [
            ("type", &self.kind),
            ("code", &self.code),
            ("param", &self.param),
            ("request", &self.request_id),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|value| format!("{name} {value}")))
        .collect();
        if parts.is_empty() {
            "no details".into()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn type_code_param_and_request_id_are_read_and_the_message_is_not() {
        let mut headers = HeaderMap::new();
        headers.insert("request-id", HeaderValue::from_static("req_123"));
        let body = br#"{"error":{"type":"invalid_request_error","code":"email_invalid","param":"email","message":"Invalid email address: ada@example.com"}}"#;
        let fields = ErrorFields::read(&headers, body);
        assert_eq!(
            fields,
            ErrorFields {
                kind: Some("invalid_request_error".into()),
                code: Some("email_invalid".into()),
                param: Some("email".into()),
                request_id: Some("req_123".into()),
            }
        );
        assert!(!format!("{fields:?}").contains("ada@"));
        assert_eq!(
            ErrorFields::read(&HeaderMap::new(), b"<html>"),
            ErrorFields::default()
        );
    }
}
