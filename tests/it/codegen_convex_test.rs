//! The generated `convex/schema.ts` under Convex's own semantics: the official `convex-test`
//! package runs it (tests/convex/harness/check-schema.ts). Documents shaped like transform's
//! output (Convex's tagged JSON, built here from the plan) are inserted, patched and found
//! through `by_legacy_id`; documents with a wrong type, a missing required field, a legacy
//! string or another table's id where a reference belongs are refused by the validators.

use std::collections::BTreeSet;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use migrate::plan::{
    Conversion, JsonScalar, NullPolicy, OrphanPolicy, Plan, ReferencePlan, TablePlan,
};
use serde_json::{Map, Value, json};

use crate::codegen_support::{
    CYCLE_REFERENCES, ConvexApp, convex_tool, convex_tools, every_conversion_plan, integer,
    printed, run,
};

#[test]
fn convex_accepts_what_transform_emits_and_refuses_the_rest() {
    // GIVEN the schema of a plan using every conversion, cycle and orphan policy, and steps
    // built from the plan alone
    let plan = every_conversion_plan();
    let app = ConvexApp::new("convex-test");
    let schema = app.write_generated(&plan);
    let steps = Steps::for_plan(&plan);
    let steps_file = app.write("steps.json", &json!({ "steps": steps.list }).to_string());

    // WHEN convex-test runs them
    let output = run(Command::new(convex_tool("tsx"))
        .current_dir(convex_tools())
        .arg("harness/check-schema.ts")
        .arg(&schema)
        .arg(&steps_file));

    // THEN every step does what it should
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "convex-test disagrees with the schema:\n{}",
        printed(&output)
    );
    let total = steps.list.len();
    assert!(stdout.contains(&format!("{total} of {total} steps ok")), "{}", printed(&output));
    // and the run covered what it claims to: every kind of step, a good share of refusals
    for op in ["insert", "patch", "lookup", "reject"] {
        assert!(steps.list.iter().any(|s| s["op"] == op), "no {op} step");
    }
    assert!(steps.rejects >= 80, "only {} refusals checked", steps.rejects);
    assert!(
        stdout.contains(r#"Validator error: Expected ID for table "people", got `42`"#),
        "a legacy id where a Convex id belongs is refused as such:\n{stdout}"
    );
}

