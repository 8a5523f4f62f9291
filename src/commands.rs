//! One function per subcommand: settings in, stage run, summary out. The glue between the
//! command line, the stages and the terminal.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use crate::cli::{
    BatchArgs, Cli, Command, ConvexArgs, FinalizeArgs, ImportArgs, OutputFormat, RollbackArgs,
    RunArgs, SyncArgs, TargetArgs, VerifyArgs,
};
use crate::convex::client::RetryPolicy;
use crate::data_dir::DataDir;
use crate::exit_code;
use crate::export;
use crate::files;
use crate::import::state::place::StatePlace;
use crate::import::{self, ConvexTarget, ImportError, ImportOptions};
use crate::manifest::{Manifest, ManifestError};
use crate::output::{self, Bars, Lines, NoProgress, Reporter};
use crate::plan::{self, generated};
use crate::settings::{ExportSettings, InitSettings, Progress, Settings};
use crate::status;
use crate::targets::{Deployment, Outcome};
use crate::transform::{self, TransformOptions};
use crate::verify;

/// Ctrl-C arrived; the stage stopped without leaving a file that looks complete.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: `migrate {command}` stopped before it finished")]
pub struct Interrupted {
    pub command: &'static str,
}

impl Interrupted {
    pub fn hint(&self) -> String {
        format!(
            "nothing half-written was left looking complete; run `migrate {}` again to start over",
            self.command
        )
    }
}

/// Runs the command; `Ok` carries the exit code of a command that ran to its end. `matches`
/// (what clap parsed `cli` from) tells `--show-settings` where each value came from.
pub fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<u8> {
    if cli.global.show_settings {
        let shown = crate::settings::shown::show(&cli, matches)?;
        output::print_result(&output::settings_summary(&shown, cli.global.format));
        return Ok(exit_code::OK);
    }
    let settings = Settings::from_args(&cli.global);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Export(args) if args.from_convex.is_some() => {
            runtime.block_on(run_export_from_convex(&settings, &args))
        }
        Command::Export(args) => match &args.from_dump {
            Some(dump) => runtime.block_on(run_export_from_dump(
                &settings,
                &ExportSettings::from_args(&args)?,
                dump,
            )),
            None => runtime.block_on(run_export(&settings, &ExportSettings::from_args(&args)?)),
        },
        Command::Init(args) => {
            runtime.block_on(run_init(&settings, &InitSettings::from_args(&args)?))
        }
        Command::Transform(args) if args.targets.any() && !args.dry_run => {
            runtime.block_on(run_transform_targets(&settings, &args))
        }
        Command::Transform(args) => {
            let convex_dir = args.convex_dir.convex_dir.clone();
            let options = TransformOptions {
                dry_run: args.dry_run,
                sample: args.sample,
                max_rejected: args.max_rejected,
                cancel: Arc::default(),
            };
            runtime.block_on(run_transform(settings, options, &convex_dir))
        }
        Command::Import(args) if args.targets.any() && !args.dry_run => {
            runtime.block_on(run_import_targets(&settings, &args))
        }
        Command::Import(args) => runtime.block_on(run_import(&settings, &args)),
        Command::Sync(args) if args.targets.any() => {
            runtime.block_on(run_sync_targets(&settings, &args))
        }
        Command::Sync(args) => runtime.block_on(run_sync(&settings, &args)),
        Command::Verify(args) if args.targets.any() => {
            runtime.block_on(run_verify_targets(&settings, &args))
        }
        Command::Verify(args) => runtime.block_on(run_verify(&settings, &args)),
        Command::Run(args) => {
            let export_settings = ExportSettings::from_args(&args.export)?;
            runtime.block_on(run_all(settings, export_settings, &args))
        }
        Command::Status(args) if args.targets.any() => {
            runtime.block_on(run_status_targets(&settings, &args))
        }
        Command::Status(args) => {
            let data_dir = DataDir::new(&settings.data_dir);
            let mut report =
                status::status(&data_dir, &settings.plan_dir, &args.convex_dir.convex_dir)?;
            if args.ledger {
                let client = convex_target(&settings, &args.convex)?.client()?;
                let entries = runtime
                    .block_on(crate::ledger::list(&client))
                    .context("reading the deployment's ledger (migrate:ledgerList)")?;
                report.ledger = Some(entries);
            }
            output::print_result(&output::status_summary(&report, settings.format));
            Ok(exit_code::OK)
        }
        Command::Rollback(args) if args.targets.any() => {
            runtime.block_on(run_rollback_targets(&settings, &args))
        }
        Command::Rollback(args) => runtime.block_on(run_rollback(&settings, &args)),
        Command::Finalize(args) => runtime.block_on(run_finalize(&settings, &args)),
    }
}

/// `export --from-convex`: a Convex deployment as the source.
async fn run_export_from_convex(
    settings: &Settings,
    args: &crate::cli::ExportArgs,
) -> anyhow::Result<u8> {
    let report = convex_export_stage(settings, args).await?;
    output::print_result(&output::export_summary(&report, settings.format));
    Ok(exit_code::OK)
}

