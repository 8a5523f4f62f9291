//! Everything that reaches the terminal: results on stdout (a summary table or JSON), and on
//! stderr logs, progress bars and errors. Stage code reports through [`Reporter`] and never
//! prints; only this module knows indicatif.

mod progress;
mod settings;
mod summary;

use std::io::Write;

pub use self::progress::{Bars, Lines, NoProgress, format_rate, progress_interval};
pub use self::settings::settings_summary;
pub use self::summary::{
    export_summary, files_dry_run, files_summary, finalize_summary, import_summary, init_summary,
    ledger_summary, restore_summary, rollback_summary, status_summary, sync_summary,
    targets_summary, transform_summary, verify_summary,
};
use crate::cli::GlobalArgs;
use crate::commands::{Interrupted, NoCatalog};
use crate::data_dir::DataDirError;
use crate::exit_code;
use crate::export::ExportError;
use crate::import::ImportError;
use crate::plan::PlanError;
use crate::plan::generated::GeneratedError;
use crate::settings::SettingsError;
use crate::transform::TransformError;

/// How a stage tells the person watching how far it is. Called per table and every few
/// thousand rows, never per row.
pub trait Reporter: Send + Sync {
    fn table_started(
        &self,
        table: &str,
        estimated_rows: Option<u64>,
        unit: Unit,
    ) -> Box<dyn TableProgress>;
}

/// What a bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Rows,
    Documents,
    Files,
    Bytes,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::Rows => "rows",
            Unit::Documents => "docs",
            Unit::Files => "files",
            Unit::Bytes => "bytes",
        }
    }
}

pub trait TableProgress: Send {
    /// Rows done so far in this table.
    fn rows(&mut self, rows: u64);
    fn finished(&mut self, rows: u64);
}

/// Logs go to stderr: warnings by default, `-v` info, `-vv` debug, `-vvv` trace, `-q` errors
/// only; `RUST_LOG` overrides all of these.
pub fn init_logging(args: &GlobalArgs) {
    let level = match (args.quiet, args.verbose) {
        (q, _) if q > 0 => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(use_colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR"),
        ))
        .try_init();
}

/// Colour only on a terminal, and never when `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>).
fn use_colour(on_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    on_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Prints `error: …`, one `caused by: …` per source and a `hint: …` when one helps, to stderr;
/// returns the exit code the error calls for.
pub fn report_error(error: &anyhow::Error) -> u8 {
    let (text, code) = render_error(error);
    let _ = std::io::stderr().write_all(text.as_bytes());
    code
}

pub fn render_error(error: &anyhow::Error) -> (String, u8) {
    let mut text = format!("error: {error}\n");
    for cause in error.chain().skip(1) {
        text.push_str(&format!("  caused by: {cause}\n"));
    }
    let (code, hint) = classify(error);
    if let Some(hint) = hint {
        text.push_str(&format!("  hint: {hint}\n"));
    }
    (text, code)
}

/// The exit code and hint of the first error in the chain that knows them.
fn classify(error: &anyhow::Error) -> (u8, Option<String>) {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<ExportError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<crate::export_convex::ConvexSourceError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<crate::dump::DumpError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<ImportError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<crate::finalize::FinalizeError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<crate::ledger::LedgerError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<crate::files::FilesError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<TransformError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<SettingsError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<DataDirError>() {
            return (exit_code::LOCAL_IO, e.hint());
        }
        if let Some(e) = cause.downcast_ref::<PlanError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<crate::targets::TargetsError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<GeneratedError>() {
            return (e.exit_code(), e.hint());
        }
        if cause.downcast_ref::<NoCatalog>().is_some() {
            return (
                exit_code::USAGE,
                Some(
                    "pass --database-url (or set DATABASE_URL, or libpq's PGHOST, PGDATABASE, …) \
                     or --from-dump FILE, or run `migrate export` first"
                        .into(),
                ),
            );
        }
        if let Some(e) = cause.downcast_ref::<Interrupted>() {
            return (exit_code::INTERRUPTED, Some(e.hint()));
        }
    }
    (
        exit_code::INTERNAL,
        Some("this is a bug in migrate: please report it with the command you ran".into()),
    )
}

/// A target's error as it happens (`--all-targets`): its rendered lines, each prefixed with
/// the target's name, to stderr.
pub fn report_target_error(target: &str, rendered: &str) {
    let text: String = rendered.lines().map(|line| format!("[{target}] {line}\n")).collect();
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Writes a result to stdout; a closed pipe (`migrate export | head`) is not an error.
pub fn print_result(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_render_with_causes_hint_and_code() {
        let error = anyhow::Error::new(SettingsError::InvalidVariable {
            name: "PGPORT",
            value: "x".into(),
            expected: "a port number",
        })
        .context("exporting");
        let (text, code) = render_error(&error);
        assert_eq!(code, exit_code::USAGE);
        assert_eq!(
            text,
            "error: exporting\n  caused by: `PGPORT=x` is not a port number\n  hint: fix PGPORT \
             or unset it (libpq's variables are read as psql reads them)\n"
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some("".into())));
        assert!(!use_colour(true, Some("1".into())));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn unknown_errors_are_internal() {
        let (_, code) = render_error(&anyhow::anyhow!("boom"));
        assert_eq!(code, exit_code::INTERNAL);
    }
}
