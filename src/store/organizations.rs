//! The application's organizations, as organization billing reads them (docs/design.md
//! "Organizations"): whether a user may create an organization's customer. The tables are
//! configured (`ORGANIZATIONS_TABLE`, `ORGANIZATION_MEMBERSHIPS_TABLE`) and may not exist.

use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use super::StoreError;
use crate::configuration::OrganizationSettings;

/// A user's standing in an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Membership {
    /// The organizations or memberships table does not exist: organization billing is off.
    Off,
    /// The user is no member of the organization (or it does not exist).
    None,
    Member {
        role: String,
        active: bool,
    },
}

/// The user's membership of the organization, in two short statements (the first tells
/// whether the tables exist at all, which the second cannot: it names them).
pub(crate) async fn membership(
    pool: &PgPool,
    tables: &OrganizationSettings,
    user: Uuid,
    organization: Uuid,
) -> Result<Membership, StoreError> {
    let mut conn = pool.acquire().await?;
    let on: bool =
        sqlx::query_scalar("select to_regclass($1) is not null and to_regclass($2) is not null")
            .persistent(false)
            .bind(tables.organizations.as_text())
            .bind(tables.memberships.as_text())
            .fetch_one(&mut *conn)
            .await?;
    if !on {
        return Ok(Membership::Off);
    }
    // TableName quotes exactly.
    let sql = format!(
        "select m.role::text, m.status::text = 'active'
           from {} m
          where m.user_id = $1 and m.organization_id = $2",
        tables.memberships.quoted()
    );
    let row: Option<(Option<String>, Option<bool>)> = sqlx::query_as(AssertSqlSafe(sql))
        .persistent(false)
        .bind(user)
        .bind(organization)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        None => Membership::None,
        Some((role, active)) => Membership::Member {
            role: role.unwrap_or_default(),
            active: active.unwrap_or(false),
        },
    })
}