/// The export from a Convex deployment (`--from-convex`, `--component`, `--tables`), its key
/// from the environment only.
async fn convex_export_stage(
    settings: &Settings,
    args: &crate::cli::ExportArgs,
) -> anyhow::Result<export::ExportReport> {
    let url = args.from_convex.as_deref().unwrap_or_default();
    let url = import::convex_url(Some(url))?;
    let key = ["MIGRATE_SOURCE_DEPLOY_KEY", "CONVEX_DEPLOY_KEY"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .ok_or(ImportError::MissingDeployKey)?;
    let tables = match args.tables.as_deref() {
        Some(list) => crate::settings::parse_table_list(list)?,
        None => Vec::new(),
    };
    let source = crate::export_convex::ConvexSource {
        url,
        deploy_key: crate::settings::Secret::new(key),
        tables,
        component: args.component.clone(),
        timeout: std::time::Duration::from_secs(60),
        retry: RetryPolicy::default(),
    };
    let data_dir = DataDir::new(&settings.data_dir);
    tokio::select! {
        report = crate::export_convex::export(&source, &data_dir, reporter(settings)) => Ok(report?),
        _ = tokio::signal::ctrl_c() => Err(Interrupted { command: "export" }.into()),
    }
}

async fn run_export(settings: &Settings, export_settings: &ExportSettings) -> anyhow::Result<u8> {
    let report = export_stage(settings, export_settings).await?;
    output::print_result(&output::export_summary(&report, settings.format));
    Ok(exit_code::OK)
}

async fn export_stage(
    settings: &Settings,
    export_settings: &ExportSettings,
) -> anyhow::Result<export::ExportReport> {
    let data_dir = DataDir::new(&settings.data_dir);
    tokio::select! {
        report = export::export(export_settings, &data_dir, reporter(settings)) => Ok(report?),
        _ = tokio::signal::ctrl_c() => Err(Interrupted { command: "export" }.into()),
    }
}

async fn run_export_from_dump(
    settings: &Settings,
    export_settings: &ExportSettings,
    dump: &Path,
) -> anyhow::Result<u8> {
    let (restored, exported) = dump_export_stage(settings, export_settings, dump).await?;
    match settings.format {
        OutputFormat::Text => {
            output::print_result(&output::restore_summary(&restored, settings.format));
            output::print_result(&output::export_summary(&exported, settings.format));
        }
        OutputFormat::Json => {
            let mut report = json!(exported);
            report["restore"] = json!(restored);
            output::print_result(&(serde_json::to_string_pretty(&report)? + "\n"));
        }
    }
    Ok(exit_code::OK)
}

/// `--from-dump`: the dump restored into a throwaway cluster, then exported from it as from a
/// live server, the manifest naming the file. The cluster is stopped and removed however this
/// ends (done, failed, Ctrl-C).
async fn dump_export_stage(
    settings: &Settings,
    export_settings: &ExportSettings,
    dump: &Path,
) -> anyhow::Result<(crate::dump::RestoreReport, export::ExportReport)> {
    let data_dir = DataDir::new(&settings.data_dir);
    let reporter = reporter(settings);
    let work = async {
        let restored = crate::dump::restore(dump, export_settings.jobs.get(), reporter.as_ref())
            .await
            .with_context(|| format!("restoring the dump `{}`", dump.display()))?;
        let from_cluster = ExportSettings {
            database_url: restored.database_url.clone(),
            ..export_settings.clone()
        };
        let source = crate::manifest::Source::Dump { dump: restored.report.dump.clone() };
        let exported =
            export::export_recording(&from_cluster, &data_dir, Arc::clone(&reporter), Some(source))
                .await?;
        drop(restored.cluster);
        anyhow::Ok((restored.report, exported))
    };
    tokio::select! {
        done = work => done,
        _ = tokio::signal::ctrl_c() => Err(Interrupted { command: "export" }.into()),
    }
}

fn reporter(settings: &Settings) -> Arc<dyn Reporter> {
    match settings.progress {
        Progress::Bars => Arc::new(Bars::default()),
        Progress::Lines => Arc::new(Lines::new(output::progress_interval())),
        Progress::Off => Arc::new(NoProgress),
    }
}

/// Transform is synchronous (rayon); it runs on a blocking thread so that Ctrl-C can tell it to
/// stop. It stops between blocks of rows without finalizing anything, and we wait for that:
/// a runtime would otherwise wait for the thread to finish the whole job.
async fn run_transform(
    settings: Settings,
    options: TransformOptions,
    convex_dir: &Path,
) -> anyhow::Result<u8> {
    let format = settings.format;
    let (report, code) = transform_stage(settings, options, convex_dir).await?;
    output::print_result(&output::transform_summary(&report, format));
    Ok(code)
}

/// The report and the exit code it calls for; its warnings say when the Convex files in
/// `convex_dir` were generated from another plan.
async fn transform_stage(
    settings: Settings,
    options: TransformOptions,
    convex_dir: &Path,
) -> anyhow::Result<(transform::TransformReport, u8)> {
    let data_dir = DataDir::new(&settings.data_dir);
    let reporter = reporter(&settings);
    let (plan_dir, run_options) = (settings.plan_dir.clone(), options.clone());
    let mut work = tokio::task::spawn_blocking(move || {
        transform::transform(&data_dir, &plan_dir, &run_options, reporter.as_ref())
    });
    let joined = tokio::select! {
        joined = &mut work => joined,
        _ = tokio::signal::ctrl_c() => {
            options.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            work.await
        }
    };
    let report = match joined.context("transform stopped unexpectedly")? {
        Err(transform::TransformError::Interrupted) => {
            return Err(Interrupted { command: "transform" }.into());
        }
        report => report?,
    };
    let mut report = report;
    report.warnings.extend(plan::convex_app::stale_warning(convex_dir, &report.plan_hash));
    report.warnings.extend(plan::convex_app::after_import_warning(convex_dir));
    let allowed = options.max_rejected.unwrap_or(0);
    let code = if report.rejected > allowed || report.stopped_early {
        exit_code::REJECTED_ROWS
    } else {
        exit_code::OK
    };
    Ok((report, code))
}

async fn run_import(settings: &Settings, args: &ImportArgs) -> anyhow::Result<u8> {
    let data_dir = DataDir::new(&settings.data_dir);
    let inputs = import::read_inputs(&data_dir, &settings.plan_dir)?;
    if args.dry_run {
        if inputs.files.is_some() {
            let objects = files::read_objects(&data_dir)?;
            output::print_result(&output::files_dry_run(
                &files::per_bucket(&objects),
                settings.format,
            ));
        }
        let report = import::dry_run(&inputs, args.batches.batch_size.get());
        output::print_result(&output::import_summary(&report, settings.format));
        return Ok(exit_code::OK);
    }
    let options = import_options(settings, &args.convex, &args.batches, args.force)?;
    if let Some(files) = files_stage(reporter(settings), &data_dir, &inputs, &options).await? {
        output::print_result(&output::files_summary(&files, settings.format));
    }
    let report = import::import(&data_dir, &inputs, &options, reporter(settings)).await?;
    output::print_result(&output::import_summary(&report, settings.format));
    Ok(if report.rejected > 0 { exit_code::REJECTED_ROWS } else { exit_code::OK })
}

async fn run_rollback(settings: &Settings, args: &RollbackArgs) -> anyhow::Result<u8> {
    let data_dir = DataDir::new(&settings.data_dir);
    let inputs = import::read_inputs(&data_dir, &settings.plan_dir)?;
    let target = convex_target(settings, &args.convex)?;
    let identity = crate::deployment::identity(&target.url, Some(target.deploy_key.expose()));
    let client = target.client()?;
    let options = crate::rollback::RollbackOptions {
        dry_run: args.dry_run,
        force: args.force,
        batch_size: args.batch_size.get(),
        state: StatePlace::activate(&data_dir, &identity).map_err(ImportError::from)?.state,
    };
    let work = crate::rollback::rollback(&client, &data_dir, &inputs, &options, reporter(settings));
    let report = tokio::select! {
        report = work => report?,
        _ = tokio::signal::ctrl_c() => return Err(Interrupted { command: "rollback" }.into()),
    };
    output::print_result(&output::rollback_summary(&report, settings.format));
    Ok(exit_code::OK)
}

async fn run_finalize(settings: &Settings, args: &FinalizeArgs) -> anyhow::Result<u8> {
    let data_dir = DataDir::new(&settings.data_dir);
    let inputs = import::read_inputs(&data_dir, &settings.plan_dir)?;
    let target = convex_target(settings, &args.convex)?;
    let identity = crate::deployment::identity(&target.url, Some(target.deploy_key.expose()));
    let client = target.client()?;
    let options = crate::finalize::FinalizeOptions {
        batch_size: args.batch_size.get(),
        force: args.force,
        state: StatePlace::activate(&data_dir, &identity).map_err(ImportError::from)?.state,
        identity,
    };
    let work = crate::finalize::finalize(
        &client,
        &data_dir,
        &inputs,
        &settings.plan_dir,
        &args.convex_dir.convex_dir,
        &options,
        reporter(settings),
    );
    let report = tokio::select! {
        report = work => report?,
        _ = tokio::signal::ctrl_c() => return Err(Interrupted { command: "finalize" }.into()),
    };
    output::print_result(&output::finalize_summary(&report, settings.format));
    Ok(exit_code::OK)
}

/// `migrate run`: each stage in turn, each printing its summary (as text, or with `--format
/// json` one JSON line per stage: `{"stage": ..., "report": ...}`); the first stage that does
/// not succeed stops the chain with its exit code.
async fn run_all(
    settings: Settings,
    export_settings: ExportSettings,
    args: &RunArgs,
) -> anyhow::Result<u8> {
    // Check the Convex settings before spending time on the export; a dry run needs none.
    let options = match args.dry_run {
        true => None,
        false => {
            Some(import_options(&settings, &args.convex, &args.batches, args.force || args.sync)?)
        }
    };
    let format = settings.format;
    let print = |stage: &str, text: String, report: serde_json::Value| match format {
        OutputFormat::Text => output::print_result(&format!("\n── {stage}\n{text}")),
        OutputFormat::Json => {
            output::print_result(&(json!({ "stage": stage, "report": report }).to_string() + "\n"))
        }
    };
    let exported = match &args.export.from_dump {
        None if args.export.from_convex.is_some() => {
            convex_export_stage(&settings, &args.export).await?
        }
        Some(dump) => {
            let (restored, exported) = dump_export_stage(&settings, &export_settings, dump).await?;
            print("restore", output::restore_summary(&restored, format), json!(restored));
            exported
        }
        None => export_stage(&settings, &export_settings).await?,
    };
    print("export", output::export_summary(&exported, format), json!(exported));

    let transform_options = TransformOptions {
        dry_run: false,
        sample: 0,
        max_rejected: args.max_rejected,
        cancel: Arc::default(),
    };
    let convex_dir = &args.convex_dir.convex_dir;
    let (transformed, code) =
        transform_stage(settings.clone(), transform_options, convex_dir).await?;
    print("transform", output::transform_summary(&transformed, format), json!(transformed));
    if code != exit_code::OK {
        return Ok(code);
    }

    let data_dir = DataDir::new(&settings.data_dir);
    let inputs = import::read_inputs(&data_dir, &settings.plan_dir)?;
    let Some(options) = options else {
        if inputs.files.is_some() {
            let buckets = files::per_bucket(&files::read_objects(&data_dir)?);
            print("files", output::files_dry_run(&buckets, OutputFormat::Text), json!(buckets));
        }
        let planned = import::dry_run(&inputs, args.batches.batch_size.get());
        print("import", output::import_summary(&planned, format), json!(planned));
        return Ok(code);
    };
    // A sync moves the files itself (uploads, and deletes of objects gone).
    if !args.sync
        && let Some(files) = files_stage(reporter(&settings), &data_dir, &inputs, &options).await?
    {
        print("files", output::files_summary(&files, OutputFormat::Text), json!(files));
    }
    let rejected = if args.sync {
        let sync_options = crate::sync::SyncOptions { import: options.clone(), deletes: true };
        let synced =
            crate::sync::sync(&data_dir, &inputs, &sync_options, reporter(&settings)).await?;
        print("sync", output::sync_summary(&synced, format), json!(synced));
        synced.rejected
    } else {
        let imported = import::import(&data_dir, &inputs, &options, reporter(&settings)).await?;
        print("import", output::import_summary(&imported, format), json!(imported));
        imported.rejected
    };

    let verify_options = verify::VerifyOptions::new(args.show, args.accept_rejected);
    let mut verified = tokio::select! {
        report = verify::verify(&data_dir, &inputs, &options.target, &verify_options, reporter(&settings)) => report?,
        _ = tokio::signal::ctrl_c() => return Err(Interrupted { command: "verify" }.into()),
    };
    verify_files(&data_dir, &inputs, &options.target, &mut verified).await?;
    print("verify", output::verify_summary(&verified, format), json!(verified));
    Ok(if rejected > 0 {
        exit_code::REJECTED_ROWS
    } else if verified.verified {
        exit_code::OK
    } else {
        exit_code::VERIFY_DIFFERENCES
    })
}

async fn run_sync(settings: &Settings, args: &SyncArgs) -> anyhow::Result<u8> {
    let data_dir = DataDir::new(&settings.data_dir);
    let inputs = import::read_inputs(&data_dir, &settings.plan_dir)?;
    // A sync may follow a plan change: the state's plan is the one it replaces, not refused.
    let options = import_options(settings, &args.convex, &args.batches, true)?;
    let report = if args.dry_run {
        crate::sync::dry_run(&data_dir, &inputs, &options).await?
    } else {
        let options = crate::sync::SyncOptions { import: options, deletes: !args.no_deletes };
        crate::sync::sync(&data_dir, &inputs, &options, reporter(settings)).await?
    };
    output::print_result(&output::sync_summary(&report, settings.format));
    Ok(if report.rejected > 0 { exit_code::REJECTED_ROWS } else { exit_code::OK })
}

/// `migrate sync --target …`: each deployment synced from its own record of what it received.
async fn run_sync_targets(settings: &Settings, args: &SyncArgs) -> anyhow::Result<u8> {
    let shared = DataDir::new(&settings.data_dir);
    let selected = deployments(settings, &args.targets)?;
    let shared = &shared;
    let report = crate::targets::run_each(
        "sync",
        selected,
        args.targets.parallel_targets.get(),
        |deployment| async move {
            let data_dir = &deployment.data_dir(shared)?;
            let inputs = &import::read_inputs(data_dir, &settings.plan_dir)?;
            let options =
                target_import_options(&deployment, shared, &args.convex, &args.batches, true)?;
            deployment.check_files(inputs.files.is_some())?;
            let report = if args.dry_run {
                crate::sync::dry_run(data_dir, inputs, &options).await?
            } else {
                let options =
                    crate::sync::SyncOptions { import: options, deletes: !args.no_deletes };
                crate::sync::sync(data_dir, inputs, &options, deployment.reporter).await?
            };
            let refused = report.rejected > 0;
            Ok(Outcome {
                status: if refused { "rejected" } else { "completed" },
                code: if refused { exit_code::REJECTED_ROWS } else { exit_code::OK },
                text: output::sync_summary(&report, OutputFormat::Text),
                report: json!(report),
            })
        },
    )
    .await;
    Ok(finish_targets(&report, settings.format))
}

/// Uploads the Supabase Storage objects when the plan has `[files]`, before the tables.
async fn files_stage(
    reporter: Arc<dyn Reporter>,
    data_dir: &DataDir,
    inputs: &import::Inputs,
    options: &ImportOptions,
) -> anyhow::Result<Option<files::FilesReport>> {
    let Some(plan) = &inputs.files else { return Ok(None) };
    let objects = files::read_objects(data_dir)?;
    let source = Arc::new(
        files::FilesSource::open(&plan.source, &plan.at).map_err(files::FilesError::from)?,
    );
    let client = options.target.client()?.with_concurrency(options.concurrency);
    data_dir.prepare(data_dir.root())?;
    // The deployment's own state (import::state::place): what it holds is its own.
    let state = import::state::State::open(&options.place.state)?;
    let work = async {
        let planned = files::plan_upload(&client, &source, &objects, state).await?;
        // Objects sent again with other bytes get new storage ids: the tables whose documents
        // name them are sent again, their checkpoints notwithstanding (`sync` sends only those
        // documents). Forgotten before any byte goes: a run killed after a replaced file is
        // recorded finds it holding its bytes, and would not know to send them.
        forget_tables_naming(data_dir, inputs, options, &planned.report.replaced)?;
        let sent = planned.send(&client, &source, options.concurrency, reporter.as_ref()).await?;
        anyhow::Ok(sent)
    };
    let report = tokio::select! {
        report = work => report.context("moving files into Convex storage")?,
        _ = tokio::signal::ctrl_c() => return Err(Interrupted { command: "import" }.into()),
    };
    Ok(Some(report))
}

/// Forgets the import checkpoints of the tables whose file fields name one of `replaced`
/// (`<bucket>/<path>` keys), so that import sends them again.
fn forget_tables_naming(
    data_dir: &DataDir,
    inputs: &import::Inputs,
    options: &ImportOptions,
    replaced: &std::collections::BTreeSet<String>,
) -> anyhow::Result<()> {
    if replaced.is_empty() {
        return Ok(());
    }
    let keys: std::collections::HashSet<String> = replaced.iter().cloned().collect();
    let state = import::state::State::open(&options.place.state)?;
    for step in &inputs.order {
        if !crate::sync::naming_files(data_dir, inputs, step, &keys)?.is_empty() {
            tracing::warn!(
                "`{}` names files uploaded again with new bytes: its documents are sent again",
                step.table
            );
            state.forget_table(&step.table)?;
        }
    }
    Ok(())
}

/// Verify's part for files, when the plan has `[files]`: its problems join the report's. After
/// a rollback (the ledger says so), it counts the migrated files left instead.
async fn verify_files(
    data_dir: &DataDir,
    inputs: &import::Inputs,
    target: &import::ConvexTarget,
    report: &mut verify::VerifyReport,
) -> anyhow::Result<()> {
    let Some(plan) = &inputs.files else { return Ok(()) };
    let client = target.client()?;
    if let Some(check) = &mut report.rolled_back {
        // Rolled back: no file the migration recorded may be left; the objects are not read.
        let left = files::recorded(&client).await.context("listing the migrated files")?.len();
        check.files = Some(left as u64);
        if left > 0 {
            report.verified = false;
        }
        return Ok(());
    }
    let objects = files::read_objects(data_dir)?;
    let source = Arc::new(
        files::FilesSource::open(&plan.source, &plan.at).map_err(files::FilesError::from)?,
    );
    let problems = files::verify(&client, source, &objects, 8).await.context("verifying files")?;
    if !problems.is_empty() {
        report.verified = false;
        report.problems.extend(problems);
    }
    Ok(())
}

async fn run_verify(settings: &Settings, args: &VerifyArgs) -> anyhow::Result<u8> {
    let data_dir = DataDir::new(&settings.data_dir);
    let inputs = import::read_inputs(&data_dir, &settings.plan_dir)?;
    let target = convex_target(settings, &args.convex)?;
    let options = verify::VerifyOptions::new(args.show, args.accept_rejected);
    let mut report = tokio::select! {
        report = verify::verify(&data_dir, &inputs, &target, &options, reporter(settings)) => report?,
        _ = tokio::signal::ctrl_c() => return Err(Interrupted { command: "verify" }.into()),
    };
    verify_files(&data_dir, &inputs, &target, &mut report).await?;
    output::print_result(&output::verify_summary(&report, settings.format));
    Ok(if report.verified { exit_code::OK } else { exit_code::VERIFY_DIFFERENCES })
}

/// The deployment, the deploy key (from the environment only) and the batch settings.
fn import_options(
    settings: &Settings,
    convex: &ConvexArgs,
    batches: &BatchArgs,
    force: bool,
) -> Result<ImportOptions, ImportError> {
    let target = convex_target(settings, convex)?;
    let identity = crate::deployment::identity(&target.url, Some(target.deploy_key.expose()));
    let data_dir = DataDir::new(&settings.data_dir);
    // As before states were kept per deployment: the state of an import under another plan
    // than the transformed data's is refused unless forced, also when the deployment changed.
    if !force
        && let Some(recorded) = StatePlace::parked_plan(&data_dir, &identity)?
        && let Ok(Some(transformed)) = crate::transform::TransformManifest::read(&data_dir)
        && transformed.plan_hash != recorded
    {
        return Err(ImportError::PlanChangedDuringImport {
            recorded,
            transformed: transformed.plan_hash,
        });
    }
    let place = StatePlace::activate(&data_dir, &identity)?;
    Ok(ImportOptions {
        target,
        concurrency: batches.concurrency.get(),
        batch_size: batches.batch_size.get(),
        batch_bytes: batches.batch_bytes.get(),
        force,
        place,
        record_sent: true,
    })
}

/// The deployments `--target`/`--all-targets` pick from `<plan-dir>/targets.toml`.
fn deployments(settings: &Settings, targets: &TargetArgs) -> anyhow::Result<Vec<Deployment>> {
    let reporter = reporter(settings);
    Ok(crate::targets::selected(
        &settings.plan_dir,
        &targets.target,
        targets.all_targets,
        &reporter,
    )?)
}

/// A target's import options: its deployment, its own state place, the batch settings.
fn target_import_options(
    deployment: &Deployment,
    shared: &DataDir,
    convex: &ConvexArgs,
    batches: &BatchArgs,
    force: bool,
) -> anyhow::Result<ImportOptions> {
    Ok(ImportOptions {
        target: deployment.convex(timeout(convex), retry(convex))?,
        concurrency: batches.concurrency.get(),
        batch_size: batches.batch_size.get(),
        batch_bytes: batches.batch_bytes.get(),
        force,
        place: StatePlace::for_target(shared, &deployment.identity).map_err(ImportError::from)?,
        record_sent: true,
    })
}

fn finish_targets(report: &crate::targets::TargetsReport, format: OutputFormat) -> u8 {
    output::print_result(&output::targets_summary(report, format));
    report.exit_code
}

/// `migrate import --target …`: each deployment imported from its own state, side by side.
async fn run_import_targets(settings: &Settings, args: &ImportArgs) -> anyhow::Result<u8> {
    let shared = DataDir::new(&settings.data_dir);
    let selected = deployments(settings, &args.targets)?;
    let shared = &shared;
    let report = crate::targets::run_each(
        "import",
        selected,
        args.targets.parallel_targets.get(),
        |deployment| async move {
            let data_dir = &deployment.data_dir(shared)?;
            let inputs = &import::read_inputs(data_dir, &settings.plan_dir)?;
            let options = target_import_options(
                &deployment,
                shared,
                &args.convex,
                &args.batches,
                args.force,
            )?;
            deployment.check_files(inputs.files.is_some())?;
            let reporter = deployment.reporter;
            let files = files_stage(reporter.clone(), data_dir, inputs, &options).await?;
            let report = import::import(data_dir, inputs, &options, reporter).await?;
            let refused = report.rejected > 0;
            let mut text = String::new();
            if let Some(files) = &files {
                text = output::files_summary(files, OutputFormat::Text);
            }
            text.push_str(&output::import_summary(&report, OutputFormat::Text));
            let mut json_report = json!(report);
            json_report["files"] = json!(files);
            Ok(Outcome {
                status: if refused { "rejected" } else { "completed" },
                code: if refused { exit_code::REJECTED_ROWS } else { exit_code::OK },
                text,
                report: json_report,
            })
        },
    )
    .await;
    Ok(finish_targets(&report, settings.format))
}

/// `migrate transform --target …`: each target with tenant filters gets its own documents
/// (`targets::tenant`); a target without them uses the shared transformed data.
async fn run_transform_targets(
    settings: &Settings,
    args: &crate::cli::TransformArgs,
) -> anyhow::Result<u8> {
    let shared = DataDir::new(&settings.data_dir);
    let selected = deployments(settings, &args.targets)?;
    let shared = &shared;
    let cancel: Arc<std::sync::atomic::AtomicBool> = Arc::default();
    let work = crate::targets::run_each(
        "transform",
        selected,
        args.targets.parallel_targets.get(),
        |deployment| {
            let cancel = Arc::clone(&cancel);
            async move {
                let Some(filters) = deployment.filters.clone() else {
                    return Ok(Outcome {
                        status: "shared",
                        code: exit_code::OK,
                        report: json!({ "transformed": "shared" }),
                        text: "no tenant filters: imports the shared transformed data \
                               (`migrate transform`)\n"
                            .into(),
                    });
                };
                let data_dir = deployment.data_dir(shared)?;
                let plan_dir = settings.plan_dir.clone();
                let options = TransformOptions {
                    dry_run: false,
                    sample: 0,
                    max_rejected: args.max_rejected,
                    cancel,
                };
                let allowed = args.max_rejected.unwrap_or(0);
                let report = tokio::task::spawn_blocking(move || {
                    let manifest = Manifest::read(&data_dir)
                        .map_err(ImportError::from)?
                        .ok_or(ImportError::NotExported { path: data_dir.manifest_path() })?;
                    let plan = crate::targets::tenant::plan_for(
                        &plan_dir,
                        &manifest.catalog,
                        &deployment.name,
                        &filters,
                    )?;
                    let reporter = deployment.reporter.as_ref();
                    anyhow::Ok(transform::transform_with(&data_dir, &plan, &options, reporter)?)
                })
                .await
                .context("transform stopped unexpectedly")??;
                let code = if report.rejected > allowed || report.stopped_early {
                    exit_code::REJECTED_ROWS
                } else {
                    exit_code::OK
                };
                Ok(Outcome {
                    status: if code == exit_code::OK { "completed" } else { "rejected" },
                    code,
                    text: output::transform_summary(&report, OutputFormat::Text),
                    report: json!(report),
                })
            }
        },
    );
    let mut report = tokio::select! {
        report = work => report,
        _ = tokio::signal::ctrl_c() => {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(Interrupted { command: "transform" }.into());
        }
    };
    if args.targets.all_targets {
        report.warnings = crate::targets::tenant::rows_in_no_target(&report);
    }
    Ok(finish_targets(&report, settings.format))
}

/// `migrate verify --target …`: each deployment read back and compared with the same data.
async fn run_verify_targets(settings: &Settings, args: &VerifyArgs) -> anyhow::Result<u8> {
    let shared = &DataDir::new(&settings.data_dir);
    for_each_target(settings, &args.targets, "verify", |deployment| async move {
        let target = deployment.convex(timeout(&args.convex), retry(&args.convex))?;
        let data_dir = &deployment.data_dir(shared)?;
        let inputs = &import::read_inputs(data_dir, &settings.plan_dir)?;
        let place = StatePlace::find(shared, &deployment.identity).map_err(ImportError::from)?;
        let mut options = verify::VerifyOptions::new(args.show, args.accept_rejected);
        options.spill = Some(place.spill);
        let mut report =
            verify::verify(data_dir, inputs, &target, &options, deployment.reporter).await?;
        verify_files(data_dir, inputs, &target, &mut report).await?;
        Ok(Outcome {
            status: if report.verified { "verified" } else { "differences" },
            code: if report.verified { exit_code::OK } else { exit_code::VERIFY_DIFFERENCES },
            text: output::verify_summary(&report, OutputFormat::Text),
            report: json!(report),
        })
    })
    .await
}

/// `migrate rollback --target …`: each deployment rolled back from its own state, side by side.
async fn run_rollback_targets(settings: &Settings, args: &RollbackArgs) -> anyhow::Result<u8> {
    let shared = &DataDir::new(&settings.data_dir);
    for_each_target(settings, &args.targets, "rollback", |deployment| async move {
        let client = deployment.convex(timeout(&args.convex), retry(&args.convex))?.client()?;
        let data_dir = &deployment.data_dir(shared)?;
        let inputs = &import::read_inputs(data_dir, &settings.plan_dir)?;
        let place =
            StatePlace::for_target(shared, &deployment.identity).map_err(ImportError::from)?;
        let options = crate::rollback::RollbackOptions {
            dry_run: args.dry_run,
            force: args.force,
            batch_size: args.batch_size.get(),
            state: place.state,
        };
        let report =
            crate::rollback::rollback(&client, data_dir, inputs, &options, deployment.reporter)
                .await?;
        Ok(Outcome {
            status: if args.dry_run { "dry run" } else { "rolled back" },
            code: exit_code::OK,
            text: output::rollback_summary(&report, OutputFormat::Text),
            report: json!(report),
        })
    })
    .await
}

/// Runs `work` for each deployment `targets` selects, side by side (the targets runner), then
/// prints one row per target and returns the worst exit code; Ctrl-C ends `command`.
async fn for_each_target<F, Fut>(
    settings: &Settings,
    targets: &TargetArgs,
    command: &'static str,
    work: F,
) -> anyhow::Result<u8>
where
    F: Fn(Deployment) -> Fut,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    let selected = deployments(settings, targets)?;
    let all = crate::targets::run_each(command, selected, targets.parallel_targets.get(), work);
    let report = tokio::select! {
        report = all => report,
        _ = tokio::signal::ctrl_c() => return Err(Interrupted { command }.into()),
    };
    Ok(finish_targets(&report, settings.format))
}

