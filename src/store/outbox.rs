//! `public.stripe_customer_outbox`: the users (and organizations) whose email or name must be
//! pushed to Stripe. A row is one owner's ([`Owner`]); the finishing statements name it by
//! its row id.
//!
//! A row is claimed with a lease committed BEFORE the push (`for update skip locked` picks a row
//! no other worker is claiming at that moment; the lease keeps the others off it while it is
//! pushed). Holding the row lock across the HTTP call instead would make the app's own writes
//! wait for Stripe: the triggers upsert this very row, so a user's sign-in or profile save would
//! hang as long as Stripe does. Every finishing statement applies only while this worker still
//! holds the lease, and a change queued meanwhile (a newer `version`) makes the row due again.
//!
//! Each statement stands alone (autocommit) and is unnamed (`persistent(false)`): the worker
//! runs a handful per change, so parsing each costs nothing that matters, and nothing here
//! needs a session, which keeps it working through a transaction-mode pooler as it is.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgExecutor};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{ColumnName, Owner, TableName};

/// The NOTIFY channel of the triggers (delivered at commit).
pub(crate) const CHANNEL: &str = "stripe_customer_outbox";

/// A row this worker holds the lease of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claimed {
    /// The row's id.
    pub id: Uuid,
    pub owner: Owner,
    pub version: i64,
    pub attempts: i64,
}

/// Claims the due row that has waited longest, for `lease`; `None` when no row is due. A row
/// whose last call to Stripe ended less than `min_interval` ago is not due yet: one user's
/// edits make at most one call per interval, and the latest values are read when it comes.
pub(crate) async fn claim(
    db: impl PgExecutor<'_>,
    worker: &str,
    lease: Duration,
    min_interval: Duration,
) -> Result<Option<Claimed>, StoreError> {
    type Row = (Uuid, Option<Uuid>, Option<Uuid>, i64, i64);
    let row: Option<Row> = sqlx::query_as(
        "update public.stripe_customer_outbox o
            set claimed_by = $1,
                claimed_until = now() + make_interval(secs => $2)
          where o.id = (
                select d.id from public.stripe_customer_outbox d
                 where d.next_attempt_at <= now()
                   and (d.claimed_until is null or d.claimed_until < now())
                   and (d.last_call_at is null
                        or d.last_call_at <= now() - make_interval(secs => $3))
                 order by d.next_attempt_at
                 limit 1
                   for update skip locked)
         returning o.id, o.user_id, o.organization_id, o.version, o.attempts",
    )
    .persistent(false)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .bind(min_interval.as_secs_f64())
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|(id, user, organization, version, attempts)| {
        // The table's check makes exactly one of the two set.
        let owner = match (user, organization) {
            (Some(user), _) => Owner::User(user),
            (None, Some(organization)) => Owner::Organization(organization),
            (None, None) => return None,
        };
        Some(Claimed {
            id,
            owner,
            version,
            attempts,
        })
    }))
}

/// What a push is decided on, read in one statement: the user's email, their live linked
/// customer as the table holds it from Stripe, and what the last push left in Stripe.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct PushState {
    pub version: i64,
    pub attempts: i64,
    /// `auth.users.email` (an organization's `billing_email`); `None` when the owner is gone
    /// or has no email.
    pub user_email: Option<String>,
    /// An organization's `name` (always `None` for a user, whose name is the profile's).
    pub organization_name: Option<String>,
    /// The user's linked customer; `None` when there is none (unlinked, deleted).
    pub stripe_customer_id: Option<String>,
    pub customer_email: Option<String>,
    pub customer_name: Option<String>,
    /// `customer_metadata.sync.livemode` of that row (absent on rows older than modes).
    pub livemode: Option<bool>,
    /// The last push succeeded within the echo window: Stripe holds `pushed_*`, and the table
    /// may not have heard back yet.
    pub pushed_recently: bool,
    pub pushed_email: Option<String>,
    pub pushed_name: Option<String>,
    /// The digest of the values whose push failed last, and whether they still wait.
    pub failed_values: Option<String>,
    pub backing_off: bool,
}

