//! Convex values and their tagged JSON encoding (`convex_encoded_json`).
//!
//! Plain JSON covers null, booleans, strings, arrays and objects. The rest is tagged with a
//! one-key object: `{"$integer": b64}` (i64, 8 bytes little-endian), `{"$float": b64}` (f64,
//! 8 bytes little-endian, only for NaN, ±Infinity and -0), `{"$bytes": b64}`. A plain JSON number
//! is always a Float64. Keys starting with `$` are reserved, so no user object can be mistaken
//! for a tagged value. (convex-js `src/values/value.ts`, backend `crates/value/src/json/mod.rs`.)

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// One Convex value. `Set` and `Map` are gone from Convex and not represented.
///
/// Equality is identity of the stored value: `Float64`s compare by bit pattern, so `NaN` equals
/// the same `NaN` and `0.0` differs from `-0.0` (ordinary `f64` equality says the opposite of both).
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Boolean(bool),
    Float64(f64),
    Int64(i64),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Object(BTreeMap<String, Value>),
}

/// The fields of a document as we send it: no `_id`, no `_creationTime`.
pub type Document = BTreeMap<String, Value>;

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Boolean(a), Value::Boolean(b)) => a == b,
            (Value::Float64(a), Value::Float64(b)) => a.to_bits() == b.to_bits(),
            (Value::Int64(a), Value::Int64(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

const INTEGER_TAG: &str = "$integer";
const FLOAT_TAG: &str = "$float";
const BYTES_TAG: &str = "$bytes";

/// A float Convex cannot carry as a JSON number: NaN, ±Infinity and -0.
fn needs_float_tag(f: f64) -> bool {
    !f.is_finite() || (f == 0.0 && f.is_sign_negative())
}

impl Value {
    /// Appends the `convex_encoded_json` form: compact, object keys in `BTreeMap` order, strings
    /// escaped as `serde_json` escapes them, floats in `ryu`'s shortest spelling (which reads back
    /// as the same float). Same JSON as `Value::to_json` (tests only), though `serde_json` may
    /// spell a float differently (`1e+300` for `1e300`).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Boolean(true) => out.extend_from_slice(b"true"),
            Value::Boolean(false) => out.extend_from_slice(b"false"),
            Value::Float64(f) if needs_float_tag(*f) => {
                write_tagged(out, FLOAT_TAG, &f.to_le_bytes())
            }
            Value::Float64(f) => write_finite(out, *f),
            Value::Int64(i) => write_tagged(out, INTEGER_TAG, &i.to_le_bytes()),
            Value::String(s) => crate::json_text::write_string(out, s),
            Value::Bytes(b) => write_tagged(out, BYTES_TAG, b),
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Value::Object(fields) => write_object(out, fields),
        }
    }

    /// The `convex_encoded_json` form as a `serde_json` tree (same encoding as [`Value::write_json`]).
    /// Tests only: the pipeline writes JSON text with [`Value::write_json`].
    #[cfg(test)]
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as Json;
        let tagged = |tag: &str, bytes: &[u8]| {
            let mut map = serde_json::Map::new();
            map.insert(tag.to_owned(), Json::String(BASE64.encode(bytes)));
            Json::Object(map)
        };
        match self {
            Value::Null => Json::Null,
            Value::Boolean(b) => Json::Bool(*b),
            Value::Float64(f) if needs_float_tag(*f) => tagged(FLOAT_TAG, &f.to_le_bytes()),
            Value::Float64(f) => Json::Number(
                serde_json::Number::from_f64(*f).expect("finite floats are JSON numbers"),
            ),
            Value::Int64(i) => tagged(INTEGER_TAG, &i.to_le_bytes()),
            Value::String(s) => Json::String(s.clone()),
            Value::Bytes(b) => tagged(BYTES_TAG, b),
            Value::Array(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Object(fields) => {
                Json::Object(fields.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// Decodes the `convex_encoded_json` form, the way Convex reads it: a plain number is a
    /// Float64, a one-key object tagged `$integer`, `$float` or `$bytes` is that type, and any
    /// other key starting with `$` is refused (`$set`, `$map`, a tag beside other keys...).
    /// Like Convex, a `$float` must hold NaN, ±Infinity or -0: other floats travel as numbers.
    ///
    /// Field names are not checked beyond the `$` rule: [`crate::convex::rules`] does that.
    ///
    /// Transform reads a Convex source's raw values with it (`export --from-convex`); verify
    /// compares the documents it reads back as JSON ([`crate::verify::canonical`]).
    pub fn from_json(json: &serde_json::Value) -> Result<Value, ValueError> {
        let mut path = String::new();
        decode(json, &mut path)
    }

    /// Convex's size of the value in bytes, the measure behind its document and argument
    /// limits (convex-js `src/values/size.ts` `getConvexSize`, backend `crates/value/src/size.rs`):
    /// null and booleans 1, numbers (Float64 and Int64) 9, strings and bytes 2 + their length in
    /// bytes, arrays 2 + the items, objects 2 + for each field its name's length + 1 + its value.
    pub fn size(&self) -> usize {
        match self {
            Value::Null | Value::Boolean(_) => 1,
            Value::Float64(_) | Value::Int64(_) => 9,
            Value::String(s) => 2 + s.len(),
            Value::Bytes(b) => 2 + b.len(),
            Value::Array(items) => 2 + items.iter().map(Value::size).sum::<usize>(),
            Value::Object(fields) => document_size(fields),
        }
    }
}

/// The size of a document's fields as an object, by [`Value::size`]'s rules. This is what Convex
/// checks on insert; a stored document also carries `_id` and `_creationTime` (see
/// [`crate::convex::rules::MAX_DOCUMENT_SIZE`]).
pub fn document_size(fields: &Document) -> usize {
    2 + fields.iter().map(|(name, value)| name.len() + 1 + value.size()).sum::<usize>()
}

/// Appends a document's fields as a `convex_encoded_json` object, like [`Value::write_json`].
pub fn write_document(out: &mut Vec<u8>, fields: &Document) {
    write_object(out, fields);
}

/// Why a JSON value is not a Convex value, and where ([`Value::from_json`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValueError {
    /// Where in the value, like `meta.items[3].key`; empty for the value itself.
    pub path: String,
    pub kind: ValueErrorKind,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "invalid Convex value: {}", self.kind)
        } else {
            write!(f, "invalid Convex value at `{}`: {}", self.path, self.kind)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueErrorKind {
    #[error(
        "key `{0}` is reserved: keys starting with `$` only tag `$integer`, `$float` and `$bytes`, alone"
    )]
    ReservedKey(String),
    #[error("`{tag}` must hold a base64 string")]
    TagNotString { tag: &'static str },
    #[error("`{tag}` is not valid base64 ({reason})")]
    InvalidBase64 { tag: &'static str, reason: String },
    #[error("`{tag}` holds {len} bytes, expected 8")]
    WrongLength { tag: &'static str, len: usize },
    #[error("`$float` holds {0}, which Convex only accepts as a plain number")]
    FloatNotSpecial(String),
    #[error("number `{0}` is not a float64")]
    NumberOutOfRange(String),
}

fn decode(json: &serde_json::Value, path: &mut String) -> Result<Value, ValueError> {
    use serde_json::Value as Json;
    let fail = |path: &String, kind| Err(ValueError { path: path.clone(), kind });
    match json {
        Json::Null => Ok(Value::Null),
        Json::Bool(b) => Ok(Value::Boolean(*b)),
        Json::Number(n) => match n.as_f64() {
            Some(f) => Ok(Value::Float64(f)),
            None => fail(path, ValueErrorKind::NumberOutOfRange(n.to_string())),
        },
        Json::String(s) => Ok(Value::String(s.clone())),
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                push_index(path, i);
                out.push(decode(item, path)?);
                path.truncate(len);
            }
            Ok(Value::Array(out))
        }
        Json::Object(map) => {
            if map.len() == 1 {
                let (key, inner) = map.iter().next().expect("one entry");
                let tag = match key.as_str() {
                    INTEGER_TAG => Some(INTEGER_TAG),
                    FLOAT_TAG => Some(FLOAT_TAG),
                    BYTES_TAG => Some(BYTES_TAG),
                    _ => None,
                };
                if let Some(tag) = tag {
                    return decode_tagged(tag, inner)
                        .map_err(|kind| ValueError { path: path.clone(), kind });
                }
            }
            let mut out = BTreeMap::new();
            for (key, value) in map {
                if key.starts_with('$') {
                    return fail(path, ValueErrorKind::ReservedKey(key.clone()));
                }
                let len = path.len();
                push_key(path, key);
                out.insert(key.clone(), decode(value, path)?);
                path.truncate(len);
            }
            Ok(Value::Object(out))
        }
    }
}

fn decode_tagged(tag: &'static str, inner: &serde_json::Value) -> Result<Value, ValueErrorKind> {
    let serde_json::Value::String(encoded) = inner else {
        return Err(ValueErrorKind::TagNotString { tag });
    };
    let bytes = BASE64
        .decode(encoded)
        .map_err(|e| ValueErrorKind::InvalidBase64 { tag, reason: e.to_string() })?;
    if tag == BYTES_TAG {
        return Ok(Value::Bytes(bytes));
    }
    let eight: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| ValueErrorKind::WrongLength { tag, len: bytes.len() })?;
    if tag == INTEGER_TAG {
        return Ok(Value::Int64(i64::from_le_bytes(eight)));
    }
    let f = f64::from_le_bytes(eight);
    if !needs_float_tag(f) {
        return Err(ValueErrorKind::FloatNotSpecial(
            ryu::Buffer::new().format_finite(f).to_owned(),
        ));
    }
    Ok(Value::Float64(f))
}

/// Appends a finite float in `ryu`'s shortest spelling. Whole numbers below 10^15 (counts,
/// milliseconds, json integers: most numbers here) take a shortcut to the same text: `ryu`
/// spells them as their digits and `.0`.
fn write_finite(out: &mut Vec<u8>, f: f64) {
    let whole = f as i64;
    if whole as f64 == f && f.abs() < 1e15 && !(f == 0.0 && f.is_sign_negative()) {
        out.extend_from_slice(itoa::Buffer::new().format(whole).as_bytes());
        out.extend_from_slice(b".0");
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    }
}

fn write_tagged(out: &mut Vec<u8>, tag: &str, bytes: &[u8]) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b"\":\"");
    let start = out.len();
    let encoded_len = base64::encoded_len(bytes.len(), true).expect("value fits in memory");
    out.resize(start + encoded_len, 0);
    let written =
        BASE64.encode_slice(bytes, &mut out[start..]).expect("buffer sized by encoded_len");
    out.truncate(start + written);
    out.extend_from_slice(b"\"}");
}