/// `migrate status --target …`: each deployment's state, read from the data directory alone.
async fn run_status_targets(
    settings: &Settings,
    args: &crate::cli::StatusArgs,
) -> anyhow::Result<u8> {
    let data_dir = &DataDir::new(&settings.data_dir);
    for_each_target(settings, &args.targets, "status", |deployment| async move {
        let place = StatePlace::find(data_dir, &deployment.identity).map_err(ImportError::from)?;
        let mut report = status::status_at(
            data_dir,
            &place.state,
            &settings.plan_dir,
            &args.convex_dir.convex_dir,
        )?;
        if args.ledger {
            let client = deployment.convex(timeout(&args.convex), retry(&args.convex))?.client()?;
            let entries = crate::ledger::list(&client)
                .await
                .context("reading the deployment's ledger (migrate:ledgerList)")?;
            report.ledger = Some(entries);
        }
        Ok(Outcome {
            status: status::import_stage(&report),
            code: exit_code::OK,
            text: output::status_summary(&report, OutputFormat::Text),
            report: json!(report),
        })
    })
    .await
}

fn timeout(convex: &ConvexArgs) -> std::time::Duration {
    std::time::Duration::from_secs(convex.timeout.max(1))
}

fn retry(convex: &ConvexArgs) -> RetryPolicy {
    RetryPolicy { retries: convex.retries, ..RetryPolicy::default() }
}

