//! `public.stripe_subscriptions` and the tiers written from it (docs/design.md "Tiers"): the
//! reads the tier rules need and the writes they decide. Every statement runs inside the
//! event's own transaction (see `sync::subscriptions`), unnamed behind a transaction pooler.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::StoreError;
use super::session::EventScope;
use crate::domain::subscription_order::StoredOrder;
use crate::domain::{ColumnName, TableName};

/// A subscription's row as an event leaves it.
#[derive(Debug, Clone)]
pub(crate) struct SubscriptionRow<'a> {
    pub id: &'a str,
    pub stripe_customer_id: &'a str,
    pub status: &'a str,
    pub price_ids: Vec<String>,
    pub lookup_keys: Vec<Option<String>>,
    pub tiers: Vec<Option<String>>,
    pub cancel_at_period_end: bool,
    pub current_period_end: Option<DateTime<Utc>>,
    pub livemode: bool,
    pub last_event_id: &'a str,
    pub last_event_created: i64,
    pub last_event_type: &'a str,
    pub ended: bool,
}

/// Whose tier a customer's subscriptions decide, as its row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TierOwner {
    /// The owner the row links.
    Bills(Owner),
    /// A deleted customer's row names no owner any more; this is the one its Stripe metadata
    /// named when it was deleted (organization first, as for the link), held by no live row:
    /// the owner it billed, which has no customer left (its tier falls to the lowest).
    Released(Owner),
    /// No row yet, an unlinked customer, or a deleted one whose owner another row holds now:
    /// no tier is written.
    Nobody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Organization(Uuid),
    User(Uuid),
}

/// Serializes the subscription events of one customer (on every replica) until the event's
/// transaction ends: an owner's tier is computed from all its subscriptions at once.
pub(crate) async fn lock_customer(
    scope: &mut EventScope<'_>,
    stripe_customer_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "select pg_catalog.pg_advisory_xact_lock(1935897444,
                    pg_catalog.hashtext('stripe_subscriptions:' || $1))",
    )
    .bind(stripe_customer_id)
    .execute(&mut *scope)
    .await?;
    Ok(())
}

/// Whether the ledger holds the event already (read under the customer's lock).
pub(crate) async fn already_recorded(
    scope: &mut EventScope<'_>,
    event_id: &str,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from public.stripe_webhook_events where id = $1)",
    )
    .bind(event_id)
    .fetch_one(&mut *scope)
    .await?)
}

/// The order of the subscription's stored state, if it has a row.
pub(crate) async fn stored_order(
    scope: &mut EventScope<'_>,
    id: &str,
) -> Result<Option<StoredOrder>, StoreError> {
    let row = sqlx::query(
        "select last_event_created, last_event_type, ended
           from public.stripe_subscriptions where stripe_subscription_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *scope)
    .await?;
    Ok(row.map(|row| StoredOrder {
        created: row.get(0),
        event_type: row.get(1),
        ended: row.get(2),
    }))
}

pub(crate) async fn write(
    scope: &mut EventScope<'_>,
    row: &SubscriptionRow<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into public.stripe_subscriptions as s
             (stripe_subscription_id, stripe_customer_id, status, price_ids, lookup_keys, tiers,
              cancel_at_period_end, current_period_end, livemode, last_event_id,
              last_event_created, last_event_type, ended)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         on conflict (stripe_subscription_id) do update set
             stripe_customer_id = excluded.stripe_customer_id,
             status = excluded.status,
             price_ids = excluded.price_ids,
             lookup_keys = excluded.lookup_keys,
             tiers = excluded.tiers,
             cancel_at_period_end = excluded.cancel_at_period_end,
             current_period_end = excluded.current_period_end,
             livemode = excluded.livemode,
             last_event_id = excluded.last_event_id,
             last_event_created = excluded.last_event_created,
             last_event_type = excluded.last_event_type,
             ended = excluded.ended,
             updated_at = now()",
    )
    .bind(row.id)
    .bind(row.stripe_customer_id)
    .bind(row.status)
    .bind(&row.price_ids)
    .bind(&row.lookup_keys)
    .bind(&row.tiers)
    .bind(row.cancel_at_period_end)
    .bind(row.current_period_end)
    .bind(row.livemode)
    .bind(row.last_event_id)
    .bind(row.last_event_created)
    .bind(row.last_event_type)
    .bind(row.ended)
    .execute(&mut *scope)
    .await?;
    Ok(())
}

/// Every subscription of the customer: its status and its prices' tiers.
pub(crate) async fn of_customer(
    scope: &mut EventScope<'_>,
    stripe_customer_id: &str,
) -> Result<Vec<(String, Vec<Option<String>>)>, StoreError> {
    Ok(sqlx::query_as(
        "select status, tiers from public.stripe_subscriptions where stripe_customer_id = $1",
    )
    .bind(stripe_customer_id)
    .fetch_all(&mut *scope)
    .await?)
}

