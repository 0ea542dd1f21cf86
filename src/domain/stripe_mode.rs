use std::fmt;

/// Which of Stripe's modes a deployment keeps (`STRIPE_MODE`): test and live data never mix
/// in one table unless the operator asks for `both`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeMode {
    Live,
    Test,
    Both,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected live, test or both")]
pub struct InvalidStripeMode;

impl StripeMode {
    pub fn parse(raw: &str) -> Result<Self, InvalidStripeMode> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "live" => Ok(Self::Live),
            "test" => Ok(Self::Test),
            "both" => Ok(Self::Both),
            _ => Err(InvalidStripeMode),
        }
    }

    /// The mode of a secret or restricted API key (`sk_live_…`, `rk_test_…`); `None` for a
    /// string that is neither.
    pub fn of_api_key(key: &str) -> Option<Self> {
        let rest = key
            .strip_prefix("sk_")
            .or_else(|| key.strip_prefix("rk_"))?;
        if rest.starts_with("live_") {
            Some(Self::Live)
        } else if rest.starts_with("test_") {
            Some(Self::Test)
        } else {
            None
        }
    }

    /// The mode of an event or object's `livemode`.
    pub fn of_livemode(livemode: bool) -> Self {
        if livemode { Self::Live } else { Self::Test }
    }

    /// Whether data of `livemode` belongs in this deployment.
    pub fn keeps(self, livemode: bool) -> bool {
        match self {
            Self::Both => true,
            Self::Live => livemode,
            Self::Test => !livemode,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
            Self::Both => "both",
        }
    }
}

impl fmt::Display for StripeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_keeps_only_the_modes_it_names() {
        assert!(StripeMode::Live.keeps(true) && !StripeMode::Live.keeps(false));
        assert!(StripeMode::Test.keeps(false) && !StripeMode::Test.keeps(true));
        assert!(StripeMode::Both.keeps(true) && StripeMode::Both.keeps(false));
    }

    #[test]
    fn api_keys_tell_their_mode_by_prefix() {
        assert_eq!(
            StripeMode::of_api_key("sk_live_abc"),
            Some(StripeMode::Live)
        );
        assert_eq!(
            StripeMode::of_api_key("rk_test_abc"),
            Some(StripeMode::Test)
        );
        assert_eq!(StripeMode::of_api_key("pk_live_abc"), None);
        assert_eq!(StripeMode::of_api_key("whatever"), None);
    }

    #[test]
    fn mode_names_parse_case_insensitively_and_nothing_else_does() {
        assert_eq!(StripeMode::parse(" LIVE "), Ok(StripeMode::Live));
        assert_eq!(StripeMode::parse("both"), Ok(StripeMode::Both));
        assert_eq!(StripeMode::parse("prod"), Err(InvalidStripeMode));
    }
}