fn write_object(out: &mut Vec<u8>, fields: &BTreeMap<String, Value>) {
    out.push(b'{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        crate::json_text::write_string(out, key);
        out.push(b':');
        value.write_json(out);
    }
    out.push(b'}');
}

/// Appends an object key to a path: `.key` (bare `key` at the start) when the key is an
/// identifier, `["any key"]` (JSON-quoted) otherwise, so every path reads back unambiguously.
pub(crate) fn push_key(path: &mut String, key: &str) {
    let mut chars = key.chars();
    let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if identifier {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        let mut quoted = Vec::with_capacity(key.len() + 2);
        crate::json_text::write_string(&mut quoted, key);
        path.push('[');
        path.push_str(std::str::from_utf8(&quoted).expect("escaping keeps UTF-8"));
        path.push(']');
    }
}

/// Appends an array index to a path: `[3]`.
pub(crate) fn push_index(path: &mut String, index: usize) {
    use fmt::Write as _;
    write!(path, "[{index}]").expect("writing to a String cannot fail");
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn obj<const N: usize>(fields: [(&str, Value); N]) -> Value {
        Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn encoded(value: &Value) -> String {
        let mut out = Vec::new();
        value.write_json(&mut out);
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    #[test]
    fn each_type_encodes_as_convex_does() {
        let cases: Vec<(Value, &str)> = vec![
            (Value::Null, "null"),
            (Value::Boolean(true), "true"),
            (Value::Boolean(false), "false"),
            (Value::Float64(1.5), "1.5"),
            (Value::Float64(1.0), "1.0"),
            (Value::Float64(0.0), "0.0"),
            (Value::Float64(-2.5e-7), "-2.5e-7"),
            (Value::Float64(1e300), "1e300"),
            // 2^53 + 2 is exact as a float and printed so it parses back to itself.
            (Value::Float64(9007199254740994.0), "9007199254740994.0"),
            (Value::Float64(-0.0), r#"{"$float":"AAAAAAAAAIA="}"#),
            (Value::Float64(f64::NAN), r#"{"$float":"AAAAAAAA+H8="}"#),
            (Value::Float64(f64::INFINITY), r#"{"$float":"AAAAAAAA8H8="}"#),
            (Value::Float64(f64::NEG_INFINITY), r#"{"$float":"AAAAAAAA8P8="}"#),
            // convex-wire.md: 1 → "AQAAAAAAAAA=".
            (Value::Int64(1), r#"{"$integer":"AQAAAAAAAAA="}"#),
            (Value::Int64(0), r#"{"$integer":"AAAAAAAAAAA="}"#),
            (Value::Int64(-1), r#"{"$integer":"//////////8="}"#),
            (Value::Int64(i64::MIN), r#"{"$integer":"AAAAAAAAAIA="}"#),
            (Value::Bytes(vec![]), r#"{"$bytes":""}"#),
            (Value::Bytes(vec![0, 1, 2, 0xfb, 0xff]), r#"{"$bytes":"AAEC+/8="}"#),
            (Value::String(String::new()), r#""""#),
            (Value::String("héllo ✓".into()), "\"héllo ✓\""),
            (
                Value::String("q\"b\\s\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}".into()),
                "\"q\\\"b\\\\s\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}\"",
            ),
            (Value::Array(vec![]), "[]"),
            (
                Value::Array(vec![Value::Null, Value::Int64(1), Value::Float64(2.0)]),
                r#"[null,{"$integer":"AQAAAAAAAAA="},2.0]"#,
            ),
            (Value::Object(BTreeMap::new()), "{}"),
            (
                obj([
                    ("b", Value::Null),
                    ("a", Value::Boolean(true)),
                    ("B", Value::String("x".into())),
                ]),
                r#"{"B":"x","a":true,"b":null}"#,
            ),
            (obj([("k\"ey", obj([("n", Value::Array(vec![]))]))]), r#"{"k\"ey":{"n":[]}}"#),
        ];
        for (value, expected) in cases {
            assert_eq!(encoded(&value), expected, "write_json of {value:?}");
            let tree: serde_json::Value = serde_json::from_str(expected).expect("expected is JSON");
            assert!(
                same_json(&value.to_json(), &tree),
                "to_json of {value:?}: {}",
                value.to_json()
            );
        }
    }

    /// JSON equality with numbers compared as the floats they spell (`1e300` is `1e+300`).
    fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value as Json;
        match (a, b) {
            (Json::Number(x), Json::Number(y)) => {
                x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
            }
            (Json::Array(x), Json::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
            }
            (Json::Object(x), Json::Object(y)) => {
                x.len() == y.len()
                    && x.iter().zip(y).all(|((kx, x), (ky, y))| kx == ky && same_json(x, y))
            }
            _ => a == b,
        }
    }

    #[test]
    fn each_encoding_decodes_to_its_value() {
        let cases: Vec<(serde_json::Value, Value)> = vec![
            (json!(null), Value::Null),
            (json!(true), Value::Boolean(true)),
            (json!(5), Value::Float64(5.0)),
            (json!(-5), Value::Float64(-5.0)),
            (json!(2.25), Value::Float64(2.25)),
            // A plain JSON integer is a Float64 even past 2^53, rounded like Convex rounds it.
            (json!(9007199254740993u64), Value::Float64(9007199254740992.0)),
            (json!({"$integer": "AQAAAAAAAAA="}), Value::Int64(1)),
            (json!({"$integer": "//////////8="}), Value::Int64(-1)),
            (json!({"$float": "AAAAAAAAAIA="}), Value::Float64(-0.0)),
            (json!({"$float": "AAAAAAAA+H8="}), Value::Float64(f64::NAN)),
            (json!({"$float": "AAAAAAAA8P8="}), Value::Float64(f64::NEG_INFINITY)),
            (json!({"$bytes": "AAEC+/8="}), Value::Bytes(vec![0, 1, 2, 0xfb, 0xff])),
            (json!({"$bytes": ""}), Value::Bytes(vec![])),
            (json!("$integer"), Value::String("$integer".into())),
            (
                json!({"integer": "AQAAAAAAAAA="}),
                obj([("integer", Value::String("AQAAAAAAAAA=".into()))]),
            ),
            (
                json!({"a": [1, {"$integer": "AgAAAAAAAAA="}], "b": {}}),
                obj([
                    ("a", Value::Array(vec![Value::Float64(1.0), Value::Int64(2)])),
                    ("b", Value::Object(BTreeMap::new())),
                ]),
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(Value::from_json(&json), Ok(expected), "from_json of {json}");
        }
    }

    #[test]
    fn each_malformed_encoding_is_refused_with_its_path_and_reason() {
        let cases: Vec<(serde_json::Value, &str, &str)> = vec![
            (
                json!({"meta": {"items": [0, 1, 2, {"key": {"$foo": 1}}]}}),
                "meta.items[3].key",
                "invalid Convex value at `meta.items[3].key`: key `$foo` is reserved: keys starting \
                 with `$` only tag `$integer`, `$float` and `$bytes`, alone",
            ),
            (
                json!({"$integer": "AQAAAAAAAAA=", "x": 1}),
                "",
                "invalid Convex value: key `$integer` is reserved: keys starting with `$` only tag \
                 `$integer`, `$float` and `$bytes`, alone",
            ),
            (
                json!({"s": {"$set": []}}),
                "s",
                "invalid Convex value at `s`: key `$set` is reserved: keys starting with `$` only tag \
                 `$integer`, `$float` and `$bytes`, alone",
            ),
            (
                json!([{"$integer": 1}]),
                "[0]",
                "invalid Convex value at `[0]`: `$integer` must hold a base64 string",
            ),
            (
                json!({"n": {"$integer": "AQAAAAAAAA=="}}),
                "n",
                "invalid Convex value at `n`: `$integer` holds 7 bytes, expected 8",
            ),
            (
                json!({"n": {"$float": "AAAAAAAA+H8AAA=="}}),
                "n",
                "invalid Convex value at `n`: `$float` holds 10 bytes, expected 8",
            ),
            (
                json!({"a b": {"$float": "AAAAAAAA8D8="}}),
                "[\"a b\"]",
                "invalid Convex value at `[\"a b\"]`: `$float` holds 1.0, which Convex only accepts as a \
                 plain number",
            ),
            (
                json!({"b": [[{"$bytes": "not base64!"}]]}),
                "b[0][0]",
                "invalid Convex value at `b[0][0]`: `$bytes` is not valid base64 (Invalid symbol 32, \
                 offset 3.)",
            ),
        ];
        for (json, path, message) in cases {
            let error = Value::from_json(&json).expect_err(&json.to_string());
            assert_eq!(error.path, path, "path for {json}");
            assert_eq!(error.to_string(), message, "message for {json}");
        }
    }

    #[test]
    fn numbers_beyond_float64_are_refused() {
        // Without `arbitrary_precision` serde_json refuses `1e400` itself; with it, the number
        // reaches `from_json`, which must not turn it into Infinity.
        match serde_json::from_str::<serde_json::Value>("[1e400]") {
            Err(e) => assert!(e.to_string().starts_with("number out of range"), "{e}"),
            Ok(json) => {
                let error = Value::from_json(&json).expect_err("1e400 is no float64");
                assert_eq!(error.path, "[0]");
                assert!(matches!(error.kind, ValueErrorKind::NumberOutOfRange(_)), "{error}");
            }
        }
    }

    #[test]
    fn size_follows_convex_size_ts() {
        let cases: Vec<(Value, usize)> = vec![
            (Value::Null, 1),
            (Value::Boolean(false), 1),
            (Value::Float64(0.5), 9),
            (Value::Int64(7), 9),
            (Value::String(String::new()), 2),
            // UTF-8 bytes, not characters: "é" is 2 bytes, "✓" is 3.
            (Value::String("é✓".into()), 7),
            (Value::Bytes(vec![1, 2, 3]), 5),
            (Value::Array(vec![]), 2),
            (Value::Array(vec![Value::Null, Value::Int64(1)]), 12),
            (Value::Object(BTreeMap::new()), 2),
            // 2 + ("ab" 2 + 1 + 9) + ("c" 1 + 1 + (2 + ("d" 1 + 1 + 1))) = 2 + 12 + 7
            (obj([("ab", Value::Float64(1.0)), ("c", obj([("d", Value::Null)]))]), 21),
        ];
        for (value, expected) in cases {
            assert_eq!(value.size(), expected, "size of {value:?}");
        }
        let doc: Document = [("name".to_owned(), Value::String("Ada".into()))].into();
        assert_eq!(document_size(&doc), 2 + 4 + 1 + 5);
    }

    #[test]
    fn a_document_is_written_as_an_object() {
        let doc: Document =
            [("n".to_owned(), Value::Int64(1)), ("a".to_owned(), Value::Null)].into();
        let mut out = Vec::new();
        write_document(&mut out, &doc);
        assert_eq!(out, br#"{"a":null,"n":{"$integer":"AQAAAAAAAAA="}}"#);
    }

    #[test]
    fn equality_compares_floats_by_bits() {
        assert_eq!(Value::Float64(f64::NAN), Value::Float64(f64::NAN));
        assert_ne!(Value::Float64(0.0), Value::Float64(-0.0));
        assert_ne!(Value::Float64(1.0), Value::Int64(1));
    }

    /// Convex parses with `serde_json`'s `float_roundtrip` feature (convex-backend `Cargo.toml`);
    /// without it `serde_json` reads some shortest float spellings one ULP off (27052.347532359694
    /// as 27052.347532359698), so a Float64 read back from Convex would not be the one sent.
    #[test]
    fn serde_json_reads_floats_exactly() {
        let original = 1.0715660391465826e-75_f64;
        let text = ryu::Buffer::new().format_finite(original).to_owned();
        let parsed: f64 = serde_json::from_str(&text).expect("a JSON number");
        assert_eq!(
            parsed.to_bits(),
            original.to_bits(),
            "serde_json read {text} as {parsed:e}: enable its `float_roundtrip` feature in Cargo.toml"
        );
    }

    /// Keys Convex allows in objects: anything not starting with `$`.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
            any::<String>().prop_filter("`$` keys are reserved", |k| !k.starts_with('$')),
        ]
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            any::<f64>(),
            Just(-0.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MIN_POSITIVE / 2.0),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Boolean),
            float().prop_map(Value::Float64),
            any::<i64>().prop_map(Value::Int64),
            any::<String>().prop_map(Value::String),
            prop::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key(), inner, 0..6).prop_map(Value::Object),
            ]
        })
    }

    /// Convex's size computed straight from the encoded JSON, sharing no code with `Value::size`.
    fn size_of_json(json: &serde_json::Value) -> usize {
        use serde_json::Value as Json;
        match json {
            Json::Null | Json::Bool(_) => 1,
            Json::Number(_) => 9,
            Json::String(s) => 2 + s.len(),
            Json::Array(items) => 2 + items.iter().map(size_of_json).sum::<usize>(),
            Json::Object(map) => match map.iter().next() {
                Some((tag, _)) if map.len() == 1 && (tag == "$integer" || tag == "$float") => 9,
                Some((tag, Json::String(b64))) if map.len() == 1 && tag == "$bytes" => {
                    let padding = b64.bytes().rev().take_while(|&b| b == b'=').count();
                    2 + b64.len() / 4 * 3 - padding
                }
                _ => 2 + map.iter().map(|(k, v)| k.len() + 1 + size_of_json(v)).sum::<usize>(),
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn json_round_trips_through_serde_json(value in value()) {
            let mut bytes = Vec::new();
            value.write_json(&mut bytes);
            let parsed: serde_json::Value = serde_json::from_slice(&bytes).expect("write_json writes JSON");
            prop_assert_eq!(Value::from_json(&parsed), Ok(value.clone()));
            prop_assert!(same_json(&parsed, &value.to_json()), "to_json differs from write_json");
        }

        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(s in any::<String>()) {
            let mut bytes = Vec::new();
            Value::String(s.clone()).write_json(&mut bytes);
            prop_assert_eq!(bytes, serde_json::to_vec(&s).expect("serializable"));
        }

        #[test]
        fn size_matches_a_count_over_the_json(value in value()) {
            prop_assert_eq!(value.size(), size_of_json(&value.to_json()));
        }

        #[test]
        fn floats_are_spelled_as_ryu_spells_them(
            f in prop_oneof![
                any::<f64>().prop_filter("finite", |f| f.is_finite()),
                (-2_000_000_000_000_000i64..2_000_000_000_000_000).prop_map(|i| i as f64),
                (-2000i64..2000).prop_map(|i| i as f64 * 1e12),
                Just(1e15), Just(-1e15), Just(999_999_999_999_999.0), Just(0.0),
            ]
        ) {
            let mut out = Vec::new();
            write_finite(&mut out, f);
            let mut ryu = ryu::Buffer::new();
            prop_assert_eq!(std::str::from_utf8(&out).unwrap(), ryu.format_finite(f));
        }
    }
}