fn convex_target(_settings: &Settings, convex: &ConvexArgs) -> Result<ConvexTarget, ImportError> {
    let deployment = crate::deployment::from_env(convex.convex_url.as_deref())?;
    Ok(ConvexTarget {
        url: import::convex_url(deployment.url.as_deref())?,
        deploy_key: deployment.key.ok_or(ImportError::MissingDeployKey)?,
        timeout: timeout(convex),
        retry: retry(convex),
    })
}

/// What `migrate init` did with each file.
#[derive(Debug, serde::Serialize)]
pub struct InitReport {
    /// The database URL (without its password) or the export's manifest the catalog was read
    /// from.
    pub catalog_from: String,
    /// For an export's catalog: its schemas and number of tables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_about: Option<String>,
    pub plan: plan::convex_app::FileOutcome,
    /// The Convex dir: `migrateTables.ts`, `migrate.ts` (docs/convex-module.md), `schema.ts`.
    pub convex: plan::convex_app::ConvexFiles,
    /// Convex table ← source tables.
    pub tables: Vec<(String, Vec<String>)>,
    pub skipped: Vec<String>,
    pub warnings: Vec<String>,
    /// `--after-import`: the import found complete, and the fields made required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_import: Option<AfterImport>,
    /// `--preset`: its plan file and the Better Auth component's files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preset: Vec<plan::convex_app::FileOutcome>,
}

