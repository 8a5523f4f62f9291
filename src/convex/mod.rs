//! Convex's data model as the wire sees it, shared by transform (builds documents), import
//! (sends them) and verify (reads them back).
//!
//! - [`value`]: the [`Value`] type, its tagged JSON encoding and Convex's size measure.
//! - [`rules`]: which documents, field names and table names Convex accepts, checked before
//!   sending so a bad row is rejected with a path and a reason instead of failing a whole batch.
//! - [`id`]: the shape of Convex document ids, checkable offline.
//! - [`client`]: Convex's HTTP API, with retries (the one module here that does IO).
//! - [`validator`]: validators as a deployment's schema exports them, and as TypeScript.
//! - [`limiter`]: how many calls may be in flight, adapted to how the deployment answers.

pub mod client;
#[cfg(test)]
mod fuzz;
pub mod id;
pub mod limiter;
pub mod rules;
pub mod validator;
pub mod value;

pub use id::is_document_id;
pub use rules::{Rule, Violation, check_document, check_field_name, check_table_name};
pub use value::{Document, Value, document_size, write_document};
