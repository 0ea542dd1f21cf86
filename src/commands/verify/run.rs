//! Checking every live row against Stripe, with bounded concurrency, and (with `--fix`)
//! applying Stripe's state through the apply loop.

use std::collections::BTreeMap;

use futures_util::{StreamExt, TryStreamExt, stream};
use sqlx::PgPool;

use super::{DriftedRow, Report, Unchecked, VerifyError, VerifyOptions, compare};
use crate::domain::StripeCustomerId;
use crate::progress;
use crate::store::customers::{self as store, StoredRow};
use crate::stripe_api::StripeClient;
use crate::stripe_api::customers::{self, Retrieved};
use crate::sync::request::{Applied, FetchCommand, FetchRun, FetchedCustomer};
use crate::sync::{self, SyncSettings};

/// `--fix` marks rows whose customer the key does not know (404 `resource_missing`) as
/// `missing` only while they are at most this share of the rows checked, or at most
/// [`MASS_DELETE_FLOOR`] rows: more says more about the key (another account or mode, wiped
/// test data) than about the customers. `--allow-mass-delete` lifts it. A mark is never a
/// tombstone: the link stays, and the customer's next state applies.
pub(super) const MASS_DELETE_SHARE: f64 = 0.10;
pub(super) const MASS_DELETE_FLOOR: u64 = 5;

/// Rows are read in pages of this many, by id.
const ROWS_PER_READ: i64 = 500;

/// What became of one row.
enum Outcome {
    /// As Stripe has it.
    Clean,
    Drifted(Checked),
    /// Not compared, and why.
    Unchecked(&'static str),
}

/// One row checked that drifted.
struct Checked {
    row: DriftedRow,
    /// Stripe answered 404 `resource_missing`.
    missing: bool,
}

pub(crate) async fn run(
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
    let mut unchecked = Unchecked::default();
    let mut other_mode_rows = 0;
    for (reason, rows) in store::count_other_live(pool, options.livemode).await? {
        // Rows of the other mode are a key of that mode's to verify, not this run's.
        if reason == "other_mode" {
            other_mode_rows = rows as u64;
        } else {
            unchecked.add(&reason, rows as u64);
        }
    }
    let mut after: Option<String> = None;
    loop {
        let rows =
            store::live_rows(pool, options.livemode, after.as_deref(), ROWS_PER_READ).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.stripe_customer_id.clone());
        let run = &run;
        let bar = &bar;
        let results: Vec<Outcome> = stream::iter(rows)
            .map(|row| async move {
                let checked = check(pool, client, settings, run, options.fix, row).await;
                bar.inc(1);
                checked
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        for outcome in results {
            match outcome {
                Outcome::Clean => checked_rows += 1,
                Outcome::Drifted(checked) => {
                    checked_rows += 1;
                    drifted.push(checked);
                }
                Outcome::Unchecked(reason) => unchecked.add(reason, 1),
            }
        }
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
            // Marked, never tombstoned: only Stripe's own `deleted: true` deletes.
            for checked in drifted.iter_mut().filter(|c| c.missing) {
                let marked =
                    store::mark_missing(pool, &checked.row.stripe_customer_id, &run.run_id).await?;
                checked.row.fix = Some(
                    if marked {
                        "marked_missing"
                    } else {
                        "unchanged"
                    }
                    .into(),
                );
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
            .filter(|r| matches!(r.fix.as_deref(), Some("applied" | "marked_missing")))
            .count() as u64,
        fix_refused,
        unchecked,
        other_mode_rows,
        rows,
    };
    tracing::info!(
        run_id = %report.run_id,
        checked = report.checked,
        drifted = report.drifted,
        fixed = report.fixed,
        unchecked = report.unchecked.count,
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
/// customer missing in Stripe: those wait until every row has been checked (see `run`). A row
/// whose id is no Stripe customer id (filled by hand) is not asked about: `not_a_customer_id`.
async fn check(
    pool: &PgPool,
    client: &StripeClient,
    settings: &SyncSettings,
    run: &FetchRun,
    fix: bool,
    row: StoredRow,
) -> Result<Outcome, VerifyError> {
    if StripeCustomerId::parse(&row.stripe_customer_id).is_err() {
        return Ok(Outcome::Unchecked("not_a_customer_id"));
    }
    let (retrieved, requested_at) = customers::retrieve(client, &row.stripe_customer_id).await?;
    let differences = compare(&row, &retrieved, &settings.user_id_metadata_key);
    if differences.is_empty() {
        return Ok(Outcome::Clean);
    }
    let mut fix_outcome = None;
    if fix && let Retrieved::Found(found) = &retrieved {
        let applied = sync::apply_fetched(
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
    Ok(Outcome::Drifted(Checked {
        row: DriftedRow {
            stripe_customer_id: row.stripe_customer_id,
            differences,
            fix: fix_outcome,
        },
        missing: retrieved == Retrieved::ResourceMissing,
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
