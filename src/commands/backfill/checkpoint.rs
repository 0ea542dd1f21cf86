//! Resuming: after each committed page a checkpoint file records the cursor and the running
//! totals, for the Stripe account and database it belongs to.

use std::path::Path;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;

use super::{BackfillError, Totals};
use crate::configuration::StripeApiSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Checkpoint {
    pub(super) version: u32,
    pub(super) run_id: String,
    pub(super) target: String,
    /// The run's fetch-time floor: every page was requested at or after it.
    pub(super) started_at: i64,
    /// `starting_after` of the next page: the last customer of the last committed page.
    pub(super) starting_after: Option<String>,
    pub(super) pages: u64,
    pub(super) totals: Totals,
}

pub(super) const CHECKPOINT_VERSION: u32 = 1;

/// A short digest of the Stripe account (base URL and key) and the database (host, port,
/// socket, name): the same target gives the same string; the key cannot be read back from it.
pub(crate) fn target_of(api: &StripeApiSettings, database: &PgConnectOptions) -> String {
    let mut digest = Sha256::new();
    digest.update(api.base.as_str());
    digest.update([0]);
    digest.update(api.key.expose_secret());
    digest.update([0]);
    digest.update(database.get_host());
    digest.update(database.get_port().to_be_bytes());
    if let Some(socket) = database.get_socket() {
        digest.update(socket.as_os_str().as_encoded_bytes());
    }
    digest.update([0]);
    digest.update(database.get_database().unwrap_or_default());
    hex::encode(&digest.finalize()[..12])
}

fn checkpoint_error(path: &Path, detail: impl std::fmt::Display) -> BackfillError {
    BackfillError::Checkpoint {
        path: path.to_owned(),
        detail: detail.to_string(),
    }
}

pub(super) fn load(path: &Path, target: &str) -> Result<Option<Checkpoint>, BackfillError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(checkpoint_error(path, error)),
    };
    let checkpoint: Checkpoint = serde_json::from_str(&text).map_err(|e| {
        checkpoint_error(
            path,
            format!("unreadable ({e}); remove it or pass --restart"),
        )
    })?;
    if checkpoint.version != CHECKPOINT_VERSION {
        return Err(checkpoint_error(
            path,
            "written by another version; remove it or pass --restart",
        ));
    }
    if checkpoint.target != target {
        return Err(checkpoint_error(
            path,
            "belongs to another Stripe account or database; remove it or pass --restart",
        ));
    }
    Ok(Some(checkpoint))
}

/// Written to a temporary file and renamed over the old one: a kill at any moment leaves
/// either the previous checkpoint or the new one, never half of one.
pub(super) fn save(path: &Path, checkpoint: &Checkpoint) -> Result<(), BackfillError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| checkpoint_error(path, e))?;
    }
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(checkpoint).map_err(|e| checkpoint_error(path, e))?;
    std::fs::write(&temporary, text).map_err(|e| checkpoint_error(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| checkpoint_error(path, e))
}

pub(super) fn remove(path: &Path) -> Result<(), BackfillError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(checkpoint_error(path, error)),
    }
}
