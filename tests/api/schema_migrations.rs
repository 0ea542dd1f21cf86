//! The migrations as a whole: every down undoes exactly its up, and what they leave behind
//! passes the checks of Supabase's database linter that apply to it.

use sqlx::PgPool;
use stripe_customer_sync::store::schema::MIGRATOR;

use crate::helpers::{migrated_database, shim_only_database};

/// Everything the migrations can create in `public`, one sorted line per fact: tables (owner,
/// RLS, comment, storage parameters), every relation by kind, columns (type, default,
/// nullability, identity), constraints, indexes, policies, triggers, functions (full
/// definition, so security and config included) and every privilege on relations and
/// functions. sqlx's own bookkeeping table is left out: it rightly changes with every
/// migration.
const CATALOG_SNAPSHOT: &str = r#"
with ours as (
    select c.*
    from pg_catalog.pg_class c
    where c.relnamespace = 'public'::regnamespace
      and c.relname not in ('_sqlx_migrations', '_sqlx_migrations_pkey')
)
select format('relation %s kind=%s owner=%s rls=%s force_rls=%s comment=%s options=%s',
              relname, relkind, pg_get_userbyid(relowner), relrowsecurity, relforcerowsecurity,
              obj_description(oid, 'pg_class'), reloptions)
from ours
union all
select format('column %s.%s %s default=%s not_null=%s identity=%s',
              c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
              pg_get_expr(d.adbin, d.adrelid), a.attnotnull, a.attidentity)
from ours c
join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where c.relkind = 'r'
union all
select format('constraint %s.%s %s', c.relname, k.conname, pg_get_constraintdef(k.oid))
from ours c
join pg_catalog.pg_constraint k on k.conrelid = c.oid
union all
select format('index %s', pg_get_indexdef(i.indexrelid))
from ours c
join pg_catalog.pg_index i on i.indrelid = c.oid
union all
select format('policy %s.%s permissive=%s roles=%s cmd=%s using=%s check=%s',
              tablename, policyname, permissive, roles, cmd, qual, with_check)
from pg_catalog.pg_policies
where schemaname = 'public'
union all
select format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
from ours c
join pg_catalog.pg_trigger t on t.tgrelid = c.oid and not t.tgisinternal
union all
select format('function %s', pg_get_functiondef(p.oid))
from pg_catalog.pg_proc p
where p.pronamespace = 'public'::regnamespace
union all
select format('grant %s on %s to %s', acl.privilege_type, c.relname,
              case when acl.grantee = 0 then 'PUBLIC' else pg_get_userbyid(acl.grantee) end)
from ours c,
     aclexplode(coalesce(c.relacl,
                         acldefault(case when c.relkind = 'S' then 's' else 'r' end::"char",
                                    c.relowner))) acl
where c.relkind in ('r', 'S')
union all
select format('grant %s on %s to %s', acl.privilege_type, p.oid::regprocedure,
              case when acl.grantee = 0 then 'PUBLIC' else pg_get_userbyid(acl.grantee) end)
from pg_catalog.pg_proc p,
     aclexplode(coalesce(p.proacl, acldefault('f'::"char", p.proowner))) acl
where p.pronamespace = 'public'::regnamespace
"#;

async fn snapshot(pool: &PgPool) -> Vec<String> {
    let mut lines: Vec<String> = sqlx::query_scalar(CATALOG_SNAPSHOT)
        .fetch_all(pool)
        .await
        .expect("snapshot the catalog");
    lines.sort();
    lines
}

/// The version of the migration whose file is named `<version>_<description>.up.sql`.
fn version(description: &str) -> i64 {
    MIGRATOR
        .iter()
        .find(|m| m.description == description)
        .unwrap_or_else(|| panic!("no migration {description:?}"))
        .version
}

async fn exists(pool: &PgPool, check: &'static str) -> bool {
    sqlx::query_scalar(check).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn up_down_up_leaves_the_same_schema() {
    let db = shim_only_database().await;
    let before = snapshot(&db.pool).await;
    MIGRATOR.run(&db.pool).await.expect("up");
    let first_up = snapshot(&db.pool).await;
    assert!(
        first_up
            .iter()
            .any(|l| l.starts_with("policy stripe_customers.stripe_customers_select_own")),
        "the snapshot sees our objects"
    );

    MIGRATOR.undo(&db.pool, 0).await.expect("down to nothing");

    assert_eq!(
        snapshot(&db.pool).await,
        before,
        "down leaves nothing of ours in public"
    );
    for gone in [
        "select to_regclass('public.stripe_customers') is not null",
        "select to_regclass('public.stripe_webhook_events') is not null",
        "select to_regclass('public.stripe_customers_audit') is not null",
        "select to_regprocedure('public.stripe_customers_set_updated_at()') is not null",
        "select to_regprocedure('public.stripe_customers_audit_row()') is not null",
        "select to_regclass('public.stripe_customer_outbox') is not null",
        "select to_regprocedure('public.stripe_customer_outbox_enqueue(uuid)') is not null",
        "select exists (select 1 from pg_trigger
                         where tgrelid = 'auth.users'::regclass and not tgisinternal)",
    ] {
        assert!(
            !exists(&db.pool, gone).await,
            "still there after down: {gone}"
        );
    }
    assert!(
        exists(&db.pool, "select to_regclass('auth.users') is not null").await,
        "down must not touch Supabase's auth.users"
    );

    MIGRATOR.run(&db.pool).await.expect("up again");
    assert_eq!(snapshot(&db.pool).await, first_up);
}

