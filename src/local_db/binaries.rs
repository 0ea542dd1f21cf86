//! Where PostgreSQL's programs are: `PG_BIN`, `PATH`, or Debian's versioned directories.

use std::path::{Path, PathBuf};

use super::LocalDbError;

/// Where `initdb` and `postgres` are.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    dir: PathBuf,
}

impl PgBinaries {
    /// The directory holding `initdb` and `postgres`, found as [`pg_bin_dir`] finds one.
    pub fn locate() -> Result<Self, LocalDbError> {
        pg_bin_dir(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
            .map(|dir| Self { dir })
            .ok_or(LocalDbError::BinariesNotFound)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A PostgreSQL program (`pg_dump`, `psql`, …), found as [`pg_bin_dir`] finds one.
pub fn pg_program(program: &str) -> Option<PathBuf> {
    pg_bin_dir(|dir| dir.join(program).is_file()).map(|dir| dir.join(program))
}

/// The first directory that `has` what is wanted: `PG_BIN` (and only it, when set), then
/// `PATH`, then the newest `/usr/lib/postgresql/<major>/bin` (Debian keeps the server there,
/// off `PATH`). The newest is the right default for clients too: `pg_dump` refuses servers of
/// a newer major version than its own.
fn pg_bin_dir(has: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        return has(&dir).then_some(dir);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|dir| has(dir)) {
        return Some(dir);
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has(dir))
        .collect();
    versioned.sort();
    versioned.pop().map(|(_, dir)| dir)
}
