//! The ledger's constraints: one row per event id, ids that are Stripe's, an outcome from the
//! list, a reason and an error exactly where the outcome has one.

use crate::schema_constraints::{CHECK_VIOLATION, UNIQUE_VIOLATION, assert_violates};

use crate::helpers::migrated_database;
use crate::helpers::schema::insert_event;

#[tokio::test]
async fn second_ledger_row_for_the_same_event_id_is_rejected_by_the_primary_key() {
    let db = migrated_database().await;
    insert_event(&db.pool, "evt_Once", "processed", None)
        .await
        .unwrap();

    let again = insert_event(&db.pool, "evt_Once", "ignored", None).await;

    assert_violates(again, UNIQUE_VIOLATION, "stripe_webhook_events_pkey");
}

#[tokio::test]
async fn ledger_id_not_starting_with_evt_is_rejected() {
    let db = migrated_database().await;
    for id in ["", "cus_123", "EVT_123", " evt_123"] {
        let result = insert_event(&db.pool, id, "processed", None).await;
        assert_violates(result, CHECK_VIOLATION, "stripe_webhook_events_id_format");
    }
}

#[tokio::test]
async fn ledger_outcome_outside_processed_ignored_skipped_failed_is_rejected() {
    let db = migrated_database().await;
    for outcome in ["duplicate", "Processed", ""] {
        let result = insert_event(&db.pool, "evt_Outcome", outcome, None).await;
        assert_violates(
            result,
            CHECK_VIOLATION,
            "stripe_webhook_events_outcome_valid",
        );
    }
}

#[tokio::test]
async fn ledger_reason_is_required_when_skipped_or_failed_and_refused_when_processed() {
    let db = migrated_database().await;
    let without_reason = insert_event(&db.pool, "evt_NoReason", "skipped", None).await;
    assert_violates(
        without_reason,
        CHECK_VIOLATION,
        "stripe_webhook_events_reason_matches_outcome",
    );
    let failed_without_reason = sqlx::query(
        "insert into public.stripe_webhook_events
             (id, type, livemode, stripe_created, outcome, error, payload)
         values ('evt_NoReason', 'customer.updated', false, now(), 'failed', '22P05: …', '{}')",
    )
    .execute(&db.pool)
    .await
    .map(drop);
    assert_violates(
        failed_without_reason,
        CHECK_VIOLATION,
        "stripe_webhook_events_reason_matches_outcome",
    );
    let with_reason = insert_event(&db.pool, "evt_Reason", "processed", Some("stale_event")).await;
    assert_violates(
        with_reason,
        CHECK_VIOLATION,
        "stripe_webhook_events_reason_matches_outcome",
    );

    insert_event(&db.pool, "evt_Skipped", "skipped", Some("stale_event"))
        .await
        .expect("a skipped event with its reason is accepted");
    insert_event(&db.pool, "evt_Processed", "processed", None)
        .await
        .expect("a processed event without a reason is accepted");
    insert_event(&db.pool, "evt_Ignored", "ignored", None)
        .await
        .expect("an ignored event of a type the service does not apply has no reason");
    insert_event(&db.pool, "evt_OtherMode", "ignored", Some("other_mode"))
        .await
        .expect("an ignored event of the other mode says so");
}

#[tokio::test]
async fn ledger_error_is_required_exactly_when_failed() {
    let db = migrated_database().await;
    let failed = insert_event(&db.pool, "evt_Failed", "failed", Some("invalid_data")).await;
    assert_violates(
        failed,
        CHECK_VIOLATION,
        "stripe_webhook_events_error_iff_failed",
    );
    sqlx::query(
        "insert into public.stripe_webhook_events
             (id, type, livemode, stripe_created, outcome, reason, error, payload)
         values ('evt_Failed', 'customer.updated', false, now(), 'failed', 'invalid_data',
                 '22P05: unsupported Unicode escape sequence', '{}')",
    )
    .execute(&db.pool)
    .await
    .expect("a failed event with its error is accepted");
}
