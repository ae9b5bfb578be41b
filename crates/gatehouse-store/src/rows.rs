//! Reading columns and converting between stored and domain representations.

use gatehouse_domain::store::{StoreError, StoreResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::{Any, AnyRow};
use sqlx::{Decode, Row, Type};

use crate::error::corrupt;

/// Reads one column, mapping a decode failure to a backend error.
pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &str) -> StoreResult<T>
where
    T: Decode<'r, Any> + Type<Any>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Backend(format!("column {column}: {e}")))
}

/// Reads a JSON text column into `T`.
pub(crate) fn json<T: DeserializeOwned>(row: &AnyRow, column: &str) -> StoreResult<T> {
    let text: String = get(row, column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(column, e))
}

/// Reads an optional JSON text column into `T`.
pub(crate) fn opt_json<T: DeserializeOwned>(row: &AnyRow, column: &str) -> StoreResult<Option<T>> {
    let text: Option<String> = get(row, column)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(column, e)))
        .transpose()
}

/// Writes a value as JSON text.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

/// Reads a text column and parses it with a domain parser.
pub(crate) fn parsed<T, E: std::fmt::Display>(
    row: &AnyRow,
    column: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> StoreResult<T> {
    let text: String = get(row, column)?;
    parse(&text).map_err(|e| corrupt(column, e))
}

/// Reads an optional text column and parses it with a domain parser.
pub(crate) fn opt_parsed<T, E: std::fmt::Display>(
    row: &AnyRow,
    column: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> StoreResult<Option<T>> {
    let text: Option<String> = get(row, column)?;
    text.map(|t| parse(&t).map_err(|e| corrupt(column, e)))
        .transpose()
}

/// Reads a 32-byte digest column.
pub(crate) fn digest(row: &AnyRow, column: &str) -> StoreResult<[u8; 32]> {
    let bytes: Vec<u8> = get(row, column)?;
    to_digest(bytes, column)
}

/// Reads an optional 32-byte digest column.
pub(crate) fn opt_digest(row: &AnyRow, column: &str) -> StoreResult<Option<[u8; 32]>> {
    let bytes: Option<Vec<u8>> = get(row, column)?;
    bytes.map(|b| to_digest(b, column)).transpose()
}

fn to_digest(bytes: Vec<u8>, column: &str) -> StoreResult<[u8; 32]> {
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| corrupt(column, format!("{len} bytes, expected 32")))
}

/// A boolean as stored: 0 or 1.
pub(crate) fn flag(on: bool) -> i64 {
    i64::from(on)
}

/// The columns of a row, whichever driver read it: the mapping of the rows that both the
/// async store and SQLite's one-trip writes read is written once against this.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> StoreResult<Option<String>>;
    fn int(&self, column: &str) -> StoreResult<Option<i64>>;

    /// A column that may not be NULL.
    fn text_of(&self, column: &str) -> StoreResult<String> {
        self.text(column)?
            .ok_or_else(|| corrupt(column, "NULL where a value is required"))
    }

    fn int_of(&self, column: &str) -> StoreResult<i64> {
        self.int(column)?
            .ok_or_else(|| corrupt(column, "NULL where a value is required"))
    }

    /// A text column parsed with a domain parser.
    fn parse<T, E: std::fmt::Display>(
        &self,
        column: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> StoreResult<T> {
        let text = self.text_of(column)?;
        parse(&text).map_err(|e| corrupt(column, e))
    }

    /// A JSON text column.
    fn json_of<T: DeserializeOwned>(&self, column: &str) -> StoreResult<T> {
        let text = self.text_of(column)?;
        serde_json::from_str(&text).map_err(|e| corrupt(column, e))
    }
}

impl Columns for AnyRow {
    fn text(&self, column: &str) -> StoreResult<Option<String>> {
        get(self, column)
    }

    fn int(&self, column: &str) -> StoreResult<Option<i64>> {
        get(self, column)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> StoreResult<Option<String>> {
        self.get(column)
            .map_err(|e| StoreError::Backend(format!("column {column}: {e}")))
    }

    fn int(&self, column: &str) -> StoreResult<Option<i64>> {
        self.get(column)
            .map_err(|e| StoreError::Backend(format!("column {column}: {e}")))
    }
}

/// A value bound to a statement, whichever driver runs it: the statements both drivers run
/// are built once as SQL and a list of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Text(Option<String>),
    Int(Option<i64>),
    Blob(Option<Vec<u8>>),
}

impl Param {
    pub(crate) fn text(s: impl Into<String>) -> Self {
        Param::Text(Some(s.into()))
    }

    pub(crate) fn opt_text(s: Option<impl Into<String>>) -> Self {
        Param::Text(s.map(Into::into))
    }
}

/// Binds `params` in order to a sqlx query.
pub(crate) fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    params: &'q [Param],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for p in params {
        query = match p {
            Param::Text(t) => query.bind(t.as_deref()),
            Param::Int(i) => query.bind(*i),
            Param::Blob(b) => query.bind(b.as_deref()),
        };
    }
    query
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Text(t) => t.to_sql(),
            Param::Int(i) => i.to_sql(),
            Param::Blob(b) => b.to_sql(),
        }
    }
}