#[tokio::test]
async fn each_down_migration_reverts_exactly_its_up() {
    let db = shim_only_database().await;
    let customers = version("create stripe customers");
    let ledger = version("create stripe webhook events");
    let catch_up = version("create stripe catch up runs");
    let mut after = vec![(0, snapshot(&db.pool).await)];
    for target in [customers, ledger, catch_up] {
        MIGRATOR.run_to(target, &db.pool).await.expect("up");
        after.push((target, snapshot(&db.pool).await));
    }
    MIGRATOR.run(&db.pool).await.expect("up");

    // Undoing the audit migration must hand back stripe_customers without its audit trigger
    // but otherwise untouched; and so on down.
    while let Some((target, expected)) = after.pop() {
        MIGRATOR.undo(&db.pool, target).await.expect("down");
        assert_eq!(
            snapshot(&db.pool).await,
            expected,
            "schema after undoing down to {target}"
        );
    }
}

/// Indexes of one table alike in key columns, operator classes, collations, ordering,
/// expressions and predicate, as "a = b" lines: one of them would do. Uniqueness is ignored on
/// purpose: a plain index beside a UNIQUE constraint's (the seed design's defect) is exactly
/// such a duplicate.
async fn duplicate_indexes(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "select string_agg(i.indexrelid::regclass::text, ' = '
                           order by i.indexrelid::regclass::text)
         from pg_catalog.pg_index i
         join pg_catalog.pg_class c on c.oid = i.indrelid
         where c.relnamespace = 'public'::regnamespace
         group by i.indrelid, i.indkey::text, i.indclass::text, i.indcollation::text,
                  i.indoption::text,
                  coalesce(pg_get_expr(i.indexprs, i.indrelid), ''),
                  coalesce(pg_get_expr(i.indpred, i.indrelid), '')
         having count(*) > 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn no_two_indexes_on_our_tables_have_the_same_definition() {
    let db = migrated_database().await;

    assert_eq!(duplicate_indexes(&db.pool).await, Vec::<String>::new());

    // The check itself catches the seed design's defect.
    sqlx::query("create index seed_user_id_idx on public.stripe_customers (user_id)")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        duplicate_indexes(&db.pool).await,
        ["seed_user_id_idx = stripe_customers_user_id_key"]
    );
}

#[tokio::test]
async fn every_function_we_create_pins_its_search_path() {
    let db = migrated_database().await;
    // Supabase's linter (function_search_path_mutable) accepts exactly an empty search_path.
    let functions: Vec<(String, bool)> = sqlx::query_as(
        r#"select p.oid::regprocedure::text,
                  coalesce(p.proconfig, '{}') @> array['search_path=""']
           from pg_catalog.pg_proc p
           where p.pronamespace in ('public'::regnamespace, 'auth'::regnamespace)
           order by 1"#,
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();

    let names: Vec<&str> = functions.iter().map(|(name, _)| name.as_str()).collect();
    for ours in [
        "stripe_customers_set_updated_at()",
        "stripe_customers_audit_row()",
        "stripe_customer_outbox_enqueue(uuid)",
        "stripe_customer_outbox_user_changed()",
        "stripe_customer_outbox_profile_changed()",
        "stripe_customer_outbox_watch_profiles()",
        "auth.uid()",
    ] {
        assert!(names.contains(&ours), "{ours} not found in {names:?}");
    }
    let unpinned: Vec<&str> = functions
        .iter()
        .filter(|(_, pinned)| !pinned)
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        unpinned.is_empty(),
        "search_path not pinned to '': {unpinned:?}"
    );
}

#[tokio::test]
async fn supabase_shim_runs_again_harmlessly_where_it_already_ran() {
    let db = migrated_database().await;
    let before = snapshot(&db.pool).await;

    sqlx::raw_sql(include_str!("../../src/store/supabase_shim.sql"))
        .execute(&db.pool)
        .await
        .expect("the shim is idempotent");

    assert_eq!(
        snapshot(&db.pool).await,
        before,
        "and changes nothing of ours"
    );
}
