//! Optional `perf record` of the whole machine during one level.

use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn start_perf(out: &Path) -> Child {
    let extra = std::env::var("BENCH_PERF_ARGS").unwrap_or_else(|_| "-F 999 -g".into());
    Command::new("perf")
        .arg("record")
        .args(extra.split_whitespace())
        .arg("-a")
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perf record")
}

pub fn stop_perf(mut perf: Child) {
    // SAFETY: kill(2) on our own child; perf writes its file on SIGINT.
    unsafe { libc::kill(perf.id() as i32, libc::SIGINT) };
    let _ = perf.wait();
}
