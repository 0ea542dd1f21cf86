//! Types that can only hold valid values: parse, don't validate. Among them the one model of a
//! customer row (`customer`) and the order of a customer's states (`event_order`).

pub mod column_name;
pub(crate) mod customer;
pub mod duration;
pub mod event_id;
pub(crate) mod event_order;
pub mod ledger_retention;
pub mod outcome;
pub mod owner;
pub mod stripe_customer_id;
pub mod stripe_mode;
pub(crate) mod subscription_order;
pub mod table_name;
pub mod webhook_secret;

pub use column_name::ColumnName;
pub(crate) use customer::{
    RowField, RowWrite, StoredCustomer, StoredValues, SyncStatus, UnlinkReason, UserFacts,
};
pub use duration::parse_duration;
pub use event_id::EventId;
pub(crate) use event_order::EventOrder;
pub use ledger_retention::LedgerRetention;
pub use owner::Owner;
pub use stripe_customer_id::StripeCustomerId;
pub use stripe_mode::StripeMode;
pub use table_name::TableName;
pub use webhook_secret::{SignatureTolerance, WebhookSecret, WebhookSecrets};
