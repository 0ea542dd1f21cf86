//! What a catch-up run did, and how a person reads it.

use std::collections::BTreeMap;

use serde::Serialize;

/// Why the window starts where it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WindowStart {
    /// `--since`.
    Since,
    /// Shortly before the last completed run's listing.
    LastRun,
    /// No completed run yet: everything Stripe keeps.
    FirstRun,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub dry_run: bool,
    /// `created[gte]` of the listing, RFC 3339.
    pub listed_from: String,
    pub window_start: WindowStart,
    pub pages: u64,
    /// Customer events Stripe listed in the window.
    pub seen: u64,
    /// Of them, already in the ledger: nothing to do.
    pub already_recorded: u64,
    /// Of them, not in the ledger: applied (in a dry run: would be), by type.
    pub missing: BTreeMap<String, u64>,
    /// What applying them did, by outcome status (`processed`, `skipped`, `ignored`,
    /// `duplicate`: a concurrent delivery recorded it first).
    pub applied: BTreeMap<&'static str, u64>,
    /// Of the `skipped`, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Listed events that are not Stripe events the service can read (never expected; logged).
    pub undecodable: u64,
    /// `created` of the newest listed event (Unix seconds): after a completed run, the newest
    /// customer event in the ledger.
    pub newest_event_created: Option<i64>,
    pub elapsed_secs: f64,
}

impl Summary {
    pub(crate) fn applied_count(&self) -> u64 {
        self.applied.values().sum()
    }
}

/// The summary as a person reads it.
pub(crate) fn render(summary: &Summary) -> String {
    let by = |counts: &BTreeMap<&'static str, u64>| {
        let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("  ({})", parts.join(", "))
        }
    };
    let missing: u64 = summary.missing.values().sum();
    let window = match summary.window_start {
        WindowStart::Since => "--since",
        WindowStart::LastRun => "shortly before the last completed run",
        WindowStart::FirstRun => "first run: all that Stripe keeps",
    };
    let mut text = format!(
        "catch-up {}: {} customer events since {} ({window}) in {} pages\n",
        if summary.dry_run {
            "(dry run, nothing written)"
        } else {
            "complete"
        },
        summary.seen,
        summary.listed_from,
        summary.pages,
    );
    text += &format!(
        "  {:<18}{:>8}\n",
        "already recorded", summary.already_recorded
    );
    if summary.dry_run {
        text += &format!("  {:<18}{:>8}\n", "would apply", missing);
    } else {
        text += &format!(
            "  {:<18}{:>8}{}\n",
            "applied",
            summary.applied_count(),
            by(&summary.applied)
        );
        if !summary.skipped.is_empty() {
            text += &format!(
                "  {:<18}{:>8}{}\n",
                "of them skipped",
                summary.skipped.values().sum::<u64>(),
                by(&summary.skipped)
            );
        }
    }
    if summary.undecodable > 0 {
        text += &format!("  {:<18}{:>8}\n", "unreadable", summary.undecodable);
    }
    text += &format!("  in {:.1} s\n", summary.elapsed_secs);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_as_counts() {
        let summary = Summary {
            dry_run: false,
            listed_from: "2026-11-26T09:00:00Z".into(),
            window_start: WindowStart::LastRun,
            pages: 3,
            seen: 300,
            already_recorded: 200,
            missing: [("customer.updated".to_owned(), 100)].into(),
            applied: [("processed", 97), ("skipped", 3)].into(),
            skipped: [("stale_event", 3)].into(),
            undecodable: 0,
            newest_event_created: Some(1),
            elapsed_secs: 1.3,
        };
        assert_eq!(
            render(&summary),
            "catch-up complete: 300 customer events since 2026-11-26T09:00:00Z (shortly before \
             the last completed run) in 3 pages\n\
             \x20 already recorded       200\n\
             \x20 applied                100  (processed 97, skipped 3)\n\
             \x20 of them skipped          3  (stale_event 3)\n\
             \x20 in 1.3 s\n"
        );
    }
}
