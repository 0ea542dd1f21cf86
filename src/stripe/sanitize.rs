//! What PostgreSQL cannot store: text (and so `jsonb` strings) cannot hold U+0000, which JSON
//! may carry as `\u0000`. A verified event holding one would fail on every retry, so its
//! strings have it replaced by U+FFFD before the event is decoded, stored and applied, and the
//! ledger says so (`payload_sanitized`).

use std::borrow::Cow;

use serde_json::Value;

/// A verified body, ready to be stored.
#[derive(Debug)]
pub(crate) struct Storable<'a> {
    pub body: Cow<'a, [u8]>,
    /// `body` is not byte for byte what Stripe signed.
    pub sanitized: bool,
}

const NUL_ESCAPE: &[u8] = b"\\u0000";

/// `body` itself when PostgreSQL can hold it (nearly always: a byte search decides), else the
/// same JSON with every U+0000 in its strings and keys replaced by U+FFFD.
pub(crate) fn storable(body: &[u8]) -> Storable<'_> {
    let unchanged = Storable {
        body: Cow::Borrowed(body),
        sanitized: false,
    };
    if !body.windows(NUL_ESCAPE.len()).any(|w| w == NUL_ESCAPE) {
        return unchanged;
    }
    // Not JSON after all: decoding will say so.
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return unchanged;
    };
    // `\\u0000` is an escaped backslash, not a NUL: only a change counts.
    if !replace_nul(&mut value) {
        return unchanged;
    }
    Storable {
        body: Cow::Owned(serde_json::to_vec(&value).expect("a Value serializes")),
        sanitized: true,
    }
}

/// Replaces U+0000 in every string and key; true if it found one.
fn replace_nul(value: &mut Value) -> bool {
    match value {
        Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', "\u{FFFD}");
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |found, v| replace_nul(v) | found),
        Value::Object(map) => {
            let mut found = false;
            if map.keys().any(|k| k.contains('\0')) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), v))
                    .collect();
                found = true;
            }
            map.values_mut()
                .fold(found, |found, v| replace_nul(v) | found)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_without_a_nul_is_kept_as_signed() {
        let body = br#"{"id":"evt_1","name":"Ada \\u0000 not a nul"}"#;
        let storable = storable(body);
        assert!(!storable.sanitized);
        assert_eq!(&*storable.body, body);
    }

    #[test]
    fn nul_in_strings_and_keys_is_replaced_and_said() {
        let body = br#"{"id":"evt_1","data":{"name":"Ada\u0000","meta":{"k\u0000":["x\u0000y"]}}}"#;
        let storable = storable(body);
        assert!(storable.sanitized);
        let value: Value = serde_json::from_slice(&storable.body).unwrap();
        assert_eq!(value["data"]["name"], "Ada\u{FFFD}");
        assert_eq!(value["data"]["meta"]["k\u{FFFD}"][0], "x\u{FFFD}y");
        assert!(
            !String::from_utf8(storable.body.into_owned())
                .unwrap()
                .contains("\\u0000")
        );
    }
}
