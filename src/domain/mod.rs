//! Types that can only hold valid values: parse, don't validate.

pub mod column_name;
pub mod duration;
pub mod event_id;
pub mod stripe_customer_id;
pub mod stripe_mode;
pub mod webhook_secret;

pub use column_name::ColumnName;
pub use duration::parse_duration;
pub use event_id::EventId;
pub use stripe_customer_id::StripeCustomerId;
pub use stripe_mode::StripeMode;
pub use webhook_secret::{SignatureTolerance, WebhookSecret, WebhookSecrets};
