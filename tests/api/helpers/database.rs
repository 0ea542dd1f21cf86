//! Databases of the tests: a fresh one per test, its users, and what the README tells operators
//! to run on theirs.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use super::cluster::{self, TestServer};

/// A database of its own for one test.
pub struct TestDatabase {
    pub pool: PgPool,
    pub url: String,
    pub name: String,
}

/// A fresh database with the Supabase shim and every migration applied.
pub async fn migrated_database() -> TestDatabase {
    fresh_database(cluster::Template::Migrated).await
}

/// A fresh database with the Supabase shim only: for migration up/down tests.
pub async fn shim_only_database() -> TestDatabase {
    fresh_database(cluster::Template::ShimOnly).await
}

async fn fresh_database(template: cluster::Template) -> TestDatabase {
    let server = TestServer::get().await;
    let name = server.create_database(template).await;
    let url = server.url(&name);
    let pool = PgPoolOptions::new()
        .max_connections(25)
        .connect(&url)
        .await
        .expect("connect to test database");
    TestDatabase { pool, url, name }
}

/// Inserts an `auth.users` row, as signing up on Supabase would, and returns its id.
pub async fn create_auth_user(pool: &PgPool) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("insert into auth.users (id, email) values ($1, $2)")
        .bind(id)
        .bind(format!("{id}@example.com"))
        .execute(pool)
        .await
        .expect("insert auth.users row");
    id
}

/// Inserts an `auth.users` row with a given id (fixtures carry fixed user ids).
pub async fn create_auth_user_with_id(pool: &PgPool, id: Uuid) {
    sqlx::query("insert into auth.users (id, email) values ($1, $2)")
        .bind(id)
        .bind(format!("{id}@example.com"))
        .execute(pool)
        .await
        .expect("insert auth.users row");
}

/// `n` new `auth.users` rows in one statement.
pub async fn create_auth_users(pool: &PgPool, n: usize) -> Vec<Uuid> {
    sqlx::query_scalar(
        "insert into auth.users (id, email)
         select gen_random_uuid(), 'backfill-user-' || g || '@example.com'
           from generate_series(1, $1) g
         returning id",
    )
    .bind(n as i64)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Inserts a customer row by hand, as SQL in the editor would: only the required columns, the
/// rest (the id among them) from the table's defaults.
pub async fn insert_customer_by_hand(pool: &PgPool, stripe_customer_id: &str, email: &str) {
    sqlx::query(
        "insert into public.stripe_customers (stripe_customer_id, customer_email)
         values ($1, $2)",
    )
    .bind(stripe_customer_id)
    .bind(email)
    .execute(pool)
    .await
    .expect("insert a customer row by hand");
}

pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The SQL block of README that follows the `least-privilege-login` marker.
pub fn readme_login_sql() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let after_marker = readme
        .split("<!-- least-privilege-login -->")
        .nth(1)
        .expect("README marks the login's SQL");
    let block = after_marker
        .split("```sql")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```sql block after the marker");
    block.to_owned()
}

/// `url` with another user and password (`scheme://user[:pw]@host…`).
pub fn as_user(url: &str, user: &str, password: &str) -> String {
    let scheme_end = url.find("://").expect("a URL") + 3;
    let at = scheme_end + url[scheme_end..].find('@').expect("a user in the URL");
    format!("{}{user}:{password}{}", &url[..scheme_end], &url[at..])
}
