//! How `POST /customers` is set up: where a new customer's name comes from, the least-privilege
//! login, CORS for browsers, when the endpoint is on, and what `serve` says of it.

use uuid::Uuid;

use crate::customers_endpoint::{app_and_double, customer_id, ensure};
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::stripe_double::{StripeDouble, TEST_API_KEY};
use crate::helpers::tokens::user_token;
use crate::helpers::{LinkState, create_auth_user, spawn_app, spawn_app_with_customers};

/// A `serve` process with `POST /customers` on, against the double.
#[tokio::test]
async fn the_name_comes_from_profiles_where_that_table_exists() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    sqlx::raw_sql(
        "create table public.profiles (id uuid primary key references auth.users (id),
                                       full_name text)",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    sqlx::query("insert into public.profiles values ($1, 'Grace Hopper')")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();

    let (status, body) = ensure(&app, user).await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(double.customers()[0].name.as_deref(), Some("Grace Hopper"));
    let row = app.customer(&customer_id(&body)).await.unwrap();
    assert_eq!(row["customer_name"], "Grace Hopper");
}

#[tokio::test]
async fn the_documented_least_privilege_login_creates_customers_and_reads_names_once_a_policy_lets_it()
 {
    let db = crate::helpers::migrated_database().await;
    let role = format!("scs_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let password = "a-long-random-test-password";
    let sql = crate::helpers::readme_login_sql()
        .replace("stripe_customer_sync", &role)
        .replace("choose-a-long-random-password", password);
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&db.pool)
        .await
        .expect("README's SQL runs as written");
    // As Supabase apps have it: RLS on, each user reads their own profile. Supabase's default
    // privileges grant service_role (of which the login is a member) the table itself.
    sqlx::raw_sql(
        "create table public.profiles (id uuid primary key references auth.users (id),
                                       full_name text);
         alter table public.profiles enable row level security;
         create policy profiles_own on public.profiles for select to authenticated
             using ((select auth.uid()) = id);",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let login = crate::helpers::TestDatabase {
        pool: db.pool.clone(),
        url: crate::helpers::as_user(&db.url, &role, password),
        name: db.name.clone(),
    };
    let double = StripeDouble::start().await;
    let app = crate::helpers::spawn_app_with_customers_on(login, &double, |_| {}).await;
    let named = |user: Uuid| {
        sqlx::query("insert into public.profiles (id, full_name) values ($1, 'Grace Hopper')")
            .bind(user)
            .execute(&app.db.pool)
    };

    // The login does not bypass RLS, and no policy lets it read profiles: the customer is
    // created all the same, without a name.
    let first = create_auth_user(&app.db.pool).await;
    named(first).await.unwrap();
    let (status, body) = ensure(&app, first).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        app.link_state(&customer_id(&body)).await,
        LinkState::linked(first)
    );
    assert_eq!(double.customers()[0].name, None);

    // README's policy for it: the name comes along.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "create policy profiles_read_by_sync on public.profiles for select to {role}
             using (true)"
    )))
    .execute(&app.db.pool)
    .await
    .unwrap();
    let second = create_auth_user(&app.db.pool).await;
    named(second).await.unwrap();
    let (status, body) = ensure(&app, second).await;
    assert_eq!(status, 201, "{body}");
    let row = app.customer(&customer_id(&body)).await.unwrap();
    assert_eq!(row["customer_name"], "Grace Hopper");
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_and_others_are_refused() {
    let (app, _double) = app_and_double().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/customers", app.address),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));

    let user = create_auth_user(&app.db.pool).await;
    let response = app
        .client
        .post(format!("{}/customers", app.address))
        .header("Origin", "https://app.example.com")
        .bearer_auth(user_token(user))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}

#[tokio::test]
async fn the_endpoint_is_off_without_a_token_setting_or_an_api_key() {
    let double = StripeDouble::start().await;
    let no_tokens = spawn_app_with_customers(&double, |settings| {
        settings.customers.jwt_secret = None;
    })
    .await;
    let user = create_auth_user(&no_tokens.db.pool).await;
    let response = no_tokens
        .post_customers(Some(&user_token(user)), None)
        .await;
    assert_eq!(response.status().as_u16(), 404);
    let no_key = spawn_app_with_customers(&double, |settings| settings.stripe_api = None).await;
    let response = no_key.post_customers(Some(&user_token(user)), None).await;
    assert_eq!(response.status().as_u16(), 404);
    assert!(double.api_requests().is_empty());
}

#[tokio::test]
async fn serve_says_at_start_up_whether_post_customers_is_on() {
    let spawned = spawn_app().await;
    let double = StripeDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    for (secret, expected) in [
        (
            None,
            "POST /customers is off (404): neither SUPABASE_JWT_SECRET nor SUPABASE_JWKS_URL is set",
        ),
        (
            Some(crate::helpers::tokens::JWT_SECRET),
            "POST /customers is on",
        ),
    ] {
        let mut command = ServeProcess::command(&spawned.db.url)
            .current_dir(dir.path())
            .env("STRIPE_API_KEY", TEST_API_KEY)
            .env("STRIPE_API_BASE", &double.base_url)
            .env("CATCH_UP_INTERVAL", "0")
            .env_remove("RUST_LOG")
            .env_remove("USER_ID_METADATA_KEY")
            .env_remove("SUPABASE_JWT_SECRET")
            .env_remove("SUPABASE_JWKS_URL");
        if let Some(secret) = secret {
            command = command.env("SUPABASE_JWT_SECRET", secret);
        }
        let serve = command.start().await;
        let text = serve.wait_for_log("POST /customers is").await;
        drop(serve);
        assert!(text.contains(expected), "{expected}\n{text}");
        assert!(
            !text.contains(crate::helpers::tokens::JWT_SECRET),
            "the secret is never logged"
        );
    }
}
