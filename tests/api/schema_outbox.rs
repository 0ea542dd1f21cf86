//! `public.stripe_customer_outbox` and its triggers, at the database: who gets queued, by
//! whom, and who can see the queue.

use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::schema::{create_profiles, outbox_row};
use crate::helpers::stripe_double::{StripeDouble, output};
use crate::helpers::{create_auth_user, migrated_database};

/// A live row linking `user` to a new customer, as the sync rules write it.
pub async fn link(pool: &PgPool, user: Uuid) -> String {
    let customer = format!("cus_{}", &Uuid::new_v4().simple().to_string()[..14]);
    sqlx::query(
        "insert into public.stripe_customers (user_id, stripe_customer_id, customer_email,
                                              customer_metadata)
         values ($1, $2, $3, '{\"sync\": {\"status\": \"synced\", \"livemode\": false}}')",
    )
    .bind(user)
    .bind(&customer)
    .bind(format!("{user}@example.com"))
    .execute(pool)
    .await
    .unwrap();
    customer
}

async fn set_email(pool: &PgPool, user: Uuid, email: &str) {
    sqlx::query("update auth.users set email = $2 where id = $1")
        .bind(user)
        .bind(email)
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_email_change_of_a_linked_user_queues_them_once_however_often_it_changes() {
    let db = migrated_database().await;
    let user = create_auth_user(&db.pool).await;
    link(&db.pool, user).await;
    assert_eq!(outbox_row(&db.pool, user).await, None);

    set_email(&db.pool, user, "first@example.com").await;
    let first = outbox_row(&db.pool, user).await.expect("queued");
    set_email(&db.pool, user, "second@example.com").await;
    let second = outbox_row(&db.pool, user).await.expect("still queued");

    let count: i64 = sqlx::query_scalar("select count(*) from public.stripe_customer_outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "one row per user: edits coalesce");
    assert!(second["version"].as_i64() > first["version"].as_i64());
    assert_eq!(
        second["queued_at"], first["queued_at"],
        "the wait started with the first"
    );
    assert!(second["next_attempt_at"].is_string(), "due");
}

#[tokio::test]
async fn nothing_is_queued_without_a_linked_customer_or_without_an_email_change() {
    let db = migrated_database().await;
    let unlinked = create_auth_user(&db.pool).await;
    set_email(&db.pool, unlinked, "new@example.com").await;
    assert_eq!(outbox_row(&db.pool, unlinked).await, None, "no customer");

    // A tombstone releases its user: they are no longer linked.
    let former = create_auth_user(&db.pool).await;
    let customer = link(&db.pool, former).await;
    sqlx::query("update public.stripe_customers set user_id = null where stripe_customer_id = $1")
        .bind(&customer)
        .execute(&db.pool)
        .await
        .unwrap();
    set_email(&db.pool, former, "new@example.com").await;
    assert_eq!(outbox_row(&db.pool, former).await, None, "deleted customer");

    let linked = create_auth_user(&db.pool).await;
    link(&db.pool, linked).await;
    sqlx::query("update auth.users set phone = '+15550100', last_sign_in_at = now() where id = $1")
        .bind(linked)
        .execute(&db.pool)
        .await
        .unwrap();
    set_email(&db.pool, linked, &format!("{linked}@example.com")).await; // the same email
    assert_eq!(outbox_row(&db.pool, linked).await, None, "email unchanged");

    // The sync writing stripe_customers (Stripe's customer.updated coming back) queues nothing.
    sqlx::query("update public.stripe_customers set customer_email = 'echo@example.com'")
        .execute(&db.pool)
        .await
        .unwrap();
    let count: i64 = sqlx::query_scalar("select count(*) from public.stripe_customer_outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn supabase_auth_and_signed_in_users_queue_changes_without_any_right_on_the_outbox() {
    let db = migrated_database().await;
    let user = create_auth_user(&db.pool).await;
    link(&db.pool, user).await;
    create_profiles(&db.pool).await;
    sqlx::query("select public.stripe_customer_outbox_watch_profiles()")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("insert into public.profiles (id, full_name) values ($1, 'Ada')")
        .bind(user)
        .execute(&db.pool)
        .await
        .unwrap();
    // Supabase Auth's own role, with what it has on Supabase: auth.users, nothing in public.
    sqlx::raw_sql(
        "do $$ begin
             if not exists (select from pg_roles where rolname = 'supabase_auth_admin') then
                 create role supabase_auth_admin nologin;
             end if;
         exception when duplicate_object or unique_violation then null;
         end $$;
         grant usage on schema auth to supabase_auth_admin;
         grant select, update on auth.users to supabase_auth_admin;
         grant select, update on public.profiles to authenticated;",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let mut tx = db.pool.begin().await.unwrap();
    sqlx::raw_sql("set local role supabase_auth_admin")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("update auth.users set email = 'auth@example.com' where id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await
        .expect("Supabase Auth's update succeeds");
    tx.commit().await.unwrap();
    let by_auth = outbox_row(&db.pool, user)
        .await
        .expect("queued by the auth trigger");

    let mut tx = db.pool.begin().await.unwrap();
    sqlx::raw_sql("set local role authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("update public.profiles set full_name = 'Ada L' where id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await
        .expect("the user's own profile edit succeeds");
    tx.commit().await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::raw_sql("set local role authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    let error = sqlx::query("select * from public.stripe_customer_outbox")
        .execute(&mut *tx)
        .await
        .expect_err("the user cannot read the outbox");
    assert_eq!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501")
    );
    tx.rollback().await.unwrap();
    let by_profile = outbox_row(&db.pool, user).await.unwrap();
    assert!(by_profile["version"].as_i64() > by_auth["version"].as_i64());
}

#[tokio::test]
async fn the_outbox_is_private_to_the_backend() {
    let db = migrated_database().await;
    let rls: bool = sqlx::query_scalar(
        "select relrowsecurity from pg_class where oid = 'public.stripe_customer_outbox'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(rls, "row level security is enabled");
    let privileges: Vec<String> = sqlx::query_scalar(
        "select format('%s %s', r.rolname, p.privilege)
           from pg_roles r,
                unnest(array['select', 'insert', 'update', 'delete', 'truncate']) as p(privilege)
          where r.rolname in ('anon', 'authenticated', 'service_role')
            and has_table_privilege(r.oid, 'public.stripe_customer_outbox', p.privilege)
         union all
         select format('%s sequence %s', r.rolname, p.privilege)
           from pg_roles r, unnest(array['usage', 'select', 'update']) as p(privilege)
          where r.rolname in ('anon', 'authenticated', 'service_role')
            and has_sequence_privilege(r.oid, 'public.stripe_customer_outbox_version_seq',
                                       p.privilege)
         union all
         select format('%s execute %s', r.rolname, f.oid::regprocedure)
           from pg_roles r, pg_proc f
          where r.rolname in ('anon', 'authenticated', 'service_role')
            and f.pronamespace = 'public'::regnamespace
            and f.proname like 'stripe_customer_outbox%'
            and has_function_privilege(r.oid, f.oid, 'execute')
          order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    // The backend claims, finishes and deletes rows; only the triggers insert.
    assert_eq!(
        privileges,
        [
            "service_role delete",
            "service_role select",
            "service_role update"
        ]
    );
}

#[tokio::test]
async fn a_profiles_table_created_later_is_watched_after_the_next_migrate() {
    let db = migrated_database().await;
    let user = create_auth_user(&db.pool).await;
    link(&db.pool, user).await;
    create_profiles(&db.pool).await;
    sqlx::query("insert into public.profiles (id, full_name) values ($1, 'Ada')")
        .bind(user)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("update public.profiles set full_name = 'Ada L'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(outbox_row(&db.pool, user).await, None, "not watched yet");

    // `migrate` with nothing pending still attaches the trigger (the double is only there for
    // its command builder; migrate does not call Stripe).
    let double = StripeDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(double.command(&db.url, dir.path(), &["migrate"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sqlx::query("update public.profiles set avatar_url = 'a.png'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(
        outbox_row(&db.pool, user).await.is_some(),
        "any profile update queues the user"
    );
    // Idempotent: a second migrate attaches nothing twice.
    let out = output(double.command(&db.url, dir.path(), &["migrate"])).await;
    assert!(out.status.success());
    let triggers: i64 = sqlx::query_scalar(
        "select count(*) from pg_trigger where tgrelid = 'public.profiles'::regclass
            and not tgisinternal",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(triggers, 1);
}

#[tokio::test]
async fn a_profiles_table_without_a_uuid_id_is_left_alone() {
    let db = migrated_database().await;
    sqlx::raw_sql("create table public.profiles (user_ref bigint primary key, full_name text)")
        .execute(&db.pool)
        .await
        .unwrap();
    let watched: bool = sqlx::query_scalar("select public.stripe_customer_outbox_watch_profiles()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(
        !watched,
        "a trigger reading new.id would break every profile update"
    );
}

#[tokio::test]
async fn a_failure_to_queue_never_fails_the_users_own_change() {
    let db = migrated_database().await;
    let user = create_auth_user(&db.pool).await;
    link(&db.pool, user).await;
    // Whatever goes wrong in the outbox (here: it refuses every row)…
    sqlx::raw_sql(
        "alter table public.stripe_customer_outbox
             add constraint refuse_everything check (false) not valid",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    // …the sign-in's or the confirmation's update of auth.users goes through.
    set_email(&db.pool, user, "still-works@example.com").await;
    let email: String = sqlx::query_scalar("select email from auth.users where id = $1")
        .bind(user)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(email, "still-works@example.com");
    assert_eq!(outbox_row(&db.pool, user).await, None);
}

#[tokio::test]
async fn replicas_watching_profiles_at_once_all_succeed_and_attach_one_trigger() {
    let db = migrated_database().await;
    create_profiles(&db.pool).await;
    // As replicas starting together do after migrating: each on its own connection.
    let calls = (0..8).map(|_| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>("select public.stripe_customer_outbox_watch_profiles()")
                .fetch_one(&pool)
                .await
        }
    });
    for watched in futures::future::join_all(calls).await {
        assert!(watched.expect("watching profiles never fails"));
    }
    let triggers: i64 = sqlx::query_scalar(
        "select count(*) from pg_catalog.pg_trigger
          where tgrelid = 'public.profiles'::regclass
            and tgname = 'stripe_customer_outbox_profile_changed'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(triggers, 1);
}
