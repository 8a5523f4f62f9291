//! `migrate import`: documents from `transformed/` into Convex through the generated
//! `convex/migrate.ts` (docs/convex-module.md), parents before children, as many batches in
//! flight as the deployment keeps up with (the client's limiter, up to `--concurrency`), each
//! acknowledged batch checkpointed in `data/state.sqlite`.
//!
//! - [`order`]: which table goes when, and which references wait for the second pass.
//! - [`batches`]: reading a transformed file into batches, skipping what is done.
//! - [`state`]: checkpoints, refused documents, the run ledger.
//! - [`complete`]: whether an import is complete, as the state records it.
//! - [`sent`]: what the deployment last received, kept for `migrate sync` to diff against.
//!
//! A batch Convex refuses (its function threw) is split in halves until the refused documents
//! are found; they go to `rejects/import/<table>.jsonl` with Convex's message, the rest is
//! imported. Transport failures are retried by the client; what outlasts the retries stops the
//! import, and the next run resumes from the checkpoints.

pub mod batches;
pub mod complete;
mod error;
pub mod line_index;
pub mod order;
pub mod sent;
pub mod state;
pub mod transformed;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::task::JoinSet;

use self::batches::{Batch, BatchPlan, Entry};
pub use self::error::ImportError;
use self::order::TableStep;
use self::state::place::{DEPLOYMENT_ID, StatePlace};
use self::state::{Acked, Checkpointer, ImportReject, Pass, State};
use self::transformed::TransformedFile;
use crate::convex::client::{
    CallError, ConvexClient, FunctionKind, RetryPolicy, request_body_with,
};
use crate::convex::limiter::LimiterStats;
use crate::data_dir::{self, DataDir, write_atomically};
use crate::ledger::{self, PlanVersion, Status};
use crate::manifest::Manifest;
use crate::output::{Reporter, Unit};
use crate::plan::migrate_ts::MODULE_VERSION;
use crate::settings::Secret;
use crate::transform::TransformManifest;

