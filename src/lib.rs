//! `migrate`: move an application's data from PostgreSQL or Supabase into Convex.
//!
//! The pipeline is export → transform → import → verify; ARCHITECTURE.md maps the modules.

pub mod calendar;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod convex;
pub mod data_dir;
pub mod deployment;
pub mod dotenv;
pub mod dump;
pub mod exit_code;
pub mod export;
pub mod export_convex;
pub mod files;
pub mod finalize;
#[cfg(test)]
mod fuzz_support;
pub mod import;
pub mod json_text;
pub mod ledger;
pub mod manifest;
pub mod output;
pub mod plan;
pub mod rollback;
pub mod settings;
pub mod status;
pub mod sync;
pub mod targets;
pub mod tls_roots;
pub mod transform;
pub mod verify;
