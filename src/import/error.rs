//! Everything that stops an import, each with the exit code and the hint a person needs.
//! A document Convex refuses does not stop it: that is a reject, not an error.

use std::path::PathBuf;

use super::state::StateError;
use crate::convex::client::CallError;
use crate::data_dir::DataDirError;
use crate::exit_code;
use crate::manifest::{Invalid, ManifestError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// What the deployment's ledger says stands in the way (finalized, a newer plan).
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// What stops a rollback before it removes anything.
    #[error(transparent)]
    Rollback(#[from] crate::rollback::RollbackError),
    /// Moving or removing the files of `[files]` (rollback and sync remove them too).
    #[error(transparent)]
    Files(#[from] crate::files::FilesError),
    #[error(
        "no finished export: `{}` is missing (an export was interrupted, or this is not its \
         data directory)",
        path.display()
    )]
    NotExported { path: PathBuf },
    #[error("no transformed data: `{path}` does not exist")]
    NotTransformed { path: PathBuf },
    #[error("`{path}` cannot be read")]
    BadManifest {
        path: PathBuf,
        #[source]
        reason: Invalid,
    },
    #[error(
        "the plan changed since transform: the plan files hash to {plan}, the transformed data \
         was made with {transformed}"
    )]
    PlanChangedSinceTransform { plan: String, transformed: String },
    #[error(
        "an import under another plan is half done: the state records {recorded}, the \
         transformed data was made with {transformed}"
    )]
    PlanChangedDuringImport { recorded: String, transformed: String },
    #[error("`{path}` changed since transform: {lines} lines, the manifest says {expected_lines}")]
    TransformedChanged { path: PathBuf, lines: u64, expected_lines: u64 },
    #[error("`{path}` line {line} is not a document line: {reason}")]
    BadLine { path: PathBuf, line: u64, reason: String },
    #[error("no Convex deployment URL given")]
    MissingConvexUrl,
    #[error("`{value}` is not a Convex deployment URL")]
    InvalidConvexUrl {
        /// Redacted: no user name, password or query.
        value: String,
        /// The URL held a user name or password.
        credentials: bool,
    },
    #[error("no deploy key: CONVEX_DEPLOY_KEY is not set")]
    MissingDeployKey,
    #[error("the key in CONVEX_DEPLOY_KEY names no deployment, so no URL can be derived from it")]
    KeyNamesNoDeployment,
    #[error("{set} is set but {missing} is not")]
    SelfHostedIncomplete { set: &'static str, missing: &'static str },
    #[error("conflicting Convex settings: {reason}")]
    ConvexConflict {
        /// Names variables and deployments, never a key.
        reason: String,
    },
    #[error("the Convex module `migrate` is not deployed")]
    ModuleNotDeployed {
        #[source]
        source: CallError,
    },
    #[error(
        "the deployed convex/migrate.ts was generated from plan {deployed}, the transformed \
         data from {transformed}"
    )]
    ModuleOutdated { deployed: String, transformed: String },
    #[error(
        "the deployed convex/migrate.ts is version {deployed} of the module, this migrate needs \
         version {expected}"
    )]
    ModuleVersion { deployed: u32, expected: u32 },
    #[error("the deployed convex/migrate.ts does not know table `{table}`")]
    ModuleMissingTable { table: String },
    #[error("Convex failed while importing `{table}`")]
    Convex {
        table: String,
        #[source]
        source: CallError,
    },
    #[error("Convex failed")]
    Call(#[from] CallError),
    #[error("cannot set up the HTTP client: {reason}")]
    HttpClient { reason: String },
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("interrupted: `migrate import` stopped; {checkpointed} batches are checkpointed")]
    Interrupted { checkpointed: u64 },
    #[error("the import is not complete: {reason}")]
    NotComplete { reason: String },
    #[error("nothing to sync from: {reason}")]
    NoSyncBase { reason: String },
}

impl From<ManifestError> for ImportError {
    fn from(error: ManifestError) -> Self {
        match error {
            ManifestError::Unreadable(error) => ImportError::DataDir(error),
            ManifestError::Invalid { path, reason } => ImportError::BadManifest { path, reason },
        }
    }
}

