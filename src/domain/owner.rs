//! Who a Stripe customer belongs to: a Supabase user or an organization (docs/design.md
//! "Organizations"). One row, one owner.

use std::fmt;

use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    User(Uuid),
    Organization(Uuid),
}

impl Owner {
    pub fn id(self) -> Uuid {
        match self {
            Self::User(id) | Self::Organization(id) => id,
        }
    }

    /// The column of `stripe_customers` (and `stripe_customer_creations`) that holds it.
    pub fn column(self) -> &'static str {
        match self {
            Self::User(_) => "user_id",
            Self::Organization(_) => "organization_id",
        }
    }

    pub fn user(self) -> Option<Uuid> {
        match self {
            Self::User(id) => Some(id),
            Self::Organization(_) => None,
        }
    }

    pub fn organization(self) -> Option<Uuid> {
        match self {
            Self::Organization(id) => Some(id),
            Self::User(_) => None,
        }
    }
}

/// A user as their bare id (the idempotency keys and lock names of users' creations stay what
/// they were before organizations), an organization as `organization:<id>`: the name of the
/// owner in idempotency keys, the creations' lock and the audit trail's source, never
/// ambiguous between the two.
impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "{id}"),
            Self::Organization(id) => write!(f, "organization:{id}"),
        }
    }
}
