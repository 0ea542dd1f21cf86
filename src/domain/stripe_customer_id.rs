use std::fmt;

/// A Stripe customer id, `cus_` followed by one or more ASCII letters or digits:
/// the same rule as the table's CHECK constraint, so a value of this type is always storable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StripeCustomerId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a Stripe customer id (expected cus_ followed by letters and digits)")]
pub struct InvalidCustomerId;

impl StripeCustomerId {
    pub fn parse(raw: &str) -> Result<Self, InvalidCustomerId> {
        let rest = raw.strip_prefix("cus_").ok_or(InvalidCustomerId)?;
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(InvalidCustomerId);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for StripeCustomerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StripeCustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_cus_followed_by_letters_and_digits() {
        assert_eq!(
            StripeCustomerId::parse("cus_Q1w2E3").unwrap().as_str(),
            "cus_Q1w2E3"
        );
    }

    #[test]
    fn rejects_anything_the_table_check_would_reject() {
        for raw in [
            "", "cus_", "cus", "cus-abc", "CUS_abc", "cus_ab-c", "cus_ab c", "cus_é", " cus_a",
            "sub_abc",
        ] {
            assert_eq!(
                StripeCustomerId::parse(raw),
                Err(InvalidCustomerId),
                "{raw:?}"
            );
        }
    }
}
