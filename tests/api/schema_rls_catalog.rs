//! Who can see and change what, read from the catalog: row level security on every table of
//! ours, no security-definer function open to the API roles, policies that evaluate the auth
//! functions once per statement and never overlap. (The requests themselves: `schema_rls`.)

use crate::helpers::migrated_database;

const OUR_TABLES: [&str; 3] = [
    "public.stripe_customers",
    "public.stripe_webhook_events",
    "public.stripe_customers_audit",
];

#[tokio::test]
async fn row_level_security_is_enabled_on_all_three_tables() {
    let db = migrated_database().await;

    let without_rls: Vec<String> = sqlx::query_scalar(
        "select c.oid::regclass::text
         from pg_catalog.pg_class c
         where c.oid = any ($1::text[]::regclass[]) and not c.relrowsecurity",
    )
    .bind(&OUR_TABLES[..])
    .fetch_all(&db.pool)
    .await
    .unwrap();

    assert!(without_rls.is_empty(), "RLS is disabled on {without_rls:?}");
}

#[tokio::test]
async fn no_security_definer_function_is_executable_by_api_roles() {
    let db = migrated_database().await;

    // Supabase's linter (anon/authenticated_security_definer_function_executable): such a
    // function is callable through /rest/v1/rpc and bypasses RLS.
    let exposed: Vec<String> = sqlx::query_scalar(
        "select format('%s by %s', p.oid::regprocedure, r.rolname)
         from pg_catalog.pg_proc p
         cross join (values ('anon'), ('authenticated'), ('service_role')) as r (rolname)
         where p.pronamespace = 'public'::regnamespace
           and p.prosecdef
           and has_function_privilege(r.rolname, p.oid, 'EXECUTE')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();

    assert!(
        exposed.is_empty(),
        "executable SECURITY DEFINER functions: {exposed:?}"
    );
}

#[tokio::test]
async fn policies_evaluate_auth_functions_once_per_statement() {
    let db = migrated_database().await;

    // Supabase's linter (auth_rls_initplan): a bare auth.uid() in a policy runs once per row;
    // wrapped as (select auth.uid()) it becomes an init plan, run once.
    let per_row: Vec<String> = sqlx::query_scalar(
        r"select format('%s.%s: %s', tablename, policyname, concat_ws(' / ', qual, with_check))
          from pg_catalog.pg_policies
          where schemaname = 'public'
            and exists (
                select from unnest(array[qual, with_check]) as e (expr)
                where expr ~ 'auth\.(uid|jwt|role|email)\(\)'
                  and lower(expr) !~ 'select\s+auth\.(uid|jwt|role|email)\(\)'
            )",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();

    assert!(per_row.is_empty(), "per-row auth calls in {per_row:?}");
}

#[tokio::test]
async fn no_role_has_two_permissive_policies_for_one_action() {
    let db = migrated_database().await;

    // Supabase's linter (multiple_permissive_policies): every permissive policy that applies
    // is evaluated, so overlapping ones cost on every query. Roles that bypass RLS never
    // evaluate policies and are left out, as the linter does.
    let overlapping: Vec<String> = sqlx::query_scalar(
        "select format('%s: %s %s %s', c.relname, r.rolname, a.action,
                       array_agg(p.polname order by p.polname))
         from pg_catalog.pg_policy p
         join pg_catalog.pg_class c on c.oid = p.polrelid
         join pg_catalog.pg_roles r on p.polroles @> array[r.oid] or p.polroles = '{0}'
         cross join lateral unnest(case p.polcmd
                 when 'r' then array['SELECT']
                 when 'a' then array['INSERT']
                 when 'w' then array['UPDATE']
                 when 'd' then array['DELETE']
                 else array['SELECT', 'INSERT', 'UPDATE', 'DELETE']
             end) as a (action)
         where c.relnamespace = 'public'::regnamespace
           and p.polpermissive
           and not r.rolbypassrls
           and r.rolname !~ '^pg_'
         group by c.relname, r.rolname, a.action
         having count(*) > 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();

    assert!(
        overlapping.is_empty(),
        "overlapping permissive policies: {overlapping:?}"
    );
}