/// A deployment and how to talk to it.
#[derive(Debug, Clone)]
pub struct ConvexTarget {
    pub url: String,
    pub deploy_key: Secret,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl ConvexTarget {
    /// A client for the deployment, at most `DEFAULT_CONCURRENCY` calls in flight.
    pub fn client(&self) -> Result<ConvexClient, ImportError> {
        ConvexClient::new(&self.url, &self.deploy_key, self.timeout, self.retry)
            .map_err(|e| ImportError::HttpClient { reason: e.to_string() })
    }
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub target: ConvexTarget,
    /// The most mutations in flight (`--concurrency`): the limiter adapts below it.
    pub concurrency: usize,
    pub batch_size: usize,
    /// Upper bound on a call's arguments, well under Convex's 16 MiB.
    pub batch_bytes: usize,
    /// Start over when the state belongs to another plan.
    pub force: bool,
    /// Where this deployment's state and refused documents are kept.
    pub place: StatePlace,
    /// Record the transformed files as what the deployment last received (`sent`) once the
    /// import completes; `migrate sync` sends its difference with `false` and records itself.
    pub record_sent: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    pub plan_hash: String,
    pub tables: Vec<TableImport>,
    pub documents: u64,
    /// Documents sent by this run (the rest were done by an earlier one).
    pub sent: u64,
    pub rejected: u64,
    pub first_rejects: Vec<ImportReject>,
    pub seconds: f64,
    /// How many calls were in flight: the ceiling, the most reached, the last, and how often
    /// the deployment pushed back.
    pub concurrency: LimiterStats,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TableImport {
    pub table: String,
    /// Lines of the transformed file.
    pub documents: u64,
    /// Batches of `--batch-size` the table needs in all.
    pub batches: u64,
    /// Reference fields patched in by the second pass (foreign-key cycles).
    pub deferred: Vec<String>,
    /// Documents an earlier run had already imported.
    pub resumed: u64,
    pub inserted: u64,
    pub replaced: u64,
    pub patched: u64,
    pub rejected: u64,
}

/// `transformed/manifest.json` and the plan it was made with, checked against each other.
pub struct Inputs {
    pub manifest: TransformManifest,
    pub order: Vec<TableStep>,
    /// The plan's version and files, as the deployment's ledger records them.
    pub plan: PlanVersion,
    /// `[files]` of the plan: Supabase Storage objects move too (src/files/).
    pub files: Option<crate::plan::model::FilesPlan>,
}

/// Reads what import and verify start from: the transformed manifest, and the plan (which
/// must still be the one transform used) for the table order.
pub fn read_inputs(data_dir: &DataDir, plan_dir: &Path) -> anyhow::Result<Inputs> {
    let transformed = TransformManifest::read(data_dir).map_err(ImportError::from)?;
    let export = Manifest::read(data_dir).map_err(ImportError::from)?;
    // No export manifest beside transformed data, or beside raw files: an export was
    // interrupted (it removes the manifest first and writes it last), and what is there is
    // not the data of a finished export.
    let raw_files = std::fs::read_dir(data_dir.raw_dir()).is_ok_and(|mut d| d.next().is_some());
    if export.is_none() && (transformed.is_some() || raw_files) {
        return Err(ImportError::NotExported { path: data_dir.manifest_path() }.into());
    }
    let manifest = transformed.ok_or_else(|| ImportError::NotTransformed {
        path: data_dir.path("transformed/manifest.json"),
    })?;
    let export =
        export.ok_or_else(|| ImportError::NotExported { path: data_dir.manifest_path() })?;
    let plan = crate::plan::load(plan_dir, &export.catalog)?;
    if plan.hash != manifest.plan_hash {
        return Err(ImportError::PlanChangedSinceTransform {
            plan: plan.hash,
            transformed: manifest.plan_hash,
        }
        .into());
    }
    let version = PlanVersion::read(plan_dir, &plan.hash)?;
    Ok(Inputs { order: order::import_order(&plan), manifest, plan: version, files: plan.files })
}

/// What `--dry-run` shows: the order and the batches, nothing sent.
pub fn dry_run(inputs: &Inputs, batch_size: usize) -> ImportReport {
    let tables = inputs
        .order
        .iter()
        .map(|step| {
            let documents = documents_of(&inputs.manifest, &step.table);
            TableImport {
                table: step.table.clone(),
                documents,
                batches: batches::expected_batches(documents, batch_size),
                deferred: step.deferred.clone(),
                ..TableImport::default()
            }
        })
        .collect::<Vec<_>>();
    ImportReport {
        dry_run: true,
        plan_hash: inputs.manifest.plan_hash.clone(),
        documents: tables.iter().map(|t| t.documents).sum(),
        tables,
        sent: 0,
        rejected: 0,
        first_rejects: vec![],
        seconds: 0.0,
        concurrency: LimiterStats::default(),
    }
}

fn documents_of(manifest: &TransformManifest, table: &str) -> u64 {
    manifest.tables.iter().find(|t| t.table == table).map_or(0, |t| t.documents)
}

/// `migrate:info`'s answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleInfo {
    pub version: u32,
    pub plan_hash: String,
    pub tables: BTreeMap<String, ModuleTable>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleTable {
    pub legacy_id_field: String,
    /// Reference field → parent table.
    #[serde(default)]
    pub references: BTreeMap<String, String>,
}

/// Asks the deployment which module it runs; refuses one from another plan.
pub async fn check_module(
    client: &ConvexClient,
    inputs: &Inputs,
) -> Result<ModuleInfo, ImportError> {
    let info: ModuleInfo = client
        .call(FunctionKind::Query, "migrate:info", &serde_json::json!({}))
        .await
        .map_err(|error| match error {
            missing if missing.is_missing_function() => {
                ImportError::ModuleNotDeployed { source: missing }
            }
            other => ImportError::Call(other),
        })?;
    if info.version != MODULE_VERSION {
        return Err(ImportError::ModuleVersion {
            deployed: info.version,
            expected: MODULE_VERSION,
        });
    }
    if info.plan_hash != inputs.manifest.plan_hash {
        return Err(ImportError::ModuleOutdated {
            deployed: info.plan_hash,
            transformed: inputs.manifest.plan_hash.clone(),
        });
    }
    if let Some(step) = inputs.order.iter().find(|s| !info.tables.contains_key(&s.table)) {
        return Err(ImportError::ModuleMissingTable { table: step.table.clone() });
    }
    Ok(info)
}

/// Validates the deployment URL: http(s), a host, nothing after the path.
pub fn convex_url(raw: Option<&str>) -> Result<String, ImportError> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty()).ok_or(ImportError::MissingConvexUrl)?;
    // Never the URL as given: it may hold credentials (`https://user:secret@…`).
    let credentials = raw.contains('@');
    let invalid =
        || ImportError::InvalidConvexUrl { value: crate::settings::redact_url(raw), credentials };
    let url = reqwest::Url::parse(raw).map_err(|_| invalid())?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && !credentials
        && url.query().is_none()
        && url.fragment().is_none();
    if !plain {
        return Err(invalid());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Runs the import. `reporter` draws a bar per table.
pub async fn import(
    data_dir: &DataDir,
    inputs: &Inputs,
    options: &ImportOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let client = options.target.client()?.with_concurrency(options.concurrency);
    // Listening for Ctrl-C starts with the first call: until this future is first polled, the
    // default SIGINT action would end the process without a word (a slow or unreachable
    // deployment makes `migrate:info` take long).
    let mut interrupt: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
        Box::pin(tokio::signal::ctrl_c());
    tokio::select! {
        checked = check_module(&client, inputs) => { checked?; }
        _ = &mut interrupt => return Err(ImportError::Interrupted { checkpointed: 0 }),
    }

    // What the deployment's ledger says stands in the way: a finalized deployment, a newer plan.
    let entries = tokio::select! {
        entries = ledger::list(&client) => entries?,
        _ = &mut interrupt => return Err(ImportError::Interrupted { checkpointed: 0 }),
    };
    ledger::check_import(&entries, &inputs.plan, options.force)?;

    let state = State::open(&options.place.state)?;
    prepare_state(&state, inputs, options)?;
    let import_id = tokio::select! {
        claimed = claim_deployment(&client, &state, &inputs.plan) => claimed?,
        _ = &mut interrupt => return Err(ImportError::Interrupted { checkpointed: 0 }),
    };
    let run = state.run_started("import")?;
    let mut tables: Vec<TableImport> = Vec::new();
    // What earlier runs finished, read before the checkpoint writer takes the connection.
    let mut done = HashMap::new();
    for step in &inputs.order {
        let report = inputs.manifest.tables.iter().find(|t| t.table == step.table);
        let checksum = report.and_then(|t| t.checksum.clone()).unwrap_or_default();
        if state.table_checksum(&step.table)?.as_deref() != Some(checksum.as_str()) {
            state.reset_table(&step.table, &checksum)?;
        }
        let documents = report.map_or(0, |t| t.documents);
        let upserted = state.acked_ranges(&step.table, Pass::Upsert)?;
        tables.push(TableImport {
            table: step.table.clone(),
            documents,
            batches: batches::expected_batches(documents, options.batch_size),
            deferred: step.deferred.clone(),
            // Every line of an acknowledged upsert is done, written or refused; a document the
            // second pass refused after its upsert is still one document.
            resumed: upserted.iter().map(|(first, end)| end - first).sum(),
            ..TableImport::default()
        });
        done.insert((step.table.clone(), Pass::Upsert), upserted);
        done.insert(
            (step.table.clone(), Pass::PatchRefs),
            state.acked_ranges(&step.table, Pass::PatchRefs)?,
        );
    }

    let mut importer = Importer {
        client: client.clone(),
        options,
        data_dir,
        inputs,
        reporter,
        checkpointer: Checkpointer::spawn(state),
        checkpointed: 0,
        done,
        interrupt,
    };
    let outcome = importer.all_passes(&mut tables).await;
    let Importer { checkpointer, checkpointed, .. } = importer;
    let (state, written) = checkpointer.finish();
    written?;
    let outcome_name = match &outcome {
        Ok(()) => "completed",
        Err(Stopped { error: ImportError::Interrupted { .. }, .. }) => "interrupted",
        Err(_) => "failed",
    };
    state.run_finished(run, outcome_name)?;
    let outcome = match outcome {
        Ok(()) => Ok(()),
        Err(Stopped { table, error }) => {
            if let ImportError::TransformedChanged { .. } = error {
                // Batches already sent came from a file that is not the one transform wrote:
                // forget them, so that the next run sends the table again from the real file.
                state.forget_table(&table)?;
            }
            Err(error)
        }
    };
    if let Err(ImportError::Interrupted { .. }) = outcome {
        return Err(ImportError::Interrupted { checkpointed });
    }
    if let Err(error) = outcome {
        // Best effort: the error that stopped the import is the one to report.
        if let Err(ledger) =
            ledger::write(&client, &import_id, &inputs.plan, Status::Failed, None).await
        {
            tracing::warn!("the ledger could not record the failed import: {ledger}");
        }
        return Err(error);
    }

    let mut rejects = Vec::with_capacity(tables.len());
    for table in &mut tables {
        let refused = state.rejects(&table.table)?;
        table.rejected = refused.len() as u64;
        rejects.push(refused);
    }
    write_rejects(data_dir, &options.place.rejects_dir, &tables, &rejects)?;
    let rejected = rejects.iter().map(|r| r.len() as u64).sum();
    let counts = BTreeMap::from([
        ("documents".to_owned(), tables.iter().map(|t| t.documents).sum::<u64>()),
        ("inserted".to_owned(), tables.iter().map(|t| t.inserted).sum()),
        ("replaced".to_owned(), tables.iter().map(|t| t.replaced).sum()),
        ("patched".to_owned(), tables.iter().map(|t| t.patched).sum()),
        ("rejected".to_owned(), rejected),
    ]);
    ledger::write(&client, &import_id, &inputs.plan, Status::Completed, Some(&counts)).await?;
    if options.record_sent {
        sent::record(data_dir, &inputs.manifest, &inputs.order, &options.place)?;
    }
    let first_rejects = rejects.into_iter().flatten().take(10).collect();
    Ok(ImportReport {
        dry_run: false,
        plan_hash: inputs.manifest.plan_hash.clone(),
        documents: tables.iter().map(|t| t.documents).sum(),
        sent: tables.iter().map(|t| t.inserted + t.replaced).sum(),
        rejected,
        first_rejects,
        tables,
        seconds: started.elapsed().as_secs_f64(),
        concurrency: client.concurrency_stats(),
    })
}

/// Checkpoints count only for the deployment and plan they were made with.
fn prepare_state(
    state: &State,
    inputs: &Inputs,
    options: &ImportOptions,
) -> Result<(), ImportError> {
    let plan_hash = &inputs.manifest.plan_hash;
    if let Some(recorded) = state.meta("plan_hash")?
        && &recorded != plan_hash
    {
        if !options.force {
            return Err(ImportError::PlanChangedDuringImport {
                recorded,
                transformed: plan_hash.clone(),
            });
        }
        tracing::warn!("--force: the import starts over under plan {plan_hash}");
        state.reset_all()?;
    }
    // States are kept per deployment (`state::place`); one that still describes another
    // deployment (a file copied by hand, or written before identities) is started over.
    let other = match state.meta(DEPLOYMENT_ID)? {
        Some(identity) => identity != options.place.identity,
        None => state.meta("deployment")?.is_some_and(|d| d != options.target.url),
    };
    if other {
        tracing::warn!("another deployment than last time: its import starts from the beginning");
        state.reset_all()?;
    }
    state.set_meta("plan_hash", plan_hash)?;
    state.set_meta("deployment", &options.target.url)?;
    state.set_meta(DEPLOYMENT_ID, &options.place.identity)?;
    Ok(())
}

/// Makes sure the checkpoints describe the deployment, and marks it as this import's; returns
/// the import's marker id.
///
/// The checkpoints trust the URL: a deployment emptied, or replaced by a fresh one at the same
/// URL, would make them claim documents it does not hold. So the first time import writes to a
/// deployment it chooses a random id, keeps it in the state with the checkpoints and records it
/// in the deployment's ledger (`migrate:ledgerWrite`); each later run asks for it
/// (`migrate:ledgerRead`) and, if the deployment does not hold it, drops the checkpoints and
/// sends everything again (upserts by legacy id: nothing is duplicated). The marker is written
/// before any document, so a checkpoint always has its marker in the deployment.
async fn claim_deployment(
    client: &ConvexClient,
    state: &State,
    plan: &PlanVersion,
) -> Result<String, ImportError> {
    let known = match state.meta(state::IMPORT_ID)? {
        // A rolled-back import's documents are gone: its checkpoints describe nothing.
        Some(id) => ledger::read(client, &id)
            .await?
            .filter(|entry| !matches!(entry.status, Status::RolledBack | Status::RollingBack))
            .map(|_| id),
        None => None,
    };
    let import_id = match known {
        Some(id) => id,
        None => {
            if state.has_checkpoints()? {
                tracing::warn!(
                    "the deployment holds no marker of the earlier import: sending every table again"
                );
            }
            state.reset_all()?;
            // Unique, not secret: 128 bits from fastrand's randomly seeded generator.
            let id = format!("{:032x}", fastrand::u128(..));
            state.set_meta(state::IMPORT_ID, &id)?;
            id
        }
    };
    ledger::write(client, &import_id, plan, Status::Running, None).await?;
    Ok(import_id)
}

/// `rejects/import/<table>.jsonl`, rewritten from the state after every run; removed when
/// nothing was refused. `rejects` holds each table's, in the order of `tables`.
fn write_rejects(
    data_dir: &DataDir,
    dir: &Path,
    tables: &[TableImport],
    rejects: &[Vec<ImportReject>],
) -> Result<(), ImportError> {
    if rejects.iter().any(|r| !r.is_empty()) {
        data_dir.prepare(dir)?;
    }
    for (table, rejects) in tables.iter().zip(rejects) {
        let path = dir.join(format!("{}.jsonl", table.table));
        if rejects.is_empty() {
            data_dir::remove_if_exists(&path)?;
            continue;
        }
        let mut text = Vec::new();
        for reject in rejects {
            serde_json::to_writer(&mut text, reject).expect("rejects serialize");
            text.push(b'\n');
        }
        write_atomically(&path, &text)?;
    }
    Ok(())
}

/// Batches read from the transformed file before a slot is free for them.
const READ_AHEAD: usize = 8;

struct Importer<'a> {
    client: ConvexClient,
    options: &'a ImportOptions,
    data_dir: &'a DataDir,
    inputs: &'a Inputs,
    reporter: Arc<dyn Reporter>,
    checkpointer: Checkpointer,
    checkpointed: u64,
    /// Line ranges acknowledged by earlier runs, per table and pass.
    done: HashMap<(String, Pass), Vec<(u64, u64)>>,
    interrupt: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>,
}

/// Why a run stopped, and in which table.
struct Stopped {
    table: String,
    error: ImportError,
}

/// What one acknowledged batch did.
struct Sent {
    acked: Acked,
    inserted: u64,
    replaced: u64,
}

impl Importer<'_> {
    async fn all_passes(&mut self, tables: &mut [TableImport]) -> Result<(), Stopped> {
        let stopped = |step: &TableStep| {
            let table = step.table.clone();
            move |error| Stopped { table, error }
        };
        for (step, report) in self.inputs.order.iter().zip(tables.iter_mut()) {
            self.pass(step, Pass::Upsert, report).await.map_err(stopped(step))?;
        }
        for (step, report) in self.inputs.order.iter().zip(tables.iter_mut()) {
            if !step.deferred.is_empty() {
                self.pass(step, Pass::PatchRefs, report).await.map_err(stopped(step))?;
            }
        }
        Ok(())
    }

