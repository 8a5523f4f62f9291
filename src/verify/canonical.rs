//! One fingerprint per document that is equal exactly when Convex would consider the documents
//! equal: object keys in any order, numbers compared as the Float64 they are, everything else
//! as written in the tagged encoding (`$integer`, `$bytes` and `$float` are compared by their
//! encoded bytes, which are canonical).
//!
//! References are kept out of the fingerprint and compared through their legacy identity
//! instead (see `verify`), because their Convex ids differ between deployments.

use serde_json::Value;

/// XXH3-128 of the canonical form. It tells our own documents apart, nobody's adversary: a
/// 128-bit hash of good distribution makes a chance collision negligible (about 2^-64 even at
/// 2^32 documents), and it is several times faster than a cryptographic hash on short inputs.
pub type Fingerprint = [u8; 16];

/// The fingerprint of canonical bytes.
fn hash(bytes: &[u8]) -> Fingerprint {
    xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes()
}

/// The fingerprint of `document`'s fields, leaving out `skip` (system fields, references).
pub fn fingerprint(
    document: &serde_json::Map<String, Value>,
    skip: impl Fn(&str) -> bool,
) -> Fingerprint {
    let mut bytes = Vec::with_capacity(512);
    let mut keys: Vec<&String> = document.keys().filter(|k| !skip(k)).collect();
    keys.sort();
    bytes.push(b'{');
    for key in keys {
        write_str(&mut bytes, key);
        write_value(&mut bytes, &document[key]);
    }
    bytes.push(b'}');
    hash(&bytes)
}

/// A JSON string borrowed from the text it was read from when it has no escapes.
#[derive(Debug, serde::Deserialize)]
pub struct Str<'a>(#[serde(borrow)] pub std::borrow::Cow<'a, str>);

/// A JSON object read as its entries in order, values left as text: what verify reduces
/// documents from without building a tree of every value.
#[derive(Debug, Default)]
pub struct Entries<'a>(pub Vec<(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Entries<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Entries<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((key, value)) = map.next_entry::<Str<'de>, &'de RawValue>()? {
                    entries.push((key.0, value));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(Visit(std::marker::PhantomData))
    }
}

impl<'a> Entries<'a> {
    /// The value of `key` (the last one, as a JSON reader keeps).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

use serde_json::value::RawValue;

/// The string a raw value holds, if it is a string.
pub fn raw_str(value: &RawValue) -> Option<std::borrow::Cow<'_, str>> {
    let text = value.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    // Valid JSON (a RawValue is): without a backslash the text between the quotes is the string.
    if !inner.contains('\\') {
        return Some(std::borrow::Cow::Borrowed(inner));
    }
    serde_json::from_str::<Str<'_>>(text).ok().map(|s| s.0)
}

/// [`fingerprint`] of a document read as [`Entries`]: the same bytes hashed, without a tree of
/// values for scalars (objects and arrays are parsed as before).
pub fn fingerprint_entries(document: &Entries<'_>, skip: impl Fn(&str) -> bool) -> Fingerprint {
    let mut fields: Vec<&(std::borrow::Cow<'_, str>, &RawValue)> =
        document.0.iter().filter(|(k, _)| !skip(k)).collect();
    // Sorted by key; of equal keys the last is kept, as a JSON reader does.
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let mut bytes = Vec::with_capacity(512);
    bytes.push(b'{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if fields.get(i + 1).is_some_and(|next| next.0 == *key) {
            continue;
        }
        write_str(&mut bytes, key);
        write_raw(&mut bytes, value);
    }
    bytes.push(b'}');
    hash(&bytes)
}

fn write_raw(out: &mut Vec<u8>, value: &RawValue) {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b'n') => out.push(b'n'),
        Some(b't') => out.push(b't'),
        Some(b'f') => out.push(b'f'),
        Some(b'"') => match raw_str(value) {
            Some(s) => {
                out.push(b's');
                write_str(out, &s);
            }
            None => write_value(out, &Value::String(text.to_owned())),
        },
        // Objects and arrays read as borrowed entries and items, no tree: the bytes
        // `write_value` writes for the same value.
        Some(b'{') => match serde_json::from_str::<Entries<'_>>(text) {
            Ok(entries) => {
                let mut fields: Vec<&(std::borrow::Cow<'_, str>, &RawValue)> =
                    entries.0.iter().collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                // Of equal keys the last is kept, as a JSON reader does.
                let unique = fields.windows(2).filter(|w| w[0].0 != w[1].0).count()
                    + usize::from(!fields.is_empty());
                out.push(b'{');
                out.extend_from_slice(&(unique as u64).to_le_bytes());
                for (i, (key, value)) in fields.iter().enumerate() {
                    if fields.get(i + 1).is_some_and(|next| next.0 == *key) {
                        continue;
                    }
                    write_str(out, key);
                    write_raw(out, value);
                }
            }
            Err(_) => write_value(out, &Value::String(text.to_owned())),
        },
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) => {
                out.push(b'[');
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    write_raw(out, item);
                }
            }
            Err(_) => write_value(out, &Value::String(text.to_owned())),
        },
        None => write_value(out, &Value::String(text.to_owned())),
        Some(_) => {
            // A plain JSON number is a Float64 in Convex, as in `write_value`.
            out.push(b'd');
            // serde_json's `as_f64` (arbitrary precision) gives no value for one out of range.
            let float = text.parse::<f64>().ok().filter(|f| f.is_finite()).unwrap_or(f64::NAN);
            out.extend_from_slice(&float.to_bits().to_le_bytes());
        }
    }
}

