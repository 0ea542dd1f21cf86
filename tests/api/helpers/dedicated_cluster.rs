//! A PostgreSQL cluster of one test's own, for tests that stop and restart the database: the
//! shared test cluster must keep running for every other test.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sqlx::postgres::PgPoolOptions;
use stripe_customer_sync::local_db::{ClusterOptions, LocalCluster, PgBinaries};
use stripe_customer_sync::store::schema;

use super::TestDatabase;

/// Started in a fresh directory; stopped and removed when dropped, also when the test fails.
pub struct DedicatedCluster {
    binaries: PgBinaries,
    options: ClusterOptions,
    running: Option<LocalCluster>,
    /// Declared last: removed only after `Drop` has stopped the cluster.
    _dir: tempfile::TempDir,
}

impl DedicatedCluster {
    pub async fn start() -> Self {
        let binaries = PgBinaries::locate().unwrap_or_else(|e| panic!("{e}"));
        let base = if Path::new("/dev/shm").is_dir() {
            Path::new("/dev/shm").to_owned()
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("scs-dedicated-")
            .tempdir_in(base)
            .expect("create dedicated cluster dir");
        // When we are root, PostgreSQL runs as the `postgres` OS user: it must reach its directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod dedicated cluster dir");
        let options = ClusterOptions {
            data_dir: dir.path().join("pgdata"),
            durable: false,
        };
        let mut cluster = Self {
            binaries,
            options,
            running: None,
            _dir: dir,
        };
        cluster.restart().await;
        cluster
    }

    /// Starts the cluster again on the same data directory.
    pub async fn restart(&mut self) {
        assert!(
            self.running.is_none(),
            "the dedicated cluster is already running"
        );
        let (binaries, options) = (self.binaries.clone(), self.options.clone());
        let cluster = tokio::task::spawn_blocking(move || LocalCluster::start(&binaries, &options))
            .await
            .expect("cluster start-up thread")
            .unwrap_or_else(|e| panic!("start dedicated cluster: {e}"));
        self.running = Some(cluster);
    }

    /// Shuts the cluster down (open connections are ended), keeping its data.
    pub async fn stop(&mut self) {
        let cluster = self
            .running
            .take()
            .expect("the dedicated cluster is running");
        tokio::task::spawn_blocking(move || cluster.stop())
            .await
            .expect("cluster stop thread")
            .unwrap_or_else(|e| panic!("stop dedicated cluster: {e}"));
    }

    /// Its `postgres` database, with the Supabase shim and every migration applied.
    pub async fn migrated_database(&self) -> TestDatabase {
        let name = "postgres".to_owned();
        let url = self
            .running
            .as_ref()
            .expect("the dedicated cluster is running")
            .url(&name);
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(&url)
            .await
            .expect("connect to dedicated cluster");
        schema::apply_supabase_shim_if_missing(&pool)
            .await
            .expect("apply Supabase shim");
        schema::migrate(&pool).await.expect("apply migrations");
        TestDatabase { pool, url, name }
    }
}

impl Drop for DedicatedCluster {
    fn drop(&mut self) {
        if let Some(cluster) = self.running.take() {
            let _ = cluster.stop();
        }
    }
}
