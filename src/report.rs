//! What a batch command prints on stdout: its summary as pretty JSON for scripts (`--json`),
//! or as text for people. Logs go to stderr, so stdout holds the summary alone.

use serde::Serialize;

/// Prints `summary` as JSON when `json`, else the text `render` makes of it.
pub(crate) fn print<T: Serialize>(summary: &T, json: bool, render: impl FnOnce(&T) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(summary).expect("a summary serializes")
        );
    } else {
        print!("{}", render(summary));
    }
}