    /// Sends one table's batches for one pass, as many at a time as the client's limiter allows.
    async fn pass(
        &mut self,
        step: &TableStep,
        pass: Pass,
        report: &mut TableImport,
    ) -> Result<(), ImportError> {
        let Some(manifest) = self.inputs.manifest.tables.iter().find(|t| t.table == step.table)
        else {
            return Ok(());
        };
        let Some(file) = TransformedFile::of(self.data_dir, manifest) else { return Ok(()) };
        let state_ranges = self.done.remove(&(step.table.clone(), pass)).unwrap_or_default();
        let done_lines: u64 = state_ranges.iter().map(|(first, end)| end - first).sum();
        let label = match pass {
            Pass::Upsert => step.table.clone(),
            Pass::PatchRefs => format!("{} (references)", step.table),
        };
        let mut progress =
            self.reporter.table_started(&label, Some(manifest.documents), Unit::Documents);
        let mut progressed = done_lines;
        progress.rows(progressed);

        let batch_plan = BatchPlan {
            file,
            pass,
            legacy_field: step.legacy_field.clone(),
            deferred: step.deferred.clone(),
            size: self.options.batch_size,
            max_bytes: self.options.batch_bytes,
            done: state_ranges,
        };
        // A few batches read ahead: the reader outpaces any deployment, and a read-ahead as deep
        // as the ceiling would hold up to 64 batches of 8 MiB besides those in flight.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Batch>(READ_AHEAD);
        let reader = tokio::task::spawn_blocking(move || {
            batches::read_batches(&batch_plan, |batch| sender.blocking_send(batch).is_ok())
        });

        let table: Arc<str> = step.table.as_str().into();
        let mut in_flight: JoinSet<Result<Sent, ImportError>> = JoinSet::new();
        let mut reading = true;
        while reading || !in_flight.is_empty() {
            tokio::select! {
                batch = receiver.recv(), if reading && in_flight.len() < self.client.concurrency() => {
                    match batch {
                        Some(batch) => {
                            in_flight.spawn(send_batch(self.client.clone(), Arc::clone(&table), pass, batch));
                        }
                        None => reading = false,
                    }
                }
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                    let sent = joined.expect("import tasks do not panic")?;
                    progressed += sent.acked.end_line - sent.acked.first_line;
                    progress.rows(progressed.min(manifest.documents));
                    match pass {
                        Pass::Upsert => {
                            report.inserted += sent.inserted;
                            report.replaced += sent.replaced;
                        }
                        Pass::PatchRefs => report.patched += sent.acked.written,
                    }
                    self.checkpointer.record(sent.acked)?;
                    self.checkpointed += 1;
                }
                _ = &mut self.interrupt => {
                    in_flight.abort_all();
                    return Err(ImportError::Interrupted { checkpointed: self.checkpointed });
                }
            }
        }
        drop(receiver);
        reader.await.expect("the batch reader does not panic")?;
        progress.finished(manifest.documents);
        Ok(())
    }
}

