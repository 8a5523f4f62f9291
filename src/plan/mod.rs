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
