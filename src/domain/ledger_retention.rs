//! `LEDGER_RETENTION`: how long the ledger keeps an event, or `off`.

use std::fmt;
use std::time::Duration;

use super::duration::{Human, parse_duration};

/// `catch-up` reaches 30 days back and dedupes against the ledger, and Stripe retries a
/// delivery for up to 3 days: a shorter retention would let an event be applied twice.
pub const MINIMUM: Duration = Duration::from_secs(31 * 86_400);
pub const DEFAULT: &str = "90d";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerRetention {
    /// Keep every row.
    Off,
    /// Remove rows received longer ago than this (at least [`MINIMUM`]).
    After(Duration),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidLedgerRetention {
    #[error("expected a duration such as 90d or 2160h, or off")]
    Unparsable,
    #[error(
        "must be at least 31d (catch-up reaches 30 days back and needs the ledger to apply each \
         event once), or off"
    )]
    TooShort,
}

impl LedgerRetention {
    pub fn parse(raw: &str) -> Result<Self, InvalidLedgerRetention> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        let after = parse_duration(raw).map_err(|_| InvalidLedgerRetention::Unparsable)?;
        if after < MINIMUM {
            return Err(InvalidLedgerRetention::TooShort);
        }
        Ok(Self::After(after))
    }
}

impl fmt::Display for LedgerRetention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::After(after) => Human(*after).fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_a_duration_of_at_least_31_days_or_off() {
        assert_eq!(LedgerRetention::parse("off"), Ok(LedgerRetention::Off));
        assert_eq!(
            LedgerRetention::parse("90d"),
            Ok(LedgerRetention::After(Duration::from_secs(90 * 86_400)))
        );
        assert_eq!(
            LedgerRetention::parse("744h"),
            Ok(LedgerRetention::After(MINIMUM))
        );
        assert_eq!(
            LedgerRetention::parse("30d"),
            Err(InvalidLedgerRetention::TooShort)
        );
        assert_eq!(
            LedgerRetention::parse("a year"),
            Err(InvalidLedgerRetention::Unparsable)
        );
    }
}
