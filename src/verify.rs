//! `verify`: compare every live row (every row but tombstones) with the customer Stripe has
//! now, and report the drift; `--fix` applies Stripe's state through the sync rules.
//!
//! Drift is what applying Stripe's state would change, field by field: [`rules::decide`] on
//! Stripe's state against the stored row, its decided values compared with the row's (so no
//! rule is written twice: e.g. no email in Stripe is no drift, because the rules keep the
//! stored one). Reported: the customer is missing in Stripe (404) or deleted there, or its
//! email, name, default payment method or metadata user id would change.
//! Requests run with bounded concurrency and back off on Stripe's rate limits (the client).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use crate::configuration::{DatabaseArgs, StripeApiArgs, SyncArgs};
use crate::domain::{RowField, StoredCustomer, StripeCustomerId, UserFacts};
use crate::progress;
use crate::store::StoreError;
use crate::store::customers::{self as store, StoredRow};
use crate::stripe::event::CustomerObject;
use crate::stripe_api::customers::{self, Retrieved};
use crate::stripe_api::{ApiError, StripeClient};
use crate::sync::fetched::{self, Applied, FetchRun, FetchedCustomer};
use crate::sync::rules::{self, CustomerEventKind, Decision, FetchCommand, Origin};
use crate::sync::{SyncError, SyncSettings};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub stripe: StripeApiArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Apply Stripe's current state to every drifted row, through the sync rules.
    #[arg(long)]
    pub fix: bool,
    /// Let --fix tombstone rows missing in Stripe even when they are more than 10 % of the
    /// rows checked (and more than 5).
    #[arg(long, requires = "fix")]
    pub allow_mass_delete: bool,
    /// Requests to Stripe in flight at once. Stripe allows 100 reads/s in live mode and 25 in
    /// test mode; 429s are waited out either way.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub fix: bool,
    /// The mode of the API key: only rows of this mode are compared.
    pub livemode: bool,
    /// Let `--fix` tombstone more than [`MASS_DELETE_SHARE`] of the rows.
    pub allow_mass_delete: bool,
    pub concurrency: usize,
    pub progress: bool,
}

/// `--fix` turns rows missing in Stripe into tombstones (terminal) only while they are at most
/// this share of the rows checked, or at most [`MASS_DELETE_FLOOR`] rows: more says more about
/// the key (another account, a restore, an outage answered as 404) than about the customers.
/// `--allow-mass-delete` lifts it.
pub const MASS_DELETE_SHARE: f64 = 0.10;
pub const MASS_DELETE_FLOOR: u64 = 5;

/// Rows are read in pages of this many, by id.
const ROWS_PER_READ: i64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    MissingInStripe,
    DeletedInStripe,
    Email,
    Name,
    DefaultPaymentMethod,
    MetadataUserId,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingInStripe => "missing_in_stripe",
            Self::DeletedInStripe => "deleted_in_stripe",
            Self::Email => "email",
            Self::Name => "name",
            Self::DefaultPaymentMethod => "default_payment_method",
            Self::MetadataUserId => "metadata_user_id",
        }
    }
}

