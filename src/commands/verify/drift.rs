//! Drift: what applying Stripe's state through the rules would change in a live row.

use serde::Serialize;
use serde_json::Value;

use crate::domain::event_order::CustomerEventKind;
use crate::domain::{RowField, StripeCustomerId, SyncStatus};
use crate::store::customers::StoredRow;
use crate::stripe_api::customers::Retrieved;
use crate::sync::request::{FetchCommand, FetchRun, FetchedCustomer};
use crate::sync::{ORGANIZATION_ID_METADATA_KEY, fetched_row};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DriftKind {
    MissingInStripe,
    /// A row `verify --fix` marked `missing` whose customer Stripe knows again.
    FoundInStripe,
    DeletedInStripe,
    Email,
    Name,
    DefaultPaymentMethod,
    MetadataUserId,
    MetadataOrganizationId,
}

impl DriftKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::MissingInStripe => "missing_in_stripe",
            Self::FoundInStripe => "found_in_stripe",
            Self::DeletedInStripe => "deleted_in_stripe",
            Self::Email => "email",
            Self::Name => "name",
            Self::DefaultPaymentMethod => "default_payment_method",
            Self::MetadataUserId => "metadata_user_id",
            Self::MetadataOrganizationId => "metadata_organization_id",
        }
    }
}

/// One field that differs: what the table holds, what Stripe has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Difference {
    pub kind: DriftKind,
    pub table: Value,
    pub stripe: Value,
}

