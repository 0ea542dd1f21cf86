//! The report, as JSON or as a table for a person; the exit code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use super::{Difference, DriftKind};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DriftedRow {
    pub stripe_customer_id: String,
    pub differences: Vec<Difference>,
    /// With `--fix`: `applied`, or why not (`stale_event`, `refused`, …).
    pub fix: Option<String>,
}

/// The live rows of this run's scope that verify did not compare with Stripe, by why. Never
/// silent: they make the run "not verified" (exit [`EXIT_NOT_VERIFIED`]) unless
/// `--allow-unchecked`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Unchecked {
    pub count: u64,
    /// `no_mode_recorded` (rows from before the sync recorded a mode, or filled by hand: either
    /// mode's key may speak for them, neither did), `not_a_customer_id`.
    pub by_reason: BTreeMap<String, u64>,
}

impl Unchecked {
    pub(super) fn add(&mut self, reason: &str, rows: u64) {
        if rows > 0 {
            self.count += rows;
            *self.by_reason.entry(reason.to_owned()).or_default() += rows;
        }
    }
}

/// The exit code of a run that found no drift but left rows unchecked.
pub(super) const EXIT_NOT_VERIFIED: u8 = 3;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub run_id: String,
    /// Rows compared with Stripe.
    pub checked: u64,
    pub drifted: u64,
    pub by_kind: BTreeMap<DriftKind, u64>,
    pub fixed: u64,
    /// Why `--fix` left the rows missing in Stripe alone, when it did.
    pub fix_refused: Option<String>,
    /// Live rows not compared, and why.
    pub unchecked: Unchecked,
    /// Live rows of the other Stripe mode: a key of that mode verifies them (with
    /// `STRIPE_MODE=both`); not this run's to check, and said so.
    pub other_mode_rows: u64,
    /// Ordered by customer id.
    pub rows: Vec<DriftedRow>,
}

impl Report {
    pub(crate) fn has_drift(&self) -> bool {
        self.drifted > 0
    }
}

/// The report as a table for a person. No value is ever cut: a user-id drift differs in its
/// tail as often as in its head, so the columns are as wide as their longest value.
pub(super) fn render(report: &Report) -> String {
    let mut text = String::new();
    if !report.rows.is_empty() {
        let lines: Vec<[String; 5]> = report
            .rows
            .iter()
            .flat_map(|row| {
                row.differences.iter().enumerate().map(|(i, difference)| {
                    [
                        row.stripe_customer_id.clone(),
                        difference.kind.as_str().to_owned(),
                        cell(&difference.table),
                        cell(&difference.stripe),
                        if i == 0 {
                            row.fix.clone().unwrap_or_default()
                        } else {
                            String::new()
                        },
                    ]
                })
            })
            .collect();
        let header = ["STRIPE CUSTOMER", "DRIFT", "TABLE", "STRIPE", "FIX"].map(str::to_owned);
        let mut widths = [0; 4];
        for line in std::iter::once(&header).chain(&lines) {
            for (width, value) in widths.iter_mut().zip(line) {
                *width = (*width).max(value.chars().count());
            }
        }
        for line in std::iter::once(&header).chain(&lines) {
            let mut out = String::new();
            for (width, value) in widths.iter().zip(line) {
                let _ = write!(out, "{value:<width$}  ");
            }
            out.push_str(&line[4]);
            let _ = writeln!(text, "{}", out.trim_end());
        }
        text.push('\n');
    }
    if report.has_drift() {
        let kinds: Vec<String> = report
            .by_kind
            .iter()
            .map(|(kind, n)| format!("{} {n}", kind.as_str()))
            .collect();
        let _ = writeln!(
            text,
            "checked {} live rows: {} drifted ({})",
            report.checked,
            report.drifted,
            kinds.join(", ")
        );
    } else {
        let _ = writeln!(text, "checked {} live rows: no drift", report.checked);
    }
    if report.unchecked.count > 0 {
        let reasons: Vec<String> = report
            .unchecked
            .by_reason
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        let _ = writeln!(
            text,
            "not checked: {} live rows ({}){}",
            report.unchecked.count,
            reasons.join(", "),
            if report.unchecked.by_reason.contains_key("no_mode_recorded") {
                "; `backfill` records the mode of every customer Stripe lists"
            } else {
                ""
            }
        );
    }
    if report.other_mode_rows > 0 {
        let _ = writeln!(
            text,
            "{} live rows of the other Stripe mode are left to a key of that mode",
            report.other_mode_rows
        );
    }
    if report.rows.iter().any(|r| r.fix.is_some()) {
        let _ = writeln!(text, "fixed {} of {}", report.fixed, report.drifted);
    }
    if let Some(why) = &report.fix_refused {
        let _ = writeln!(text, "not fixed: {why}");
    }
    text
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints the report. Exit 0 only when every live row was checked and none drifted (with
/// `--fix` too: the drift was there, the report says what was fixed, and a verify run after it
/// exits 0); 1 on drift; [`EXIT_NOT_VERIFIED`] when rows were left unchecked, unless
/// `allow_unchecked`.
pub(crate) fn print(report: &Report, json: bool, allow_unchecked: bool) -> ExitCode {
    crate::report::print(report, json, render);
    if report.has_drift() {
        ExitCode::FAILURE
    } else if report.unchecked.count > 0 && !allow_unchecked {
        ExitCode::from(EXIT_NOT_VERIFIED)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(rows: Vec<DriftedRow>, unchecked: Unchecked) -> Report {
        Report {
            run_id: "verify:1".into(),
            checked: 53,
            drifted: rows.len() as u64,
            by_kind: BTreeMap::new(),
            fixed: 0,
            fix_refused: None,
            unchecked,
            other_mode_rows: 0,
            rows,
        }
    }

    #[test]
    fn table_never_cuts_a_value_however_long() {
        let table = "6f1c2b9e-0d4a-4c7e-9b1a-3e5f7a9c0001";
        let stripe = "6f1c2b9e-0d4a-4c7e-9b1a-3e5f7a9c0002";
        let text = render(&report(
            vec![DriftedRow {
                stripe_customer_id: "cus_AVeryLongCustomerIdentifier0123456789".into(),
                differences: vec![Difference {
                    kind: DriftKind::MetadataUserId,
                    table: json!(table),
                    stripe: json!(stripe),
                }],
                fix: None,
            }],
            Unchecked::default(),
        ));
        for whole in [table, stripe, "cus_AVeryLongCustomerIdentifier0123456789"] {
            assert!(text.contains(whole), "{whole} in:\n{text}");
        }
        assert!(!text.contains('…'), "{text}");
    }

    #[test]
    fn rows_left_unchecked_are_counted_by_reason_and_make_the_run_not_verified() {
        let mut unchecked = Unchecked::default();
        unchecked.add("no_mode_recorded", 2);
        unchecked.add("not_a_customer_id", 0);
        let report = report(Vec::new(), unchecked);
        assert_eq!(
            serde_json::to_value(&report).unwrap()["unchecked"],
            json!({"count": 2, "by_reason": {"no_mode_recorded": 2}})
        );
        assert!(
            render(&report).contains("not checked: 2 live rows (no_mode_recorded 2)"),
            "{}",
            render(&report)
        );
        assert_eq!(
            print(&report, true, false),
            ExitCode::from(EXIT_NOT_VERIFIED)
        );
        assert_eq!(print(&report, true, true), ExitCode::SUCCESS);
    }
}
