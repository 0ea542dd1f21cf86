//! What the service wrote: ledger rows, customer rows and their links, audit rows, counts.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use super::app::TestApp;

impl TestApp {
    /// Asserts the ledger recorded `event_id` with `expected` = `"outcome[ reason]"`.
    pub async fn assert_recorded(&self, event_id: &str, expected: &str) {
        let row = self
            .ledger_row(event_id)
            .await
            .unwrap_or_else(|| panic!("{event_id} not in the ledger"));
        let mut words = expected.split_whitespace();
        let (outcome, reason) = (words.next(), words.next());
        assert_eq!(
            (row["outcome"].as_str(), row["reason"].as_str()),
            (outcome, reason),
            "ledger row of {event_id}"
        );
    }

    /// Who the customer row is linked to, and its `customer_metadata.sync` status and error.
    pub async fn link_state(&self, stripe_customer_id: &str) -> LinkState {
        let row = self
            .customer(stripe_customer_id)
            .await
            .unwrap_or_else(|| panic!("no row for {stripe_customer_id}"));
        let sync = &row["customer_metadata"]["sync"];
        LinkState {
            user_id: row["user_id"]
                .as_str()
                .map(|id| Uuid::parse_str(id).expect("user_id is a uuid")),
            status: sync["status"].as_str().unwrap_or_default().to_owned(),
            error: sync["error"].as_str().map(str::to_owned),
        }
    }

    /// Row counts of the three tables, to show that a request wrote nothing.
    pub async fn table_counts(&self) -> TableCounts {
        TableCounts {
            ledger: self.ledger_count().await,
            customers: self.customer_count().await,
            audit: self.audit_count().await,
        }
    }

    /// The audit rows of one customer (`to_jsonb`), oldest first.
    pub async fn audit_rows(&self, stripe_customer_id: &str) -> Vec<serde_json::Value> {
        sqlx::query_scalar(
            "select to_jsonb(a) from public.stripe_customers_audit a
              where stripe_customer_id = $1 order by id",
        )
        .bind(stripe_customer_id)
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }

    pub async fn ledger_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from public.stripe_webhook_events")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    pub async fn customer_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from public.stripe_customers")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    pub async fn audit_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from public.stripe_customers_audit")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// The customer row as JSON (`to_jsonb`), or `None`.
    pub async fn customer(&self, stripe_customer_id: &str) -> Option<serde_json::Value> {
        sqlx::query_scalar(
            "select to_jsonb(c) from public.stripe_customers c where stripe_customer_id = $1",
        )
        .bind(stripe_customer_id)
        .fetch_optional(&self.db.pool)
        .await
        .unwrap()
    }

    /// The ledger row of an event as JSON, or `None`.
    pub async fn ledger_row(&self, event_id: &str) -> Option<serde_json::Value> {
        sqlx::query_scalar("select to_jsonb(e) from public.stripe_webhook_events e where id = $1")
            .bind(event_id)
            .fetch_optional(&self.db.pool)
            .await
            .unwrap()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableCounts {
    pub ledger: i64,
    pub customers: i64,
    pub audit: i64,
}

/// A customer row's link: `user_id`, `sync.status`, `sync.error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub user_id: Option<Uuid>,
    pub status: String,
    pub error: Option<String>,
}

impl LinkState {
    pub fn linked(user_id: Uuid) -> Self {
        Self {
            user_id: Some(user_id),
            status: "synced".into(),
            error: None,
        }
    }

    pub fn unlinked(reason: &str) -> Self {
        Self {
            user_id: None,
            status: "unlinked".into(),
            error: Some(reason.into()),
        }
    }

    pub fn deleted() -> Self {
        Self {
            user_id: None,
            status: "deleted".into(),
            error: None,
        }
    }

    /// Marked by `verify --fix` for Stripe's 404 `resource_missing`: the link as it was.
    pub fn missing(user_id: Option<Uuid>) -> Self {
        Self {
            user_id,
            status: "missing".into(),
            error: Some("missing_in_stripe".into()),
        }
    }
}

/// Every row's link, by customer id.
pub async fn link_states(pool: &PgPool) -> HashMap<String, LinkState> {
    type Row = (String, Option<Uuid>, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "select stripe_customer_id, user_id,
                customer_metadata #>> '{sync,status}', customer_metadata #>> '{sync,error}'
           from public.stripe_customers",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, user_id, status, error)| {
            (
                id,
                LinkState {
                    user_id,
                    status: status.unwrap_or_default(),
                    error,
                },
            )
        })
        .collect()
}
