//! The run's counts and its summary, as JSON or as text.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::sync::request::{Applied, AppliedCustomer};

/// Counts over the whole run (resumed parts included). `inserted`, `updated`, `unchanged`
/// and `skipped` partition `customers`: each customer seen is counted in exactly one of them.
/// `unlinked` is a subset of the first three, never added to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Totals {
    pub customers: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Of the inserted, updated and unchanged rows: those standing without a user, by
    /// `sync.error`.
    pub unlinked: BTreeMap<String, u64>,
    /// Customers that changed nothing, by reason (`stale_event`, `customer_deleted`, …).
    pub skipped: BTreeMap<String, u64>,
}

impl Totals {
    pub(super) fn add(&mut self, results: &[AppliedCustomer]) {
        for result in results {
            self.customers += 1;
            match result.applied {
                Applied::Inserted => self.inserted += 1,
                Applied::Updated => self.updated += 1,
                // A duplicate is an event's; a run has none.
                Applied::Unchanged | Applied::Duplicate => self.unchanged += 1,
                Applied::Skipped(reason) => {
                    *self.skipped.entry(reason.as_str().to_owned()).or_default() += 1;
                    continue;
                }
            }
            if let Some(reason) = result.unlinked {
                *self.unlinked.entry(reason.as_str().to_owned()).or_default() += 1;
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub run_id: String,
    pub dry_run: bool,
    /// Pages already committed by an earlier, interrupted invocation of this run.
    pub resumed_after_pages: u64,
    pub pages: u64,
    /// Unix seconds at which the run's first page was requested: customers created later are
    /// not in this run (webhooks bring them).
    pub started_at: i64,
    pub totals: Totals,
    /// This invocation only.
    pub customers_this_invocation: u64,
    pub elapsed_secs: f64,
    /// Wall time during which at least one page was being read and written in the database
    /// (it overlaps fetching the next page).
    pub database_secs: f64,
    /// The subscriptions listed after the customers (docs/design.md "Tiers").
    pub subscriptions: super::subscriptions::SubscriptionTotals,
}

/// The summary as a person reads it.
pub(super) fn render(summary: &Summary) -> String {
    let t = &summary.totals;
    let verb = |done: &str, would: &str| {
        if summary.dry_run {
            would.to_owned()
        } else {
            done.to_owned()
        }
    };
    let by_reason = |counts: &BTreeMap<String, u64>| {
        if counts.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
            format!("  ({})", parts.join(", "))
        }
    };
    let rate = if summary.elapsed_secs > 0.0 {
        summary.customers_this_invocation as f64 / summary.elapsed_secs
    } else {
        0.0
    };
    let mut text = format!(
        "backfill {} {}: {} customers in {} pages{}\n",
        summary.run_id,
        if summary.dry_run {
            "(dry run, nothing written)"
        } else {
            "complete"
        },
        t.customers,
        summary.pages,
        if summary.resumed_after_pages > 0 {
            format!(
                " (resumed after page {}, continued from the checkpoint)",
                summary.resumed_after_pages
            )
        } else {
            String::new()
        },
    );
    text += &format!(
        "  {:<12}{:>9}\n",
        verb("inserted", "would insert"),
        t.inserted
    );
    text += &format!(
        "  {:<12}{:>9}\n",
        verb("updated", "would update"),
        t.updated
    );
    text += &format!("  {:<12}{:>9}\n", "unchanged", t.unchanged);
    text += &format!(
        "  {:<12}{:>9}{}\n",
        "skipped",
        t.skipped.values().sum::<u64>(),
        by_reason(&t.skipped)
    );
    text += &format!("  {:<12}{:>9}\n", "= customers", t.customers);
    let unlinked = t.unlinked.values().sum::<u64>();
    if unlinked > 0 {
        text += &format!(
            "  of the {} rows {}: {unlinked} without a user{}\n",
            t.inserted + t.updated + t.unchanged,
            verb(
                "inserted, updated or unchanged",
                "that would be written or stay"
            ),
            by_reason(&t.unlinked)
        );
    }
    let s = &summary.subscriptions;
    text += &format!(
        "  subscriptions: {} seen, {} {}, {} skipped{}\n",
        s.seen,
        s.applied,
        verb("applied", "would apply"),
        s.skipped.values().sum::<u64>(),
        by_reason(&s.skipped)
    );
    text += &format!(
        "  this invocation: {} customers in {:.1} s ({:.0}/s; database {:.1} s)\n",
        summary.customers_this_invocation, summary.elapsed_secs, rate, summary.database_secs
    );
    text
}

/// What the command line prints; exit 0 when the run completed.
pub(crate) fn print(summary: &Summary, json: bool) -> ExitCode {
    crate::report::print(summary, json, render);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(dry_run: bool) -> Summary {
        Summary {
            run_id: "backfill:20261125T100000Z-1a2b3c4d".into(),
            dry_run,
            resumed_after_pages: 4,
            pages: 10,
            started_at: 1_795_018_062,
            totals: Totals {
                customers: 1000,
                inserted: 990,
                updated: 2,
                unchanged: 5,
                unlinked: [("missing_user_id".to_owned(), 20)].into(),
                skipped: [
                    ("missing_email".to_owned(), 2),
                    ("stale_event".to_owned(), 1),
                ]
                .into(),
            },
            customers_this_invocation: 600,
            elapsed_secs: 2.0,
            database_secs: 1.5,
            subscriptions: super::super::subscriptions::SubscriptionTotals {
                seen: 3,
                applied: 2,
                skipped: [("subscription_ended".to_owned(), 1)].into(),
            },
        }
    }

    #[test]
    fn summary_reads_as_counts_by_outcome_and_reason() {
        assert_eq!(
            render(&summary(false)),
            "backfill backfill:20261125T100000Z-1a2b3c4d complete: 1000 customers in 10 pages \
             (resumed after page 4, continued from the checkpoint)\n\
             \x20 inserted          990\n\
             \x20 updated             2\n\
             \x20 unchanged           5\n\
             \x20 skipped             3  (missing_email 2, stale_event 1)\n\
             \x20 = customers      1000\n\
             \x20 of the 997 rows inserted, updated or unchanged: 20 without a user  \
             (missing_user_id 20)\n\
             \x20 subscriptions: 3 seen, 2 applied, 1 skipped  (subscription_ended 1)\n\
             \x20 this invocation: 600 customers in 2.0 s (300/s; database 1.5 s)\n"
        );
        assert!(render(&summary(true)).contains("would insert"));
    }

    #[test]
    fn outcomes_partition_the_customers_seen_and_unlinked_rows_are_a_subset_of_the_written() {
        let mut totals = Totals::default();
        totals.add(&[
            AppliedCustomer {
                applied: Applied::Inserted,
                unlinked: Some(crate::domain::UnlinkReason::UnknownUser),
            },
            AppliedCustomer {
                applied: Applied::Unchanged,
                unlinked: Some(crate::domain::UnlinkReason::UnknownUser),
            },
            AppliedCustomer {
                applied: Applied::Skipped(crate::domain::outcome::SkipReason::StaleEvent),
                unlinked: Some(crate::domain::UnlinkReason::UnknownUser),
            },
        ]);
        assert_eq!(totals.customers, 3);
        let skipped: u64 = totals.skipped.values().sum();
        assert_eq!(
            totals.inserted + totals.updated + totals.unchanged + skipped,
            totals.customers
        );
        assert_eq!((totals.inserted, totals.unchanged), (1, 1));
        assert_eq!(totals.unlinked["unknown_user"], 2);
        assert_eq!(totals.skipped["stale_event"], 1);
    }
}
