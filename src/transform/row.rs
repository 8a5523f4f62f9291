//! A raw row as transform reads it: each column's JSON text, borrowed from the line, found by
//! name through the table's [`RowShape`]. Parsing a line allocates one vector, not a map of
//! owned keys and values; values are parsed only when a conversion needs them.

use std::fmt;

use rustc_hash::FxHashMap;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::Value as Raw;
use serde_json::value::RawValue;

/// The columns of a raw file, in order.
#[derive(Debug)]
pub struct RowShape {
    /// Column name → position; FxHash because this lookup runs for every field of every row.
    index: FxHashMap<String, usize>,
}

impl RowShape {
    pub fn new<'c>(columns: impl IntoIterator<Item = &'c str>) -> Self {
        Self { index: columns.into_iter().enumerate().map(|(i, c)| (c.to_owned(), i)).collect() }
    }

    /// The positions of `columns`, looked up once so that rows are read by position
    /// ([`Row::text_at`]); `None` for a column the file does not have.
    pub fn positions<'c>(&self, columns: impl IntoIterator<Item = &'c str>) -> Vec<Option<usize>> {
        columns.into_iter().map(|c| self.index.get(c).copied()).collect()
    }
}

pub struct Row<'a> {
    shape: &'a RowShape,
    values: Vec<Option<&'a RawValue>>,
}

impl<'a> Row<'a> {
    /// Parses one raw line (a JSON object of the shape's columns).
    pub fn parse(line: &'a [u8], shape: &'a RowShape) -> Result<Self, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(line);
        let values = deserializer.deserialize_map(RowVisitor { shape })?;
        deserializer.end()?;
        Ok(Row { shape, values })
    }

    /// The column's JSON text; `null` for SQL NULL and for a column the line lacks.
    pub fn text(&self, column: &str) -> &'a str {
        self.text_at(self.shape.index.get(column).copied())
    }

    /// The JSON text at a position from [`RowShape::positions`].
    pub fn text_at(&self, position: Option<usize>) -> &'a str {
        position.and_then(|i| self.values[i]).map_or("null", RawValue::get)
    }

    pub fn is_null(&self, column: &str) -> bool {
        self.text(column) == "null"
    }

    /// The column's value, parsed. An error only for a value nested deeper than serde_json's
    /// recursion limit (128), which a `RawValue` does not check: Postgres' json and jsonb
    /// allow it.
    pub fn value(&self, column: &str) -> Result<Raw, serde_json::Error> {
        serde_json::from_str(self.text(column))
    }
}

struct RowVisitor<'s> {
    shape: &'s RowShape,
}

impl<'de: 's, 's> Visitor<'de> for RowVisitor<'s> {
    type Value = Vec<Option<&'de RawValue>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of the table's columns")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut values = vec![None; self.shape.index.len()];
        while let Some(column) = map.next_key_seed(ColumnIndex { shape: self.shape })? {
            let value: &'de RawValue = map.next_value()?;
            values[column] = Some(value);
        }
        Ok(values)
    }
}

/// Finds a key's column position without allocating (unless the key has escapes).
struct ColumnIndex<'s> {
    shape: &'s RowShape,
}

impl<'de> DeserializeSeed<'de> for ColumnIndex<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ColumnIndex<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E: serde::de::Error>(self, column: &str) -> Result<usize, E> {
        self.shape
            .index
            .get(column)
            .copied()
            .ok_or_else(|| E::custom(format!("unknown column `{column}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_by_name_with_their_json_text() {
        let shape = RowShape::new(["id", "a\"b", "doc"]);
        let row = Row::parse(br#"{"id":"7","a\"b":null,"doc":{"x": [1, 2]}}"#, &shape).unwrap();
        assert_eq!(row.text("id"), r#""7""#);
        assert!(row.is_null("a\"b"));
        assert_eq!(row.text("doc"), r#"{"x": [1, 2]}"#);
        assert_eq!(row.value("id").unwrap(), Raw::String("7".into()));
        assert!(row.is_null("missing"));
    }

    #[test]
    fn unknown_columns_and_broken_lines_are_errors() {
        let shape = RowShape::new(["id"]);
        assert!(Row::parse(br#"{"id":1,"other":2}"#, &shape).is_err());
        assert!(Row::parse(br#"{"id":1"#, &shape).is_err());
        assert!(Row::parse(br#"{"id":1} x"#, &shape).is_err());
    }

    #[test]
    fn a_value_nested_past_serde_json_s_limit_is_an_error_not_a_panic() {
        let shape = RowShape::new(["doc"]);
        let line = format!(r#"{{"doc":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
        let row = Row::parse(line.as_bytes(), &shape).expect("a RawValue has no depth limit");
        assert!(row.value("doc").is_err());
        assert!(!row.is_null("doc"));
    }
}
