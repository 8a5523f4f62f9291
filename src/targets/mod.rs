//! Many deployments: the targets file (`file`: `targets.toml` in the plan dir) and the runner
//! that runs one per-deployment command — a function of a [`Deployment`] — for each selected
//! target, at most `--parallel-targets` at once. A target that fails (its key refused, its
//! variable unset, Convex failing mid-way) fails alone: the others run to their end; the
//! report has one row per target and the exit code is the worst target's.
//!
//! Each deployment keeps its own state (`import::state::place`), so a re-run resumes each target
//! where it stopped and does again only what is not completed.

pub mod file;
pub mod tenant;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use serde::Serialize;
use tracing::Instrument;

pub use self::file::{Target, TargetsError};
use crate::convex::client::RetryPolicy;
use crate::import::ConvexTarget;
use crate::output::{Reporter, TableProgress, Unit};
use crate::settings::Secret;

/// One selected target, as a per-deployment command sees it.
#[derive(Clone)]
pub struct Deployment {
    pub name: String,
    pub url: String,
    /// The deployment's identity ([`crate::deployment::identity`]), which keys its state.
    pub identity: String,
    /// The variable named by `deploy_key_env`, and its value when it is set.
    pub key_env: String,
    key: Option<Secret>,
    /// The tenant's row filters as a plan layer (see [`tenant`]); `None`: every row.
    pub filters: Option<String>,
    /// Progress of this target's tables, labelled with its name.
    pub reporter: Arc<dyn Reporter>,
}

impl Deployment {
    /// The data directory this target imports from and verifies against: the shared one, or
    /// with tenant filters its own (`tenant::data_dir`).
    pub fn data_dir(
        &self,
        shared: &crate::data_dir::DataDir,
    ) -> anyhow::Result<crate::data_dir::DataDir> {
        Ok(match self.filters {
            Some(_) => tenant::data_dir(shared, &self.identity)?,
            None => shared.clone(),
        })
    }

    /// Refuses to move a plan's files (`[files]`) into a target with tenant filters: which
    /// Storage objects are a tenant's is not known, and every tenant's would break isolation.
    pub fn check_files(&self, plan_has_files: bool) -> Result<(), TargetsError> {
        match (&self.filters, plan_has_files) {
            (Some(_), true) => Err(TargetsError::TenantFiles { target: self.name.clone() }),
            _ => Ok(()),
        }
    }

    /// How to call the deployment; fails, naming the variable, when its key is not set.
    pub fn convex(
        &self,
        timeout: std::time::Duration,
        retry: RetryPolicy,
    ) -> anyhow::Result<ConvexTarget> {
        let deploy_key = self.key.clone().ok_or_else(|| TargetsError::MissingKey {
            target: self.name.clone(),
            variable: self.key_env.clone(),
        })?;
        Ok(ConvexTarget { url: self.url.clone(), deploy_key, timeout, retry })
    }
}

/// What a per-deployment command says of one target that ran to its end.
pub struct Outcome {
    /// `completed`, `verified`, `differences`, `rejected`, …
    pub status: &'static str,
    pub code: u8,
    /// The command's own report (its JSON).
    pub report: serde_json::Value,
    /// The command's own summary as text.
    pub text: String,
}