#[derive(Debug, serde::Serialize)]
pub struct AfterImport {
    pub import: import::complete::Completed,
    /// `table.field` of each reference made required.
    pub required: Vec<String>,
}

async fn run_init(settings: &Settings, init: &InitSettings) -> anyhow::Result<u8> {
    if init.after_import {
        return run_init_after_import(settings, init);
    }
    let data_dir = DataDir::new(&settings.data_dir);
    let Catalog { catalog, from: catalog_from, about: catalog_about, mut warnings } =
        init_catalog(settings, &data_dir, init).await?;

    let plan_path = settings.plan_dir.join("0001_initial.toml");
    let plan_text = plan::initial_plan(&catalog);
    let previous_plan = std::fs::read_to_string(&plan_path).ok();
    let (plan_status, plan_changes) =
        match generated::write(&plan_path, "#", &plan_text, init.force) {
            Ok(written) => {
                let changes = match (written, &previous_plan) {
                    (generated::Written::Updated, Some(previous)) => {
                        plan::changes::diff(previous, &plan_text, plan::changes::Sections::Toml)
                    }
                    _ => None,
                };
                (status(written), changes)
            }
            // A plan a person wrote or edited is their work: keep it and generate from it.
            Err(
                generated::GeneratedError::Edited { .. }
                | generated::GeneratedError::NotOurs { .. },
            ) => ("kept".to_owned(), None),
            Err(error) => return Err(error.into()),
        };
    let mut preset_files = Vec::new();
    if let Some(preset) = init.preset {
        let text = preset.plan(&catalog).map_err(|e| anyhow::anyhow!("{e}; {}", e.hint()))?;
        let path = settings.plan_dir.join(preset.file_name());
        preset_files.push(write_kept(&path, "#", &text, init.force)?);
    }
    let plan = match plan::load(&settings.plan_dir, &catalog) {
        Ok(plan) => plan,
        Err(error) => {
            // A table without a key is a choice for the person, not a broken plan: say that
            // the plan was written and what the choices are.
            let about_legacy_id = match error.kind() {
                plan::PlanErrorKind::NoLegacyId { .. } => true,
                plan::PlanErrorKind::Invalid { path, .. } => path.ends_with(".legacy_id"),
                _ => false,
            };
            let tables = plan::keyless_tables(&settings.plan_dir, &catalog);
            if !about_legacy_id || tables.is_empty() {
                return Err(error.into());
            }
            let plan = plan_path.display().to_string();
            let written = plan_status != "kept";
            let keyless = plan::PlanErrorKind::Keyless { plan, tables, written };
            return Err(plan::PlanError::from(keyless).into());
        }
    };
    let convex = plan::convex_app::write(&init.convex_dir, &plan, init.force)?;
    if let Some(preset) = init.preset {
        for file in preset.convex_files() {
            let path = init.convex_dir.join(file.path);
            if file.only_if_missing && path.exists() {
                let path = path.display().to_string();
                preset_files.push(plan::convex_app::FileOutcome {
                    path,
                    status: "kept".into(),
                    changes: None,
                });
                continue;
            }
            preset_files.push(write_kept(&path, "//", file.text, init.force)?);
        }
    }

    let report = InitReport {
        catalog_from,
        catalog_about,
        plan: plan::convex_app::FileOutcome {
            path: plan_path.display().to_string(),
            status: plan_status,
            changes: plan_changes,
        },
        convex,
        tables: convex_tables(&plan),
        skipped: plan.skipped.iter().map(ToString::to_string).collect(),
        warnings: {
            warnings.extend(plan.warnings.iter().cloned());
            warnings
        },
        after_import: None,
        preset: preset_files,
    };
    output::print_result(&output::init_summary(&report, settings.format));
    Ok(exit_code::OK)
}