impl ImportError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ImportError::Ledger(e) => e.exit_code(),
            ImportError::Rollback(e) => e.exit_code(),
            ImportError::Files(e) => e.exit_code(),
            ImportError::NotTransformed { .. }
            | ImportError::NotExported { .. }
            | ImportError::PlanChangedSinceTransform { .. }
            | ImportError::PlanChangedDuringImport { .. }
            | ImportError::MissingConvexUrl
            | ImportError::InvalidConvexUrl { .. }
            | ImportError::MissingDeployKey
            | ImportError::KeyNamesNoDeployment
            | ImportError::SelfHostedIncomplete { .. }
            | ImportError::ConvexConflict { .. }
            | ImportError::NotComplete { .. }
            | ImportError::NoSyncBase { .. } => exit_code::USAGE,
            ImportError::ModuleNotDeployed { .. }
            | ImportError::ModuleOutdated { .. }
            | ImportError::ModuleVersion { .. }
            | ImportError::ModuleMissingTable { .. }
            | ImportError::Convex { .. }
            | ImportError::Call(_) => exit_code::CONVEX_FAILURE,
            ImportError::HttpClient { .. } => exit_code::USAGE,
            ImportError::BadManifest { .. }
            | ImportError::TransformedChanged { .. }
            | ImportError::BadLine { .. }
            | ImportError::DataDir(_)
            | ImportError::State(_) => exit_code::LOCAL_IO,
            ImportError::Interrupted { .. } => exit_code::INTERRUPTED,
        }
    }

    pub fn hint(&self) -> Option<String> {
        let call = match self {
            ImportError::Convex { source, .. } | ImportError::Call(source) => Some(source),
            _ => None,
        };
        if let Some(call) = call {
            return call_hint(call);
        }
        Some(match self {
            ImportError::Ledger(e) => return e.hint(),
            ImportError::Rollback(e) => return e.hint(),
            ImportError::Files(e) => return e.hint(),
            ImportError::NotTransformed { .. } => "run `migrate transform` first".into(),
            ImportError::NotExported { .. } => "run `migrate export` again (with the same \
                --data-dir), then `migrate transform`, then this command"
                .into(),
            ImportError::BadManifest { .. }
            | ImportError::TransformedChanged { .. }
            | ImportError::BadLine { .. } => {
                "the transformed data is damaged or was changed by hand: run `migrate transform` \
                 again"
                    .into()
            }
            ImportError::PlanChangedSinceTransform { .. } => {
                "run `migrate transform` again (and `migrate init` to regenerate the Convex \
                 files), then import"
                    .into()
            }
            ImportError::PlanChangedDuringImport { .. } => {
                "finish the import with the plan it started with, or run `migrate import --force` \
                 to start it over under the new plan (documents are upserted by legacy id, so \
                 nothing is duplicated)"
                    .into()
            }
            ImportError::MissingConvexUrl => "set CONVEX_DEPLOY_KEY (its deployment's URL is \
                derived from it), or pass --convex-url, or set CONVEX_URL or CONVEX_DEPLOYMENT (in \
                the environment, .env.local or .env); self-hosted: CONVEX_SELF_HOSTED_URL and \
                CONVEX_SELF_HOSTED_ADMIN_KEY"
                .into(),
            ImportError::KeyNamesNoDeployment => "a self-hosted admin key or a preview key needs \
                the URL: set CONVEX_SELF_HOSTED_URL and CONVEX_SELF_HOSTED_ADMIN_KEY (self-hosted), \
                or pass --convex-url or set CONVEX_URL"
                .into(),
            ImportError::SelfHostedIncomplete { .. } => "a self-hosted backend needs both \
                CONVEX_SELF_HOSTED_URL and CONVEX_SELF_HOSTED_ADMIN_KEY"
                .into(),
            ImportError::ConvexConflict { .. } => "keep one way of naming the deployment: unset \
                the other variable (in the environment, .env.local or .env), or pass --convex-url \
                with a deploy key of that deployment"
                .into(),
            ImportError::InvalidConvexUrl { credentials: true, .. } => "remove the user name and \
                password from CONVEX_URL: Convex takes no credentials in the URL, only the deploy \
                key in CONVEX_DEPLOY_KEY; expected https://<deployment>.convex.cloud"
                .into(),
            ImportError::InvalidConvexUrl { .. } => {
                "expected https://<deployment>.convex.cloud (or http://127.0.0.1:<port> for a \
                 local backend)"
                    .into()
            }
            ImportError::HttpClient { .. } => {
                "CONVEX_DEPLOY_KEY must be the deploy key exactly as the dashboard shows it".into()
            }
            ImportError::MissingDeployKey => "set CONVEX_DEPLOY_KEY in the environment or .env to \
                the deployment's deploy key (dashboard: Settings → Deploy keys); it is never \
                taken from the command line, where `ps` would show it"
                .into(),
            ImportError::ModuleNotDeployed { .. } => "deploy the generated convex/migrate.ts and \
                convex/migrateTables.ts (spread into your schema.ts) with your app (`npx convex \
                deploy`), then run the import again"
                .into(),
            ImportError::ModuleOutdated { .. }
            | ImportError::ModuleVersion { .. }
            | ImportError::ModuleMissingTable { .. } => {
                "run `migrate init` to regenerate convex/migrate.ts and convex/migrateTables.ts \
                 from the current plan, and deploy them"
                    .into()
            }
            ImportError::DataDir(e) => return e.hint(),
            ImportError::State(e) => return state_hint(e),
            ImportError::Interrupted { .. } => {
                "run `migrate import` again to resume where it stopped".into()
            }
            ImportError::NotComplete { .. } => "finish the import with `migrate import` (and \
                prove it with `migrate verify`), then run `migrate init --after-import` again"
                .into(),
            ImportError::NoSyncBase { .. } => "run `migrate import` for this deployment: it sends \
                only what the deployment lacks and records what it holds; `migrate sync` then sends \
                what changes after"
                .into(),
            ImportError::Convex { .. } | ImportError::Call(_) => return None,
        })
    }
}

