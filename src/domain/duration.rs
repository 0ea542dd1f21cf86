//! A span of time as an operator writes it: `30s`, `15m`, `1h`, `2d` (one whole number and one
//! unit), or `0`. For `CATCH_UP_INTERVAL` and `catch-up --since`.

use std::fmt;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must be a whole number with a unit, such as 30s, 15m, 1h or 2d (or 0)")]
pub struct InvalidDuration;

/// Parses `0` or `<whole number><s|m|h|d>`.
pub fn parse_duration(raw: &str) -> Result<Duration, InvalidDuration> {
    let raw = raw.trim();
    if raw == "0" {
        return Ok(Duration::ZERO);
    }
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(InvalidDuration)?;
    let (number, unit) = raw.split_at(split);
    let number: u64 = number.parse().map_err(|_| InvalidDuration)?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(InvalidDuration),
    };
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or(InvalidDuration)
}

/// Writes a duration back in the largest unit that divides it (`900s` → `15m`).
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        match secs {
            0 => f.write_str("0"),
            s if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_number_and_a_unit_or_zero() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_anything_else() {
        for raw in [
            "",
            "15",
            "m",
            "15 m",
            "1.5h",
            "-5m",
            "15min",
            "1h30m",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(raw), Err(InvalidDuration), "{raw:?}");
        }
    }

    #[test]
    fn writes_back_in_the_largest_unit() {
        assert_eq!(Human(Duration::from_secs(900)).to_string(), "15m");
        assert_eq!(Human(Duration::from_secs(90)).to_string(), "90s");
        assert_eq!(Human(Duration::from_secs(2 * 86_400)).to_string(), "2d");
    }
}
