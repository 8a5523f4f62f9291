//! Convex validators as a deployment's schema exports them (convex-js `SchemaDefinition.export`,
//! `src/values/validators.ts` `json`): `{"type": "string"}`, `{"type": "number"}` (Float64),
//! `{"type": "bigint"}` (Int64), `{"type": "id", "tableName": "users"}`,
//! `{"type": "array", "value": …}`, `{"type": "object", "value": {"f": {"fieldType": …,
//! "optional": false}}}`, `{"type": "record", "keys": …, "values": {"fieldType": …}}`,
//! `{"type": "union", "value": […]}`, `{"type": "literal", "value": …}`. Pure.
//!
//! Read when a Convex deployment is the source (`export --from-convex`): the catalog is made of
//! them, and the generated schema of the target writes them back as TypeScript.

use serde_json::Value as Json;

/// A TypeScript string literal: JSON's string syntax is valid JavaScript.
fn string_literal(value: &str) -> String {
    serde_json::to_string(value).expect("a string always serializes")
}

/// The kind of a validator's JSON form: `"string"`, `"id"`, …; `None` for JSON that is none.
pub fn kind(validator: &Json) -> Option<&str> {
    validator.get("type")?.as_str()
}

/// The table an `{"type": "id"}` validator names.
pub fn id_table(validator: &Json) -> Option<&str> {
    (kind(validator)? == "id").then(|| validator.get("tableName")?.as_str())?
}

/// The TypeScript expression (`v.…`) of a validator, for a target schema that accepts exactly
/// what the source held. An id nested inside a value is written `v.string()`: it names a
/// document of the source deployment, which the target does not have (top-level ids are
/// references, remapped by import). Errors name what is not a validator.
pub fn typescript(validator: &Json) -> Result<String, String> {
    let inner = |key: &str| {
        validator.get(key).ok_or_else(|| format!("validator without `{key}`: {validator}"))
    };
    Ok(match kind(validator).ok_or_else(|| format!("not a validator: {validator}"))? {
        "null" => "v.null()".into(),
        "number" => "v.float64()".into(),
        "bigint" => "v.int64()".into(),
        "boolean" => "v.boolean()".into(),
        "string" | "id" => "v.string()".into(),
        "bytes" => "v.bytes()".into(),
        "any" => "v.any()".into(),
        "literal" => match inner("value")? {
            Json::String(s) => format!("v.literal({})", string_literal(s)),
            Json::Bool(b) => format!("v.literal({b})"),
            Json::Number(n) => format!("v.literal({n})"),
            // A bigint literal travels tagged; its type is enough to keep every value.
            _ => "v.int64()".into(),
        },
        "array" => format!("v.array({})", typescript(inner("value")?)?),
        "union" => {
            let members = inner("value")?.as_array().ok_or("a union without members")?;
            let members: Result<Vec<_>, _> = members.iter().map(typescript).collect();
            format!("v.union({})", members?.join(", "))
        }
        "object" => {
            let fields = inner("value")?.as_object().ok_or("an object without fields")?;
            let mut out = Vec::new();
            for (name, field) in fields {
                out.push(format!("{}: {}", string_literal(name), field_typescript(field)?));
            }
            format!("v.object({{ {} }})", out.join(", "))
        }
        "record" => format!(
            "v.record({}, {})",
            typescript(inner("keys")?)?,
            field_typescript(inner("values")?)?
        ),
        other => return Err(format!("unknown validator type `{other}`")),
    })
}

/// `{"fieldType": …, "optional": bool}` as TypeScript.
fn field_typescript(field: &Json) -> Result<String, String> {
    let ty = field.get("fieldType").ok_or_else(|| format!("field without `fieldType`: {field}"))?;
    let ts = typescript(ty)?;
    Ok(if field.get("optional").and_then(Json::as_bool) == Some(true) {
        format!("v.optional({ts})")
    } else {
        ts
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn validators_become_typescript_with_nested_ids_as_strings() {
        let validator = json!({"type": "union", "value": [
            {"type": "null"},
            {"type": "array", "value": {"type": "bigint"}},
            {"type": "object", "value": {
                "a b": {"fieldType": {"type": "id", "tableName": "users"}, "optional": true},
                "n": {"fieldType": {"type": "literal", "value": 3}, "optional": false}}},
            {"type": "record", "keys": {"type": "string"},
             "values": {"fieldType": {"type": "bytes"}, "optional": false}}
        ]});
        assert_eq!(
            typescript(&validator).unwrap(),
            r#"v.union(v.null(), v.array(v.int64()), v.object({ "a b": v.optional(v.string()), "n": v.literal(3) }), v.record(v.string(), v.bytes()))"#
        );
        assert_eq!(id_table(&json!({"type": "id", "tableName": "users"})), Some("users"));
        assert!(typescript(&json!({"type": "set"})).unwrap_err().contains("`set`"));
    }
}