/// `migrate init --after-import`: the plan and the export's catalog as they are, the import
/// checked complete, then migrateTables.ts with the references in cycles required.
fn run_init_after_import(settings: &Settings, init: &InitSettings) -> anyhow::Result<u8> {
    let data_dir = DataDir::new(&settings.data_dir);
    // The catalog the import's data was planned with: the export's, whatever the database holds
    // now.
    let manifest = match Manifest::read(&data_dir) {
        Ok(manifest) => {
            manifest.ok_or(import::ImportError::NotExported { path: data_dir.manifest_path() })?
        }
        Err(ManifestError::Unreadable(error)) => return Err(error.into()),
        Err(ManifestError::Invalid { path, reason }) => {
            let reason = reason.to_string();
            return Err(transform::TransformError::BadManifest { path, reason }.into());
        }
    };
    let plan = plan::load(&settings.plan_dir, &manifest.catalog)?;
    let completed = import::complete::completed(&data_dir, &plan.hash)?;
    let convex = plan::convex_app::write_for(
        &init.convex_dir,
        &plan,
        init.force,
        plan::codegen::CycleFields::AfterImport,
    )?;
    let report = InitReport {
        catalog_from: data_dir.manifest_path().display().to_string(),
        catalog_about: None,
        plan: plan::convex_app::FileOutcome {
            path: settings.plan_dir.display().to_string(),
            status: "read".into(),
            changes: None,
        },
        convex,
        tables: convex_tables(&plan),
        skipped: plan.skipped.iter().map(ToString::to_string).collect(),
        warnings: plan.warnings.clone(),
        after_import: Some(AfterImport {
            import: completed,
            required: plan::codegen::required_after_import(&plan),
        }),
        preset: Vec::new(),
    };
    output::print_result(&output::init_summary(&report, settings.format));
    Ok(exit_code::OK)
}