/// The differences between a live row and what Stripe has: the rules on Stripe's state ([`fetched_row`])
/// against the row, whatever the order of the two (drift asks what Stripe has, not whether it
/// is newer: that is for `--fix` to find out, which may come out `stale_event`), its decided
/// values compared with the row's. The link itself is not compared: it rests on `auth.users`.
pub(crate) fn compare(
    row: &StoredRow,
    retrieved: &Retrieved,
    user_id_key: &str,
) -> Vec<Difference> {
    let found = match retrieved {
        // Not a state of the customer: the key's account and mode do not know it. Reported as
        // such whatever the row says; only Stripe's `deleted: true` is a deletion.
        Retrieved::ResourceMissing => {
            return vec![Difference {
                kind: DriftKind::MissingInStripe,
                table: Value::String(row.stripe_customer_id.clone()),
                stripe: Value::Null,
            }];
        }
        Retrieved::Found(found) => found,
    };
    let kind = if found.deleted {
        CustomerEventKind::Deleted
    } else {
        CustomerEventKind::Updated
    };
    if StripeCustomerId::parse(&row.stripe_customer_id).is_err() {
        return Vec::new();
    }
    // Never applied: it only says what the rules would write.
    let run = FetchRun {
        command: FetchCommand::Verify,
        run_id: String::new(),
        dry_run: true,
        livemode: row.values.livemode.unwrap_or_default(),
    };
    let fetched = FetchedCustomer {
        customer: &found.customer,
        deleted: found.deleted,
        requested_at: 0,
    };
    let Some(decided) = fetched_row(user_id_key, &run, fetched, &row.stored) else {
        return Vec::new();
    };
    let values = &row.values;
    let changes = decided.changes(values);
    if changes.contains(&RowField::Status) && kind == CustomerEventKind::Deleted {
        return vec![Difference {
            kind: DriftKind::DeletedInStripe,
            table: Value::String("live".into()),
            stripe: Value::String("deleted".into()),
        }];
    }
    let text = |value: Option<&str>| value.map_or(Value::Null, |v| Value::String(v.to_owned()));
    let user_of = |metadata: Option<&Value>| metadata.filter(|v| !v.is_null()).cloned();
    let organization_key = ORGANIZATION_ID_METADATA_KEY;
    changes
        .into_iter()
        .flat_map(|field| {
            match field {
                RowField::Email => Some(Difference {
                    kind: DriftKind::Email,
                    table: text(Some(&values.email)),
                    stripe: text(decided.email.as_deref()),
                }),
                RowField::Name => Some(Difference {
                    kind: DriftKind::Name,
                    table: text(values.name.as_deref()),
                    stripe: text(decided.name.as_deref()),
                }),
                RowField::DefaultPaymentMethod => Some(Difference {
                    kind: DriftKind::DefaultPaymentMethod,
                    table: text(values.default_payment_method.as_deref()),
                    stripe: text(decided.default_payment_method.as_deref()),
                }),
                RowField::StripeMetadata => {
                    // The owner keys' changes; other metadata is Stripe's to hold.
                    let owner_key = |key: &str, kind| {
                        let stored = user_of(values.stripe_metadata.get(key));
                        let stripe = user_of(decided.stripe_metadata.get(key));
                        (stored != stripe).then(|| Difference {
                            kind,
                            table: stored.unwrap_or(Value::Null),
                            stripe: stripe.unwrap_or(Value::Null),
                        })
                    };
                    let user = owner_key(user_id_key, DriftKind::MetadataUserId);
                    let organization =
                        owner_key(organization_key, DriftKind::MetadataOrganizationId);
                    return user.into_iter().chain(organization).collect::<Vec<_>>();
                }
                RowField::Status if row.stored.status == Some(SyncStatus::Missing) => {
                    Some(Difference {
                        kind: DriftKind::FoundInStripe,
                        table: Value::String(SyncStatus::Missing.as_str().into()),
                        stripe: Value::String("live".into()),
                    })
                }
                // The link rests on `auth.users` (or the organizations), which verify does not
                // read; the rest is the rules' own bookkeeping.
                RowField::UserId
                | RowField::OrganizationId
                | RowField::Status
                | RowField::Error
                | RowField::Livemode => None,
            }
            .into_iter()
            .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StoredCustomer;
    use crate::stripe::event::CustomerObject;
    use crate::stripe_api::customers::ApiCustomer;
    use serde_json::json;

    fn row() -> StoredRow {
        StoredRow {
            stripe_customer_id: "cus_A".into(),
            stored: StoredCustomer {
                version: "7".into(),
                status: Some(crate::domain::SyncStatus::Synced),
                last_applied: None,
            },
            values: crate::domain::StoredValues {
                user_id: None,
                organization_id: None,
                email: "a@example.com".into(),
                name: Some("Ada".into()),
                default_payment_method: None,
                stripe_metadata: json!({"user_id": "u1"}),
                status: Some(crate::domain::SyncStatus::Synced),
                error: None,
                livemode: Some(false),
            },
        }
    }

    fn stripe(change: impl FnOnce(&mut CustomerObject)) -> Retrieved {
        let mut customer = CustomerObject {
            id: "cus_A".into(),
            email: Some("a@example.com".into()),
            name: Some("Ada".into()),
            default_payment_method: None,
            metadata: json!({"user_id": "u1", "plan": "pro"})
                .as_object()
                .unwrap()
                .clone(),
        };
        change(&mut customer);
        Retrieved::Found(ApiCustomer {
            customer,
            deleted: false,
        })
    }

    fn kinds(differences: &[Difference]) -> Vec<DriftKind> {
        differences.iter().map(|d| d.kind).collect()
    }

    #[test]
    fn row_as_stripe_has_it_has_no_drift() {
        assert!(compare(&row(), &stripe(|_| {}), "user_id").is_empty());
    }

    #[test]
    fn each_field_that_differs_is_its_own_kind_of_drift() {
        let differences = compare(
            &row(),
            &stripe(|c| {
                c.email = Some("b@example.com".into());
                c.name = None;
                c.default_payment_method = Some("pm_1".into());
                c.metadata.insert("user_id".into(), json!("u2"));
            }),
            "user_id",
        );
        assert_eq!(
            kinds(&differences),
            [
                DriftKind::Email,
                DriftKind::Name,
                DriftKind::DefaultPaymentMethod,
                DriftKind::MetadataUserId
            ]
        );
        assert_eq!(differences[0].stripe, json!("b@example.com"));
    }

    #[test]
    fn no_email_in_stripe_is_no_drift_because_the_rules_keep_the_stored_one() {
        assert!(compare(&row(), &stripe(|c| c.email = None), "user_id").is_empty());
    }

    #[test]
    fn missing_and_deleted_customers_are_drift_of_their_own() {
        assert_eq!(
            kinds(&compare(&row(), &Retrieved::ResourceMissing, "user_id")),
            [DriftKind::MissingInStripe]
        );
        let deleted = Retrieved::Found(ApiCustomer {
            customer: CustomerObject {
                id: "cus_A".into(),
                ..CustomerObject::default()
            },
            deleted: true,
        });
        assert_eq!(
            kinds(&compare(&row(), &deleted, "user_id")),
            [DriftKind::DeletedInStripe]
        );
    }

    #[test]
    fn a_row_marked_missing_whose_customer_stripe_knows_again_is_drift() {
        let mut marked = row();
        marked.stored.status = Some(SyncStatus::Missing);
        assert_eq!(
            kinds(&compare(&marked, &stripe(|_| {}), "user_id")),
            [DriftKind::FoundInStripe]
        );
    }

    #[test]
    fn drift_is_what_stripe_has_whatever_the_order_of_the_row_and_the_fetch() {
        let mut newer_row = row();
        newer_row.stored.last_applied = Some(crate::domain::EventOrder::new(
            i64::MAX,
            CustomerEventKind::Updated,
        ));
        assert_eq!(
            kinds(&compare(&newer_row, &stripe(|c| c.name = None), "user_id")),
            [DriftKind::Name]
        );
    }

    #[test]
    fn other_stripe_metadata_than_the_user_id_is_no_drift() {
        let differences = compare(
            &row(),
            &stripe(|c| {
                c.metadata.insert("plan".into(), json!("team"));
            }),
            "user_id",
        );
        assert!(differences.is_empty(), "{differences:?}");
    }
}