/// The row's state for a push; `None` when the row is gone (the user was deleted). An
/// organization's values are read from `organizations` (`ORGANIZATIONS_TABLE`).
pub(crate) async fn push_state(
    db: impl PgExecutor<'_>,
    owner: Owner,
    organizations: &TableName,
    echo_window: Duration,
) -> Result<Option<PushState>, StoreError> {
    let (values, owner_join) = match owner {
        Owner::User(_) => (
            "u.email as user_email, null::text as organization_name",
            "left join auth.users u on u.id = o.user_id".to_owned(),
        ),
        // TableName quotes exactly.
        Owner::Organization(_) => (
            "g.billing_email::text as user_email, g.name::text as organization_name",
            format!(
                "left join {} g on g.id = o.organization_id",
                organizations.quoted()
            ),
        ),
    };
    let column = owner.column();
    let sql = format!(
        "select o.version, o.attempts, {values},
                c.stripe_customer_id, c.customer_email, c.customer_name,
                (c.customer_metadata #>> '{{sync,livemode}}')::boolean as livemode,
                coalesce(o.pushed_at > now() - make_interval(secs => $2), false)
                    as pushed_recently,
                o.pushed_email, o.pushed_name,
                o.failed_values, coalesce(o.backoff_until > now(), false) as backing_off
           from public.stripe_customer_outbox o
           {owner_join}
           left join public.stripe_customers c on c.{column} = o.{column}
          where o.{column} = $1"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .persistent(false)
        .bind(owner.id())
        .bind(echo_window.as_secs_f64())
        .fetch_optional(db)
        .await?)
}

/// A user's name in `public.profiles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProfileName {
    /// There is no `public.profiles`, or it has no such column: names are not pushed.
    NotKept,
    /// The user's value (`None`: no profile row, or a null name).
    Value(Option<String>),
}

/// Reads `column` of the user's `public.profiles` row (`id` = user id), as text.
pub(crate) async fn profile_name(
    db: &mut sqlx::PgConnection,
    user_id: Uuid,
    column: &ColumnName,
) -> Result<ProfileName, StoreError> {
    let kept: bool = sqlx::query_scalar(
        "select exists (select 1 from pg_catalog.pg_attribute a
                         where a.attrelid = to_regclass('public.profiles')
                           and a.attname = $1 and a.attnum > 0 and not a.attisdropped)",
    )
    .persistent(false)
    .bind(column.as_str())
    .fetch_one(&mut *db)
    .await?;
    if !kept {
        return Ok(ProfileName::NotKept);
    }
    // The column name is a validated plain identifier, quoted: nothing can break out of it.
    let value: Option<Option<String>> = sqlx::query_scalar(AssertSqlSafe(format!(
        "select {}::text from public.profiles where id = $1",
        column.quoted()
    )))
    .persistent(false)
    .bind(user_id)
    .fetch_optional(&mut *db)
    .await?;
    Ok(ProfileName::Value(value.flatten()))
}