/// `migrate:upsert`'s and `migrate:patchRefs`' answer.
#[derive(Deserialize)]
struct Written {
    /// One per document sent; only counted.
    ids: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    inserted: u64,
    #[serde(default)]
    replaced: u64,
}

async fn send_batch(
    client: ConvexClient,
    table: Arc<str>,
    pass: Pass,
    batch: Batch,
) -> Result<Sent, ImportError> {
    let mut sent = Sent {
        acked: Acked {
            table: table.to_string(),
            pass,
            first_line: batch.first_line,
            end_line: batch.end_line,
            written: 0,
            rejects: Vec::new(),
        },
        inserted: 0,
        replaced: 0,
    };
    send_entries(&client, &table, pass, &batch.entries, &mut sent)
        .await
        .map_err(|source| ImportError::Convex { table: table.to_string(), source })?;
    Ok(sent)
}

/// Sends `entries` in one call; when the function refuses them, halves until the refused
/// documents are alone, and records those as rejects.
fn send_entries<'a>(
    client: &'a ConvexClient,
    table: &'a str,
    pass: Pass,
    entries: &'a [Entry],
    sent: &'a mut Sent,
) -> std::pin::Pin<Box<dyn Future<Output = Result<(), CallError>> + Send + 'a>> {
    Box::pin(async move {
        let path = match pass {
            Pass::Upsert => "migrate:upsert",
            Pass::PatchRefs => "migrate:patchRefs",
        };
        let body = call_body(path, table, entries);
        let expected = entries.len();
        let decode = |raw: &RawValue| {
            let written: Written = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
            if written.ids.len() == expected {
                Ok(written)
            } else {
                Err(format!("{} ids for {expected} documents", written.ids.len()))
            }
        };
        match client.call_body(FunctionKind::Mutation, path, body.into(), decode).await {
            Ok(written) => {
                sent.inserted += written.inserted;
                sent.replaced += written.replaced;
                sent.acked.written += entries.len() as u64;
                Ok(())
            }
            Err(error @ CallError::Function { .. }) if error.is_about_the_documents() => {
                let CallError::Function { message, .. } = error else { unreachable!() };
                if let [entry] = entries {
                    sent.acked.rejects.push(ImportReject {
                        table: table.to_owned(),
                        line: entry.line,
                        legacy_id: entry.legacy_id.clone(),
                        message: clean_message(&message),
                    });
                    return Ok(());
                }
                let (left, right) = entries.split_at(entries.len() / 2);
                send_entries(client, table, pass, left, sent).await?;
                send_entries(client, table, pass, right, sent).await
            }
            Err(other) => Err(other),
        }
    })
}

