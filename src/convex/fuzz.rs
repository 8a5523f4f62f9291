//! Fuzz targets for the tagged-encoding decoder ([`Value::from_json`]), the document rules and
//! the id check, run as bounded property tests in the normal test suite: arbitrary JSON, tagged
//! objects with garbage payloads and deep nesting must give a value or an error, never a panic.
//! Whatever decodes must encode back to itself.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::Value as Json;

use super::value::{Document, Value, ValueErrorKind};
use super::{check_document, check_field_name, check_table_name, is_document_id, rules};
use crate::fuzz_support::config;

/// serde_json's default recursion limit: text nested this deep or deeper does not parse.
const SERDE_JSON_DEPTH: usize = 128;

/// JSON numbers, read with `arbitrary_precision` as they are.
fn number() -> impl Strategy<Value = Json> {
    crate::fuzz_support::number_text()
        .prop_map(|t| serde_json::from_str(&t).expect("the strategy writes JSON numbers"))
}

/// What a tag may hold: base64 of 0 to 12 bytes (8 is a valid `$integer`/`$float`), base64 in
/// other spellings, and things that are no base64 string at all.
fn payload() -> impl Strategy<Value = Json> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
    prop_oneof![
        4 => vec(any::<u8>(), 0..12).prop_map(|b| Json::String(STANDARD.encode(b))),
        1 => vec(any::<u8>(), 0..12).prop_map(|b| Json::String(STANDARD_NO_PAD.encode(b))),
        1 => vec(any::<u8>(), 0..12).prop_map(|b| Json::String(URL_SAFE.encode(b))),
        // Every special float, and some ordinary ones that must travel as numbers.
        2 => prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0, 1.0])
            .prop_map(|f| Json::String(STANDARD.encode(f.to_le_bytes()))),
        1 => "[A-Za-z0-9+/= \\-_!]{0,16}".prop_map(Json::String),
        1 => any::<String>().prop_map(Json::String),
        1 => number(),
        1 => Just(Json::Null),
        1 => Just(Json::Array(vec![])),
        1 => Just(serde_json::json!({"$integer": "AQAAAAAAAAA="})),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
        1 => prop::sample::select(vec!["$integer", "$float", "$bytes", "$set", "$map", "$", "", "_id"])
            .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        number(),
        any::<String>().prop_map(Json::String),
        (prop::sample::select(vec!["$integer", "$float", "$bytes", "$set"]), payload())
            .prop_map(|(tag, payload)| serde_json::json!({ tag: payload })),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Json::Array),
            btree_map(key(), inner, 0..6).prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// `json` inside `levels` arrays or one-key objects: past Convex's 16 and serde_json's 128.
fn deep_json() -> impl Strategy<Value = Json> {
    (json(), 0usize..200, any::<bool>()).prop_map(|(inner, levels, arrays)| {
        (0..levels).fold(inner, |inner, _| {
            if arrays {
                Json::Array(vec![inner])
            } else {
                Json::Object([("k".to_owned(), inner)].into_iter().collect())
            }
        })
    })
}

/// Levels of arrays and objects: a scalar is 0.
fn depth(json: &Json) -> usize {
    match json {
        Json::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Json::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Decodes `json`: an error has a reason; a value encodes back to itself both ways and goes
/// through the rules without a panic.
fn decode_and_check(json: &Json) -> Result<(), TestCaseError> {
    let value = match Value::from_json(json) {
        Ok(value) => value,
        Err(error) => {
            prop_assert!(!error.to_string().is_empty());
            return Ok(());
        }
    };
    prop_assert_eq!(Value::from_json(&value.to_json()), Ok(value.clone()), "to_json round trip");
    let mut text = Vec::new();
    value.write_json(&mut text);
    match serde_json::from_slice::<Json>(&text) {
        Ok(parsed) => {
            prop_assert_eq!(Value::from_json(&parsed), Ok(value.clone()), "write_json round trip")
        }
        // Only past serde_json's limit (a tagged leaf is one level deeper than the value).
        Err(e) => prop_assert!(
            depth(&value.to_json()) >= SERDE_JSON_DEPTH,
            "write_json wrote bad JSON: {e}"
        ),
    }
    let _ = value.size();
    if let Value::Object(fields) = value
        && let Err(violation) = check_document(&fields)
    {
        prop_assert!(!violation.to_string().is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_json_decodes_or_is_refused(json in json()) {
        decode_and_check(&json)?;
    }

    #[test]
    fn deep_json_decodes_or_is_refused(json in deep_json()) {
        decode_and_check(&json)?;
    }

    #[test]
    fn a_tag_decodes_only_to_its_type(
        tag in prop::sample::select(vec!["$integer", "$float", "$bytes"]),
        payload in payload(),
    ) {
        match Value::from_json(&serde_json::json!({ tag: payload })) {
            Ok(Value::Int64(_)) => prop_assert_eq!(tag, "$integer"),
            Ok(Value::Float64(f)) => {
                prop_assert_eq!(tag, "$float");
                prop_assert!(!f.is_finite() || (f == 0.0 && f.is_sign_negative()), "{f}");
            }
            Ok(Value::Bytes(_)) => prop_assert_eq!(tag, "$bytes"),
            Ok(other) => prop_assert!(false, "{tag} decoded to {other:?}"),
            Err(error) => prop_assert!(
                !matches!(error.kind, ValueErrorKind::ReservedKey(_)),
                "a lone tag is not a reserved key: {error}"
            ),
        }
    }

    #[test]
    fn any_name_or_id_is_checked_without_panicking(name in any::<String>()) {
        let _ = check_field_name(&name);
        let _ = check_table_name(&name);
        let _ = rules::check_object_key(&name);
        let _ = is_document_id(&name);
        let _ = super::id::decode(&name);
    }
}

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn any_document_is_checked_without_panicking(
        fields in btree_map(key(), json(), 0..8),
    ) {
        let decoded: Result<Document, _> =
            fields.into_iter().map(|(k, v)| Value::from_json(&v).map(|v| (k, v))).collect();
        if let Ok(document) = decoded {
            match check_document(&document) {
                Ok(()) => {
                    for name in document.keys() {
                        prop_assert_eq!(check_field_name(name), Ok(()));
                    }
                    prop_assert!(super::document_size(&document) <= rules::MAX_DOCUMENT_SIZE);
                }
                Err(violation) => prop_assert!(!violation.to_string().is_empty()),
            }
        }
    }
}
