//! Distinct, signed, realistic customer events, built in advance as whole HTTP requests.

use serde_json::json;
use stripe_customer_sync::domain::WebhookSecret;
use stripe_customer_sync::stripe::signature::sign;
use uuid::Uuid;

use crate::SECRET;
use crate::rng::XorShift;

/// Generates distinct, realistic customer events and remembers which customers exist.
pub struct EventGenerator {
    secret: WebhookSecret,
    events_per_level: usize,
    next_customer: u64,
    /// Customers whose `customer.created` has been processed: targets for updates.
    existing: Vec<u64>,
    level_count: usize,
    rng: XorShift,
    /// `Host` of the requests: serve's address.
    pub host: String,
}

pub struct Level {
    pub events: Vec<SignedEvent>,
    /// Customers this level creates.
    pub created: Vec<u64>,
    pub id_prefix: String,
    pub mean_bytes: f64,
}

/// A whole HTTP request as Stripe sends one, built in advance.
pub struct SignedEvent {
    pub request: Vec<u8>,
}

impl EventGenerator {
    pub fn new(events_per_level: usize) -> Self {
        Self {
            secret: WebhookSecret::parse(SECRET).expect("secret"),
            events_per_level,
            next_customer: 1,
            existing: Vec::new(),
            level_count: 0,
            rng: XorShift(0x9E37_79B9_7F4A_7C15),
            host: String::new(),
        }
    }

    /// Enough customers for the first level's updates (20 % of a level), created at warm-up.
    pub fn warmup_count(&self) -> usize {
        self.events_per_level.div_ceil(4)
    }

    pub fn total_new_customers(&self, levels: usize) -> u64 {
        (self.warmup_count() + levels * self.events_per_level) as u64
    }

    /// One level: every 5th event updates a distinct existing customer (so no two events of a
    /// level race for one row, and every one of them is `processed`), the rest create new ones.
    pub fn level(&mut self, concurrency: usize, count: usize, warmup: bool) -> Level {
        let id_prefix = if warmup {
            "evt_warm".to_owned()
        } else {
            format!("evt_c{concurrency}l{}n", self.level_count)
        };
        self.level_count += 1;
        let updates = if warmup { 0 } else { count / 5 };
        assert!(
            updates <= self.existing.len(),
            "not enough existing customers"
        );
        // Partial Fisher–Yates: `updates` distinct existing customers.
        for i in 0..updates {
            let j = i + (self.rng.next() as usize) % (self.existing.len() - i);
            self.existing.swap(i, j);
        }
        let mut to_update = self.existing[..updates].iter().copied();
        let now = chrono::Utc::now().timestamp();
        let mut created = Vec::new();
        let mut events = Vec::with_capacity(count);
        let mut bytes = 0usize;
        for i in 0..count {
            let event_id = format!("{id_prefix}{i:08}");
            let body = if !warmup && i % 5 == 4 {
                let customer = to_update.next().expect("counted above");
                customer_event(&event_id, Kind::Updated, customer, now)
            } else {
                let customer = self.next_customer;
                self.next_customer += 1;
                created.push(customer);
                customer_event(&event_id, Kind::Created, customer, now)
            };
            bytes += body.len();
            let signature = sign(body.as_bytes(), &self.secret, now);
            let mut request = format!(
                "POST /webhooks/stripe HTTP/1.1\r\n\
                 Host: {}\r\n\
                 User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n\
                 Accept: */*; q=0.5, application/xml\r\n\
                 Cache-Control: no-cache\r\n\
                 Content-Type: application/json; charset=utf-8\r\n\
                 Stripe-Signature: {signature}\r\n\
                 Content-Length: {}\r\n\r\n",
                self.host,
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(body.as_bytes());
            events.push(SignedEvent { request });
        }
        Level {
            mean_bytes: bytes as f64 / count.max(1) as f64,
            events,
            created,
            id_prefix,
        }
    }

    pub fn commit_level(&mut self, created: &[u64]) {
        self.existing.extend_from_slice(created);
    }

    pub fn sample_payload(&self) -> String {
        customer_event(
            "evt_pgbench_sample",
            Kind::Created,
            1,
            chrono::Utc::now().timestamp(),
        )
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Created,
    Updated,
}

const NAMES: [&str; 8] = [
    "Grace Hopper",
    "Ada Lovelace",
    "Katherine Johnson",
    "Margaret Hamilton",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
];

fn customer_id(customer: u64) -> String {
    format!("cus_B{customer:010}")
}

fn user_id(customer: u64) -> Uuid {
    Uuid::from_u128(u128::from(customer))
}

/// A customer event as Stripe's API 2024-06-20 renders it (pretty-printed, as Stripe sends it),
/// linked to its Supabase user, with a default payment method: about 2 KB.
fn customer_event(event_id: &str, kind: Kind, customer: u64, now: i64) -> String {
    let name = NAMES[(customer % NAMES.len() as u64) as usize];
    let name = if kind == Kind::Updated {
        format!("{name} (billing)")
    } else {
        name.to_owned()
    };
    let address = json!({
        "city": "Arlington",
        "country": "US",
        "line1": format!("{} S Eads St", 1000 + customer % 900),
        "line2": "Apt 1406",
        "postal_code": "22202",
        "state": "VA"
    });
    let mut object = json!({
        "id": customer_id(customer),
        "object": "customer",
        "address": address.clone(),
        "balance": 0,
        "created": now - 60,
        "currency": "usd",
        "default_source": null,
        "delinquent": false,
        "description": format!("Customer for user {}", user_id(customer)),
        "discount": null,
        "email": format!("customer{customer}@example.com"),
        "invoice_prefix": format!("{:08X}", customer.wrapping_mul(2_654_435_761) & 0xFFFF_FFFF),
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": format!("pm_1Bench{customer:012}"),
            "footer": null,
            "rendering_options": null
        },
        "livemode": false,
        "metadata": {
            "user_id": user_id(customer).to_string(),
            "plan": if customer.is_multiple_of(3) { "team" } else { "pro" },
            "supabase_project": "pmwhrtczqlbkdnyvsgaj",
            "team_id": Uuid::from_u128(u128::from(customer) << 32).to_string(),
            "signup_source": "pricing_page",
            "utm_campaign": "black-friday-2026"
        },
        "name": name,
        "next_invoice_sequence": 1,
        "phone": "+12025550143",
        "preferred_locales": ["en"],
        "shipping": {
            "address": address,
            "name": name,
            "phone": "+12025550143"
        },
        "tax_exempt": "none",
        "test_clock": null
    });
    if kind == Kind::Updated {
        object["next_invoice_sequence"] = json!(2);
    }
    let mut event = json!({
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": {
            "id": format!("req_B{customer:014}"),
            "idempotency_key": Uuid::from_u128(u128::from(customer) << 64).to_string()
        },
        "type": match kind {
            Kind::Created => "customer.created",
            Kind::Updated => "customer.updated",
        }
    });
    if kind == Kind::Updated {
        event["data"]["previous_attributes"] = json!({
            "name": NAMES[(customer % NAMES.len() as u64) as usize],
            "next_invoice_sequence": 1
        });
    }
    serde_json::to_string_pretty(&event).expect("json")
}
