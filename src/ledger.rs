//! The ledger a deployment keeps of what was migrated into it: the `migrateLedger` table of the
//! generated module, written and read through `migrate:ledgerWrite`, `migrate:ledgerRead` and
//! `migrate:ledgerList` (docs/convex-module.md, "The ledger").
//!
//! One entry per import and plan version: the import's id (kept in `data/state.sqlite`), the
//! plan's hash, version and files, counts, started and finished times, and where it stands
//! ([`Status`]). Import, rollback, finalize and `status --ledger` share this room; the rules
//! that read the entries before a command changes anything are here too ([`check_import`],
//! [`check_not_finalized`]), so every command refuses in the same words.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::convex::client::{CallError, ConvexClient, FunctionKind};
use crate::exit_code;
use crate::plan::PlanError;

/// Where a migration stands in a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// `migrate import` is sending documents (or was stopped while it did).
    Running,
    Completed,
    /// Import stopped on an error; running it again resumes.
    Failed,
    /// `migrate rollback` is removing the documents (or was stopped while it did).
    RollingBack,
    /// Every document the import wrote is gone, but those listed as changed and kept.
    RolledBack,
    /// `migrate finalize` is taking the legacy ids out.
    Finalizing,
    /// Legacy ids and their indexes are gone: import and rollback refuse.
    Finalized,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::RollingBack,
        Status::RolledBack,
        Status::Finalizing,
        Status::Finalized,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::RollingBack => "rolling_back",
            Status::RolledBack => "rolled_back",
            Status::Finalizing => "finalizing",
            Status::Finalized => "finalized",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str().replace('_', " "))
    }
}

/// One entry of the ledger, as `migrate:ledgerList` returns it (camelCase; reports show it in
/// snake_case, as every other report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase"))]
pub struct Entry {
    pub import_id: String,
    pub plan_hash: String,
    /// A Convex number (float64) on the wire.
    #[serde(deserialize_with = "whole_number")]
    pub plan_version: u64,
    pub plan_files: Vec<String>,
    pub status: Status,
    #[serde(default)]
    pub counts: BTreeMap<String, f64>,
    /// Milliseconds since the epoch.
    pub started_at: f64,
    #[serde(default)]
    pub finished_at: Option<f64>,
    pub updated_at: f64,
}

/// A Convex number that holds a whole number.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let number = f64::deserialize(deserializer)?;
    if number < 0.0 || number.fract() != 0.0 || number > u64::MAX as f64 {
        return Err(serde::de::Error::custom(format!("{number} is not a plan version")));
    }
    Ok(number as u64)
}

impl Entry {
    /// `started_at` as an RFC 3339 UTC time, for people.
    pub fn started(&self) -> String {
        time_text(self.started_at)
    }

    pub fn finished(&self) -> Option<String> {
        self.finished_at.map(time_text)
    }
}

/// `2026-12-05T23:40:00Z` for milliseconds since the epoch.
fn time_text(millis: f64) -> String {
    let seconds = (millis / 1000.0).floor() as i64;
    let (year, month, day) = crate::calendar::civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// The plan a command runs under, as the ledger records it: its version is the highest number
/// of its files (`0003_money.toml` → 3), so a plan is older than another when its last file
/// has a lower number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanVersion {
    pub hash: String,
    pub version: u64,
    pub files: Vec<String>,
}

impl PlanVersion {
    /// The plan files of `plan_dir`; `hash` is the resolved plan's.
    pub fn read(plan_dir: &Path, hash: &str) -> Result<Self, PlanError> {
        let dir = crate::plan::file::read_dir(plan_dir)?;
        Ok(PlanVersion {
            hash: hash.to_owned(),
            version: dir.sources.iter().map(|s| s.number).max().unwrap_or(0),
            files: dir.sources.into_iter().map(|s| s.name).collect(),
        })
    }
}

