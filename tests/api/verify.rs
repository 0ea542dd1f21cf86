//! `verify`: every live row against the customer Stripe (the double) has now; drift reported
//! as a table or JSON, exit 1 on drift, `--fix` applies Stripe's state through the sync rules.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::commands::{backfill, workdir};
use crate::helpers::events::CustomerEvent;
use crate::helpers::stripe_double::{Customer, Fault, StripeDouble, Target, output};
use crate::helpers::{LinkState, migrated_database, now, spawn_app};
use crate::helpers::{create_auth_users, link_states};

struct Verified {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Verified {
    fn report(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
}

async fn verify(double: &StripeDouble, database_url: &str, dir: &Path, extra: &[&str]) -> Verified {
    let mut args = vec!["verify"];
    args.extend_from_slice(extra);
    let out = output(double.command(database_url, dir, &args)).await;
    Verified {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The drift kinds of one row of a JSON report.
fn kinds_of(report: &Value, id: &str) -> Vec<String> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["stripe_customer_id"] == id)
        .map(|row| {
            row["differences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["kind"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn verify_reports_each_kind_of_drift_and_after_fix_a_second_verify_exits_zero() {
    let app = spawn_app().await;
    let pool = &app.db.pool;
    let users = create_auth_users(pool, 3).await;
    let double = StripeDouble::start().await;
    double.add([
        Customer::new("cus_Same").for_user(users[0]),
        Customer::new("cus_Gone"),
        Customer::new("cus_Never"),
        Customer::new("cus_Email"),
        Customer::new("cus_Name"),
        Customer::new("cus_Card").payment_method(Some("pm_Old")),
        Customer::new("cus_Moved").for_user(users[1]),
    ]);
    let dir = workdir();
    assert_eq!(
        backfill(&double, &app.db.url, dir.path(), &[]).await.code,
        Some(0)
    );
    // A tombstone is not a live row: verify leaves it out (Stripe would answer 404).
    app.deliver_expecting(
        &CustomerEvent::deleted("cus_Tomb", now() - 60).json(),
        "processed",
    )
    .await;

    // Stripe moves on while webhooks are missed.
    double.delete("cus_Gone");
    double.forget("cus_Never");
    double.update("cus_Email", |c| c.email = Some("new@example.com".into()));
    double.update("cus_Name", |c| c.name = Some("Ada Lovelace".into()));
    double.update("cus_Card", |c| {
        c.default_payment_method = Some("pm_New".into())
    });
    double.update("cus_Moved", |c| {
        c.metadata["user_id"] = json!(users[2].to_string())
    });
    // And rate-limits one request: waited out, not reported.
    double.fail(
        Target::Retrieve("cus_Name".into()),
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );

    let found = verify(&double, &app.db.url, dir.path(), &["--json"]).await;
    assert_eq!(found.code, Some(1), "drift exits 1: {}", found.stderr);
    let report = found.report();
    assert_eq!(report["checked"], 7);
    assert_eq!(report["drifted"], 6);
    assert_eq!(
        report["by_kind"],
        json!({"missing_in_stripe": 1, "deleted_in_stripe": 1, "email": 1, "name": 1,
               "default_payment_method": 1, "metadata_user_id": 1})
    );
    assert_eq!(kinds_of(&report, "cus_Gone"), ["deleted_in_stripe"]);
    assert_eq!(kinds_of(&report, "cus_Never"), ["missing_in_stripe"]);
    assert_eq!(kinds_of(&report, "cus_Card"), ["default_payment_method"]);
    assert_eq!(kinds_of(&report, "cus_Moved"), ["metadata_user_id"]);
    assert!(kinds_of(&report, "cus_Same").is_empty());
    let email = &report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stripe_customer_id"] == "cus_Email")
        .unwrap()["differences"][0];
    assert_eq!(email["table"], "cus_email@example.com");
    assert_eq!(email["stripe"], "new@example.com");

    // The same as a table for a person.
    let table = verify(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(table.code, Some(1));
    for line in [
        "cus_Email",
        "new@example.com",
        "missing_in_stripe",
        "checked 7 live rows: 6 drifted",
    ] {
        assert!(table.stdout.contains(line), "{line}: {}", table.stdout);
    }

    let fixed = verify(&double, &app.db.url, dir.path(), &["--fix", "--json"]).await;
    assert_eq!(fixed.code, Some(1), "the drift was there: {}", fixed.stderr);
    let report = fixed.report();
    assert_eq!(report["fixed"], 6);
    let run_id = report["run_id"].as_str().unwrap().to_owned();
    assert!(run_id.starts_with("verify:"), "{run_id}");

    let links = link_states(pool).await;
    assert_eq!(links["cus_Gone"], LinkState::deleted());
    // Unknown to the key is not deleted: marked, never a tombstone.
    assert_eq!(links["cus_Never"], LinkState::missing(None));
    assert_eq!(links["cus_Moved"], LinkState::linked(users[2]));
    assert_eq!(links["cus_Same"], LinkState::linked(users[0]));
    let email = app.customer("cus_Email").await.unwrap();
    assert_eq!(email["customer_email"], "new@example.com");
    assert_eq!(
        email["customer_metadata"]["sync"]["last_event_type"],
        "verify"
    );
    let by_verify: i64 = sqlx::query_scalar(
        "select count(*) from public.stripe_customers_audit where event_id = $1",
    )
    .bind(&run_id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(by_verify, 6, "the audit trail names the fixing run");

    // cus_Never was only marked: once the key knows it again, a fix takes Stripe's state.
    double.add([Customer::new("cus_Never")]);
    let found = verify(&double, &app.db.url, dir.path(), &["--fix", "--json"]).await;
    assert_eq!(found.code, Some(1), "{}", found.stderr);
    assert_eq!(found.report()["by_kind"], json!({"found_in_stripe": 1}));
    assert_eq!(
        link_states(pool).await["cus_Never"],
        LinkState::unlinked("missing_user_id")
    );

    let clean = verify(&double, &app.db.url, dir.path(), &["--json"]).await;
    assert_eq!(clean.code, Some(0), "{}", clean.stdout);
    assert_eq!(clean.report()["checked"], 6);
    assert_eq!(clean.report()["drifted"], 0);
    let clean = verify(&double, &app.db.url, dir.path(), &[]).await;
    assert!(clean.stdout.contains("no drift"), "{}", clean.stdout);
}

#[tokio::test]
async fn fix_leaves_rows_alone_when_stripe_knows_none_of_them() {
    let db = migrated_database().await;
    let double = StripeDouble::start().await;
    let ids = ["cus_Wrong1", "cus_Wrong2", "cus_Wrong3"];
    double.add(ids.map(Customer::new));
    let dir = workdir();
    assert_eq!(
        backfill(&double, &db.url, dir.path(), &[]).await.code,
        Some(0)
    );
    // As if STRIPE_API_KEY were a key of another account, or test mode instead of live.
    for id in ids {
        double.forget(id);
    }

    let run = verify(&double, &db.url, dir.path(), &["--fix", "--json"]).await;
    assert_eq!(run.code, Some(1));
    let report = run.report();
    assert_eq!(report["by_kind"], json!({"missing_in_stripe": 3}));
    assert_eq!(report["fixed"], 0);
    assert!(
        report["fix_refused"]
            .as_str()
            .unwrap()
            .contains("STRIPE_API_KEY"),
        "{report}"
    );
    for id in ids {
        assert_eq!(
            link_states(&db.pool).await[id],
            LinkState::unlinked("missing_user_id")
        );
    }
}

#[tokio::test]
async fn verify_keeps_at_most_concurrency_requests_in_flight() {
    let db = migrated_database().await;
    let double = StripeDouble::start().await;
    double.add((0..40).map(|i| Customer::new(&format!("cus_Conc{i:03}"))));
    let dir = workdir();
    assert_eq!(
        backfill(&double, &db.url, dir.path(), &[]).await.code,
        Some(0)
    );
    double.set_latency(Duration::from_millis(100));
    double.clear_requests();

    let run = verify(&double, &db.url, dir.path(), &["--concurrency", "4"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(double.max_in_flight(), 4);
    // 40 requests of 100 ms, 4 at a time: about 1 s, not 4 s. Timed by the double, from the
    // first request to the last, not around the process: its start-up and its database work
    // take what a busy machine leaves them, and are not what this is about.
    let requests = double.requests();
    let span = requests.last().unwrap().at - requests.first().unwrap().at;
    assert!(span < Duration::from_secs(3), "{span:?}");
}