/// A value transform could emit for `conversion`, in Convex's tagged JSON; `variant` picks
/// another one (and, for arrays, an empty one).
fn valid(conversion: &Conversion, variant: usize) -> Value {
    let first = variant == 0;
    match conversion {
        Conversion::Boolean => json!(first),
        Conversion::Float64 => {
            if first {
                float(f64::NAN)
            } else {
                float(-0.0)
            }
        }
        Conversion::Int8AsNumber => json!(if first { 9_007_199_254_740_991.0 } else { -2.0 }),
        Conversion::Int8AsInt64 | Conversion::NumericAsInt64 => {
            integer(if first { i64::MAX } else { -1 })
        }
        Conversion::Int8AsString => json!("9223372036854775807"),
        Conversion::NumericAsNumber => json!(if first { 0.1 } else { 1e300 }),
        Conversion::NumericAsString => json!("12345678901234567890.000000001"),
        Conversion::NumericAsCents => json!(if first { 1999.0 } else { -5.0 }),
        Conversion::String | Conversion::StringTrimEnd => {
            json!(if first { "text ✓" } else { "" })
        }
        Conversion::JsonScalar(JsonScalar::String) => {
            json!(if first { "Ada Lovelace" } else { "" })
        }
        Conversion::JsonScalar(JsonScalar::Number) => json!(if first { 36.5 } else { -1.0 }),
        Conversion::JsonScalar(JsonScalar::Boolean) => json!(!first),
        Conversion::Enum { labels } => json!(labels[variant % labels.len()]),
        Conversion::TimestampMs { .. } => json!(1_700_000_000_123.456),
        Conversion::TimestampIso => json!("2024-01-02T03:04:05.123456+00:00"),
        Conversion::DateString => json!("2024-02-29"),
        Conversion::DateMs => json!(1_709_164_800_000.0),
        Conversion::Json { .. } => {
            if first {
                json!({ "nested": [1, null, { "k": "v" }], "_ref": "renamed from $ref" })
            } else {
                json!(null)
            }
        }
        // The JSON text of a value Convex cannot hold as it is: a number beyond a double.
        Conversion::JsonText => {
            json!(if first { r#"{"n":123456789012345678901234567890}"# } else { "null" })
        }
        Conversion::Bytes => {
            json!({ "$bytes": STANDARD.encode(if first { &[0u8, 1, 2, 255][..] } else { &[][..] }) })
        }
        Conversion::Array(element) => {
            if first {
                json!([valid(element, 0), null, valid(element, 1)])
            } else {
                json!([])
            }
        }
        // Not in the every-conversion plan: a Convex source's values are tested end to end
        // (convex_source.rs).
        Conversion::Convex(_) => json!(null),
    }
}

/// A value of the wrong type for `conversion`, when there is one (json takes anything).
fn wrong(conversion: &Conversion) -> Option<Value> {
    Some(match conversion {
        Conversion::Boolean => json!("true"),
        Conversion::Float64
        | Conversion::Int8AsNumber
        | Conversion::NumericAsNumber
        | Conversion::NumericAsCents
        | Conversion::TimestampMs { .. }
        | Conversion::DateMs => json!("1.5"),
        // a plain JSON number is a Float64: Int64 must come as `$integer`
        Conversion::Int8AsInt64 | Conversion::NumericAsInt64 => json!(1),
        Conversion::Int8AsString
        | Conversion::NumericAsString
        | Conversion::String
        | Conversion::StringTrimEnd
        | Conversion::JsonScalar(JsonScalar::String)
        | Conversion::TimestampIso
        | Conversion::DateString => json!(1),
        Conversion::JsonScalar(JsonScalar::Number) => json!("36.5"),
        Conversion::JsonScalar(JsonScalar::Boolean) => json!("true"),
        Conversion::Enum { .. } => json!("not-a-label"),
        Conversion::Json { .. } | Conversion::Convex(_) => return None,
        // the value itself where its JSON text belongs
        Conversion::JsonText => json!({ "n": 1 }),
        Conversion::Bytes => json!("AAEC"),
        Conversion::Array(element) => match wrong(element) {
            Some(element) => json!([element]),
            None => json!("not an array"),
        },
    })
}

fn float(value: f64) -> Value {
    json!({ "$float": STANDARD.encode(value.to_le_bytes()) })
}

/// Stands for the Convex id of the document inserted under `name`.
fn id_of(name: &str) -> Value {
    json!({ "$doc": name })
}

/// A reference may end up absent (or null), whatever import does.
fn may_be_absent(reference: &ReferencePlan) -> bool {
    reference.optional || reference.orphans == OrphanPolicy::Null
}

fn in_cycle(table: &TablePlan, reference: &ReferencePlan) -> bool {
    CYCLE_REFERENCES.contains(&format!("{}.{}", table.target, reference.field).as_str())
}

/// What SQL NULL becomes: absent (`None`) or null.
fn null_value(nulls: NullPolicy) -> Option<Value> {
    match nulls {
        NullPolicy::Omit => None,
        NullPolicy::Null => Some(Value::Null),
    }
}

#[derive(Default)]
struct Steps {
    list: Vec<Value>,
    rejects: usize,
}

impl Steps {
    fn for_plan(plan: &Plan) -> Self {
        let mut steps = Steps::default();
        // Two documents per table, in plan order, as import would insert them: a reference to a
        // document not inserted yet (a cycle, or itself) is left out and patched in afterwards.
        let mut inserted = BTreeSet::new();
        let mut patches = Vec::new();
        let mut finals = Vec::new();
        for table in &plan.tables {
            for (which, doc) in [("full", full(table)), ("sparse", sparse(table))] {
                let name = format!("{}#{which}", table.target);
                let mut insert = doc.clone();
                for reference in &table.references {
                    let parent = doc.get(&reference.field).and_then(|v| v.get("$doc"));
                    if let Some(parent) = parent.and_then(Value::as_str)
                        && !inserted.contains(parent)
                    {
                        insert.remove(&reference.field);
                        patches.push(json!({
                            "op": "patch",
                            "name": name,
                            "fields": { reference.field.clone(): doc[&reference.field] },
                        }));
                    }
                }
                steps.list.push(json!({
                    "op": "insert", "name": name, "table": table.target, "doc": insert,
                }));
                inserted.insert(name.clone());
                finals.push((table, name, doc));
            }
        }
        steps.list.extend(patches);
        for (table, name, doc) in &finals {
            steps.list.push(json!({
                "op": "lookup",
                "name": name,
                "index": "by_legacy_id",
                "field": table.legacy_id.field,
                "value": doc[&table.legacy_id.field],
                "doc": doc,
            }));
        }

        for table in &plan.tables {
            steps.table_checks(plan, table);
        }
        steps
    }

    fn reject(&mut self, table: &TablePlan, doc: Map<String, Value>, error: &str) {
        self.rejects += 1;
        self.list
            .push(json!({ "op": "reject", "table": table.target, "doc": doc, "error": error }));
    }

    /// Starting from a valid document, one change at a time.
    fn table_checks(&mut self, plan: &Plan, table: &TablePlan) {
        let base = {
            let mut doc = full(table);
            doc.insert(table.legacy_id.field.clone(), json!("checks"));
            // every reference resolves to a document that exists by now
            for reference in &table.references {
                doc.insert(
                    reference.field.clone(),
                    id_of(&format!("{}#full", reference.parent_target)),
                );
            }
            doc
        };
        let changed = |field: &str, value: Option<Value>| {
            let mut doc = base.clone();
            match value {
                Some(value) => doc.insert(field.to_owned(), value),
                None => doc.remove(field),
            };
            doc
        };
        let missing = |field: &str| format!("Missing required field `{field}`");
        let legacy = &table.legacy_id.field;
        let nulls = table.nulls;

        self.reject(table, changed(legacy, Some(json!(42))), "Validator error");
        self.reject(table, changed(legacy, None), &missing(legacy));
        self.reject(table, changed("notInPlan", Some(json!(1))), "Unexpected field `notInPlan`");

        let merged = table.merges.iter().flat_map(|m| &m.fields).map(|f| (f, true));
        for (field, is_merged) in table.fields.iter().map(|f| (f, false)).chain(merged) {
            if let Some(wrong) = wrong(&field.conversion) {
                self.reject(table, changed(&field.field, Some(wrong)), "Validator error");
            }
            if !field.optional && !is_merged {
                self.reject(table, changed(&field.field, None), &missing(&field.field));
            }
            let null_ok = (field.optional && nulls == NullPolicy::Null)
                || matches!(field.conversion, Conversion::Json { .. });
            if !null_ok {
                self.reject(table, changed(&field.field, Some(Value::Null)), "Validator error");
            }
        }

        for reference in &table.references {
            let field = &reference.field;
            let parent = &reference.parent_target;
            let nullable = may_be_absent(reference) && nulls == NullPolicy::Null;
            if reference.orphans != OrphanPolicy::KeepLegacy {
                let error = if nullable {
                    "Validator error".to_owned()
                } else {
                    format!("Expected ID for table \"{parent}\"")
                };
                self.reject(table, changed(field, Some(json!("42"))), &error);
                // an id, but of another table's document
                let stranger = plan.tables.iter().find(|t| &t.target != parent).unwrap();
                let stranger = id_of(&format!("{}#full", stranger.target));
                self.reject(table, changed(field, Some(stranger)), &error);
            }
            if in_cycle(table, reference) || may_be_absent(reference) {
                // import inserts without it (a cycle), or transform leaves it out
                let mut doc = changed(field, None);
                doc.insert(legacy.clone(), json!(format!("without-{field}")));
                self.list.push(json!({
                    "op": "insert",
                    "name": format!("{}#without-{field}", table.target),
                    "table": table.target,
                    "doc": doc,
                }));
            } else {
                self.reject(table, changed(field, None), &missing(field));
            }
            if !nullable {
                self.reject(table, changed(field, Some(Value::Null)), "Validator error");
            }
        }
    }
}

/// The legacy id of document `n` of `table`: one column's string, or a JSON array of strings.
fn legacy_id(table: &TablePlan, n: &str) -> Value {
    if table.legacy_id.columns.len() == 1 {
        json!(n)
    } else {
        let parts: Vec<String> =
            table.legacy_id.columns.iter().map(|c| format!("{c}-{n}")).collect();
        json!(serde_json::to_string(&parts).unwrap())
    }
}

/// Every field present, references to the parents' first documents.
fn full(table: &TablePlan) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert(table.legacy_id.field.clone(), legacy_id(table, "1"));
    for field in table.fields.iter().chain(table.merges.iter().flat_map(|m| &m.fields)) {
        doc.insert(field.field.clone(), valid(&field.conversion, 0));
    }
    for reference in &table.references {
        doc.insert(reference.field.clone(), id_of(&format!("{}#full", reference.parent_target)));
    }
    doc
}

/// SQL NULL wherever the plan allows it, an orphan kept as its legacy id, no merged row.
fn sparse(table: &TablePlan) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert(table.legacy_id.field.clone(), legacy_id(table, "2"));
    for field in &table.fields {
        let value = if field.optional {
            null_value(table.nulls)
        } else {
            Some(valid(&field.conversion, 1))
        };
        if let Some(value) = value {
            doc.insert(field.field.clone(), value);
        }
    }
    for reference in &table.references {
        let value = if may_be_absent(reference) {
            null_value(table.nulls)
        } else if reference.orphans == OrphanPolicy::KeepLegacy {
            Some(json!("legacy-404"))
        } else {
            Some(id_of(&format!("{}#sparse", reference.parent_target)))
        };
        if let Some(value) = value {
            doc.insert(reference.field.clone(), value);
        }
    }
    doc
}
