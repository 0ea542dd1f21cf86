//! Settings from the environment (`BENCH_*`).

use std::path::PathBuf;

pub struct Settings {
    pub events: usize,
    pub levels: Vec<usize>,
    pub lookup_rows: u64,
    pub lookups: usize,
    pub serve_bin: PathBuf,
    pub perf: Option<(usize, PathBuf)>,
}

impl Settings {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let number = |name: &str, default: u64| {
            var(name).map_or(default, |v| {
                v.replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} must be a number"))
            })
        };
        let levels = var("BENCH_CONCURRENCY")
            .unwrap_or_else(|| "1,4,16,32".into())
            .split(',')
            .map(|c| {
                c.trim()
                    .parse()
                    .expect("BENCH_CONCURRENCY: numbers, comma-separated")
            })
            .collect();
        let perf = var("BENCH_PERF_LEVEL").map(|level| {
            let out = var("BENCH_PERF_OUT").unwrap_or_else(|| "perf.data".into());
            (level.parse().expect("BENCH_PERF_LEVEL"), PathBuf::from(out))
        });
        Self {
            events: number("BENCH_EVENTS", 10_000) as usize,
            levels,
            lookup_rows: number("BENCH_LOOKUP_ROWS", 1_000_000),
            lookups: number("BENCH_LOOKUPS", 20_000) as usize,
            serve_bin: var("BENCH_SERVE_BIN").map_or_else(
                || PathBuf::from(env!("CARGO_BIN_EXE_stripe-customer-sync")),
                PathBuf::from,
            ),
            perf,
        }
    }
}