/// The push succeeded: remember what Stripe now holds; the row is done unless a newer change
/// was queued during the push, which makes it due at once. `false`: the lease was lost.
pub(crate) async fn finish_pushed(
    db: impl PgExecutor<'_>,
    worker: &str,
    claimed: &Claimed,
    email: Option<&str>,
    name: Option<&str>,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "update public.stripe_customer_outbox
            set pushed_version = $3, pushed_email = $4, pushed_name = $5, pushed_at = now(),
                next_attempt_at = case when version = $3 then null else now() end,
                queued_at = case when version = $3 then queued_at else changed_at end,
                attempts = 0, last_error = null, claimed_by = null, claimed_until = null,
                last_call_at = now(), failed_values = null, backoff_until = null
          where id = $1 and claimed_by = $2",
    )
    .persistent(false)
    .bind(claimed.id)
    .bind(worker)
    .bind(claimed.version)
    .bind(email)
    .bind(name)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Nothing had to be pushed for this change (already in Stripe, no linked customer, another
/// mode): done, unless a newer change was queued meanwhile.
pub(crate) async fn finish_unchanged(
    db: impl PgExecutor<'_>,
    worker: &str,
    claimed: &Claimed,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "update public.stripe_customer_outbox
            set next_attempt_at = case when version = $3 then null else now() end,
                attempts = 0, last_error = null, claimed_by = null, claimed_until = null,
                failed_values = null, backoff_until = null
          where id = $1 and claimed_by = $2",
    )
    .persistent(false)
    .bind(claimed.id)
    .bind(worker)
    .bind(claimed.version)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The push of the values digested as `values` failed, after `claimed.attempts` failures of
/// the same values: count it, keep the error visible; those values wait `retry_in` (a change
/// queued during the push is looked at again at once: other values go without waiting).
pub(crate) async fn finish_failed(
    db: impl PgExecutor<'_>,
    worker: &str,
    claimed: &Claimed,
    values: &str,
    error: &str,
    retry_in: Duration,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "update public.stripe_customer_outbox
            set attempts = $3 + 1, last_error = $4,
                failed_values = $5,
                backoff_until = now() + make_interval(secs => $6),
                next_attempt_at = case when version = $7 then now() + make_interval(secs => $6)
                                       else now() end,
                last_call_at = now(), claimed_by = null, claimed_until = null
          where id = $1 and claimed_by = $2",
    )
    .persistent(false)
    .bind(claimed.id)
    .bind(worker)
    .bind(claimed.attempts)
    .bind(error)
    .bind(values)
    .bind(retry_in.as_secs_f64())
    .bind(claimed.version)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The values to push are those whose push failed, and their back-off has not ended (an edit
/// that changed nothing pushed, e.g. another column of the profile): back until it ends, no
/// call. A change queued meanwhile is looked at again at once.
pub(crate) async fn defer(
    db: impl PgExecutor<'_>,
    worker: &str,
    claimed: &Claimed,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "update public.stripe_customer_outbox
            set next_attempt_at = case when version = $3 then greatest(backoff_until, now())
                                       else now() end,
                claimed_by = null, claimed_until = null
          where id = $1 and claimed_by = $2",
    )
    .persistent(false)
    .bind(claimed.id)
    .bind(worker)
    .bind(claimed.version)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Gives back every lease of `worker` (on shutdown, when a push was cut off): the rows are
/// claimable at once rather than when the leases run out.
pub(crate) async fn release(db: impl PgExecutor<'_>, worker: &str) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "update public.stripe_customer_outbox
            set claimed_by = null, claimed_until = null
          where claimed_by = $1",
    )
    .persistent(false)
    .bind(worker)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

/// The queue at a glance, and when the next row falls due (a back-off ends, another worker's
/// lease runs out, or the interval after a user's last call passes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QueueStats {
    /// Rows with a change not yet pushed.
    pub depth: i64,
    /// Seconds the oldest of those has waited; 0 when there is none.
    pub oldest_age_secs: f64,
    pub next_due: Option<DateTime<Utc>>,
}

pub(crate) async fn stats(
    db: impl PgExecutor<'_>,
    min_interval: Duration,
) -> Result<QueueStats, StoreError> {
    let (depth, oldest_age_secs, next_due): (i64, f64, Option<DateTime<Utc>>) = sqlx::query_as(
        "select count(*),
                coalesce(extract(epoch from now() - min(queued_at))::float8, 0),
                min(greatest(next_attempt_at, coalesce(claimed_until, next_attempt_at),
                             coalesce(last_call_at + make_interval(secs => $1),
                                      next_attempt_at)))
           from public.stripe_customer_outbox
          where next_attempt_at is not null",
    )
    .persistent(false)
    .bind(min_interval.as_secs_f64())
    .fetch_one(db)
    .await?;
    Ok(QueueStats {
        depth,
        oldest_age_secs,
        next_due,
    })
}

/// Deletes the rows that are done and whose push (if any) is older than the echo window.
pub(crate) async fn delete_done(
    db: impl PgExecutor<'_>,
    echo_window: Duration,
) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "delete from public.stripe_customer_outbox
          where next_attempt_at is null
            and (pushed_at is null or pushed_at < now() - make_interval(secs => $1))",
    )
    .persistent(false)
    .bind(echo_window.as_secs_f64())
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

/// Whether `public.profiles` exists, and whether it has `column`: a name column that is not
/// there (a typo in PROFILE_NAME_COLUMN) would otherwise silently push no names.
pub(crate) async fn profiles_have_column(
    db: impl PgExecutor<'_>,
    column: &ColumnName,
) -> Result<(bool, bool), StoreError> {
    Ok(sqlx::query_as(
        "select to_regclass('public.profiles') is not null,
                exists (select 1 from pg_catalog.pg_attribute a
                         where a.attrelid = to_regclass('public.profiles')
                           and a.attname = $1 and a.attnum > 0 and not a.attisdropped)",
    )
    .persistent(false)
    .bind(column.as_str())
    .fetch_one(db)
    .await?)
}
