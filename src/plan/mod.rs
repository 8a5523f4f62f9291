//! The mapping plan: the versioned TOML files in the plan directory (docs/plan-format.md),
//! resolved against the catalog into a [`Plan`] that transform executes and codegen turns into
//! the Convex schema (`codegen`) and the Convex functions import calls (`migrate_ts`).

pub mod app_schema;
pub mod changes;
pub mod codegen;
pub mod convex_app;
pub mod error;
pub mod file;
pub mod generated;
pub mod indexes;
pub mod init;
pub mod migrate_ts;
pub mod model;
pub mod presets;
pub mod resolve;

pub use self::error::{Location, PlanError, PlanErrorKind};
pub use self::init::initial_plan;
pub use self::model::*;
pub use self::resolve::{current_hash, keyless_tables, load, load_with};

/// Whether the plan keeps the legacy id fields after `migrate finalize`
/// (`[finalize] keep_legacy_ids = true` in any plan file, the last one saying so winning).
pub fn keep_legacy_ids(plan_dir: &std::path::Path) -> Result<bool, PlanError> {
    let mut layer = file::Layer::default();
    for source in file::read_dir(plan_dir)?.sources {
        file::merge(&mut layer, file::parse(&source)?);
    }
    Ok(layer.finalize.keep_legacy_ids.is_some_and(|kept| kept.value))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_last_plan_file_saying_so_decides_whether_finalize_keeps_legacy_ids() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("0001_initial.toml", "[defaults]\nnulls = \"omit\"\n");
        assert!(!super::keep_legacy_ids(dir.path()).unwrap());
        write("0002_keep.toml", "[finalize]\nkeep_legacy_ids = true\n");
        assert!(super::keep_legacy_ids(dir.path()).unwrap());
        write("0003_drop.toml", "[finalize]\nkeep_legacy_ids = false\n");
        assert!(!super::keep_legacy_ids(dir.path()).unwrap());
        write("0004_bad.toml", "[finalize]\nkeep_legacy_id = true\n");
        let error = super::keep_legacy_ids(dir.path()).unwrap_err().to_string();
        assert!(error.contains("keep_legacy_id"), "{error}");
    }
}
