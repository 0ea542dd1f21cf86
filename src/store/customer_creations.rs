//! What creating an owner's customer reads and records (`public.stripe_customer_creations`),
//! and the per-owner lock that makes one creation at a time per owner, on any number of
//! replicas. An owner is a user or an organization ([`Owner`]): the same steps, keyed by
//! `user_id` or by `organization_id` ([`Owner::column`], one of two fixed names).
//!
//! Every statement is unnamed (`persistent(false)`): a creation runs a handful, and nothing
//! here then needs a session, so it works through a transaction-mode pooler as it is.
//!
//! The lock is a TRANSACTION-scoped advisory lock (a session lock would outlive the transaction
//! behind a pooler in transaction mode and land on someone else's connection), held only for
//! the short transactions that decide a step and record its result: never while Stripe
//! answers. What stands for "a request is calling Stripe for this attempt" between those
//! transactions, on every replica, is the attempt's LEASE (`lease_owner`, `lease_until`),
//! taken in the deciding transaction and given back with the result.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::StoreError;
use crate::configuration::OrganizationSettings;
use crate::domain::{ColumnName, Owner};

/// The advisory lock class of customer creations ("SCUS"); the hash of the owner's name (a
/// user's id as text, as before organizations; `organization:<id>`) is the object.
/// The two-int key space never meets the one-bigint keys (catch-up's run lock).
const LOCK_CLASS: i32 = 0x5343_5553;

/// Bounds the step's lock wait and statements (`statement_timeout`, `lock_timeout`), and frees
/// the lock of a holder that stopped mid-step (`idle_in_transaction_session_timeout`: the
/// server ends its session). Transaction-local (`set_config(…, true)`), as a pooler in
/// transaction mode requires; then waits for the owner's lock.
pub(crate) async fn lock_owner(
    conn: &mut PgConnection,
    owner: Owner,
    wait: std::time::Duration,
    idle: std::time::Duration,
) -> Result<(), StoreError> {
    let wait_ms = format!("{}ms", wait.as_millis());
    let idle_ms = format!("{}ms", idle.as_millis());
    sqlx::query(
        "select set_config('statement_timeout', $1, true),
                set_config('lock_timeout', $1, true),
                set_config('idle_in_transaction_session_timeout', $2, true)",
    )
    .persistent(false)
    .bind(&wait_ms)
    .bind(&idle_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2::text))")
        .persistent(false)
        .bind(LOCK_CLASS)
        .bind(owner.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The owner's live linked customer, if any (a tombstone holds no owner).
pub(crate) async fn linked_customer(
    conn: &mut PgConnection,
    owner: Owner,
) -> Result<Option<String>, StoreError> {
    let sql = format!(
        "select stripe_customer_id from public.stripe_customers
          where {} = $1 and customer_metadata #>> '{{sync,status}}' is distinct from 'deleted'",
        owner.column()
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .persistent(false)
        .bind(owner.id())
        .fetch_optional(&mut *conn)
        .await?)
}

/// What a new customer is made of, from Supabase's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRecord {
    pub email: Option<String>,
    /// `public.profiles.<name column>`, where that table and column exist.
    pub name: Option<String>,
}

/// The user's email (`auth.users`) and name (`public.profiles.<name_column>`, keyed by the
/// user id, where that table and column exist and this login may read them: a least-privilege
/// login without the grant creates customers without a name rather than failing); `None`: no
/// such user.
pub(crate) async fn user_record(
    conn: &mut PgConnection,
    user_id: Uuid,
    name_column: &ColumnName,
) -> Result<Option<UserRecord>, StoreError> {
    let user: Option<(Option<String>, bool)> = sqlx::query_as(
        "select u.email,
                exists (select 1 from pg_catalog.pg_attribute a
                         where a.attrelid = pg_catalog.to_regclass('public.profiles')
                           and a.attname = $2 and a.attnum > 0 and not a.attisdropped
                           and pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT')
                           and pg_catalog.has_column_privilege(a.attrelid, 'id', 'SELECT'))
                    as name_readable
           from auth.users u
          where u.id = $1",
    )
    .persistent(false)
    .bind(user_id)
    .bind(name_column.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((email, name_readable)) = user else {
        return Ok(None);
    };
    let name = if name_readable {
        // One column, so that a column-level grant is enough; ColumnName quotes exactly.
        let sql = format!(
            "select p.{}::text from public.profiles p where p.id = $1",
            name_column.quoted()
        );
        sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(sql))
            .persistent(false)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten()
    } else {
        None
    };
    let clean = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    Ok(Some(UserRecord {
        email: clean(email),
        name: clean(name),
    }))
}

