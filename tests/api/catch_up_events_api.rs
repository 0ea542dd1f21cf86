//! `serve`'s background catch-up against a Stripe whose Events API it cannot use (a mock
//! without `/v1/events`, a key without the Events permission): one WARN that names the fix,
//! then runs further and further apart, never an ERROR every interval.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::migrated_database;
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::stripe_double::{Fault, StripeDouble, TEST_API_KEY, Target};

/// The log lines (JSON) at `level` whose message mentions `text`.
fn lines(log: &str, level: &str, text: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["level"] == level)
        .filter(|entry| entry["message"].as_str().is_some_and(|m| m.contains(text)))
        .collect()
}

#[tokio::test]
async fn catch_up_against_a_stripe_without_events_warns_once_naming_the_fix_and_backs_off() {
    let db = migrated_database().await;
    let double = StripeDouble::start().await;
    double.fail(Target::EventsPagesFrom(1), Fault::UnknownUrl, usize::MAX);
    let serve = ServeProcess::start(
        &db.url,
        &[
            ("STRIPE_API_KEY", TEST_API_KEY),
            ("STRIPE_API_BASE", &double.base_url),
            ("CATCH_UP_INTERVAL", "1s"),
        ],
    )
    .await;

    // Runs at about 1 s, then 2 s later, then 4 s after that.
    double
        .wait_for("two refused catch-up runs", |d| {
            d.event_list_requests().len() >= 2
        })
        .await;
    let log = serve.log();
    let warnings = lines(&log, "WARN", "catch-up");
    assert_eq!(warnings.len(), 1, "one WARN for the lot:\n{log}");
    let warning = warnings[0]["message"].as_str().unwrap();
    for fix in ["Events read permission", "CATCH_UP_INTERVAL=0"] {
        assert!(warning.contains(fix), "{fix}: {warning}");
    }
    assert_eq!(lines(&log, "ERROR", "").len(), 0, "no ERROR:\n{log}");

    // Backing off: an interval of 1 s no longer means a run every second (the third run
    // comes 4 s after the second).
    let before = double.event_list_requests().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = double.event_list_requests().len() - before;
    assert!(during <= 1, "{during} runs in the 3 s after the second");
    assert!(serve.terminate().await);
}
