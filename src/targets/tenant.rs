//! A target's own rows (tenant filters): its `[targets.NAME.tables."schema.table"]` filters,
//! in the plan's syntax, are a plan layer added to the plan's own filters for those tables.
//! `migrate transform --target NAME` writes that target's documents under its own data
//! directory, `data/deployments/<identity>/` (`transformed/`, `rejects/`), whose `raw/` and
//! `manifest.json` are the shared export's (symbolic links); import and verify of the target
//! read from there. So a row another tenant's filter leaves out is counted by verify as
//! filtered by that rule, and a reference to a parent of another tenant is an orphan, handled
//! by the reference's orphan policy: nothing vanishes without being counted.

use std::path::Path;

use crate::data_dir::{DataDir, DataDirError, create_private_dir};
use crate::plan::file::PlanSource;
use crate::plan::{self, Plan, PlanError};

/// The plan for a target with `filters` (the layer `targets::file` made): the plan's files with
/// the layer over them, and each table the layer names keeping the plan's own filters before
/// the target's (a row is the tenant's only when every filter holds). The hash is the plan's.
pub fn plan_for(
    plan_dir: &Path,
    catalog: &crate::catalog::Catalog,
    target: &str,
    filters: &str,
) -> Result<Plan, PlanError> {
    let base = plan::load(plan_dir, catalog)?;
    let layer = PlanSource {
        name: format!("targets.toml [targets.{target}]"),
        display: plan_dir.join("targets.toml").display().to_string(),
        number: u64::MAX,
        bytes: filters.as_bytes().to_vec(),
    };
    let mut plan = plan::load_with(plan_dir, catalog, Some(&layer))?;
    for table in &mut plan.tables {
        let Some(own) = base.tables.iter().find(|t| t.source == table.source) else { continue };
        prepend(&mut table.filters, &own.filters);
        for merge in &mut table.merges {
            if let Some(own) = own.merges.iter().find(|m| m.source == merge.source) {
                prepend(&mut merge.filters, &own.filters);
            }
        }
    }
    Ok(plan)
}

fn prepend(filters: &mut Vec<plan::RowFilter>, own: &[plan::RowFilter]) {
    let target: Vec<_> = filters.drain(..).filter(|f| !own.contains(f)).collect();
    filters.extend(own.iter().cloned());
    filters.extend(target);
}

/// The target's data directory, `data/deployments/<identity>/`, with links to the shared
/// export (`raw/`, `manifest.json`).
pub fn data_dir(data_dir: &DataDir, identity: &str) -> Result<DataDir, DataDirError> {
    let root = data_dir.path("deployments").join(identity);
    create_private_dir(&root)?;
    for shared in ["raw", "manifest.json"] {
        let link = root.join(shared);
        if std::fs::symlink_metadata(&link).is_err() {
            let to = Path::new("../..").join(shared);
            std::os::unix::fs::symlink(&to, &link).map_err(DataDirError::new("link", &link))?;
        }
    }
    Ok(DataDir::new(root))
}

/// After `transform --all-targets`: the rows of each Convex table that every target's filters
/// leave out, so that no deployment receives them while each target's verify counts them as
/// filtered and passes. `None` unless every target ran a tenant transform (a target without
/// filters takes every row). Counted as rows − Σ rows each target keeps: exact when the tenants'
/// filters do not overlap, a lower bound when they do; rows the plan's own filters leave out
/// count too, as no target takes them either.
pub fn rows_in_no_target(report: &super::TargetsReport) -> Vec<String> {
    let mut tables: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for run in &report.targets {
        let Some(transformed) = run.report.as_ref().and_then(|r| r["tables"].as_array()) else {
            return Vec::new(); // a failed target, or one taking the shared data: every row
        };
        for table in transformed {
            let (Some(name), Some(rows), Some(filtered)) =
                (table["table"].as_str(), table["rows"].as_u64(), table["filtered"].as_u64())
            else {
                continue;
            };
            let entry = tables.entry(name.to_owned()).or_insert((rows, 0));
            entry.1 += rows.saturating_sub(filtered);
        }
    }
    tables
        .into_iter()
        .filter(|(_, (rows, kept))| kept < rows)
        .map(|(table, (rows, kept))| {
            format!(
                "`{table}`: {} of its {rows} rows are in no target's data: every target's \
                 filters leave them out (rows the plan's own filters drop count here too); \
                 check the tenant filters in targets.toml",
                rows - kept
            )
        })
        .collect()
}
