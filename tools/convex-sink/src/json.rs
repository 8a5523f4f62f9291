//! JSON helpers for the hot path: objects read into ordered lists of borrowed keys and raw
//! values, and strings written without going through `serde_json::Value`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// A JSON object as its entries in order, duplicates kept (the last one wins where it matters).
#[derive(Debug)]
pub struct OrderedMap<K, V>(pub Vec<(K, V)>);

impl<K, V> Default for OrderedMap<K, V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for MapVisitor<K, V> {
            type Value = OrderedMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// A JSON string borrowed from the request when it has no escapes.
#[derive(Debug, serde::Deserialize, PartialEq, Eq)]
pub struct Str<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Appends `s` as a JSON string.
pub fn write_str(out: &mut String, s: &str) {
    let plain = s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("a string serializes"));
    }
}

/// The string a raw JSON value holds, if it is a string.
pub fn as_str(raw: &serde_json::value::RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    serde_json::from_str::<Str<'_>>(text).ok().map(|s| s.0)
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    #[test]
    fn objects_keep_their_order_and_borrow_plain_keys() {
        let text = r#"{"b":1,"a":{"x":[1,2]},"c\"q":"s"}"#;
        let map: OrderedMap<Str<'_>, &RawValue> = serde_json::from_str(text).unwrap();
        let keys: Vec<&str> = map.0.iter().map(|(k, _)| &*k.0).collect();
        assert_eq!(keys, ["b", "a", "c\"q"]);
        assert!(matches!(map.0[0].0.0, Cow::Borrowed(_)));
        assert_eq!(map.0[1].1.get(), r#"{"x":[1,2]}"#);
    }

    #[test]
    fn strings_are_written_escaped_when_needed() {
        let mut out = String::new();
        write_str(&mut out, "plain");
        write_str(&mut out, "a\"b\\c\n");
        assert_eq!(out, r#""plain""a\"b\\c\n""#);
        let raw = RawValue::from_string(r#""[\"acme\",\"42\"]""#.to_owned()).unwrap();
        assert_eq!(as_str(&raw).as_deref(), Some(r#"["acme","42"]"#));
        let raw = RawValue::from_string("42".to_owned()).unwrap();
        assert_eq!(as_str(&raw), None);
    }
}