/// The catalog `init` writes the plan from, where it came from, and warnings about the choice.
///
/// The last export's, when there is one and the command line names no `--schemas` or `--tables`:
/// transform will read that catalog, so the plan must fit it (its schemas and tables, not
/// init's defaults). Otherwise the database's, read with the selection given (or the default).
async fn init_catalog(
    settings: &Settings,
    data_dir: &DataDir,
    init: &InitSettings,
) -> anyhow::Result<Catalog> {
    if let Some(dump) = &init.from_dump {
        let work = async {
            let restored = crate::dump::restore(dump, 1, reporter(settings).as_ref())
                .await
                .with_context(|| format!("restoring the dump `{}`", dump.display()))?;
            let catalog =
                export::read_catalog(&restored.database_url, &init.schemas, &init.tables).await?;
            drop(restored.cluster);
            anyhow::Ok(catalog)
        };
        let catalog = tokio::select! {
            catalog = work => catalog?,
            _ = tokio::signal::ctrl_c() => return Err(Interrupted { command: "init" }.into()),
        };
        let from = dump.display().to_string();
        return Ok(Catalog { catalog, from, about: None, warnings: Vec::new() });
    }
    let manifest = match Manifest::read(data_dir) {
        Ok(manifest) => manifest,
        Err(ManifestError::Unreadable(error)) => return Err(error.into()),
        // An unusable export stands in the way only when nothing else can give the catalog.
        Err(ManifestError::Invalid { path, reason }) => {
            if init.database_url.is_none() {
                let reason = reason.to_string();
                return Err(transform::TransformError::BadManifest { path, reason }.into());
            }
            None
        }
    };
    let manifest_path = data_dir.manifest_path().display().to_string();
    let from_database = init.database_url.as_ref().filter(|_| init.selection_given);
    let manifest = match (from_database, manifest, &init.database_url) {
        (None, Some(manifest), _) => manifest,
        (_, _, None) => return Err(NoCatalog.into()),
        (_, _, Some(url)) => {
            let catalog = tokio::select! {
                catalog = export::read_catalog(url, &init.schemas, &init.tables) => catalog?,
                _ = tokio::signal::ctrl_c() => return Err(Interrupted { command: "init" }.into()),
            };
            let from = url.to_string();
            return Ok(Catalog { catalog, from, about: None, warnings: Vec::new() });
        }
    };
    let mut warnings = Vec::new();
    match &init.database_url {
        Some(url) if url.to_string() != manifest.source.describe() => warnings.push(format!(
            "the export in `{manifest_path}` is of `{}`, not of `{url}`: the plan is written \
             from the export's catalog, which transform reads; export from `{url}` first to \
             migrate it, or give --schemas or --tables to plan from its catalog",
            manifest.source.describe()
        )),
        None if init.selection_given => warnings.push(format!(
            "--schemas and --tables choose what is read from a database: without --database-url \
             the plan is written from the export's catalog (`{manifest_path}`)"
        )),
        _ => {}
    }
    let tables = manifest.catalog.tables.len();
    let about = format!(
        "the export of schema{} {}: {tables} table{}",
        if manifest.schemas.len() == 1 { "" } else { "s" },
        manifest.schemas.join(", "),
        if tables == 1 { "" } else { "s" },
    );
    Ok(Catalog { catalog: manifest.catalog, from: manifest_path, about: Some(about), warnings })
}