/// One row of the summary.
#[derive(Debug, Serialize)]
pub struct TargetRun {
    pub target: String,
    pub url: String,
    /// The outcome's status, or `failed`, `interrupted`.
    pub status: String,
    pub exit_code: u8,
    pub seconds: f64,
    /// What the command reported, when it ran to its end.
    pub report: Option<serde_json::Value>,
    /// The error, rendered as on stderr (`error: …`, causes, hint), when it did not.
    pub error: Option<String>,
    #[serde(skip)]
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct TargetsReport {
    pub command: &'static str,
    pub targets: Vec<TargetRun>,
    /// The worst target's ([`crate::exit_code::worst`]).
    pub exit_code: u8,
    /// What holds across targets rather than in one (e.g. rows no tenant takes).
    pub warnings: Vec<String>,
}

/// Reads the targets file and the selection (`--target`, `--all-targets`), and resolves each
/// target's key from the environment (a missing one is that target's failure, when it runs).
pub fn selected(
    plan_dir: &Path,
    names: &[String],
    all: bool,
    reporter: &Arc<dyn Reporter>,
) -> Result<Vec<Deployment>, TargetsError> {
    let path = plan_dir.join(file::FILE_NAME);
    let targets = file::select(file::load(plan_dir)?, names, all, &path)?;
    let mut deployments: Vec<Deployment> = Vec::with_capacity(targets.len());
    for Target { name, url, deploy_key_env, filters } in targets {
        let key = std::env::var(&deploy_key_env).ok().filter(|k| !k.trim().is_empty());
        let identity = crate::deployment::identity(&url, key.as_deref());
        if let Some(same) = deployments.iter().find(|d| d.identity == identity) {
            return Err(TargetsError::SameDeployment {
                first: same.name.clone(),
                second: name,
                identity,
            });
        }
        deployments.push(Deployment {
            reporter: Arc::new(Labelled { name: name.clone(), inner: Arc::clone(reporter) }),
            name,
            url,
            identity,
            key_env: deploy_key_env,
            key: key.map(Secret::new),
            filters,
        });
    }
    Ok(deployments)
}

/// Runs `work` for each deployment, at most `parallel` at once, each to its own end whatever
/// the others do; the rows come back in the targets' order. A target's error is logged as it
/// happens (under its name) and kept in its row.
pub async fn run_each<F, Fut>(
    command: &'static str,
    deployments: Vec<Deployment>,
    parallel: usize,
    work: F,
) -> TargetsReport
where
    F: Fn(Deployment) -> Fut,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    let runs = deployments.into_iter().enumerate().map(|(index, deployment)| {
        let (name, url) = (deployment.name.clone(), deployment.url.clone());
        let key_env = deployment.key_env.clone();
        let span = tracing::warn_span!("target", name = %name);
        let started = Instant::now();
        let done = work(deployment).instrument(span);
        async move {
            let outcome = done.await;
            let seconds = started.elapsed().as_secs_f64();
            let run = match outcome {
                Ok(Outcome { status, code, report, text }) => TargetRun {
                    target: name,
                    url,
                    status: status.to_owned(),
                    exit_code: code,
                    seconds,
                    report: Some(report),
                    error: None,
                    text,
                },
                Err(error) => {
                    let (rendered, code) = crate::output::render_error(&error);
                    // The stages' hints name the single path's variable; this target's key
                    // comes from its own.
                    let rendered: String = rendered
                        .lines()
                        .map(|line| match line.trim_start().starts_with("hint:") {
                            true => line.replace("CONVEX_DEPLOY_KEY", &key_env) + "\n",
                            false => line.to_owned() + "\n",
                        })
                        .collect();
                    crate::output::report_target_error(&name, &rendered);
                    let status = match code {
                        crate::exit_code::INTERRUPTED => "interrupted",
                        _ => "failed",
                    };
                    TargetRun {
                        target: name,
                        url,
                        status: status.to_owned(),
                        exit_code: code,
                        seconds,
                        report: None,
                        error: Some(rendered.trim_end().to_owned()),
                        text: String::new(),
                    }
                }
            };
            (index, run)
        }
    });
    let mut targets: Vec<(usize, TargetRun)> =
        futures_util::stream::iter(runs).buffer_unordered(parallel.max(1)).collect().await;
    targets.sort_by_key(|(index, _)| *index);
    let targets: Vec<TargetRun> = targets.into_iter().map(|(_, run)| run).collect();
    let exit_code = crate::exit_code::worst(targets.iter().map(|t| t.exit_code));
    TargetsReport { command, targets, exit_code, warnings: Vec::new() }
}

/// A target's progress: its tables labelled `NAME: table`.
struct Labelled {
    name: String,
    inner: Arc<dyn Reporter>,
}

impl Reporter for Labelled {
    fn table_started(
        &self,
        table: &str,
        estimated_rows: Option<u64>,
        unit: Unit,
    ) -> Box<dyn TableProgress> {
        self.inner.table_started(&format!("{}: {table}", self.name), estimated_rows, unit)
    }
}
