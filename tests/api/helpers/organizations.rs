//! The organizations of the schema (docs/design.md "Organizations"), created in a test
//! database as an application would have them, and what the service installs over them.

use sqlx::PgPool;
use stripe_customer_sync::configuration::OrganizationSettings;
use stripe_customer_sync::store::schema;
use uuid::Uuid;

/// The application's tables, as the seed's system has them, with the policy a Supabase app
/// usually gives memberships (a user reads their own), then what `migrate` installs over them.
pub async fn create_organizations_schema(pool: &PgPool) {
    sqlx::raw_sql(
        "create table public.organizations (
             id uuid primary key default gen_random_uuid(),
             name text not null,
             slug text unique not null,
             subscription_tier text default 'free'
                 check (subscription_tier in ('free', 'pro', 'enterprise')),
             contact_email text,
             billing_email text
         );
         create table public.organization_memberships (
             user_id uuid not null references auth.users (id) on delete cascade,
             organization_id uuid not null references public.organizations (id) on delete cascade,
             role text not null check (role in ('owner', 'admin', 'member', 'viewer')),
             status text not null default 'active'
                 check (status in ('active', 'pending', 'suspended', 'removed')),
             unique (user_id, organization_id)
         );
         alter table public.organizations enable row level security;
         alter table public.organization_memberships enable row level security;
         grant select on public.organizations, public.organization_memberships to authenticated;
         create policy memberships_select_own on public.organization_memberships
             for select to authenticated using ((select auth.uid()) = user_id);",
    )
    .execute(pool)
    .await
    .expect("create the organizations schema");
    assert!(
        schema::watch_organizations(pool, &OrganizationSettings::default())
            .await
            .expect("watch organizations"),
        "organizations are on once the tables exist"
    );
}

/// A new organization with `billing_email` (if any); its id.
pub async fn create_organization(pool: &PgPool, name: &str, billing_email: Option<&str>) -> Uuid {
    sqlx::query_scalar(
        "insert into public.organizations (name, slug, billing_email)
         values ($1, $1 || '-' || gen_random_uuid(), $2) returning id",
    )
    .bind(name)
    .bind(billing_email)
    .fetch_one(pool)
    .await
    .expect("insert an organization")
}

/// Makes `user` a member of `organization` with `role` and `status`.
pub async fn add_member(pool: &PgPool, organization: Uuid, user: Uuid, role: &str, status: &str) {
    sqlx::query(
        "insert into public.organization_memberships (user_id, organization_id, role, status)
         values ($1, $2, $3, $4)",
    )
    .bind(user)
    .bind(organization)
    .bind(role)
    .bind(status)
    .execute(pool)
    .await
    .expect("insert a membership");
}

/// The organization's row in `public.stripe_customers`, as JSON, if any.
pub async fn customer_of_organization(
    pool: &PgPool,
    organization: Uuid,
) -> Option<serde_json::Value> {
    sqlx::query_scalar(
        "select to_jsonb(c) from public.stripe_customers c where organization_id = $1",
    )
    .bind(organization)
    .fetch_optional(pool)
    .await
    .unwrap()
}
