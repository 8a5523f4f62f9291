//! The mapping plan: the versioned TOML files in the plan directory (docs/plan-format.md),
//! resolved against the catalog into a [`Plan`] that transform executes and codegen turns into
//! the Convex schema.

pub mod model;

pub use self::model::*;
