//! What `verify` and `backfill` report add up: rows verify could not compare are counted and
//! make the run "not verified", no value in verify's table is cut, and backfill's counts
//! partition the customers it saw.

use serde_json::json;

use crate::helpers::commands::{backfill, run, workdir};
use crate::helpers::stripe_double::{Customer, StripeDouble};
use crate::helpers::{create_auth_users, insert_customer_by_hand, migrated_database};

#[tokio::test]
async fn rows_verify_cannot_compare_are_reported_by_reason_and_the_run_is_not_verified() {
    let db = migrated_database().await;
    let double = StripeDouble::start().await;
    double.add([Customer::new("cus_Synced1"), Customer::new("cus_Synced2")]);
    let dir = workdir();
    assert_eq!(
        backfill(&double, &db.url, dir.path(), &[]).await.code,
        Some(0)
    );
    // A table filled by hand before the service: no mode recorded.
    insert_customer_by_hand(&db.pool, "cus_Hand1", "one@example.com").await;
    insert_customer_by_hand(&db.pool, "cus_Hand2", "two@example.com").await;
    // A live-mode row: a live key's to verify, not this run's.
    insert_customer_by_hand(&db.pool, "cus_Live1", "live@example.com").await;
    sqlx::query(
        "update public.stripe_customers
            set customer_metadata = '{\"sync\": {\"livemode\": true}}'
          where stripe_customer_id = 'cus_Live1'",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let verified = run(&double, &db.url, dir.path(), &["verify", "--json"]).await;
    assert_eq!(verified.code, Some(3), "not verified: {}", verified.stderr);
    let report = verified.json();
    assert_eq!(report["checked"], 2);
    assert_eq!(report["drifted"], 0);
    assert_eq!(
        report["unchecked"],
        json!({"count": 2, "by_reason": {"no_mode_recorded": 2}})
    );
    assert_eq!(report["other_mode_rows"], 1);

    let table = run(&double, &db.url, dir.path(), &["verify"]).await;
    assert_eq!(table.code, Some(3));
    for line in [
        "checked 2 live rows: no drift",
        "not checked: 2 live rows (no_mode_recorded 2)",
        "1 live rows of the other Stripe mode are left to a key of that mode",
    ] {
        assert!(table.stdout.contains(line), "{line}: {}", table.stdout);
    }

    let allowed = run(
        &double,
        &db.url,
        dir.path(),
        &["verify", "--json", "--allow-unchecked"],
    )
    .await;
    assert_eq!(allowed.code, Some(0), "{}", allowed.stderr);
    assert_eq!(allowed.json()["unchecked"]["count"], 2);
}

#[tokio::test]
async fn verify_table_shows_both_user_ids_of_a_drift_whole() {
    let db = migrated_database().await;
    let users = create_auth_users(&db.pool, 2).await;
    let double = StripeDouble::start().await;
    double.add([Customer::new("cus_Moved1").for_user(users[0])]);
    let dir = workdir();
    assert_eq!(
        backfill(&double, &db.url, dir.path(), &[]).await.code,
        Some(0)
    );
    double.update("cus_Moved1", |c| {
        c.metadata["user_id"] = json!(users[1].to_string())
    });

    let table = run(&double, &db.url, dir.path(), &["verify"]).await;
    assert_eq!(table.code, Some(1), "{}", table.stderr);
    for whole in [users[0].to_string(), users[1].to_string()] {
        assert!(table.stdout.contains(&whole), "{whole}: {}", table.stdout);
    }
}

#[tokio::test]
async fn backfill_counts_partition_the_customers_seen_and_show_unlinked_rows_as_a_subset() {
    let db = migrated_database().await;
    let users = create_auth_users(&db.pool, 2).await;
    let double = StripeDouble::start().await;
    double.add([
        Customer::new("cus_Linked1").for_user(users[0]),
        Customer::new("cus_Linked2").for_user(users[1]),
        Customer::new("cus_NoUser1"),
        Customer::new("cus_NoEmail1").email(None),
    ]);
    let dir = workdir();
    let ran = run(&double, &db.url, dir.path(), &["backfill"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let counts: Vec<(String, u64)> = ran
        .stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (name, n) = (words.next()?, words.next()?.parse().ok()?);
            ["inserted", "updated", "unchanged", "skipped"]
                .contains(&name)
                .then(|| (name.to_owned(), n))
        })
        .collect();
    assert_eq!(counts.len(), 4, "{}", ran.stdout);
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 4, "{counts:?}");
    let words = ran.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for line in [
        "= customers 4",
        "of the 3 rows inserted, updated or unchanged: 1 without a user (missing_user_id 1)",
    ] {
        assert!(words.contains(line), "{line}: {}", ran.stdout);
    }
}
