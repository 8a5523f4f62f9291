//! A raw row as transform reads it: each column's JSON text, borrowed from the line, found by
//! name through the table's [`RowShape`]. Reading a line checks it is JSON and allocates one
//! vector, not a map of owned keys and values; values are parsed only when a conversion needs
//! them. The reader is ours, not serde_json's, because it runs on every byte of the export;
//! a property test holds it to serde_json's verdict on every line.

use rustc_hash::FxHashMap;
use serde_json::Value as Raw;

/// The columns of a raw file, in order.
#[derive(Debug)]
pub struct RowShape {
    /// The columns in the file's order: lines list them in this order, so a key is first
    /// compared with the column after the previous key's.
    names: Vec<String>,
    /// Column name → position, for keys out of order; FxHash because it runs per row.
    index: FxHashMap<String, usize>,
}

impl RowShape {
    pub fn new<'c>(columns: impl IntoIterator<Item = &'c str>) -> Self {
        let names: Vec<String> = columns.into_iter().map(str::to_owned).collect();
        let index = names.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
        Self { names, index }
    }

    /// The positions of `columns`, looked up once so that rows are read by position
    /// ([`Row::text_at`]); `None` for a column the file does not have.
    pub fn positions<'c>(&self, columns: impl IntoIterator<Item = &'c str>) -> Vec<Option<usize>> {
        columns.into_iter().map(|c| self.index.get(c).copied()).collect()
    }
}

pub struct Row<'a> {
    shape: &'a RowShape,
    values: Vec<Option<&'a str>>,
}

/// Why a line is not a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LineError(String);

impl<'a> Row<'a> {
    /// [`Row::parse_reusing`] with a new vector.
    #[cfg(test)]
    pub fn parse(line: &'a [u8], shape: &'a RowShape) -> Result<Self, LineError> {
        Self::parse_reusing(line, shape, Vec::new())
    }

    /// Parses one raw line (a JSON object of the shape's columns) into the vector of an earlier
    /// row ([`Row::into_values`]), saving an allocation per row. Values are checked to be JSON
    /// and kept as their text; a key that repeats keeps its last value.
    pub fn parse_reusing(
        line: &'a [u8],
        shape: &'a RowShape,
        mut values: Vec<Option<&'a str>>,
    ) -> Result<Self, LineError> {
        // SIMD: this check reads every byte of the export.
        let line = simdutf8::compat::from_utf8(line).map_err(|e| {
            LineError(format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1))
        })?;
        let mut scanner = Scanner { text: line, at: 0 };
        values.clear();
        values.resize(shape.names.len(), None);
        scanner.expect(b'{', "`{` to open the row")?;
        if scanner.peek() == Some(b'}') {
            scanner.at += 1;
        } else {
            let mut next = 0;
            loop {
                let key = scanner.string()?;
                let column = shape.column(key, next)?;
                scanner.expect(b':', "`:` after a column name")?;
                scanner.peek();
                let start = scanner.at;
                scanner.value()?;
                values[column] = Some(&line[start..scanner.at]);
                next = column + 1;
                match scanner.peek() {
                    Some(b',') => scanner.at += 1,
                    Some(b'}') => {
                        scanner.at += 1;
                        break;
                    }
                    _ => return Err(scanner.error("`,` or `}` after a value")),
                }
                scanner.peek();
            }
        }
        if scanner.peek().is_some() {
            return Err(scanner.error("the end of the line after the row"));
        }
        Ok(Row { shape, values })
    }

    /// The row's vector, for [`Row::parse_reusing`].
    pub fn into_values(self) -> Vec<Option<&'a str>> {
        self.values
    }

    /// The column's JSON text; `null` for SQL NULL and for a column the line lacks.
    pub fn text(&self, column: &str) -> &'a str {
        self.text_at(self.shape.index.get(column).copied())
    }

    /// The JSON text at a position from [`RowShape::positions`].
    pub fn text_at(&self, position: Option<usize>) -> &'a str {
        position.and_then(|i| self.values[i]).unwrap_or("null")
    }

    pub fn is_null(&self, column: &str) -> bool {
        self.text(column) == "null"
    }

    /// The column's value, parsed. An error only for a value nested deeper than serde_json's
    /// recursion limit (128), which the line reader does not check: Postgres' json and jsonb
    /// allow it.
    pub fn value(&self, column: &str) -> Result<Raw, serde_json::Error> {
        serde_json::from_str(self.text(column))
    }
}

impl RowShape {
    /// The position of a key (JSON string text, quotes included), trying `next` first.
    fn column(&self, key: &str, next: usize) -> Result<usize, LineError> {
        let inner = &key[1..key.len() - 1];
        if !inner.contains('\\') {
            if self.names.get(next).is_some_and(|name| name == inner) {
                return Ok(next);
            }
            if let Some(&position) = self.index.get(inner) {
                return Ok(position);
            }
        }
        let decoded: String = serde_json::from_str(key).map_err(|e| LineError(e.to_string()))?;
        self.index
            .get(&decoded)
            .copied()
            .ok_or_else(|| LineError(format!("unknown column `{decoded}`")))
    }
}

