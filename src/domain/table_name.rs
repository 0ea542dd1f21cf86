//! A table name that is safe to put into SQL text: `ORGANIZATIONS_TABLE` and
//! `ORGANIZATION_MEMBERSHIPS_TABLE` name the application's tables, and a table name cannot be a
//! bind parameter.

use std::fmt;

use super::ColumnName;

/// `schema.table` (or `table`, in `public`), each part a plain lower-case identifier (see
/// [`ColumnName`]): the quoted form is exact and no value can break out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    schema: ColumnName,
    table: ColumnName,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "must be a table name, schema.table or table (in public), each of lower-case letters, \
     digits and underscores (such as public.organizations)"
)]
pub struct InvalidTableName;

impl TableName {
    pub fn parse(raw: &str) -> Result<Self, InvalidTableName> {
        let raw = raw.trim();
        let (schema, table) = raw.split_once('.').unwrap_or(("public", raw));
        let part = |s: &str| {
            // No blank inside a part: `ColumnName` trims, which would let "a. b" through.
            (s.trim() == s)
                .then(|| ColumnName::parse(s).ok())
                .flatten()
                .ok_or(InvalidTableName)
        };
        Ok(Self {
            schema: part(schema)?,
            table: part(table)?,
        })
    }

    /// `schema.table`, as `to_regclass` reads it (every part is a plain identifier).
    pub fn as_text(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// `"schema"."table"`, for SQL text.
    pub fn quoted(&self) -> String {
        format!("{}.{}", self.schema.quoted(), self.table.quoted())
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_with_or_without_its_schema_is_accepted_and_quoted() {
        let qualified = TableName::parse("app.teams").unwrap();
        assert_eq!(qualified.quoted(), "\"app\".\"teams\"");
        let bare = TableName::parse(" organizations ").unwrap();
        assert_eq!(bare.as_text(), "public.organizations");
    }

    #[test]
    fn anything_that_could_change_the_sql_is_refused() {
        for bad in [
            "",
            "a.b.c",
            "public.",
            ".orgs",
            "Orgs",
            "orgs; drop",
            "a. b",
            "o\"rgs",
        ] {
            assert_eq!(TableName::parse(bad), Err(InvalidTableName), "{bad:?}");
        }
    }
}