/// The fingerprint of several values in order, an absent one as null: equal exactly when
/// each value is equal as Convex compares values.
pub fn values_fingerprint(values: &[Option<&RawValue>]) -> Fingerprint {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for value in values {
        match value {
            Some(value) => write_raw(&mut bytes, value),
            None => bytes.push(b'n'),
        }
    }
    hash(&bytes)
}

/// The canonical text of a single value, for reports and for comparing one field.
pub fn value_fingerprint(value: &Value) -> Fingerprint {
    let mut bytes = Vec::new();
    write_value(&mut bytes, value);
    hash(&bytes)
}

fn write_str(hasher: &mut Vec<u8>, s: &str) {
    hasher.extend_from_slice(&(s.len() as u64).to_le_bytes());
    hasher.extend_from_slice(s.as_bytes());
}

fn write_value(hasher: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => {
            hasher.extend_from_slice(b"n");
        }
        Value::Bool(b) => {
            hasher.extend_from_slice(if *b { b"t" } else { b"f" });
        }
        Value::Number(n) => {
            // A plain JSON number is a Float64 in Convex: `1`, `1.0` and `1e0` are the same.
            let float = n.as_f64().unwrap_or(f64::NAN);
            hasher.extend_from_slice(b"d");
            hasher.extend_from_slice(&float.to_bits().to_le_bytes());
        }
        Value::String(s) => {
            hasher.extend_from_slice(b"s");
            write_str(hasher, s);
        }
        Value::Array(items) => {
            hasher.extend_from_slice(b"[");
            hasher.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_value(hasher, item);
            }
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.extend_from_slice(b"{");
            hasher.extend_from_slice(&(keys.len() as u64).to_le_bytes());
            for key in keys {
                write_str(hasher, key);
                write_value(hasher, &map[key]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn key_order_and_number_spelling_do_not_matter() {
        let a = object(json!({"a": 1, "b": {"y": [1.5, "x"], "x": null}}));
        let b: Value =
            serde_json::from_str(r#"{"b": {"x": null, "y": [15e-1, "x"]}, "a": 1.0}"#).unwrap();
        assert_eq!(fingerprint(&a, |_| false), fingerprint(&object(b), |_| false));
    }

    #[test]
    fn any_change_of_a_value_or_type_changes_the_fingerprint() {
        let base = object(json!({"a": 1, "s": "x", "i": {"$integer": "AQAAAAAAAAA="}}));
        for changed in [
            json!({"a": 2, "s": "x", "i": {"$integer": "AQAAAAAAAAA="}}),
            json!({"a": "1", "s": "x", "i": {"$integer": "AQAAAAAAAAA="}}),
            json!({"a": 1, "s": "x ", "i": {"$integer": "AQAAAAAAAAA="}}),
            json!({"a": 1, "s": "x", "i": {"$integer": "AgAAAAAAAAA="}}),
            json!({"a": 1, "s": "x", "i": 1}),
            json!({"a": 1, "s": "x"}),
        ] {
            assert_ne!(
                fingerprint(&base, |_| false),
                fingerprint(&object(changed.clone()), |_| false),
                "{changed}"
            );
        }
    }

    #[test]
    fn a_document_read_as_entries_has_the_same_fingerprint_as_its_tree() {
        for text in [
            r#"{"a":1,"b":{"y":[1.5,"x"],"x":null},"c":"caf\u00e9 \"q\"","d":true,"e":false}"#,
            r#"{"z":-0.0,"n":1e400,"i":{"$integer":"AQAAAAAAAAA="},"s":"","_id":"x"}"#,
            r#"{"k":"first","k":"last","m":12345678901234567890}"#,
            r#"{"o":{"k":1,"k":[2],"a":[{"z":1,"y":[]},{}],"\u00e9":"x"},"t":[[1,[true]],null]}"#,
            r#"{}"#,
        ] {
            let tree: Value = serde_json::from_str(text).unwrap();
            let entries: Entries<'_> = serde_json::from_str(text).unwrap();
            let skip = |k: &str| k == "_id";
            assert_eq!(
                fingerprint(tree.as_object().unwrap(), skip),
                fingerprint_entries(&entries, skip),
                "{text}"
            );
        }
    }

    #[test]
    fn skipped_fields_are_left_out() {
        let a = object(json!({"a": 1, "_id": "x", "_creationTime": 1.0}));
        let b = object(json!({"a": 1}));
        assert_eq!(fingerprint(&a, |k| k.starts_with('_')), fingerprint(&b, |_| false));
    }
}
