//! Organization billing (docs/design.md "Organizations"): which tables hold the application's
//! organizations and memberships, and which membership roles may create the organization's
//! customer. On only where both tables exist (found by `migrate` and at `serve`'s start-up).

use clap::Args;

use super::ConfigError;
use crate::domain::TableName;

#[derive(Args, Debug, Clone)]
pub(crate) struct OrganizationArgs {
    /// The application's organizations table (uuid `id`, `name`, `billing_email`):
    /// organization billing is on when it and the memberships table exist.
    #[arg(
        long,
        env = "ORGANIZATIONS_TABLE",
        default_value = "public.organizations",
        value_name = "TABLE"
    )]
    pub organizations_table: String,

    /// The memberships table (`user_id`, `organization_id`, `role`, `status`): who may read
    /// and create an organization's customer.
    #[arg(
        long,
        env = "ORGANIZATION_MEMBERSHIPS_TABLE",
        default_value = "public.organization_memberships",
        value_name = "TABLE"
    )]
    pub organization_memberships_table: String,

    /// Membership roles (of active members) that may create the organization's customer with
    /// POST /organizations/{id}/customer, comma-separated.
    #[arg(
        long,
        env = "ORGANIZATION_ADMIN_ROLES",
        default_value = "owner,admin",
        value_name = "ROLES"
    )]
    pub organization_admin_roles: String,
}

/// The parsed settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationSettings {
    pub organizations: TableName,
    pub memberships: TableName,
    /// Never empty.
    pub admin_roles: Vec<String>,
}

impl Default for OrganizationSettings {
    fn default() -> Self {
        Self {
            organizations: TableName::parse("public.organizations").expect("a table name"),
            memberships: TableName::parse("public.organization_memberships").expect("a table name"),
            admin_roles: vec!["owner".into(), "admin".into()],
        }
    }
}

impl OrganizationSettings {
    pub(crate) fn from_args(args: &OrganizationArgs) -> Result<Self, ConfigError> {
        let organizations = TableName::parse(&args.organizations_table)
            .map_err(|e| ConfigError::new("ORGANIZATIONS_TABLE", e))?;
        let memberships = TableName::parse(&args.organization_memberships_table)
            .map_err(|e| ConfigError::new("ORGANIZATION_MEMBERSHIPS_TABLE", e))?;
        let admin_roles: Vec<String> = args
            .organization_admin_roles
            .split(',')
            .map(str::trim)
            .filter(|role| !role.is_empty())
            .map(str::to_owned)
            .collect();
        if admin_roles.is_empty() {
            return Err(ConfigError::new(
                "ORGANIZATION_ADMIN_ROLES",
                "must name at least one role (such as owner,admin)",
            ));
        }
        Ok(Self {
            organizations,
            memberships,
            admin_roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(organizations: &str, memberships: &str, roles: &str) -> OrganizationArgs {
        OrganizationArgs {
            organizations_table: organizations.into(),
            organization_memberships_table: memberships.into(),
            organization_admin_roles: roles.into(),
        }
    }

    #[test]
    fn defaults_parse_to_the_seed_schema() {
        let parsed = OrganizationSettings::from_args(&args(
            "public.organizations",
            "public.organization_memberships",
            "owner,admin",
        ))
        .unwrap();
        assert_eq!(parsed, OrganizationSettings::default());
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases = [
            (args("orgs; drop", "m", "owner"), "ORGANIZATIONS_TABLE"),
            (
                args("orgs", "a.b.c", "owner"),
                "ORGANIZATION_MEMBERSHIPS_TABLE",
            ),
            (args("orgs", "m", " , "), "ORGANIZATION_ADMIN_ROLES"),
        ];
        for (args, variable) in cases {
            let error = OrganizationSettings::from_args(&args).unwrap_err();
            assert_eq!(error.variable, variable);
        }
    }
}