pub(crate) async fn owner(
    scope: &mut EventScope<'_>,
    stripe_customer_id: &str,
    keys: OwnerMetadataKeys<'_>,
) -> Result<TierOwner, StoreError> {
    // A tombstone keeps the metadata of its deletion; the owner that names is released only
    // if no live row links it (it may never have been this row's, or be another's since).
    let row: Option<OwnerRow> = sqlx::query_as(
        "select c.user_id, c.organization_id, named.organization_id as released_organization,
                named.user_id as released_user
           from public.stripe_customers c
           left join lateral (
                select case when m.organization_text ~* $3
                             and not exists (select 1 from public.stripe_customers o
                                              where o.organization_id = m.organization_text::uuid)
                            then m.organization_text::uuid end as organization_id,
                       -- As the link: metadata naming an organization is not read for a user.
                       case when coalesce(m.organization_text, '') = '' and m.user_text ~* $3
                             and not exists (select 1 from public.stripe_customers o
                                              where o.user_id = m.user_text::uuid)
                            then m.user_text::uuid end as user_id
                  from (select c.customer_metadata -> 'stripe' ->> $4 as organization_text,
                               c.customer_metadata -> 'stripe' ->> $2 as user_text) m
                 where c.customer_metadata #>> '{sync,status}' = 'deleted'
           ) named on true
          where c.stripe_customer_id = $1",
    )
    .bind(stripe_customer_id)
    .bind(keys.user)
    .bind(UUID_PATTERN)
    .bind(keys.organization)
    .fetch_optional(&mut *scope)
    .await?;
    let Some(row) = row else {
        return Ok(TierOwner::Nobody);
    };
    Ok(match row {
        OwnerRow {
            organization_id: Some(organization),
            ..
        } => TierOwner::Bills(Owner::Organization(organization)),
        OwnerRow {
            user_id: Some(user),
            ..
        } => TierOwner::Bills(Owner::User(user)),
        OwnerRow {
            released_organization: Some(organization),
            ..
        } => TierOwner::Released(Owner::Organization(organization)),
        OwnerRow {
            released_user: Some(user),
            ..
        } => TierOwner::Released(Owner::User(user)),
        _ => TierOwner::Nobody,
    })
}

/// The metadata keys that name a customer's owner, as the link reads them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnerMetadataKeys<'a> {
    pub user: &'a str,
    pub organization: &'a str,
}

#[derive(sqlx::FromRow)]
struct OwnerRow {
    user_id: Option<Uuid>,
    organization_id: Option<Uuid>,
    released_organization: Option<Uuid>,
    released_user: Option<Uuid>,
}

/// A UUID in its text form, as a metadata value names one (case aside).
const UUID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// Writes `tier` to `column` of the row `id` of `table`, only when it differs. A table or
/// column that does not exist writes nothing (`Ok(false)`); so does an unchanged tier. A
/// check constraint that refuses the value is the caller's `Rejected`.
pub(crate) async fn write_tier(
    scope: &mut EventScope<'_>,
    table: &TableName,
    column: &ColumnName,
    id: Uuid,
    tier: &str,
) -> Result<bool, StoreError> {
    // Asked first, because the update names them and would fail (aborting the transaction).
    let exists: bool = sqlx::query_scalar(
        "select exists (select 1 from pg_catalog.pg_attribute a
                         where a.attrelid = pg_catalog.to_regclass($1) and a.attname = $2
                           and not a.attisdropped)",
    )
    .bind(table.as_text())
    .bind(column.as_str())
    .fetch_one(&mut *scope)
    .await?;
    if !exists {
        return Ok(false);
    }
    // TableName and ColumnName quote exactly.
    let sql = format!(
        "update {table} set {column} = $1 where id = $2 and {column}::text is distinct from $1",
        table = table.quoted(),
        column = column.quoted(),
    );
    let updated = sqlx::query(AssertSqlSafe(sql))
        .persistent(false)
        .bind(tier)
        .bind(id)
        .execute(&mut *scope)
        .await?;
    Ok(updated.rows_affected() == 1)
}

/// Which of `customers` have kept subscriptions (one indexed look-up for all of them).
pub(crate) async fn customers_with_subscriptions(
    scope: &mut EventScope<'_>,
    customers: &[&str],
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "select distinct stripe_customer_id from public.stripe_subscriptions
          where stripe_customer_id = any($1)",
    )
    .bind(customers)
    .fetch_all(&mut *scope)
    .await?)
}