fn call_hint(error: &CallError) -> Option<String> {
    Some(match error {
        CallError::DeployKey { .. } => "CONVEX_DEPLOY_KEY must be a deploy key of the deployment \
            CONVEX_URL names (dashboard: Settings → Deploy keys)"
            .into(),
        CallError::Unavailable { answered: false, .. } => "check that CONVEX_URL is your \
            deployment's URL (dashboard: Settings → URL & deploy key) and that this machine can \
            reach it (network, proxy, firewall); what was acknowledged is checkpointed: run \
            `migrate import` again to resume"
            .into(),
        CallError::Unavailable { .. } => "the deployment did not answer or kept refusing; what \
            was acknowledged is checkpointed: run `migrate import` again to resume"
            .into(),
        // Convex always has `/api/query` and `/api/mutation`: a 404 is another server.
        CallError::NotConvex { .. } | CallError::Refused { status: 404, .. } => "check \
            CONVEX_URL: it must be the deployment URL, https://<deployment>.convex.cloud"
            .into(),
        CallError::Function { .. } | CallError::Refused { .. } => return None,
    })
}

/// A state file that cannot be created or written is the data directory's problem (deleting
/// it would not help); one that is damaged only costs a resumed import its checkpoints.
fn state_hint(error: &StateError) -> Option<String> {
    use rusqlite::ErrorCode;
    let code = match error {
        StateError::DataDir(e) => return e.hint(),
        StateError::Sqlite { source, .. } => source.sqlite_error_code(),
        StateError::WriterGone => None,
    };
    Some(match code {
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            "check the permissions of the data directory, or choose another with --data-dir".into()
        }
        Some(ErrorCode::DiskFull) => "free some disk space and run the command again".into(),
        _ => "the state file only speeds a resumed import up: delete data/state.sqlite and run \
              the import again"
            .into(),
    })
}
