//! Property: any payload, cleaned of what PostgreSQL cannot hold (U+0000), stores and reads
//! back. Events carrying any JSON (strings and keys with U+0000 included) go through the real
//! webhook into the real ledger; its `payload` reads back as what was sent with U+0000 replaced
//! by U+FFFD, and `payload_sanitized` says whether that happened.
//!
//! Cases: 2048 by default (each is an HTTP request and a commit); `PROPTEST_CASES` sets more for
//! a long run.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::spawn_app;

const CASES: u32 = 2048;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..16).prop_map(String::from_iter),
        (".{0,8}", ".{0,8}").prop_map(|(a, b)| format!("{a}\0{b}")),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn without_nul(value: &Value) -> Value {
    let clean = |s: &str| s.replace('\0', "\u{FFFD}");
    match value {
        Value::String(s) => Value::String(clean(s)),
        Value::Array(items) => Value::Array(items.iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (clean(k), without_nul(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

#[tokio::test]
async fn any_payload_cleaned_of_nul_stores_in_the_ledger_and_reads_back() {
    let app = spawn_app().await;
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let strategy = (json_value(), text());
    for _ in 0..cases {
        let (extra, name) = strategy.new_tree(&mut runner).unwrap().current();
        let event = CustomerEvent::created(&new_customer_id(), T0).json_with(|event| {
            event["data"]["object"]["name"] = json!(name);
            event["data"]["previous_attributes"] = json!({ "extra": extra });
        });
        let sent: Value = serde_json::from_str(&event).unwrap();
        let nul = without_nul(&sent) != sent;

        let response = app.deliver(&event).await;
        assert_eq!(response.status().as_u16(), 200, "{event}");

        let (stored, sanitized): (Value, bool) = sqlx::query_as(
            "select payload, payload_sanitized from public.stripe_webhook_events where id = $1",
        )
        .bind(sent["id"].as_str().unwrap())
        .fetch_one(&app.db.pool)
        .await
        .expect("the event is in the ledger");
        assert_eq!(stored, without_nul(&sent), "{event}");
        assert_eq!(sanitized, nul, "{event}");
    }
}
