//! The order tables are imported in: every parent before its children, from the plan's
//! references. References in a foreign-key cycle (self-references included) cannot be ordered;
//! they are left out of the first pass and patched in by the second (`codegen::cycle_references`
//! names them, and the schema makes exactly those optional).

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::codegen::cycle_references;
use crate::plan::{Plan, TablePlan, UniqueKey};

/// One Convex table as import handles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStep {
    pub table: String,
    pub legacy_field: String,
    /// Reference fields sent by the second pass.
    pub deferred: Vec<String>,
    /// Field sets unique in the source, which verify checks in Convex.
    pub unique: Vec<UniqueKey>,
    /// Fields holding files (`policy = "file"`): references to `_storage` by object key.
    pub file_fields: Vec<String>,
}

impl TableStep {
    fn of(table: &TablePlan, deferred: Vec<String>) -> Self {
        TableStep {
            table: table.target.clone(),
            legacy_field: table.legacy_id.field.clone(),
            deferred,
            unique: table.indexes.unique.clone(),
            file_fields: table.files.iter().map(|f| f.field.clone()).collect(),
        }
    }
}

/// The plan's tables, parents first; among tables free to go, plan order.
pub fn import_order(plan: &Plan) -> Vec<TableStep> {
    let cycles = cycle_references(plan);
    let mut parents: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for table in &plan.tables {
        let edges = parents.entry(&table.target).or_default();
        for reference in &table.references {
            if !cycles.contains(&(table.target.clone(), reference.field.clone())) {
                edges.insert(&reference.parent_target);
            }
        }
    }
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::with_capacity(plan.tables.len());
    while order.len() < plan.tables.len() {
        let before = order.len();
        for table in &plan.tables {
            let ready = !placed.contains(table.target.as_str())
                && parents[table.target.as_str()].iter().all(|p| placed.contains(p));
            if ready {
                placed.insert(&table.target);
                let deferred = table
                    .references
                    .iter()
                    .filter(|r| cycles.contains(&(table.target.clone(), r.field.clone())))
                    .map(|r| r.field.clone())
                    .collect();
                order.push(TableStep::of(table, deferred));
                break;
            }
        }
        // Without cycle references the graph has no cycle, so some table is always ready;
        // a parent outside the plan cannot hold anything up either.
        if order.len() == before {
            for table in &plan.tables {
                if placed.insert(&table.target) {
                    order.push(TableStep::of(table, Vec::new()));
                }
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableName;
    use crate::plan::{LegacyId, NullPolicy, OrphanPolicy, ReferencePlan, TablePlan};

    fn table(target: &str, parents: &[(&str, &str)]) -> TablePlan {
        TablePlan {
            source: TableName::new("public", target),
            target: target.into(),
            legacy_id: LegacyId { field: "legacyId".into(), columns: vec!["id".into()] },
            fields: vec![],
            references: parents
                .iter()
                .map(|(field, parent)| ReferencePlan {
                    constraint: format!("{target}_{field}"),
                    columns: vec![field.to_string()],
                    field: field.to_string(),
                    parent: TableName::new("public", *parent),
                    parent_target: parent.to_string(),
                    orphans: OrphanPolicy::Fail,
                    optional: false,
                })
                .collect(),
            files: Vec::new(),
            filters: vec![],
            merges: vec![],
            nulls: NullPolicy::Omit,
            indexes: Default::default(),
            component: None,
        }
    }

    fn plan(tables: Vec<TablePlan>) -> Plan {
        Plan { tables, skipped: vec![], hash: "blake3:0".into(), warnings: vec![], files: None }
    }

    #[test]
    fn parents_come_first_and_cycles_are_deferred() {
        let plan = plan(vec![
            table("comments", &[("postId", "posts"), ("authorId", "users")]),
            table("posts", &[("authorId", "users")]),
            table("users", &[("managerId", "users"), ("teamId", "teams")]),
            table("teams", &[("ownerId", "users")]),
        ]);
        let order = import_order(&plan);
        let names: Vec<_> = order.iter().map(|s| s.table.as_str()).collect();
        assert_eq!(names, ["users", "posts", "comments", "teams"]);
        assert_eq!(order[0].deferred, ["managerId", "teamId"]);
        assert_eq!(order[3].deferred, ["ownerId"]);
        assert!(order[1].deferred.is_empty());
    }
}
