//! The report, as JSON or as a table for a person; the exit code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use super::{Difference, DriftKind};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftedRow {
    pub stripe_customer_id: String,
    pub differences: Vec<Difference>,
    /// With `--fix`: `applied`, or why not (`stale_event`, `refused`, …).
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run_id: String,
    pub checked: u64,
    pub drifted: u64,
    pub by_kind: BTreeMap<DriftKind, u64>,
    pub fixed: u64,
    /// Why `--fix` left the rows missing in Stripe alone, when it did.
    pub fix_refused: Option<String>,
    /// Ordered by customer id.
    pub rows: Vec<DriftedRow>,
}

impl Report {
    pub fn has_drift(&self) -> bool {
        self.drifted > 0
    }
}

/// The report as a table for a person.
pub fn render(report: &Report) -> String {
    let mut text = String::new();
    if !report.rows.is_empty() {
        let _ = writeln!(
            text,
            "{:<24} {:<22} {:<32} {:<32} FIX",
            "STRIPE CUSTOMER", "DRIFT", "TABLE", "STRIPE"
        );
        for row in &report.rows {
            for (i, difference) in row.differences.iter().enumerate() {
                let fix = if i == 0 {
                    row.fix.as_deref().unwrap_or("")
                } else {
                    ""
                };
                let _ = writeln!(
                    text,
                    "{:<24} {:<22} {:<32} {:<32} {}",
                    row.stripe_customer_id,
                    difference.kind.as_str(),
                    cell(&difference.table),
                    cell(&difference.stripe),
                    fix
                );
            }
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
    if report.rows.iter().any(|r| r.fix.is_some()) {
        let _ = writeln!(text, "fixed {} of {}", report.fixed, report.drifted);
    }
    if let Some(why) = &report.fix_refused {
        let _ = writeln!(text, "not fixed: {why}");
    }
    text
}

fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 32 {
        let cut: String = text.chars().take(31).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Prints the report; exit 0 only when there was no drift (with `--fix` too: the drift was
/// there, the report says what was fixed, and a verify run after it exits 0).
pub fn print(report: &Report, json: bool) -> ExitCode {
    crate::report::print(report, json, render);
    if report.has_drift() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
