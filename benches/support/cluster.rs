//! The PostgreSQL cluster of a benchmark's own: durable (fsync on, data on disk), in a
//! temporary directory under the target directory, stopped and removed when dropped. Shared by
//! the benchmarks that start one (`#[path]`-included: `benches/support/` is not a target).

use std::path::{Path, PathBuf};

use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};
use stripe_customer_sync::local_db::{ClusterOptions, LocalCluster, PgBinaries};
use stripe_customer_sync::store::schema;
use tempfile::TempDir;

pub struct BenchCluster {
    // Declared before `work`: stopped before the directory it runs in is removed.
    cluster: LocalCluster,
    binaries: PgBinaries,
    work: TempDir,
}

impl BenchCluster {
    /// Starts the cluster in a new directory named after `prefix`.
    pub fn start(prefix: &str) -> Self {
        let work = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("bench dir");
        // The cluster runs as the `postgres` OS user when we are root: it must reach its directory.
        std::fs::set_permissions(
            work.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod bench dir");
        let binaries = PgBinaries::locate().unwrap_or_else(|e| panic!("{e}"));
        let cluster = LocalCluster::start(
            &binaries,
            &ClusterOptions {
                data_dir: work.path().join("pgdata"),
                durable: true,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self {
            cluster,
            binaries,
            work,
        }
    }

    pub fn cluster(&self) -> &LocalCluster {
        &self.cluster
    }

    /// The benchmark's directory, for its own files (scripts, logs).
    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    /// Creates the database `name` with the Supabase shim and the service's migrations; a pool
    /// of two connections on it.
    pub async fn migrated_database(&self, name: &str) -> PgPool {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.cluster.url("postgres"))
            .await
            .expect("connect");
        sqlx::raw_sql(AssertSqlSafe(format!("create database {name}")))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let db = PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.cluster.url(name))
            .await
            .expect("connect bench database");
        schema::apply_supabase_shim_if_missing(&db)
            .await
            .expect("shim");
        schema::migrate(&db).await.expect("migrations");
        db
    }

    /// pgbench: beside the server binaries (or beside the real `postgres` a link there points
    /// to), else the one on PATH.
    #[allow(dead_code)] // not every benchmark that includes this runs pgbench
    pub fn pgbench(&self) -> PathBuf {
        let beside = |dir: &Path| Some(dir.join("pgbench")).filter(|p| p.is_file());
        beside(self.binaries.dir())
            .or_else(|| {
                let real = std::fs::canonicalize(self.binaries.dir().join("postgres")).ok()?;
                beside(real.parent()?)
            })
            .unwrap_or_else(|| PathBuf::from("pgbench"))
    }
}

impl Drop for BenchCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
    }
}