/// The organization's billing email and name (`ORGANIZATIONS_TABLE`); `None`: no such
/// organization.
pub(crate) async fn organization_record(
    conn: &mut PgConnection,
    organization: Uuid,
    tables: &OrganizationSettings,
) -> Result<Option<UserRecord>, StoreError> {
    // TableName quotes exactly.
    let sql = format!(
        "select o.billing_email::text, o.name::text from {} o where o.id = $1",
        tables.organizations.quoted()
    );
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(AssertSqlSafe(sql))
        .persistent(false)
        .bind(organization)
        .fetch_optional(&mut *conn)
        .await?;
    let clean = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    Ok(row.map(|(email, name)| UserRecord {
        email: clean(email),
        name: clean(name),
    }))
}

/// Who is calling Stripe for an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    /// Nobody: never taken, or given back with a result.
    Free,
    /// This request (by its owner id) until the lease runs out.
    Held { owner: Uuid },
    /// Taken and never given back: its holder stopped mid-call (a crash, a kill).
    RunOut { owner: Uuid },
}

/// Which call Stripe refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusedStep {
    /// The create: nothing was created under the attempt's key.
    Create,
    /// The look-up after an interrupted attempt: whether it created is still unknown.
    Search,
}

impl RefusedStep {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Search => "search",
        }
    }
}

/// What Stripe answered when it refused, and the user's values it refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub step: RefusedStep,
    pub status: u16,
    /// Stripe's `error.type` and `error.code`, when its answer had them.
    pub kind: Option<String>,
    pub code: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// A refusal as stored: how long ago, and how many in a row for the same values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRefusal {
    pub refusal: Refusal,
    pub age: std::time::Duration,
    pub count: u32,
}

/// The user's last creation attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    /// How long ago it started, by the database's clock (the one that stamped it).
    pub age: std::time::Duration,
    /// The attempt linked its customer (`finished_at` is set).
    pub finished: bool,
    /// What the attempt sends to Stripe: every retry of its key sends the same.
    pub email: String,
    pub name: Option<String>,
    pub lease: Lease,
    pub refusal: Option<StoredRefusal>,
}

pub(crate) async fn last_attempt(
    conn: &mut PgConnection,
    owner: Owner,
) -> Result<Option<Attempt>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        attempt: i64,
        started_at: DateTime<Utc>,
        age: f64,
        finished: bool,
        email: String,
        name: Option<String>,
        lease_owner: Option<Uuid>,
        lease_held: bool,
        refused_age: Option<f64>,
        refusals: i64,
        refused_step: Option<String>,
        refusal_status: Option<i64>,
        refusal_type: Option<String>,
        refusal_code: Option<String>,
        refused_email: Option<String>,
        refused_name: Option<String>,
    }
    let sql = format!(
        "select attempt, started_at,
                greatest(extract(epoch from clock_timestamp() - started_at), 0)::float8 as age,
                finished_at is not null as finished, email, name,
                lease_owner, coalesce(lease_until > clock_timestamp(), false) as lease_held,
                extract(epoch from clock_timestamp() - refused_at)::float8 as refused_age,
                refusals, refused_step, refusal_status, refusal_type, refusal_code,
                refused_email, refused_name
           from public.stripe_customer_creations where {} = $1",
        owner.column()
    );
    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(sql))
        .persistent(false)
        .bind(owner.id())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let lease = match (row.lease_owner, row.lease_held) {
        (None, _) => Lease::Free,
        (Some(owner), true) => Lease::Held { owner },
        (Some(owner), false) => Lease::RunOut { owner },
    };
    let refusal = row.refused_age.map(|age| StoredRefusal {
        refusal: Refusal {
            step: match row.refused_step.as_deref() {
                Some("search") => RefusedStep::Search,
                _ => RefusedStep::Create,
            },
            status: row
                .refusal_status
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(400),
            kind: row.refusal_type,
            code: row.refusal_code,
            email: row.refused_email,
            name: row.refused_name,
        },
        age: std::time::Duration::from_secs_f64(age.max(0.0)),
        count: u32::try_from(row.refusals.max(1)).unwrap_or(1),
    });
    Ok(Some(Attempt {
        attempt: row.attempt,
        started_at: row.started_at,
        age: std::time::Duration::from_secs_f64(row.age),
        finished: row.finished,
        email: row.email,
        name: row.name,
        lease,
        refusal,
    }))
}

