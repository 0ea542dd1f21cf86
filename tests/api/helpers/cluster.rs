//! The PostgreSQL server a test run uses, started once and removed at exit.

use std::path::PathBuf;
use std::sync::Mutex;

use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use stripe_customer_sync::local_db::{ClusterOptions, LocalCluster, PgBinaries};
use stripe_customer_sync::store::schema;
use tokio::sync::OnceCell;
use uuid::Uuid;

const DIR_PREFIX: &str = "stripe-customer-sync-test-";

static SERVER: OnceCell<TestServer> = OnceCell::const_new();
/// Databases made on an external server (DATABASE_URL), dropped at exit.
static EXTERNAL_DATABASES: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Clone, Copy)]
pub enum Template {
    ShimOnly,
    Migrated,
}

pub struct TestServer {
    backend: Backend,
    run_id: String,
}

enum Backend {
    Local { cluster: LocalCluster, dir: PathBuf },
    External { base_url: String },
}

impl TestServer {
    pub async fn get() -> &'static TestServer {
        SERVER.get_or_init(Self::start).await
    }

    async fn start() -> TestServer {
        let run_id = format!(
            "{}_{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let backend = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Backend::External { base_url: url },
            _ => tokio::task::spawn_blocking(start_local_cluster)
                .await
                .expect("cluster start-up thread"),
        };
        // SAFETY: registering a plain extern "C" fn; it runs once at process exit.
        unsafe { libc::atexit(remove_everything_at_exit) };
        let server = TestServer { backend, run_id };
        server.build_templates().await;
        server
    }

    /// Connection URL for `database` on this server.
    pub fn url(&self, database: &str) -> String {
        match &self.backend {
            Backend::Local { cluster, .. } => cluster.url(database),
            Backend::External { base_url } => with_database(base_url, database),
        }
    }

    /// The running local cluster, when the tests started one (tests that stop the database
    /// need to know whose database it is).
    pub fn local_cluster(&self) -> Option<&LocalCluster> {
        match &self.backend {
            Backend::Local { cluster, .. } => Some(cluster),
            Backend::External { .. } => None,
        }
    }

    fn template_name(&self, template: Template) -> String {
        match template {
            Template::ShimOnly => format!("scs_tpl_shim_{}", self.run_id),
            Template::Migrated => format!("scs_tpl_migrated_{}", self.run_id),
        }
    }

    async fn admin_connection(&self) -> PgConnection {
        PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the test server's postgres database")
    }

    async fn build_templates(&self) {
        let shim = self.template_name(Template::ShimOnly);
        let migrated = self.template_name(Template::Migrated);
        let mut admin = self.admin_connection().await;
        create_database(&mut admin, &shim, None).await;
        self.remember_external(&shim);
        self.prepare(&shim, false).await;
        create_database(&mut admin, &migrated, Some(&shim)).await;
        self.remember_external(&migrated);
        self.prepare(&migrated, true).await;
        admin.close().await.ok();
    }

    async fn prepare(&self, database: &str, migrate: bool) {
        // One connection, closed before the database is used as a template: PostgreSQL refuses
        // to copy a database somebody is connected to.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url(database))
            .await
            .expect("connect to template");
        schema::apply_supabase_shim_if_missing(&pool)
            .await
            .expect("apply Supabase shim");
        if migrate {
            schema::migrate(&pool).await.expect("apply migrations");
        }
        pool.close().await;
    }

    /// Creates an empty database cloned from `template` and returns its name.
    pub async fn create_database(&self, template: Template) -> String {
        let name = format!("scs_test_{}", Uuid::new_v4().simple());
        let mut admin = self.admin_connection().await;
        create_database(&mut admin, &name, Some(&self.template_name(template))).await;
        admin.close().await.ok();
        self.remember_external(&name);
        name
    }

    /// Creates a database with nothing in it (from `template0`) and returns its name: where a
    /// test restores a dump.
    pub async fn create_empty_database(&self) -> String {
        let name = format!("scs_test_{}", Uuid::new_v4().simple());
        let mut admin = self.admin_connection().await;
        create_database(&mut admin, &name, Some("template0")).await;
        admin.close().await.ok();
        self.remember_external(&name);
        name
    }

    fn remember_external(&self, name: &str) {
        if matches!(self.backend, Backend::External { .. }) {
            EXTERNAL_DATABASES.lock().unwrap().push(name.to_owned());
        }
    }
}

async fn create_database(admin: &mut PgConnection, name: &str, template: Option<&str>) {
    let sql = match template {
        Some(template) => format!(r#"create database "{name}" template "{template}""#),
        None => format!(r#"create database "{name}""#),
    };
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(admin)
        .await
        .expect("create database");
}

fn with_database(base_url: &str, database: &str) -> String {
    let mut url = url_parts(base_url);
    url.path = format!("/{database}");
    format!("{}{}{}", url.prefix, url.path, url.query)
}

struct UrlParts {
    prefix: String,
    path: String,
    query: String,
}

/// Splits `scheme://authority/path?query` without pulling in a URL crate for one test helper.
fn url_parts(url: &str) -> UrlParts {
    let (before_query, query) = match url.find('?') {
        Some(i) => (&url[..i], url[i..].to_owned()),
        None => (url, String::new()),
    };
    let authority_start = before_query.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = before_query[authority_start..]
        .find('/')
        .map(|i| i + authority_start)
        .unwrap_or(before_query.len());
    UrlParts {
        prefix: before_query[..path_start].to_owned(),
        path: before_query[path_start..].to_owned(),
        query,
    }
}

fn start_local_cluster() -> Backend {
    let binaries = PgBinaries::locate().unwrap_or_else(|e| panic!("{e}"));
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    remove_leftovers_of_dead_runs(&base);
    let dir = base.join(format!("{DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test cluster dir");
    make_traversable(&dir);
    let options = ClusterOptions {
        data_dir: dir.join("pgdata"),
        durable: false,
    };
    let cluster = LocalCluster::start(&binaries, &options).unwrap_or_else(|e| panic!("{e}"));
    Backend::Local { cluster, dir }
}

/// The cluster runs as the `postgres` OS user when we are root: it must reach its directory.
fn make_traversable(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod test dir");
}

/// A run killed with SIGKILL cannot clean up; its postgres died with it (PDEATHSIG), but its
/// directory stays. Remove those whose owning test process is gone.
fn remove_leftovers_of_dead_runs(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

extern "C" fn remove_everything_at_exit() {
    let Some(server) = SERVER.get() else { return };
    match &server.backend {
        Backend::Local { cluster, dir } => {
            let _ = cluster.stop();
            let _ = std::fs::remove_dir_all(dir);
        }
        Backend::External { .. } => drop_external_databases(server),
    }
}

fn drop_external_databases(server: &TestServer) {
    let names = std::mem::take(&mut *EXTERNAL_DATABASES.lock().unwrap());
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        let Ok(mut admin) = PgConnection::connect(&server.url("postgres")).await else {
            return;
        };
        // Newest first: templates are dropped after the databases cloned from them.
        for name in names.iter().rev() {
            let sql = format!(r#"drop database if exists "{name}" with (force)"#);
            let _ = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut admin).await;
        }
    });
}
