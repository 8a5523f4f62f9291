//! The plan the generated module carries: the one line `const PLAN = {...};` of `migrate.ts`,
//! which `migrate:info` returns and which names each table's legacy id field and references.

use std::path::Path;

use serde::Deserialize;

use crate::error::SinkError;
use crate::id::{FIRST_TABLE_NUMBER, LAST_TABLE_NUMBER};
use crate::json::OrderedMap;

const PLAN_PREFIX: &str = "const PLAN = ";

/// A parsed plan: its JSON text (served verbatim by `migrate:info`) and its tables in order.
#[derive(Clone, Debug)]
pub struct Plan {
    json: String,
    tables: Vec<TablePlan>,
}

/// One table of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePlan {
    pub name: String,
    pub legacy_id_field: String,
    /// Reference field → parent table, in plan order.
    pub references: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct PlanJson {
    #[allow(dead_code)]
    version: serde::de::IgnoredAny,
    #[serde(rename = "planHash")]
    #[allow(dead_code)]
    plan_hash: String,
    tables: OrderedMap<String, TableJson>,
}

#[derive(Deserialize)]
struct TableJson {
    #[serde(rename = "legacyIdField")]
    legacy_id_field: String,
    #[serde(default)]
    references: OrderedMap<String, String>,
}

impl Plan {
    /// Reads the plan from a generated `migrate.ts`.
    pub fn from_module_file(path: impl AsRef<Path>) -> Result<Plan, SinkError> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path)
            .map_err(|e| SinkError::Plan(format!("cannot read {}: {e}", path.display())))?;
        parse_module(&source).map_err(|e| SinkError::Plan(format!("{}: {e}", path.display())))
    }

    /// Reads the plan from the text of a generated `migrate.ts`: its one line starting with
    /// `const PLAN = `, followed by compact JSON and `;`.
    pub fn from_module(source: &str) -> Result<Plan, SinkError> {
        parse_module(source).map_err(SinkError::Plan)
    }

    /// Reads the plan from its JSON text.
    pub fn from_json(json: &str) -> Result<Plan, SinkError> {
        parse_json(json).map_err(SinkError::Plan)
    }

    /// The plan's JSON, as `migrate:info` returns it.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The tables, in plan order (the order of their table numbers).
    pub fn tables(&self) -> &[TablePlan] {
        &self.tables
    }
}

/// [`Plan::from_module`], failing with the message of a [`SinkError::Plan`].
fn parse_module(source: &str) -> Result<Plan, String> {
    let mut lines = source.lines().filter(|line| line.starts_with(PLAN_PREFIX));
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err(format!(
            "the module has no line, or more than one, starting with `{PLAN_PREFIX}`"
        ));
    };
    let json = line[PLAN_PREFIX.len()..].trim_end();
    let json = json.strip_suffix(';').unwrap_or(json);
    parse_json(json)
}

/// [`Plan::from_json`], failing with the message of a [`SinkError::Plan`].
fn parse_json(json: &str) -> Result<Plan, String> {
    let parsed: PlanJson =
        serde_json::from_str(json).map_err(|e| format!("PLAN is not a plan: {e}"))?;
    let tables: Vec<TablePlan> = parsed
        .tables
        .0
        .into_iter()
        .map(|(name, table)| TablePlan {
            name,
            legacy_id_field: table.legacy_id_field,
            references: table.references.0,
        })
        .collect();
    let max_tables = (LAST_TABLE_NUMBER - FIRST_TABLE_NUMBER + 1) as usize;
    if tables.len() > max_tables {
        return Err(format!("more than {max_tables} tables"));
    }
    // Kept as written (compact in the module, table order included): `info` returns it.
    Ok(Plan { json: json.trim().to_owned(), tables })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"{"version":1,"planHash":"blake3:ab","tables":{"users":{"legacyIdField":"legacyId","references":{}},"posts":{"legacyIdField":"legacyId","references":{"authorId":"users","parentId":"posts"}}}}"#;

    #[test]
    fn the_plan_line_of_a_module_is_read_in_order() {
        let module = format!(
            "import {{ v }} from \"convex/values\";\n\nconst PLAN = {PLAN};\nexport const info = 1;\n"
        );
        let plan = Plan::from_module(&module).unwrap();
        assert_eq!(plan.json(), PLAN);
        let names: Vec<&str> = plan.tables().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["users", "posts"]);
        assert_eq!(
            plan.tables()[1].references,
            [
                ("authorId".to_owned(), "users".to_owned()),
                ("parentId".to_owned(), "posts".to_owned())
            ]
        );
    }

    #[test]
    fn a_module_without_exactly_one_plan_line_is_refused() {
        assert!(matches!(Plan::from_module("const X = 1;"), Err(SinkError::Plan(_))));
        let twice = format!("const PLAN = {PLAN};\nconst PLAN = {PLAN};\n");
        assert!(matches!(Plan::from_module(&twice), Err(SinkError::Plan(_))));
        assert!(matches!(Plan::from_json(r#"{"version":1}"#), Err(SinkError::Plan(_))));
    }
}
