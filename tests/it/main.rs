//! The integration tests: one binary, a real PostgreSQL (MIGRATE_TEST_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres), one database per test, the real `migrate`
//! binary. `scripts/test.sh` runs them, starting a throwaway cluster when no server answers.

mod auth_presets;
mod bad_input;
mod codegen_convex_test;
mod codegen_support;
mod codegen_tsc;
mod convex_app;
mod convex_env;
mod convex_module;
mod convex_server;
mod convex_source;
mod export_cli;
mod export_consistency;
mod export_dump;
mod export_golden;
mod export_libpq;
mod export_tls;
mod files;
mod finalize;
mod import_concurrency;
mod import_crashes;
mod import_faults;
mod import_losses;
mod import_pipeline;
mod import_targets;
mod indexes;
mod output_ci;
mod plan_dir;
mod plan_errors;
mod plan_init;
mod plan_shapes;
mod plan_support;
mod references;
mod rollback;
mod security;
mod show_settings;
mod support;
mod sync;
mod transform_cli;
mod transform_keys;
mod transform_losses;
mod transform_pipeline;
mod transform_timestamps;
mod verify_ranges;
mod verify_reconcile;
