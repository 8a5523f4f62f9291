//! One function per subcommand: settings in, stage run, summary out. The glue between the
//! command line, the stages and the terminal.

use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::data_dir::DataDir;
use crate::exit_code;
use crate::export;
use crate::output::{self, Bars, NoProgress, Reporter};
use crate::settings::{ExportSettings, Settings};

/// A subcommand that design.md promises and this release does not have yet.
#[derive(Debug, thiserror::Error)]
#[error("`migrate {command}` is not built yet")]
pub struct NotBuilt {
    pub command: &'static str,
}

impl NotBuilt {
    pub fn hint(&self) -> String {
        "this release has `migrate export`; README.md lists what comes next".into()
    }
}

/// Ctrl-C arrived; the stage stopped without leaving a file that looks complete.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: `migrate {command}` stopped before it finished")]
pub struct Interrupted {
    pub command: &'static str,
}

impl Interrupted {
    pub fn hint(&self) -> String {
        format!("no partial file was kept; run `migrate {}` again to start over", self.command)
    }
}

/// Runs the command; `Ok` carries the exit code of a command that ran to its end.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let settings = Settings::from_args(&cli.global);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Export(args) => {
            let export_settings = ExportSettings::from_args(&args);
            if cli.global.show_settings {
                return show_settings(&settings, export_settings.ok());
            }
            runtime.block_on(run_export(&settings, &export_settings?))
        }
        Command::Init(_) => Err(NotBuilt { command: "init" }.into()),
        Command::Transform(_) => Err(NotBuilt { command: "transform" }.into()),
        Command::Import(_) => Err(NotBuilt { command: "import" }.into()),
        Command::Verify(_) => Err(NotBuilt { command: "verify" }.into()),
        Command::Run(_) => Err(NotBuilt { command: "run" }.into()),
        Command::Status => Err(NotBuilt { command: "status" }.into()),
    }
}

fn show_settings(settings: &Settings, export: Option<ExportSettings>) -> anyhow::Result<u8> {
    let shown = json!({ "settings": settings, "export": export });
    output::print_result(&(serde_json::to_string_pretty(&shown)? + "\n"));
    Ok(exit_code::OK)
}

async fn run_export(settings: &Settings, export_settings: &ExportSettings) -> anyhow::Result<u8> {
    let data_dir = DataDir::new(&settings.data_dir);
    let reporter: Arc<dyn Reporter> =
        if settings.progress { Arc::new(Bars::default()) } else { Arc::new(NoProgress) };
    let report = tokio::select! {
        report = export::export(export_settings, &data_dir, reporter) => report?,
        _ = tokio::signal::ctrl_c() => return Err(Interrupted { command: "export" }.into()),
    };
    output::print_result(&output::export_summary(&report, settings.format));
    Ok(exit_code::OK)
}