/// Records that `attempt` starts now (not finished), sending `email` and `name`, with its lease
/// held by `owner` for `lease`; returns it as stored. A refusal of the same values keeps its
/// count (the back-off goes on growing); other values start it again.
pub(crate) async fn start_attempt(
    conn: &mut PgConnection,
    owner: Owner,
    attempt: i64,
    email: &str,
    name: Option<&str>,
    lease_owner: Uuid,
    lease: std::time::Duration,
) -> Result<Attempt, StoreError> {
    let sql = format!(
        "insert into public.stripe_customer_creations as c
             (user_id, organization_id, attempt, started_at, email, name, lease_owner,
              lease_until)
         values ($1, $7, $2, clock_timestamp(), $3, $4, $5,
                 clock_timestamp() + make_interval(secs => $6))
         on conflict ({}) do update
            set attempt = excluded.attempt, started_at = excluded.started_at,
                email = excluded.email, name = excluded.name,
                finished_at = null, stripe_customer_id = null,
                lease_owner = excluded.lease_owner, lease_until = excluded.lease_until,
                refusals = case when c.refused_email is not distinct from excluded.email
                                 and c.refused_name is not distinct from excluded.name
                                then c.refusals else 0 end,
                refused_at = null
         returning started_at",
        owner.column()
    );
    let started_at: DateTime<Utc> = sqlx::query_scalar(AssertSqlSafe(sql))
        .persistent(false)
        .bind(owner.user())
        .bind(attempt)
        .bind(email)
        .bind(name)
        .bind(lease_owner)
        .bind(lease.as_secs_f64())
        .bind(owner.organization())
        .fetch_one(&mut *conn)
        .await?;
    Ok(Attempt {
        attempt,
        started_at,
        age: std::time::Duration::ZERO,
        finished: false,
        email: email.to_owned(),
        name: name.map(str::to_owned),
        lease: Lease::Held { owner: lease_owner },
        refusal: None,
    })
}

/// Takes the lease of `attempt` for `owner` (the caller decided, under the user's lock, that
/// nobody holds it). A refusal it had is over: its back-off passed or the values changed.
pub(crate) async fn take_lease(
    conn: &mut PgConnection,
    owner: Owner,
    attempt: i64,
    lease_owner: Uuid,
    lease: std::time::Duration,
) -> Result<(), StoreError> {
    let sql = format!(
        "update public.stripe_customer_creations
            set lease_owner = $3, lease_until = clock_timestamp() + make_interval(secs => $4),
                refused_at = null
          where {} = $1 and attempt = $2",
        owner.column()
    );
    sqlx::query(AssertSqlSafe(sql))
        .persistent(false)
        .bind(owner.id())
        .bind(attempt)
        .bind(lease_owner)
        .bind(lease.as_secs_f64())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Gives the lease back without a result (Stripe unavailable, the request cut off): the next
/// request may call at once, with the same key. Only `owner`'s: a lease that ran out and was
/// taken by another, or was ended with a result, is not touched.
pub(crate) async fn release_lease(
    conn: &mut PgConnection,
    owner: Owner,
    lease_owner: Uuid,
) -> Result<(), StoreError> {
    let sql = format!(
        "update public.stripe_customer_creations
            set lease_owner = null, lease_until = null
          where {} = $1 and lease_owner = $2",
        owner.column()
    );
    sqlx::query(AssertSqlSafe(sql))
        .persistent(false)
        .bind(owner.id())
        .bind(lease_owner)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records that Stripe refused `attempt` (and gives the lease back): no new call for the user
/// until the back-off passes or their values differ from the refused ones. Returns how many
/// refusals in a row that makes (for the back-off).
pub(crate) async fn record_refusal(
    conn: &mut PgConnection,
    owner: Owner,
    attempt: i64,
    refusal: &Refusal,
) -> Result<u32, StoreError> {
    let sql = format!(
        "update public.stripe_customer_creations
            set lease_owner = null, lease_until = null,
                refused_at = clock_timestamp(), refusals = refusals + 1,
                refused_step = $3, refusal_status = $4, refusal_type = $5, refusal_code = $6,
                refused_email = $7, refused_name = $8
          where {} = $1 and attempt = $2
         returning refusals",
        owner.column()
    );
    let count: Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
        .persistent(false)
        .bind(owner.id())
        .bind(attempt)
        .bind(refusal.step.as_str())
        .bind(i64::from(refusal.status))
        .bind(refusal.kind.as_deref())
        .bind(refusal.code.as_deref())
        .bind(refusal.email.as_deref())
        .bind(refusal.name.as_deref())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(count.map_or(1, |c| u32::try_from(c.max(1)).unwrap_or(1)))
}

/// Records that `attempt` linked `stripe_customer_id`; in the transaction that wrote the row.
/// The lease and any refusal end with it.
pub(crate) async fn finish_attempt(
    conn: &mut PgConnection,
    owner: Owner,
    attempt: i64,
    stripe_customer_id: &str,
) -> Result<(), StoreError> {
    let sql = format!(
        "update public.stripe_customer_creations
            set finished_at = clock_timestamp(), stripe_customer_id = $3,
                lease_owner = null, lease_until = null,
                refused_at = null, refusals = 0
          where {} = $1 and attempt = $2",
        owner.column()
    );
    sqlx::query(AssertSqlSafe(sql))
        .persistent(false)
        .bind(owner.id())
        .bind(attempt)
        .bind(stripe_customer_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
