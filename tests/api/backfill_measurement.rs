//! How long `backfill` takes over 100,000 customers of the double: a measurement, run on purpose.

use std::time::Duration;

use crate::backfill::{customer_id, totals};
use crate::helpers::commands::{Run, backfill, workdir};
use crate::helpers::stripe_double::{Customer, StripeDouble};
use crate::helpers::{count, create_auth_users, migrated_database};

/// `cargo test --release -- --ignored backfill_of_100k --nocapture`: time and rows/s.
#[tokio::test]
#[ignore = "a measurement: run it on purpose, in release mode"]
async fn backfill_of_100k_customers_from_the_double() {
    const N: usize = 100_000;
    let db = migrated_database().await;
    let users = create_auth_users(&db.pool, N).await;
    let double = StripeDouble::start().await;
    double.add((0..N).map(|i| {
        Customer::new(&customer_id(i))
            .for_user(users[i])
            .payment_method(Some("pm_1Q0PsIJvEtkwdCNY"))
            .metadata("plan", "pro")
    }));

    // The double alone: every page fetched and decoded, nothing written (a dry run still reads
    // the table once per page, so this bounds the API side from above).
    let dir = workdir();
    let (dry, dry_cpu) = measured(backfill(&double, &db.url, dir.path(), &["--dry-run"])).await;
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);

    let (run, run_cpu) = measured(backfill(&double, &db.url, dir.path(), &[])).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(totals(&run)["inserted"], N);
    assert_eq!(count(&db.pool, "public.stripe_customers").await, N as i64);

    let (rerun, rerun_cpu) = measured(backfill(&double, &db.url, dir.path(), &[])).await;
    assert_eq!(totals(&rerun)["unchanged"], N);

    // Against a double that takes 25 ms per page (Stripe takes longer): the writes of one page
    // overlap the fetch of the next, so the run takes the API's time.
    let slow_db = migrated_database().await;
    let slow_users = create_auth_users(&slow_db.pool, N).await;
    let slow_double = StripeDouble::start().await;
    slow_double.add((0..N).map(|i| Customer::new(&customer_id(i)).for_user(slow_users[i])));
    slow_double.set_latency(Duration::from_millis(25));
    let (slow, _) = measured(backfill(&slow_double, &slow_db.url, dir.path(), &[])).await;
    assert_eq!(totals(&slow)["inserted"], N);

    let secs = |run: &Run, field: &str| run.summary[field].as_f64().unwrap();
    let rate = |run: &Run, field: &str| N as f64 / secs(run, field);
    println!(
        "backfill of {N} customers (1,000 pages of 100):\n\
         dry run (double + reads):  {:6.2} s, {:6.0} customers/s; our CPU {:.2} s\n\
         first run (inserts):       {:6.2} s, {:6.0} rows/s end to end; database {:.2} s \
         = {:.0} rows/s of writes; our CPU {:.2} s\n\
         rerun (all unchanged):     {:6.2} s, {:6.0} customers/s; our CPU {:.2} s\n\
         inserts, double 25 ms/page: {:6.2} s, {:6.0} rows/s (the double alone: 25 s); \
         database {:.2} s",
        secs(&dry, "elapsed_secs"),
        rate(&dry, "elapsed_secs"),
        dry_cpu,
        secs(&run, "elapsed_secs"),
        rate(&run, "elapsed_secs"),
        secs(&run, "database_secs"),
        rate(&run, "database_secs"),
        run_cpu,
        secs(&rerun, "elapsed_secs"),
        rate(&rerun, "elapsed_secs"),
        rerun_cpu,
        secs(&slow, "elapsed_secs"),
        rate(&slow, "elapsed_secs"),
        secs(&slow, "database_secs"),
    );
}

/// The run, and the CPU seconds (user + system) the backfill process used.
async fn measured(run: impl std::future::Future<Output = Run>) -> (Run, f64) {
    let before = children_cpu();
    let run = run.await;
    (run, children_cpu() - before)
}

fn children_cpu() -> f64 {
    // SAFETY: getrusage only fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
