//! Builders for realistic Stripe events, so each test states only what it is about.

use serde_json::{Value, json};
use uuid::Uuid;

/// A `customer.*` event around a full customer object, as Stripe's API 2024-06-20 renders it.
#[derive(Clone, Debug)]
pub struct CustomerEvent {
    pub event_id: String,
    pub event_type: &'static str,
    pub created: i64,
    pub customer_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub default_payment_method: Option<String>,
    pub metadata: Value,
    pub livemode: bool,
}

pub const T0: i64 = 1_732_500_000;

pub fn new_customer_id() -> String {
    format!("cus_{}", &Uuid::new_v4().simple().to_string()[..14])
}

pub fn new_event_id() -> String {
    format!("evt_{}", &Uuid::new_v4().simple().to_string()[..24])
}

impl CustomerEvent {
    pub fn new(event_type: &'static str, customer_id: &str, created: i64) -> Self {
        Self {
            event_id: new_event_id(),
            event_type,
            created,
            customer_id: customer_id.to_owned(),
            email: Some(format!("{}@example.com", customer_id.to_lowercase())),
            name: Some("Ada Lovelace".into()),
            default_payment_method: None,
            metadata: json!({}),
            livemode: false,
        }
    }

    pub fn created(customer_id: &str, created: i64) -> Self {
        Self::new("customer.created", customer_id, created)
    }

    pub fn updated(customer_id: &str, created: i64) -> Self {
        Self::new("customer.updated", customer_id, created)
    }

    pub fn deleted(customer_id: &str, created: i64) -> Self {
        Self::new("customer.deleted", customer_id, created)
    }

    pub fn for_user(mut self, user_id: impl ToString) -> Self {
        self.metadata["user_id"] = json!(user_id.to_string());
        self
    }

    pub fn email(mut self, email: Option<&str>) -> Self {
        self.email = email.map(str::to_owned);
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    pub fn payment_method(mut self, pm: &str) -> Self {
        self.default_payment_method = Some(pm.to_owned());
        self
    }

    /// A live-mode event (the builder's default is test mode, as `stripe listen` delivers).
    pub fn live(mut self) -> Self {
        self.livemode = true;
        self
    }

    pub fn metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata[key] = json!(value);
        self
    }

    /// The event as `json()` renders it, then changed by `change` (for shapes the builder
    /// does not offer, such as an expanded object).
    pub fn json_with(&self, change: impl FnOnce(&mut Value)) -> String {
        let mut event: Value = serde_json::from_str(&self.json()).expect("event JSON");
        change(&mut event);
        event.to_string()
    }

    pub fn json(&self) -> String {
        json!({
            "id": self.event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": self.created,
            "data": { "object": {
                "id": self.customer_id,
                "object": "customer",
                "address": null,
                "balance": 0,
                "created": T0 - 100,
                "currency": null,
                "default_source": null,
                "delinquent": false,
                "description": null,
                "discount": null,
                "email": self.email,
                "invoice_prefix": "7A2B3C4D",
                "invoice_settings": {
                    "custom_fields": null,
                    "default_payment_method": self.default_payment_method,
                    "footer": null,
                    "rendering_options": null
                },
                "livemode": self.livemode,
                "metadata": self.metadata,
                "name": self.name,
                "next_invoice_sequence": 1,
                "phone": null,
                "preferred_locales": [],
                "shipping": null,
                "tax_exempt": "none",
                "test_clock": null
            }},
            "livemode": self.livemode,
            "pending_webhooks": 1,
            "request": { "id": "req_8bJ2kQd0xYz1", "idempotency_key": "0b1e8c52-5a1e-4c70-9a3f-6c1d2a7f9e11" },
            "type": self.event_type
        })
        .to_string()
    }
}

/// The text of `fixtures/<path>`.
pub fn fixture(path: &str) -> String {
    let full = fixtures_dir().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// The `.json` files of `fixtures/<folder>` in name order, as (file name, text).
pub fn fixtures_in(folder: &str) -> Vec<(String, String)> {
    let dir = fixtures_dir().join(folder);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let text = fixture(&format!("{folder}/{name}"));
            (name, text)
        })
        .collect()
}

pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A thin customer event as Stripe's event destinations send it.
pub fn thin_event(event_type: &str, customer_id: &str) -> String {
    json!({
        "id": new_event_id(),
        "object": "v2.core.event",
        "type": event_type,
        "livemode": false,
        "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "context": null,
        "reason": { "type": "request", "request": { "id": "req_v2Thin", "idempotency_key": null } },
        "related_object": {
            "id": customer_id,
            "type": "customer",
            "url": format!("/v1/customers/{customer_id}")
        }
    })
    .to_string()
}

/// The fixture customer and its user: the ones `fixtures/thin/*` name.
pub const FIXTURE_CUSTOMER: &str = "cus_ThinFx7Kq2WmZr";
pub const FIXTURE_USER: &str = "7f0c2a9e-3b1d-4e5f-8a6b-9c0d1e2f3a4b";