/// One field that differs: what the table holds, what Stripe has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub kind: DriftKind,
    pub table: Value,
    pub stripe: Value,
}

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

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("reading the table: {0}")]
    Store(#[from] StoreError),
    #[error("applying Stripe's state: {0}")]
    Sync(#[from] SyncError),
}

/// One row checked.
struct Checked {
    row: DriftedRow,
    /// Stripe answered 404.
    missing: bool,
    requested_at: i64,
}

pub async fn run(
    pool: &PgPool,
    client: &StripeClient,
    settings: &SyncSettings,
    options: &VerifyOptions,
) -> Result<Report, VerifyError> {
    let run = FetchRun::new(FetchCommand::Verify, false, options.livemode);
    let total = store::count_live(pool, options.livemode).await?;
    tracing::info!(run_id = %run.run_id, live_rows = total, fix = options.fix, "verify started");
    let bar = progress::bar(options.progress, total.max(0) as u64, "rows");
    let concurrency = options.concurrency.max(1);

    let mut checked_rows = 0;
    let mut drifted: Vec<Checked> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let rows =
            store::live_rows(pool, options.livemode, after.as_deref(), ROWS_PER_READ).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.stripe_customer_id.clone());
        checked_rows += rows.len() as u64;
        let run = &run;
        let bar = &bar;
        let results: Vec<Option<Checked>> = stream::iter(rows)
            .map(|row| async move {
                let checked = check(pool, client, settings, run, options.fix, row).await;
                bar.inc(1);
                checked
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        drifted.extend(results.into_iter().flatten());
    }
    bar.finish_and_clear();

    // A 404 for every row says more about the key (another account, or test vs live) than
    // about the rows: then tombstoning them all would be a disaster, so --fix leaves them.
    let missing = drifted.iter().filter(|c| c.missing).count() as u64;
    let mut fix_refused = None;
    if options.fix && missing > 0 {
        let refusal = (!options.allow_mass_delete)
            .then(|| mass_delete_refusal(missing, checked_rows))
            .flatten();
        if refusal.is_none() {
            for checked in drifted.iter_mut().filter(|c| c.missing) {
                let tombstone = CustomerObject {
                    id: checked.row.stripe_customer_id.clone(),
                    ..CustomerObject::default()
                };
                let applied = fetched::apply_one(
                    pool,
                    settings,
                    &run,
                    FetchedCustomer {
                        customer: &tombstone,
                        deleted: true,
                        requested_at: checked.requested_at,
                    },
                )
                .await?;
                checked.row.fix = Some(fix_result(applied.applied));
            }
        } else if let Some(why) = refusal {
            tracing::warn!("{why}");
            for checked in drifted.iter_mut().filter(|c| c.missing) {
                checked.row.fix = Some("refused".into());
            }
            fix_refused = Some(why);
        }
    }

    let mut rows: Vec<DriftedRow> = drifted.into_iter().map(|c| c.row).collect();
    rows.sort_by(|a, b| a.stripe_customer_id.cmp(&b.stripe_customer_id));
    let mut by_kind = BTreeMap::new();
    for row in &rows {
        for difference in &row.differences {
            *by_kind.entry(difference.kind).or_default() += 1;
        }
    }
    let report = Report {
        run_id: run.run_id,
        checked: checked_rows,
        drifted: rows.len() as u64,
        by_kind,
        fixed: rows
            .iter()
            .filter(|r| r.fix.as_deref() == Some("applied"))
            .count() as u64,
        fix_refused,
        rows,
    };
    tracing::info!(
        run_id = %report.run_id,
        checked = report.checked,
        drifted = report.drifted,
        fixed = report.fixed,
        "verify complete"
    );
    Ok(report)
}

/// Why `--fix` must not tombstone `missing` of `checked` rows, if it must not.
fn mass_delete_refusal(missing: u64, checked: u64) -> Option<String> {
    if missing >= checked {
        return Some(format!(
            "Stripe knows none of the {checked} customers checked: is STRIPE_API_KEY a key of \
             this project's account and mode (test/live)? Rows missing in Stripe were left as \
             they are"
        ));
    }
    if missing > MASS_DELETE_FLOOR && missing as f64 > checked as f64 * MASS_DELETE_SHARE {
        return Some(format!(
            "{missing} of the {checked} customers checked are missing in Stripe, more than {}% \
             : tombstones are terminal, so they were left as they are; check the key and \
             account, then rerun with --allow-mass-delete if they really are gone",
            (MASS_DELETE_SHARE * 100.0) as u32
        ));
    }
    None
}

/// Fetches one row's customer, compares, and (with `fix`) applies Stripe's state, except for a
/// customer missing in Stripe: those wait until every row has been checked (see `run`).
async fn check(
    pool: &PgPool,
    client: &StripeClient,
    settings: &SyncSettings,
    run: &FetchRun,
    fix: bool,
    row: StoredRow,
) -> Result<Option<Checked>, VerifyError> {
    let (retrieved, requested_at) = customers::retrieve(client, &row.stripe_customer_id).await?;
    let differences = compare(&row, &retrieved, &settings.user_id_metadata_key);
    if differences.is_empty() {
        return Ok(None);
    }
    let mut fix_outcome = None;
    if fix && let Retrieved::Found(found) = &retrieved {
        let applied = fetched::apply_one(
            pool,
            settings,
            run,
            FetchedCustomer {
                customer: &found.customer,
                deleted: found.deleted,
                requested_at,
            },
        )
        .await?;
        fix_outcome = Some(fix_result(applied.applied));
    }
    Ok(Some(Checked {
        row: DriftedRow {
            stripe_customer_id: row.stripe_customer_id,
            differences,
            fix: fix_outcome,
        },
        missing: retrieved == Retrieved::Missing,
        requested_at,
    }))
}

fn fix_result(applied: Applied) -> String {
    match applied {
        Applied::Inserted | Applied::Updated => "applied".into(),
        // A duplicate is an event's; a run has none.
        Applied::Unchanged | Applied::Duplicate => "unchanged".into(),
        Applied::Skipped(reason) => reason.as_str().into(),
    }
}

/// The differences between a live row and what Stripe has: [`rules::decide`] on Stripe's state
/// against the row, whatever the order of the two (drift asks what Stripe has, not whether it
/// is newer: that is for `--fix` to find out, which may come out `stale_event`), its decided
/// values compared with the row's. The link itself is not compared: it rests on `auth.users`.
pub fn compare(row: &StoredRow, retrieved: &Retrieved, user_id_key: &str) -> Vec<Difference> {
    let missing = CustomerObject {
        id: row.stripe_customer_id.clone(),
        ..CustomerObject::default()
    };
    let (customer, kind) = match retrieved {
        Retrieved::Missing => (&missing, CustomerEventKind::Deleted),
        Retrieved::Found(found) if found.deleted => (&found.customer, CustomerEventKind::Deleted),
        Retrieved::Found(found) => (&found.customer, CustomerEventKind::Updated),
    };
    let Ok(customer_id) = StripeCustomerId::parse(&row.stripe_customer_id) else {
        return Vec::new();
    };
    let origin = Origin::Fetched {
        command: FetchCommand::Verify,
        run_id: "",
    };
    let livemode = row.values.livemode.unwrap_or_default();
    let incoming = crate::sync::incoming(
        user_id_key,
        kind,
        origin,
        0,
        &customer_id,
        customer,
        livemode,
    );
    let unordered = StoredCustomer {
        last_applied: None,
        ..row.stored.clone()
    };
    let decided = match rules::decide(
        &incoming,
        Some(&unordered),
        UserFacts::default(),
        false,
        chrono::Utc::now(),
    ) {
        Decision::Insert(decided) | Decision::Update { row: decided, .. } => decided,
        Decision::Skip { .. } => return Vec::new(),
    };
    let values = &row.values;
    let changes = decided.changes(values);
    if changes.contains(&RowField::Status) && kind == CustomerEventKind::Deleted {
        return vec![match retrieved {
            Retrieved::Missing => Difference {
                kind: DriftKind::MissingInStripe,
                table: Value::String(row.stripe_customer_id.clone()),
                stripe: Value::Null,
            },
            Retrieved::Found(_) => Difference {
                kind: DriftKind::DeletedInStripe,
                table: Value::String("live".into()),
                stripe: Value::String("deleted".into()),
            },
        }];
    }
    let text = |value: Option<&str>| value.map_or(Value::Null, |v| Value::String(v.to_owned()));
    let user_of = |metadata: Option<&Value>| metadata.filter(|v| !v.is_null()).cloned();
    changes
        .into_iter()
        .filter_map(|field| match field {
            RowField::Email => Some(Difference {
                kind: DriftKind::Email,
                table: text(Some(&values.email)),
                stripe: text(decided.email.as_deref()),
            }),
            RowField::Name => Some(Difference {
                kind: DriftKind::Name,
                table: text(values.name.as_deref()),
                stripe: text(decided.name.as_deref()),
            }),
            RowField::DefaultPaymentMethod => Some(Difference {
                kind: DriftKind::DefaultPaymentMethod,
                table: text(values.default_payment_method.as_deref()),
                stripe: text(decided.default_payment_method.as_deref()),
            }),
            RowField::StripeMetadata => {
                let stored = user_of(values.stripe_metadata.get(user_id_key));
                let stripe = user_of(decided.stripe_metadata.get(user_id_key));
                (stored != stripe).then(|| Difference {
                    kind: DriftKind::MetadataUserId,
                    table: stored.unwrap_or(Value::Null),
                    stripe: stripe.unwrap_or(Value::Null),
                })
            }
            // The link rests on `auth.users`, which verify does not read; the rest is the
            // rules' own bookkeeping.
            RowField::UserId | RowField::Status | RowField::Error | RowField::Livemode => None,
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe_api::customers::ApiCustomer;
    use serde_json::json;

    fn row() -> StoredRow {
        StoredRow {
            stripe_customer_id: "cus_A".into(),
            stored: StoredCustomer {
                version: "7".into(),
                status: Some(crate::domain::SyncStatus::Synced),
                last_applied: None,
            },
            values: crate::domain::StoredValues {
                user_id: None,
                email: "a@example.com".into(),
                name: Some("Ada".into()),
                default_payment_method: None,
                stripe_metadata: json!({"user_id": "u1"}),
                status: Some(crate::domain::SyncStatus::Synced),
                error: None,
                livemode: Some(false),
            },
        }
    }

    fn stripe(change: impl FnOnce(&mut CustomerObject)) -> Retrieved {
        let mut customer = CustomerObject {
            id: "cus_A".into(),
            email: Some("a@example.com".into()),
            name: Some("Ada".into()),
            default_payment_method: None,
            metadata: json!({"user_id": "u1", "plan": "pro"})
                .as_object()
                .unwrap()
                .clone(),
        };
        change(&mut customer);
        Retrieved::Found(ApiCustomer {
            customer,
            deleted: false,
        })
    }

    fn kinds(differences: &[Difference]) -> Vec<DriftKind> {
        differences.iter().map(|d| d.kind).collect()
    }

    #[test]
    fn row_as_stripe_has_it_has_no_drift() {
        assert!(compare(&row(), &stripe(|_| {}), "user_id").is_empty());
    }

    #[test]
    fn each_field_that_differs_is_its_own_kind_of_drift() {
        let differences = compare(
            &row(),
            &stripe(|c| {
                c.email = Some("b@example.com".into());
                c.name = None;
                c.default_payment_method = Some("pm_1".into());
                c.metadata.insert("user_id".into(), json!("u2"));
            }),
            "user_id",
        );
        assert_eq!(
            kinds(&differences),
            [
                DriftKind::Email,
                DriftKind::Name,
                DriftKind::DefaultPaymentMethod,
                DriftKind::MetadataUserId
            ]
        );
        assert_eq!(differences[0].stripe, json!("b@example.com"));
    }

    #[test]
    fn no_email_in_stripe_is_no_drift_because_the_rules_keep_the_stored_one() {
        assert!(compare(&row(), &stripe(|c| c.email = None), "user_id").is_empty());
    }

    #[test]
    fn missing_and_deleted_customers_are_drift_of_their_own() {
        assert_eq!(
            kinds(&compare(&row(), &Retrieved::Missing, "user_id")),
            [DriftKind::MissingInStripe]
        );
        let deleted = Retrieved::Found(ApiCustomer {
            customer: CustomerObject {
                id: "cus_A".into(),
                ..CustomerObject::default()
            },
            deleted: true,
        });
        assert_eq!(
            kinds(&compare(&row(), &deleted, "user_id")),
            [DriftKind::DeletedInStripe]
        );
    }
}
