//! What the public API roles can reach of everything the migrations and the migrator create,
//! with Supabase's default privileges in force (the shim grants them, as Supabase does).

use sqlx::{Connection, PgPool};
use stripe_customer_sync::store::schema::{self, MIGRATOR};

use crate::helpers::{migrated_database, shim_only_database};

/// Every privilege `anon` or `authenticated` holds on a table, view or sequence outside the
/// schemas Supabase itself owns, as "relation role PRIVILEGE" lines.
async fn api_role_privileges(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "select format('%s %s %s', c.relname, pg_get_userbyid(acl.grantee), acl.privilege_type)
           from pg_catalog.pg_class c
           join pg_catalog.pg_namespace n on n.oid = c.relnamespace,
                aclexplode(coalesce(c.relacl, acldefault(
                    case when c.relkind = 'S' then 's' else 'r' end::\"char\", c.relowner))) acl
          where c.relkind in ('r', 'v', 'm', 'S', 'p')
            and n.nspname not in ('pg_catalog', 'information_schema', 'auth')
            and acl.grantee in (select oid from pg_catalog.pg_roles
                                 where rolname in ('anon', 'authenticated'))
          order by 1",
    )
    .fetch_all(pool)
    .await
    .expect("read privileges")
}

/// docs/design.md grants the API roles exactly this: users read their own link and their own
/// (or their organizations') subscriptions, through RLS.
const DESIGN_GRANTS: [&str; 2] = [
    "stripe_customers authenticated SELECT",
    "stripe_subscriptions authenticated SELECT",
];

#[tokio::test]
async fn api_roles_hold_no_privilege_beyond_design_on_anything_the_migrations_create() {
    let db = shim_only_database().await;
    schema::migrate(&db.pool).await.expect("migrate");
    assert_eq!(api_role_privileges(&db.pool).await, DESIGN_GRANTS);
}

#[tokio::test]
async fn migration_bookkeeping_is_private_and_row_level_secured() {
    let db = migrated_database().await;
    let rls: bool = sqlx::query_scalar(
        "select relrowsecurity from pg_catalog.pg_class where oid = '_sqlx_migrations'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(rls, "RLS on the bookkeeping table");
    for role in ["set local role anon", "set local role authenticated"] {
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::raw_sql(role).execute(&mut *tx).await.unwrap();
        let error = sqlx::query("update _sqlx_migrations set success = false")
            .execute(&mut *tx)
            .await
            .expect_err("the API role cannot touch the bookkeeping");
        assert_eq!(
            error.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "{role}: {error}"
        );
    }
}

#[tokio::test]
async fn a_database_migrated_by_an_earlier_release_loses_the_api_roles_grants_on_upgrade() {
    let db = shim_only_database().await;
    let earlier_release = MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| *v < 20261126000000)
        .max()
        .unwrap();
    MIGRATOR
        .run_to(earlier_release, &db.pool)
        .await
        .expect("migrate as the earlier release did");
    let before = api_role_privileges(&db.pool).await;
    assert!(
        before
            .iter()
            .any(|p| p.starts_with("_sqlx_migrations anon")),
        "the earlier release left the bookkeeping open: {before:?}"
    );

    schema::migrate(&db.pool).await.expect("upgrade");
    assert_eq!(api_role_privileges(&db.pool).await, DESIGN_GRANTS);
}

#[tokio::test]
async fn migrations_applied_before_they_set_timeouts_are_accepted_on_upgrade() {
    let db = migrated_database().await;
    // As a database migrated by the earlier release recorded them.
    for (version, checksum) in schema::LEGACY_CHECKSUMS {
        sqlx::query("update _sqlx_migrations set checksum = decode($1, 'hex') where version = $2")
            .bind(checksum)
            .bind(version)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    // On a connection of its own: sqlx keeps its session lock when it refuses.
    let mut alone = sqlx::PgConnection::connect(&db.url).await.unwrap();
    assert!(
        MIGRATOR.run(&mut alone).await.is_err(),
        "sqlx alone refuses the earlier checksums"
    );
    alone.close().await.unwrap();

    schema::migrate(&db.pool)
        .await
        .expect("the service adopts them and migrates");
    assert!(schema::is_current(&db.pool).await.unwrap());
}

#[tokio::test]
async fn every_table_in_public_has_row_level_security_bookkeeping_included() {
    let db = migrated_database().await;
    let without_rls: Vec<String> = sqlx::query_scalar(
        "select relname::text from pg_catalog.pg_class
          where relnamespace = 'public'::regnamespace and relkind in ('r', 'p')
            and not relrowsecurity
          order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(without_rls, Vec::<String>::new());
}
