//! Progress bars for the long commands (`backfill`, `verify`), on stderr and only when stderr
//! is a terminal: in a container or a pipe they draw nothing, and the log says what happened.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

fn target(enabled: bool) -> ProgressDrawTarget {
    if enabled && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A counter without a known end (Stripe's list has no total): items, rate, time.
pub(crate) fn counter(enabled: bool, unit: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target(enabled));
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {{human_pos}} {unit} · {{per_sec}} · {{elapsed}} {{msg}}"
        ))
        .expect("valid progress template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A bar towards a known total.
pub(crate) fn bar(enabled: bool, total: u64, unit: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target(enabled));
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "[{{bar:30}}] {{human_pos}}/{{human_len}} {unit} · {{per_sec}} · eta {{eta}} {{msg}}"
        ))
        .expect("valid progress template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
