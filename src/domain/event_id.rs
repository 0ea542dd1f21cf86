use std::fmt;

/// A Stripe event id (`evt_…`): the ledger's primary key and the unit of exactly-once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a Stripe event id (expected evt_ followed by letters, digits or _)")]
pub struct InvalidEventId;

impl EventId {
    /// Stripe's ids are `evt_` + alphanumerics; the CLI's test events add `_`. Anything else
    /// (empty, spaces, 255+ bytes) is not an event Stripe sent.
    pub fn parse(raw: &str) -> Result<Self, InvalidEventId> {
        let rest = raw.strip_prefix("evt_").ok_or(InvalidEventId)?;
        let well_formed = !rest.is_empty()
            && raw.len() <= 255
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !well_formed {
            return Err(InvalidEventId);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_stripe_event_ids() {
        assert!(EventId::parse("evt_1QxYz2AbCdEfGhIj").is_ok());
        assert!(EventId::parse("evt_test_webhook").is_ok());
    }

    #[test]
    fn rejects_ids_stripe_never_sends() {
        for raw in ["", "evt_", "evt", "cus_123", "evt_a b", "evt_a;drop"] {
            assert_eq!(EventId::parse(raw), Err(InvalidEventId), "{raw:?}");
        }
    }
}