/// Each Convex table and the source tables that make it, for init's report.
fn convex_tables(plan: &plan::model::Plan) -> Vec<(String, Vec<String>)> {
    plan.tables
        .iter()
        .map(|t| {
            let sources = std::iter::once(&t.source).chain(t.merges.iter().map(|m| &m.source));
            (t.target.clone(), sources.map(ToString::to_string).collect())
        })
        .collect()
}

/// The catalog `init` plans from: see [`init_catalog`].
struct Catalog {
    catalog: crate::catalog::Catalog,
    from: String,
    about: Option<String>,
    warnings: Vec<String>,
}

/// Writes a file migrate generates, keeping one a person edited or wrote (unless `force`).
fn write_kept(
    path: &std::path::Path,
    comment: &str,
    text: &str,
    force: bool,
) -> anyhow::Result<plan::convex_app::FileOutcome> {
    let status = match generated::write(path, comment, text, force) {
        Ok(written) => status(written),
        Err(
            generated::GeneratedError::Edited { .. } | generated::GeneratedError::NotOurs { .. },
        ) => "kept".to_owned(),
        Err(error) => return Err(error.into()),
    };
    Ok(plan::convex_app::FileOutcome { path: path.display().to_string(), status, changes: None })
}

fn status(written: generated::Written) -> String {
    match written {
        generated::Written::Created => "created",
        generated::Written::Updated => "updated",
        generated::Written::Unchanged => "unchanged",
    }
    .to_owned()
}

/// `migrate init` without a database URL and without an export to take the catalog from.
#[derive(Debug, thiserror::Error)]
#[error(
    "no catalog to start from: no database named (URL or PG* variables), no dump and no export \
     in the data directory"
)]
pub struct NoCatalog;
