//! A PostgreSQL cluster of our own, started from the server binaries on the machine.
//!
//! `serve` uses it when no `DATABASE_URL` is given (a durable cluster under the working
//! directory) and the test harness uses it for one throwaway cluster per test run. Both run
//! `initdb` and `postgres` as the `postgres` OS user when we are root, because `initdb` refuses
//! root, and listen on a Unix socket only, so two clusters never race for a TCP port.
//!
//! Every command without `DATABASE_URL` uses the same local database: the cluster a running
//! `serve` (or another command) keeps up, found from its data directory ([`RunningCluster`]),
//! or else one started for the command and stopped after it.
//!
//! One file per concern: finding the binaries, the cluster's start and stop, finding one
//! another process runs, running PostgreSQL's programs as the right OS user, the directories
//! it may safely use, and the database `serve` provisions on it.

mod binaries;
mod cluster;
mod dirs;
mod process;
mod provision;
mod running;

use std::path::PathBuf;
use std::time::Duration;

pub use binaries::{PgBinaries, pg_program};
pub use cluster::{ClusterOptions, LocalCluster};
pub use dirs::socket_dir_for;
pub(crate) use provision::{LOCAL_DATA_DIR, LOCAL_DATABASE, create_local_database};
pub use running::RunningCluster;

#[derive(Debug, thiserror::Error)]
pub enum LocalDbError {
    #[error(
        "no PostgreSQL server binaries found (looked in PG_BIN, PATH and /usr/lib/postgresql/*/bin); \
         install them (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL"
    )]
    BinariesNotFound,
    #[error(
        "running as root, but there is no `postgres` OS user to run PostgreSQL as (initdb refuses root); \
         create one or set DATABASE_URL"
    )]
    NoPostgresUser,
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("PostgreSQL did not become ready within {0:?}; its log is at {1}")]
    NotReady(Duration, PathBuf),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(
        "refusing to use {path}: {why}; another local user may have planted it. Remove it, or \
         set DATABASE_URL"
    )]
    UnsafeDir { path: PathBuf, why: String },
}
