//! What the property tests (proptest) of the parsers of untrusted input share: how many cases
//! they run, and strategies for arbitrary JSON.
//!
//! CI runs [`CASES`] cases per property. The long run sets its own count:
//! `PROPTEST_CASES=1000000 cargo test --release --lib properties` (every parser), or a filter
//! such as `properties::signature` for one.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

/// Cases per property in an ordinary `cargo test`: a few thousand, a second or two each.
pub(crate) const CASES: u32 = 2048;

/// proptest's configuration (which reads `PROPTEST_CASES` and the like), with [`CASES`] unless
/// `PROPTEST_CASES` says otherwise.
pub(crate) fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    config
}

/// Any string of up to 24 characters of any kind (proptest's `any::<char>()` favours the
/// awkward ones), quicker to draw than `any::<String>()`'s regex.
pub(crate) fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter)
}

/// Any string, with an even chance of U+0000 in it (what PostgreSQL text cannot hold).
pub(crate) fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        text(),
        (text(), text()).prop_map(|(a, b)| format!("{a}\0{b}")),
    ]
}

/// Any JSON value, a few levels deep, with strings and keys of any characters.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    json_value_of(4, 64)
}

/// A smaller [`json_value`], for the many fields of a generated event.
pub(crate) fn small_json_value() -> impl Strategy<Value = Value> {
    json_value_of(2, 8)
}

fn json_value_of(depth: u32, size: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Finite only: JSON has no NaN or infinity (serde_json writes them as null).
        (-1e300f64..1e300).prop_map(Value::from),
        any_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, size, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            json_object(inner),
        ]
    })
}

/// A JSON object whose values come from `values`.
pub(crate) fn json_object(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    prop::collection::btree_map(any_text(), values, 0..5)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
}
