//! The data half of `migrate --backup-dir`: tables exported as CSV with `COPY … TO STDOUT`
//! (the schema half is `pg_dump`, run by `crate::backup`).

use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use sqlx::{Connection, PgPool};
use tokio::io::AsyncWriteExt;

use super::StoreError;

/// The tables a backup exports when they exist, as (schema, table).
pub(crate) const EXPORTED_TABLES: &[(&str, &str)] = &[
    // Whom the customer rows link to, and the seed design's profile data.
    ("auth", "users"),
    ("public", "profiles"),
    // Our own table, when a version of it exists already: `migrate --revert` drops it.
    ("public", "stripe_customers"),
];

/// One exported table.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ExportedTable {
    pub table: String,
    pub file: PathBuf,
    pub rows: i64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    #[error(transparent)]
    Database(#[from] StoreError),
    #[error("writing {0}: {1}")]
    File(PathBuf, #[source] std::io::Error),
}

impl From<sqlx::Error> for ExportError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error.into())
    }
}

/// Exports each table of [`EXPORTED_TABLES`] that exists into `dir/<schema>.<table>.csv`
/// (CSV with a header line, files readable by their owner only: `auth.users` holds password
/// hashes). All tables are read in ONE repeatable-read transaction, so they agree with each
/// other (no user without its profile because it signed up half-way).
pub(crate) async fn export_tables(
    pool: &PgPool,
    dir: &Path,
) -> Result<Vec<ExportedTable>, ExportError> {
    let mut connection = pool.acquire().await?;
    let mut transaction = connection.begin().await?;
    sqlx::raw_sql("set transaction isolation level repeatable read, read only")
        .execute(&mut *transaction)
        .await?;
    let mut exported = Vec::new();
    for (schema, table) in EXPORTED_TABLES {
        let exists: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_catalog.pg_tables
                             where schemaname = $1 and tablename = $2)",
        )
        .bind(schema)
        .bind(table)
        .fetch_one(&mut *transaction)
        .await?;
        if !exists {
            continue;
        }
        // Names from the constant above, quoted: COPY takes no bind parameters.
        let qualified = format!("\"{schema}\".\"{table}\"");
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select count(*) from {qualified}"
        )))
        .fetch_one(&mut *transaction)
        .await?;
        let file = dir.join(format!("{schema}.{table}.csv"));
        let mut out = private_file(&file)
            .await
            .map_err(|e| ExportError::File(file.clone(), e))?;
        let mut stream = transaction
            .copy_out_raw(&format!("copy {qualified} to stdout (format csv, header)"))
            .await?;
        while let Some(chunk) = stream.try_next().await? {
            out.write_all(&chunk)
                .await
                .map_err(|e| ExportError::File(file.clone(), e))?;
        }
        drop(stream);
        out.sync_all()
            .await
            .map_err(|e| ExportError::File(file.clone(), e))?;
        exported.push(ExportedTable {
            table: format!("{schema}.{table}"),
            file,
            rows,
        });
    }
    transaction.commit().await?;
    Ok(exported)
}

/// A new file that only its owner can read.
pub(crate) async fn private_file(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
}