/// Why a command refuses to change a deployment, from what its ledger says.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "the deployment was finalized (import {import_id}, plan version {plan_version}, {at}): \
         its documents no longer carry legacy ids and their indexes are gone, so `migrate \
         {command}` cannot find them"
    )]
    Finalized { command: &'static str, import_id: String, plan_version: u64, at: String },
    #[error(
        "the plan is older than the one the deployment's ledger says completed: this plan is \
         version {ours} ({ours_file}), the deployment completed version {completed} ({completed_file}, \
         import {import_id})"
    )]
    OlderPlan {
        ours: u64,
        ours_file: String,
        completed: u64,
        completed_file: String,
        import_id: String,
    },
    #[error(
        "the deployment's ledger holds no import of this data (plan {plan_hash}): nothing to \
         {command}"
    )]
    NoImport { command: &'static str, plan_hash: String },
    #[error(
        "the import of this data into the deployment is {status}, not completed: `migrate \
         finalize` takes the legacy ids out only after a complete import"
    )]
    NotCompleted { status: Status },
    #[error("reading or writing the deployment's ledger failed")]
    Call(#[source] CallError),
}

impl LedgerError {
    pub fn exit_code(&self) -> u8 {
        match self {
            LedgerError::Finalized { .. }
            | LedgerError::OlderPlan { .. }
            | LedgerError::NoImport { .. }
            | LedgerError::NotCompleted { .. } => exit_code::USAGE,
            LedgerError::Call(_) => exit_code::CONVEX_FAILURE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            LedgerError::Finalized { .. } => Some(
                "a finalized deployment is the application's now: change its data with the \
                 application's own functions (`migrate status --ledger` shows its ledger)"
                    .into(),
            ),
            LedgerError::OlderPlan { .. } => Some(
                "use the plan directory the deployment was migrated with, or pass --force to \
                 apply this older plan anyway"
                    .into(),
            ),
            LedgerError::NoImport { .. } => Some(
                "run the command with the data directory of the import (its data/state.sqlite \
                 names the import), or check the deployment with `migrate status --ledger`"
                    .into(),
            ),
            LedgerError::NotCompleted { .. } => Some(
                "run `migrate import` until it completes (`migrate status --ledger` shows the \
                 ledger), then finalize"
                    .into(),
            ),
            LedgerError::Call(_) => None,
        }
    }
}

impl From<CallError> for LedgerError {
    fn from(error: CallError) -> Self {
        LedgerError::Call(error)
    }
}

/// The latest entry of an import of the plan `plan_hash`.
pub fn latest_of_plan<'a>(entries: &'a [Entry], plan_hash: &str) -> Option<&'a Entry> {
    entries
        .iter()
        .filter(|e| e.plan_hash == plan_hash)
        .max_by(|a, b| a.updated_at.total_cmp(&b.updated_at))
}

/// Every entry of the deployment's ledger, oldest first.
pub async fn list(client: &ConvexClient) -> Result<Vec<Entry>, CallError> {
    client.call(FunctionKind::Query, "migrate:ledgerList", &serde_json::json!({})).await
}

/// The latest entry of the import `import_id`, or `None`.
pub async fn read(client: &ConvexClient, import_id: &str) -> Result<Option<Entry>, CallError> {
    let args = serde_json::json!({ "importId": import_id });
    client.call(FunctionKind::Query, "migrate:ledgerRead", &args).await
}

/// Records where the import `import_id` stands under `plan`; `counts`, when given, replace the
/// entry's.
pub async fn write(
    client: &ConvexClient,
    import_id: &str,
    plan: &PlanVersion,
    status: Status,
    counts: Option<&BTreeMap<String, u64>>,
) -> Result<Entry, CallError> {
    let mut args = serde_json::json!({
        "importId": import_id,
        "planHash": plan.hash,
        "planVersion": plan.version,
        "planFiles": plan.files,
        "status": status.as_str(),
    });
    if let Some(counts) = counts {
        args["counts"] = serde_json::json!(counts);
    }
    client.call(FunctionKind::Mutation, "migrate:ledgerWrite", &args).await
}

