//! A column name that is safe to put into SQL text: `PROFILE_NAME_COLUMN` names the column of
//! `public.profiles` whose value is pushed to Stripe as the customer's name, and a column name
//! cannot be a bind parameter.

use std::fmt;

/// A plain lower-case SQL identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes: PostgreSQL's
/// limit), the form an unquoted column name folds to. Nothing else is accepted, so the quoted
/// form is exact and no value can break out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "must be a column name of lower-case letters, digits and underscores, not starting with a \
     digit, at most 63 characters (such as full_name)"
)]
pub struct InvalidColumnName;

impl ColumnName {
    pub fn parse(raw: &str) -> Result<Self, InvalidColumnName> {
        let name = raw.trim();
        let mut bytes = name.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if first_ok && rest_ok && name.len() <= 63 {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidColumnName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The double-quoted identifier, for SQL text (what `format('%I', …)` would give).
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for ColumnName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_are_accepted_and_quoted() {
        for ok in ["full_name", "_name", "name2", " display_name "] {
            let column = ColumnName::parse(ok).unwrap();
            assert_eq!(column.quoted(), format!("\"{}\"", ok.trim()));
        }
    }

    #[test]
    fn anything_that_could_change_the_sql_is_refused() {
        for bad in [
            "",
            "Full_Name",
            "2name",
            "name; drop table x",
            "na\"me",
            "name--",
            "full name",
            "nämé",
            &"a".repeat(64),
        ] {
            assert_eq!(ColumnName::parse(bad), Err(InvalidColumnName), "{bad:?}");
        }
    }
}
