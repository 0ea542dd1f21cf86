//! One customer as the double holds it, rendered as Stripe's API renders it.

use serde_json::{Value, json};

/// One customer as the double holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub default_payment_method: Option<String>,
    pub metadata: Value,
}

impl Customer {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            email: Some(format!("{}@example.com", id.to_lowercase())),
            name: Some("Grace Hopper".into()),
            default_payment_method: None,
            metadata: json!({}),
        }
    }

    pub fn for_user(mut self, user_id: impl ToString) -> Self {
        self.metadata["user_id"] = json!(user_id.to_string());
        self
    }

    pub fn email(mut self, email: Option<&str>) -> Self {
        self.email = email.map(str::to_owned);
        self
    }

    pub fn name(mut self, name: Option<&str>) -> Self {
        self.name = name.map(str::to_owned);
        self
    }

    pub fn payment_method(mut self, pm: Option<&str>) -> Self {
        self.default_payment_method = pm.map(str::to_owned);
        self
    }

    pub fn metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata[key] = json!(value);
        self
    }

    /// The customer object as Stripe's API renders it at 2026-09-30.endive.
    pub fn render(&self) -> Value {
        json!({
            "id": self.id,
            "object": "customer",
            "address": null,
            "balance": 0,
            "business_name": null,
            "created": 1_795_018_062,
            "currency": null,
            "customer_account": null,
            "default_source": null,
            "delinquent": false,
            "description": null,
            "discount": null,
            "email": self.email,
            "individual_name": null,
            "invoice_prefix": "7A3E0F9C",
            "invoice_settings": {
                "custom_fields": null,
                "default_payment_method": self.default_payment_method,
                "footer": null,
                "rendering_options": null
            },
            "livemode": false,
            "metadata": self.metadata,
            "name": self.name,
            "next_invoice_sequence": 1,
            "phone": null,
            "preferred_locales": ["en-US"],
            "shipping": null,
            "tax_exempt": "none",
            "test_clock": null
        })
    }
}