/// The request body of the `migrate:upsert` or `migrate:patchRefs` (`path`) call that sends
/// `entries`: arguments `{"table": ..., "docs": [<entry>, ...]}`, each entry copied once.
pub fn call_body(path: &str, table: &str, entries: &[Entry]) -> Vec<u8> {
    let args_len = entries.iter().map(|e| e.json.len() + 1).sum::<usize>() + table.len() + 32;
    request_body_with(path, args_len, |args| write_call_args(args, table, entries))
}

fn write_call_args(args: &mut Vec<u8>, table: &str, entries: &[Entry]) {
    args.extend_from_slice(b"{\"table\":");
    crate::json_text::write_string(args, table);
    args.extend_from_slice(b",\"docs\":[");
    for (index, entry) in entries.iter().enumerate() {
        if index > 0 {
            args.push(b',');
        }
        args.extend_from_slice(&entry.json);
    }
    args.extend_from_slice(b"]}");
}

/// Convex's message without its request-id prefix and stack trace.
fn clean_message(message: &str) -> String {
    let message = match message.find("] ") {
        Some(end) if message.starts_with("[Request ID:") => &message[end + 2..],
        _ => message,
    };
    message
        .lines()
        .take_while(|l| !l.trim_start().starts_with("at "))
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convex_urls_are_checked() {
        assert_eq!(
            convex_url(Some("https://happy-animal-123.convex.cloud/")).unwrap(),
            "https://happy-animal-123.convex.cloud"
        );
        assert_eq!(convex_url(Some("http://127.0.0.1:3210")).unwrap(), "http://127.0.0.1:3210");
        for bad in ["happy-animal", "ftp://x.convex.cloud", "https://user:pw@x.convex.cloud", ""] {
            assert!(convex_url(Some(bad)).is_err(), "{bad}");
        }
        assert!(matches!(convex_url(None), Err(ImportError::MissingConvexUrl)));
    }

    #[test]
    fn convex_messages_lose_request_ids_and_stacks() {
        let raw = "[Request ID: 1234] Server Error\nUncaught Error: users 7: boom\n    at handler (../convex/migrate.ts:10:3)";
        assert_eq!(clean_message(raw), "Server Error Uncaught Error: users 7: boom");
    }
}