/// Checks JSON text (RFC 8259, as serde_json reads it) without building anything.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after whitespace, which is skipped.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&byte) = self.bytes().get(self.at) {
            if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    fn error(&self, expected: &str) -> LineError {
        match self.bytes().get(self.at) {
            Some(_) => LineError(format!("expected {expected} at byte {}", self.at + 1)),
            None => LineError(format!("expected {expected}, found the end of the line")),
        }
    }

    fn expect(&mut self, byte: u8, expected: &str) -> Result<(), LineError> {
        if self.peek() != Some(byte) {
            return Err(self.error(expected));
        }
        self.at += 1;
        Ok(())
    }

    /// The string literal after whitespace, quotes included.
    fn string(&mut self) -> Result<&'a str, LineError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("a string"));
        }
        let start = self.at;
        let bytes = self.bytes();
        let mut i = start + 1;
        loop {
            i = crate::json_text::plain_run_end(bytes, i);
            match bytes.get(i) {
                Some(b'"') => break,
                Some(b'\\') => match bytes.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u')
                        if bytes
                            .get(i + 2..i + 6)
                            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                    {
                        i += 6
                    }
                    _ => {
                        self.at = i;
                        return Err(self.error("a valid escape"));
                    }
                },
                Some(_) => {
                    self.at = i;
                    return Err(self.error("no control character in a string"));
                }
                None => {
                    self.at = i;
                    return Err(self.error("`\"` to close the string"));
                }
            }
        }
        self.at = i + 1;
        Ok(&self.text[start..self.at])
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.bytes().get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), LineError> {
        if self.bytes().get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes().get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("a digit")),
        }
        if self.bytes().get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("a digit after `.`"));
            }
        }
        if matches!(self.bytes().get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.bytes().get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("a digit in the exponent"));
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &str) -> Result<(), LineError> {
        if !self.text[self.at..].starts_with(word) {
            return Err(self.error("a JSON value"));
        }
        self.at += word.len();
        Ok(())
    }

    /// One JSON value after whitespace, nested to any depth (iteratively: a hostile line
    /// cannot overflow the stack).
    fn value(&mut self) -> Result<(), LineError> {
        // The closing brackets of the open containers.
        let mut open: Vec<u8> = Vec::new();
        loop {
            // A value.
            match self.peek() {
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'{') => {
                    self.at += 1;
                    if self.peek() == Some(b'}') {
                        self.at += 1;
                    } else {
                        open.push(b'}');
                        self.string()?;
                        self.expect(b':', "`:` after a key")?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.at += 1;
                    if self.peek() == Some(b']') {
                        self.at += 1;
                    } else {
                        open.push(b']');
                        continue;
                    }
                }
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(self.error("a JSON value")),
            }
            // After a value: close containers, or go on to the next item.
            loop {
                let Some(&close) = open.last() else { return Ok(()) };
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        if close == b'}' {
                            self.string()?;
                            self.expect(b':', "`:` after a key")?;
                        }
                        break;
                    }
                    Some(byte) if byte == close => {
                        self.at += 1;
                        open.pop();
                    }
                    _ => return Err(self.error("`,` or the end of the container")),
                }
            }
        }
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
    fn columns_out_of_the_file_s_order_are_found_too() {
        let shape = RowShape::new(["a", "b", "c"]);
        let row = Row::parse(br#"{"c":3,"a":1,"b":2}"#, &shape).unwrap();
        assert_eq!([row.text("a"), row.text("b"), row.text("c")], ["1", "2", "3"]);
    }

    #[test]
    fn unknown_columns_and_broken_lines_are_errors() {
        let shape = RowShape::new(["id"]);
        let error = Row::parse(b"{\"id\":\"a\xff\"}", &shape).err().expect("not UTF-8");
        assert!(error.to_string().contains("invalid UTF-8 at byte 9"), "{error}");
        assert!(Row::parse(br#"{"id":1,"other":2}"#, &shape).is_err());
        assert!(Row::parse(br#"{"id":1"#, &shape).is_err());
        assert!(Row::parse(br#"{"id":1} x"#, &shape).is_err());
    }

    #[test]
    fn a_value_nested_past_serde_json_s_limit_is_an_error_not_a_panic() {
        let shape = RowShape::new(["doc"]);
        let line = format!(r#"{{"doc":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
        let row = Row::parse(line.as_bytes(), &shape).expect("the reader has no depth limit");
        assert!(row.value("doc").is_err());
        assert!(!row.is_null("doc"));
        let deep = format!(r#"{{"doc":{}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(Row::parse(deep.as_bytes(), &shape).is_ok());
    }

    /// What serde_json makes of a line, the reference the reader is held to: each column's
    /// value as a `RawValue` (its exact text), or an error.
    fn serde_json_reads(line: &[u8], shape: &RowShape) -> Option<Vec<Option<String>>> {
        use serde_json::value::RawValue;
        let map: Vec<(String, &RawValue)> = {
            struct Pairs;
            impl<'de> serde::de::Visitor<'de> for Pairs {
                type Value = Vec<(String, &'de RawValue)>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<M: serde::de::MapAccess<'de>>(
                    self,
                    mut map: M,
                ) -> Result<Self::Value, M::Error> {
                    let mut pairs = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        pairs.push((key, map.next_value()?));
                    }
                    Ok(pairs)
                }
            }
            let mut deserializer = serde_json::Deserializer::from_slice(line);
            let pairs = serde::Deserializer::deserialize_map(&mut deserializer, Pairs).ok()?;
            deserializer.end().ok()?;
            pairs
        };
        let mut values = vec![None; shape.names.len()];
        for (key, value) in map {
            values[*shape.index.get(&key)?] = Some(value.get().to_owned());
        }
        Some(values)
    }

    fn reads(line: &[u8], shape: &RowShape) -> Option<Vec<Option<String>>> {
        let row = Row::parse(line, shape).ok()?;
        Some(row.values.iter().map(|v| v.map(str::to_owned)).collect())
    }

    mod agrees_with_serde_json {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::*;

        /// JSON values, spelled with whitespace and escapes as any JSON writer might.
        fn json_text() -> impl Strategy<Value = String> {
            let scalar = prop_oneof![
                Just("null".to_owned()),
                Just("true".to_owned()),
                Just("false".to_owned()),
                "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,10})?([eE][+-]?[0-9]{1,4})?",
                any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
                "\"([a-z]|\\\\[\"\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4}|\\\\u[dD][89abAB][0-9a-f]{2})*\"",
            ];
            scalar.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(" , "))),
                    vec(("[a-c]{1,2}", inner), 0..4).prop_map(|members| {
                        let members: Vec<String> =
                            members.into_iter().map(|(k, v)| format!("\"{k}\":\t{v}")).collect();
                        format!("{{{}}}", members.join(","))
                    }),
                ]
            })
        }

        const COLUMNS: [&str; 3] = ["id", "a\"b", "doc"];

        fn line() -> impl Strategy<Value = Vec<u8>> {
            let key = prop_oneof![
                Just("\"id\"".to_owned()),
                Just("\"a\\\"b\"".to_owned()),
                Just("\"doc\"".to_owned()),
                Just("\"\\u0069d\"".to_owned()),
            ];
            vec((key, json_text()), 0..4).prop_map(|members| {
                let members: Vec<String> =
                    members.into_iter().map(|(k, v)| format!("{k} : {v}")).collect();
                format!(" {{{}}}\n", members.join(",")).into_bytes()
            })
        }

        /// A line with bytes changed, removed or added where JSON is easiest to break.
        fn damaged() -> impl Strategy<Value = Vec<u8>> {
            let special = prop::sample::select(b"{}[]\":,\\ \t\n0-.eEuntf\x01\x7f\xc3".to_vec());
            (line(), vec((any::<prop::sample::Index>(), 0..3u8, special), 1..4)).prop_map(
                |(mut line, edits)| {
                    for (at, kind, byte) in edits {
                        if line.is_empty() {
                            break;
                        }
                        let i = at.index(line.len());
                        match kind {
                            0 => line[i] = byte,
                            1 => {
                                line.remove(i);
                            }
                            _ => line.insert(i, byte),
                        }
                    }
                    line
                },
            )
        }

        proptest! {
            #![proptest_config(crate::fuzz_support::config(2000))]

            #[test]
            fn on_valid_lines(line in line()) {
                let shape = RowShape::new(COLUMNS);
                let expected = serde_json_reads(&line, &shape);
                prop_assert!(expected.is_some(), "the generator makes valid lines");
                prop_assert_eq!(reads(&line, &shape), expected);
            }

            #[test]
            fn on_number_like_values(
                number in "-?[0-9]{0,3}(\\.[0-9]{0,2})?([eE][+-]?[0-9]{0,2})?[ ]?"
            ) {
                let shape = RowShape::new(COLUMNS);
                let line = format!(r#"{{"id":{number},"doc":[{number}]}}"#).into_bytes();
                prop_assert_eq!(reads(&line, &shape), serde_json_reads(&line, &shape));
            }

            #[test]
            fn on_damaged_lines(line in damaged()) {
                let shape = RowShape::new(COLUMNS);
                prop_assert_eq!(reads(&line, &shape), serde_json_reads(&line, &shape));
            }
        }
    }
}
