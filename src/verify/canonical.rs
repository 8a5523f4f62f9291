//! One fingerprint per document that is equal exactly when Convex would consider the documents
//! equal: object keys in any order, numbers compared as the Float64 they are, everything else
//! as written in the tagged encoding (`$integer`, `$bytes` and `$float` are compared by their
//! encoded bytes, which are canonical).
//!
//! References are kept out of the fingerprint and compared through their legacy identity
//! instead (see `verify`), because their Convex ids differ between deployments.

use serde_json::Value;

/// 128 bits of BLAKE3 over the canonical form.
pub type Fingerprint = [u8; 16];

/// The fingerprint of `document`'s fields, leaving out `skip` (system fields, references).
pub fn fingerprint(
    document: &serde_json::Map<String, Value>,
    skip: impl Fn(&str) -> bool,
) -> Fingerprint {
    let mut hasher = blake3::Hasher::new();
    let mut keys: Vec<&String> = document.keys().filter(|k| !skip(k)).collect();
    keys.sort();
    hasher.update(b"{");
    for key in keys {
        write_str(&mut hasher, key);
        write_value(&mut hasher, &document[key]);
    }
    hasher.update(b"}");
    let mut out = [0; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    out
}

/// The canonical text of a single value, for reports and for comparing one field.
pub fn value_fingerprint(value: &Value) -> Fingerprint {
    let mut hasher = blake3::Hasher::new();
    write_value(&mut hasher, value);
    let mut out = [0; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    out
}

fn write_str(hasher: &mut blake3::Hasher, s: &str) {
    hasher.update(&(s.len() as u64).to_le_bytes());
    hasher.update(s.as_bytes());
}

fn write_value(hasher: &mut blake3::Hasher, value: &Value) {
    match value {
        Value::Null => {
            hasher.update(b"n");
        }
        Value::Bool(b) => {
            hasher.update(if *b { b"t" } else { b"f" });
        }
        Value::Number(n) => {
            // A plain JSON number is a Float64 in Convex: `1`, `1.0` and `1e0` are the same.
            let float = n.as_f64().unwrap_or(f64::NAN);
            hasher.update(b"d");
            hasher.update(&float.to_bits().to_le_bytes());
        }
        Value::String(s) => {
            hasher.update(b"s");
            write_str(hasher, s);
        }
        Value::Array(items) => {
            hasher.update(b"[");
            hasher.update(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_value(hasher, item);
            }
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            hasher.update(&(keys.len() as u64).to_le_bytes());
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
    fn skipped_fields_are_left_out() {
        let a = object(json!({"a": 1, "_id": "x", "_creationTime": 1.0}));
        let b = object(json!({"a": 1}));
        assert_eq!(fingerprint(&a, |k| k.starts_with('_')), fingerprint(&b, |_| false));
    }
}
