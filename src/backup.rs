//! `migrate --backup-dir DIR`: before any migration, `DIR/<timestamp>/` receives
//!
//! - `schema.sql` — `pg_dump --schema-only` of the whole database (restorable with `psql -f`);
//! - `<schema>.<table>.csv` — the rows of `auth.users`, `public.profiles` and
//!   `public.stripe_customers`, each where it exists (`COPY … TO STDOUT`, CSV with header);
//! - `manifest.json` — when, from where (host and database, never a password), which files,
//!   how many rows.
//!
//! The directory and its files are readable by their owner only: `auth.users` holds emails and
//! password hashes. When any step fails, the partial directory is removed and the error says
//! why; the caller then migrates nothing.

use std::path::{Path, PathBuf};

use reqwest::Url;
use serde::Serialize;
use sqlx::PgPool;

use crate::local_db;
use crate::store::backup::{self as store, ExportError, ExportedTable};

#[derive(Debug, thiserror::Error)]
pub(crate) enum BackupError {
    #[error(
        "pg_dump not found (looked in PG_BIN, PATH and /usr/lib/postgresql/*/bin); install the \
         PostgreSQL client of the server's major version or newer (Debian/Ubuntu: \
         apt-get install postgresql-client)"
    )]
    PgDumpNotFound,
    #[error("pg_dump failed ({status}): {stderr}")]
    PgDump { status: String, stderr: String },
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("exporting table data: {0}")]
    Export(#[from] ExportError),
    #[error("the database URL cannot be handed to pg_dump: {0}")]
    Url(String),
}

/// What a backup wrote.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Backup {
    pub dir: PathBuf,
    pub schema: PathBuf,
    pub tables: Vec<ExportedTable>,
}

#[derive(Serialize)]
struct Manifest<'a> {
    created_at: String,
    host: String,
    database: String,
    pg_dump: String,
    schema: &'a Path,
    tables: &'a [ExportedTable],
}

/// Backs up the database `database_url` names (and `pool` connects to) into a new
/// `backup_dir/<UTC timestamp>/`.
pub(crate) async fn run(
    database_url: &str,
    pool: &PgPool,
    backup_dir: &Path,
) -> Result<Backup, BackupError> {
    let pg_dump = local_db::pg_program("pg_dump").ok_or(BackupError::PgDumpNotFound)?;
    let target = PgDumpTarget::from_url(database_url)?;
    let dir = create_private_dir(backup_dir)?;
    match write_backup(&pg_dump, &target, pool, &dir).await {
        Ok(backup) => Ok(backup),
        Err(error) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(error)
        }
    }
}

async fn write_backup(
    pg_dump: &Path,
    target: &PgDumpTarget,
    pool: &PgPool,
    dir: &Path,
) -> Result<Backup, BackupError> {
    let schema = dir.join("schema.sql");
    // Created first with owner-only permissions; pg_dump then writes into it.
    drop(
        store::private_file(&schema)
            .await
            .map_err(|e| BackupError::Io(schema.display().to_string(), e))?,
    );
    let mut command = tokio::process::Command::new(pg_dump);
    command
        .arg("--schema-only")
        .arg("--file")
        .arg(&schema)
        .arg("--dbname")
        .arg(&target.url)
        // Never prompt: a missing password is an error, not a hang.
        .arg("--no-password")
        .env_remove("PGPASSWORD")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // The password goes by environment, not argument: arguments are visible to every user.
    if let Some(password) = &target.password {
        command.env("PGPASSWORD", password);
    }
    let output = command
        .output()
        .await
        .map_err(|e| BackupError::Io(format!("running {}", pg_dump.display()), e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(BackupError::PgDump {
            status: output.status.to_string(),
            stderr: one_line(&stderr),
        });
    }
    let tables = store::export_tables(pool, dir).await?;
    let version = tokio::process::Command::new(pg_dump)
        .arg("--version")
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let manifest = Manifest {
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        host: target.host.clone(),
        database: target.database.clone(),
        pg_dump: version,
        schema: Path::new("schema.sql"),
        tables: &tables,
    };
    let manifest_path = dir.join("manifest.json");
    let mut file = store::private_file(&manifest_path)
        .await
        .map_err(|e| BackupError::Io(manifest_path.display().to_string(), e))?;
    let text = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    tokio::io::AsyncWriteExt::write_all(&mut file, &text)
        .await
        .map_err(|e| BackupError::Io(manifest_path.display().to_string(), e))?;
    Ok(Backup {
        dir: dir.to_owned(),
        schema,
        tables,
    })
}

/// The database URL split for pg_dump: the URL without its password, and the password.
struct PgDumpTarget {
    url: String,
    password: Option<String>,
    host: String,
    database: String,
}

impl PgDumpTarget {
    fn from_url(database_url: &str) -> Result<Self, BackupError> {
        let mut url = Url::parse(database_url.trim())
            .map_err(|_| BackupError::Url("not a postgres:// URL".into()))?;
        let password = url.password().map(percent_decode);
        url.set_password(None)
            .map_err(|()| BackupError::Url("a URL without a host".into()))?;
        // libpq's own spelling of the socket directory parameter is the same (`host=`).
        let host = url
            .query_pairs()
            .find(|(k, _)| k == "host")
            .map(|(_, v)| v.into_owned())
            .or_else(|| url.host_str().map(str::to_owned))
            .unwrap_or_default();
        let database = url.path().trim_start_matches('/').to_owned();
        Ok(Self {
            url: url.to_string(),
            password,
            host,
            database,
        })
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `DIR/<UTC timestamp>/`, new, owner-only (`-2`, `-3`, … when two backups share a second).
fn create_private_dir(backup_dir: &Path) -> Result<PathBuf, BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::create_dir_all(backup_dir)
        .map_err(|e| BackupError::Io(backup_dir.display().to_string(), e))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    for n in 1..100 {
        let name = if n == 1 {
            stamp.clone()
        } else {
            format!("{stamp}-{n}")
        };
        let dir = backup_dir.join(name);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(BackupError::Io(dir.display().to_string(), error)),
        }
    }
    Err(BackupError::Io(
        backup_dir.display().to_string(),
        std::io::Error::other("too many backups in one second"),
    ))
}

/// The last non-empty lines of a tool's stderr, on one line.
fn one_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        "no message".into()
    } else {
        tail.join(" / ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_goes_by_environment_and_never_in_the_url() {
        let target = PgDumpTarget::from_url(
            "postgres://app:s%40cret@db.example.com:5432/postgres?sslmode=require",
        )
        .unwrap();
        assert_eq!(target.password.as_deref(), Some("s@cret"));
        assert!(!target.url.contains("cret"), "{}", target.url);
        assert_eq!(
            target.url,
            "postgres://app@db.example.com:5432/postgres?sslmode=require"
        );
        assert_eq!(target.host, "db.example.com");
        assert_eq!(target.database, "postgres");
    }

    #[test]
    fn socket_urls_name_the_socket_directory_as_host() {
        let target =
            PgDumpTarget::from_url("postgres://postgres@localhost/db1?host=/tmp/sock").unwrap();
        assert_eq!(target.password, None);
        assert_eq!(target.host, "/tmp/sock");
    }
}
