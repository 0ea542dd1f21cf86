//! `migrate --backup-dir`: a restorable backup first, or no migration at all.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::helpers::{TestServer, create_auth_user, shim_only_database};

const BINARY: &str = env!("CARGO_BIN_EXE_stripe-customer-sync");
/// Where the seed design kept its backup.
const SEED_BACKUP_DIR: &str = "docs/plans/stripe_integration/backups/pre_customers_table";

async fn migrate(database_url: &str, args: &[&str], pg_bin: Option<&Path>) -> Output {
    let mut command = Command::new(BINARY);
    command
        .arg("migrate")
        .args(args)
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", database_url)
        .env("LOG_FORMAT", "json");
    // Only the spawned binary looks for pg_dump there; the test's own cluster is unaffected.
    if let Some(dir) = pg_bin {
        command.env("PG_BIN", dir);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

async fn table_exists(pool: &PgPool, table: &str) -> bool {
    sqlx::query_scalar("select to_regclass($1) is not null")
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn psql(database_url: &str, args: &[&str]) -> Output {
    let psql = stripe_customer_sync::local_db::pg_program("psql").expect("psql on this machine");
    Command::new(psql)
        .args([
            "--quiet",
            "--no-psqlrc",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database_url,
        ])
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn backup_dir_receives_a_restorable_schema_dump_and_the_user_data_before_migrating() {
    let db = shim_only_database().await;
    // The seed project's own table, and users with data that needs CSV quoting.
    sqlx::raw_sql(
        "create table public.profiles (
             id uuid primary key references auth.users (id) on delete cascade,
             full_name text)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let ada = create_auth_user(&db.pool).await;
    create_auth_user(&db.pool).await;
    sqlx::query("insert into public.profiles values ($1, $2)")
        .bind(ada)
        .bind("Ada \"Countess\" Lovelace, of Lovelace\nsecond line")
        .execute(&db.pool)
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let backups = work.path().join(SEED_BACKUP_DIR);

    let out = migrate(&db.url, &["--backup-dir", backups.to_str().unwrap()], None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table_exists(&db.pool, "public.stripe_customers").await);

    let taken = subdirectories(&backups);
    assert_eq!(taken.len(), 1, "{taken:?}");
    let backup = &taken[0];
    let stamp = backup.file_name().unwrap().to_str().unwrap();
    assert!(
        stamp.len() == 16 && stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T',
        "{stamp}"
    );
    assert_eq!(mode(backup), 0o700, "auth.users holds password hashes");
    for file in [
        "schema.sql",
        "auth.users.csv",
        "public.profiles.csv",
        "manifest.json",
    ] {
        assert_eq!(mode(&backup.join(file)), 0o600, "{file}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    let rows: Vec<(String, i64)> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().into(),
                t["rows"].as_i64().unwrap(),
            )
        })
        .collect();
    // stripe_customers did not exist yet: the backup was taken before the migration.
    assert_eq!(
        rows,
        [("auth.users".into(), 2), ("public.profiles".into(), 1)]
    );
    assert!(!manifest.to_string().contains("password"));

    // Restore into an empty database: the schema, then the data.
    let server = TestServer::get().await;
    let restored_url = server.url(&server.create_empty_database().await);
    let schema = backup.join("schema.sql");
    let restore = psql(&restored_url, &["-f", schema.to_str().unwrap()]);
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    for (table, file) in [
        ("auth.users", "auth.users.csv"),
        ("public.profiles", "public.profiles.csv"),
    ] {
        let path = backup.join(file);
        let copy = format!(
            "\\copy {table} from '{}' with (format csv, header)",
            path.display()
        );
        let loaded = psql(&restored_url, &["-c", &copy]);
        assert!(
            loaded.status.success(),
            "{}",
            String::from_utf8_lossy(&loaded.stderr)
        );
    }
    let restored = PgPoolOptions::new()
        .max_connections(1)
        .connect(&restored_url)
        .await
        .unwrap();
    assert!(table_exists(&restored, "auth.users").await);
    assert!(table_exists(&restored, "public.profiles").await);
    assert!(!table_exists(&restored, "public.stripe_customers").await);
    let name: String = sqlx::query_scalar("select full_name from public.profiles where id = $1")
        .bind(ada)
        .fetch_one(&restored)
        .await
        .unwrap();
    assert_eq!(name, "Ada \"Countess\" Lovelace, of Lovelace\nsecond line");
    let users: i64 = sqlx::query_scalar("select count(*) from auth.users")
        .fetch_one(&restored)
        .await
        .unwrap();
    assert_eq!(users, 2);
    restored.close().await;
}

#[tokio::test]
async fn migrate_refuses_to_migrate_when_pg_dump_fails_or_is_missing() {
    let fake_bin = tempfile::tempdir().unwrap();
    let failing = fake_bin.path().join("failing");
    let missing = fake_bin.path().join("missing");
    std::fs::create_dir_all(&failing).unwrap();
    std::fs::create_dir_all(&missing).unwrap();
    let script = failing.join("pg_dump");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'pg_dump: error: simulated failure for the test' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    for (pg_bin, why) in [
        (&failing, "simulated failure for the test"),
        (&missing, "pg_dump not found"),
    ] {
        let db = shim_only_database().await;
        let work = tempfile::tempdir().unwrap();
        let backups = work.path().join("backups");
        let out = migrate(
            &db.url,
            &["--backup-dir", backups.to_str().unwrap()],
            Some(pg_bin),
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let last = stderr.trim().lines().last().unwrap_or_default();
        assert!(
            last.contains("backup failed, nothing was migrated"),
            "{stderr}"
        );
        assert!(last.contains(why), "{stderr}");
        assert!(!table_exists(&db.pool, "public.stripe_customers").await);
        assert!(
            subdirectories(&backups).is_empty(),
            "no partial backup is left to be mistaken for a good one"
        );
    }
}