/// Refuses a command that changes a deployment whose ledger says it was finalized, or is
/// being finalized (some documents may have lost their legacy ids already).
pub fn check_not_finalized(entries: &[Entry], command: &'static str) -> Result<(), LedgerError> {
    let finalized = |e: &&Entry| matches!(e.status, Status::Finalized | Status::Finalizing);
    match entries.iter().rev().find(finalized) {
        Some(entry) => Err(LedgerError::Finalized {
            command,
            import_id: entry.import_id.clone(),
            plan_version: entry.plan_version,
            at: entry.finished().unwrap_or_else(|| entry.started()),
        }),
        None => Ok(()),
    }
}

/// Refuses an import into a finalized deployment, and (unless `force`) one of a plan older
/// than a plan the ledger says completed: a lower version, the highest number of the plan
/// files. A rolled-back entry does not count: its documents are gone.
pub fn check_import(entries: &[Entry], plan: &PlanVersion, force: bool) -> Result<(), LedgerError> {
    check_not_finalized(entries, "import")?;
    let newest =
        entries.iter().filter(|e| e.status == Status::Completed).max_by_key(|e| e.plan_version);
    match newest {
        Some(entry) if entry.plan_version > plan.version => {
            if force {
                tracing::warn!(
                    "--force: importing plan version {} into a deployment that completed version {}",
                    plan.version,
                    entry.plan_version
                );
                return Ok(());
            }
            Err(LedgerError::OlderPlan {
                ours: plan.version,
                ours_file: plan.files.last().cloned().unwrap_or_default(),
                completed: entry.plan_version,
                completed_file: entry.plan_files.last().cloned().unwrap_or_default(),
                import_id: entry.import_id.clone(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64, status: Status) -> Entry {
        Entry {
            import_id: format!("import{version}"),
            plan_hash: format!("blake3:{version}"),
            plan_version: version,
            plan_files: (1..=version).map(|n| format!("{n:04}_step.toml")).collect(),
            status,
            counts: BTreeMap::new(),
            started_at: 0.0,
            finished_at: Some(1000.0),
            updated_at: 1000.0,
        }
    }

    fn plan(version: u64) -> PlanVersion {
        PlanVersion {
            hash: format!("blake3:{version}"),
            version,
            files: (1..=version).map(|n| format!("{n:04}_step.toml")).collect(),
        }
    }

    #[test]
    fn an_older_plan_is_refused_unless_forced() {
        let entries = [entry(1, Status::Completed), entry(2, Status::Completed)];
        let refused = check_import(&entries, &plan(1), false).unwrap_err();
        assert!(matches!(refused, LedgerError::OlderPlan { ours: 1, completed: 2, .. }));
        assert!(refused.to_string().contains("0001_step.toml"), "{refused}");
        check_import(&entries, &plan(1), true).unwrap();
        check_import(&entries, &plan(2), false).unwrap();
        check_import(&entries, &plan(3), false).unwrap();
    }

    #[test]
    fn only_completed_entries_make_a_plan_older() {
        for status in [Status::Running, Status::Failed, Status::RolledBack, Status::RollingBack] {
            check_import(&[entry(5, status)], &plan(1), false).unwrap();
        }
    }

    #[test]
    fn a_finalized_deployment_refuses_even_with_force() {
        let entries = [entry(1, Status::Finalized)];
        assert!(matches!(
            check_import(&entries, &plan(2), true),
            Err(LedgerError::Finalized { command: "import", .. })
        ));
    }

    #[test]
    fn an_entry_reads_as_the_module_returns_it() {
        let json = r#"{"importId":"a","planHash":"blake3:1","planVersion":2.0,
            "planFiles":["0001_a.toml","0002_b.toml"],"status":"rolled_back","counts":{"kept":1.0},
            "startedAt":1.0,"updatedAt":2.0}"#;
        let entry: Entry = serde_json::from_str(json).unwrap();
        assert_eq!(
            (entry.plan_version, entry.status, entry.finished_at),
            (2, Status::RolledBack, None)
        );
        let bad = json.replace("2.0,", "2.5,");
        assert!(serde_json::from_str::<Entry>(&bad).is_err());
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(time_text(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(time_text(1_796_514_000_123.0), "2026-12-05T23:40:00Z");
    }

    #[test]
    fn statuses_read_as_the_module_writes_them() {
        for status in Status::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
        }
    }
}
