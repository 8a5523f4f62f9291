//! What can be wrong with a plan: each error names the file, the line and the key it concerns,
//! and suggests the closest existing name when a name is misspelt.

use std::fmt;
use std::path::PathBuf;

use crate::exit_code;

/// A place in a plan file: `migrations/0002_money.toml:7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as the plan directory names it (`<plan dir>/<file name>`).
    pub file: String,
    /// 1-based.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// `file:line: ` before a message, or nothing when the problem comes from a default (derived
/// from the catalog, written in no file).
struct Prefix<'a>(&'a Option<Location>);

impl fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(at) => write!(f, "{at}: "),
            None => Ok(()),
        }
    }
}

fn prefix(at: &Option<Location>) -> Prefix<'_> {
    Prefix(at)
}

/// `in \`path\``, or `at the top level` for the file itself.
fn within(path: &str) -> String {
    if path.is_empty() { "at the top level".into() } else { format!("in `{path}`") }
}

fn backticked(items: &[impl fmt::Display]) -> String {
    items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

/// Why a table cannot be the target of `merge_into`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeProblem {
    Itself,
    Skipped,
    /// The target is itself merged into this table.
    Merged {
        into: String,
    },
}

impl fmt::Display for MergeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeProblem::Itself => f.write_str("a table cannot merge into itself"),
            MergeProblem::Skipped => f.write_str("that table is skipped"),
            MergeProblem::Merged { into } => {
                write!(f, "that table is itself merged into `{into}`")
            }
        }
    }
}

/// A plan that cannot be read or does not fit the catalog. Always a usage error: nothing was
/// touched. Boxed: it travels through every `Result` of plan loading, and its data is large.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PlanError(Box<PlanErrorKind>);

impl From<PlanErrorKind> for PlanError {
    fn from(kind: PlanErrorKind) -> Self {
        PlanError(Box::new(kind))
    }
}

/// What is wrong, with the data to say where.
#[derive(Debug, thiserror::Error)]
pub enum PlanErrorKind {
    #[error("the plan directory `{}` does not exist", dir.display())]
    DirMissing { dir: PathBuf },
    #[error("cannot read the plan directory `{}`", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read `{}`", file.display())]
    ReadFile {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a plan file: it looks like one but is not named like one", file.display())]
    BadFileName { file: PathBuf },
    #[error("`{first}` and `{second}` have the same number {number}")]
    DuplicateNumber { number: u64, first: String, second: String },
    #[error("{at}: the file is not UTF-8 text")]
    NotUtf8 { at: Location },
    #[error("{at}: invalid TOML: {message}")]
    InvalidToml { at: Location, message: String },
    #[error("{at}: unknown key `{key}` {}", within(path))]
    UnknownKey {
        at: Location,
        key: String,
        /// The table holding the key (`tables."public.users".columns.balance`).
        path: String,
        expected: Vec<&'static str>,
        suggestion: Option<String>,
    },
    #[error("{at}: `{path}` must be {expected}, not {found}")]
    WrongType { at: Location, path: String, expected: &'static str, found: &'static str },
    #[error("{at}: `{path}` cannot be `{value}`: expected {expected}")]
    InvalidValue {
        at: Location,
        path: String,
        value: String,
        expected: String,
        suggestion: Option<String>,
    },
    #[error("{at}: `{path}`: {reason}")]
    Invalid { at: Location, path: String, reason: String, hint: Option<String> },
    #[error("{at}: `{path}` names table `{table}`, which the export does not hold")]
    UnknownTable { at: Location, path: String, table: String, suggestion: Option<String> },
    #[error("{at}: `{path}` names column `{column}`, which table `{table}` does not have")]
    UnknownColumn {
        at: Location,
        path: String,
        table: String,
        column: String,
        suggestion: Option<String>,
    },
    #[error(
        "{at}: `{path}` names no foreign key of table `{table}`{}",
        if keys.is_empty() { " (it has none)".to_owned() } else { String::new() }
    )]
    UnknownReference {
        at: Location,
        path: String,
        table: String,
        /// The keys that would match: column lists and constraint names.
        keys: Vec<String>,
        suggestion: Option<String>,
    },
    #[error("{at}: policy `{policy}` does not apply to column `{column}` of type `{sql_type}`")]
    PolicyMismatch {
        at: Location,
        path: String,
        policy: String,
        column: String,
        sql_type: String,
        allowed: Vec<&'static str>,
    },
    #[error("{at}: `json_keys` does not apply to column `{column}` of type `{sql_type}`")]
    JsonKeysMismatch { at: Location, path: String, column: String, sql_type: String },
    #[error("{at}: `{path}` does not fit column `{column}` of type `{sql_type}`: {reason}")]
    InvalidLiteral { at: Location, path: String, column: String, sql_type: String, reason: String },
    #[error("{}{what} name `{name}` ({origin}) is not allowed in Convex: {reason}", prefix(at))]
    InvalidName {
        at: Option<Location>,
        /// `table` or `field`.
        what: &'static str,
        name: String,
        /// Where the name comes from: `target of \`public.users\``, `column \`public.users.1st\``.
        origin: String,
        reason: &'static str,
        /// The key that sets the name: `tables."public.users".target`.
        key: String,
    },
    #[error(
        "{}tables `{first}` and `{second}` both become Convex table `{target}`{}",
        prefix(at),
        also.as_ref().map(|also| format!(" (also set at {also})")).unwrap_or_default()
    )]
    DuplicateTarget {
        at: Option<Location>,
        /// The other place the name is set, when both are.
        also: Option<Location>,
        target: String,
        first: String,
        second: String,
    },
    #[error(
        "{}field `{field}` of Convex table `{target}` comes from both {first} and {second}",
        prefix(at)
    )]
    DuplicateField {
        at: Option<Location>,
        target: String,
        field: String,
        first: String,
        second: String,
    },
    #[error(
        "{}table `{table}` has no primary key or unique key to take its legacy id from",
        prefix(at)
    )]
    NoLegacyId { at: Option<Location>, table: String },
    #[error(
        "the plan was {} `{plan}`, but {} no primary key or unique key to take a legacy id \
         from: {}",
        if *written { "written to" } else { "kept as it is in" },
        if tables.len() == 1 { "1 table has" } else { "these tables have" },
        backticked(tables)
    )]
    Keyless {
        plan: String,
        tables: Vec<String>,
        /// False when the plan file was a person's, kept as it was.
        written: bool,
    },
    #[error("{at}: `{table}` cannot merge into `{target}`: {problem}")]
    MergeTarget { at: Location, table: String, target: String, problem: MergeProblem },
    #[error("{at}: `{table}` cannot merge into `{target}`: {reason}")]
    MergeOn { at: Location, table: String, target: String, reason: String },
}

impl PlanError {
    pub fn kind(&self) -> &PlanErrorKind {
        &self.0
    }

    pub fn exit_code(&self) -> u8 {
        exit_code::USAGE
    }

    pub fn hint(&self) -> Option<String> {
        self.0.hint()
    }
}

impl PlanErrorKind {
    pub fn hint(&self) -> Option<String> {
        if let Some(suggestion) = self.suggestion() {
            return Some(format!("did you mean `{suggestion}`?"));
        }
        Some(match self {
            PlanErrorKind::DirMissing { .. } => "run `migrate init` to write the first plan, or \
                pass --plan-dir with the directory that holds it"
                .into(),
            PlanErrorKind::BadFileName { .. } => "plan files are named `NNNN_<words>.toml` (e.g. \
                `0002_money_as_cents.toml`): rename it so, or rename it so that it does not \
                start with a digit to have it ignored"
                .into(),
            PlanErrorKind::Keyless { plan, .. } => format!(
                "in `{plan}`, set each table's `legacy_id` to columns whose values are unique \
                 (transform rejects rows that share a legacy id), or set `skip = true` to leave \
                 the table out; then run `migrate init` again"
            ),
            PlanErrorKind::DuplicateNumber { .. } => {
                "give each plan file a number of its own: they apply in number order".into()
            }
            PlanErrorKind::UnknownKey { expected, .. } => {
                format!("expected one of {}", backticked(expected))
            }
            PlanErrorKind::Invalid { hint, .. } => return hint.clone(),
            PlanErrorKind::UnknownTable { .. } => "tables are named `schema.table` as in \
                data/manifest.json; run `migrate export` again if the table is new"
                .into(),
            PlanErrorKind::UnknownReference { keys, .. } if !keys.is_empty() => {
                format!(
                    "a reference is named by its columns or its constraint: {}; for one the \
                     database does not declare, add `to = \"schema.table\"`",
                    backticked(keys)
                )
            }
            PlanErrorKind::UnknownReference { .. } => {
                "for a reference the database does not declare, add `to = \"schema.table\"`".into()
            }
            PlanErrorKind::PolicyMismatch { allowed, .. } if allowed.is_empty() => {
                "this type has no policies: remove `policy`".into()
            }
            PlanErrorKind::PolicyMismatch { allowed, .. } => {
                format!("the policies of this type are {}", backticked(allowed))
            }
            PlanErrorKind::JsonKeysMismatch { .. } => {
                "`json_keys` is for json and jsonb columns".into()
            }
            PlanErrorKind::InvalidName { name, key, .. }
                if name == super::codegen::LEDGER_TABLE =>
            {
                format!("choose another name for the table: set `{key}`")
            }
            PlanErrorKind::InvalidName { key, .. } => format!(
                "Convex names are ASCII letters, digits and `_`, start with a letter and have at \
                 most 64 characters: set `{key}`"
            ),
            PlanErrorKind::DuplicateTarget { .. } => {
                "set `target` of one of them, or `merge_into` to fold one into the other".into()
            }
            PlanErrorKind::DuplicateField { .. } => "set `field` of one of them".into(),
            PlanErrorKind::NoLegacyId { table, .. } => format!(
                "set `legacy_id` under `[tables.{}]` to columns that identify a row, or \
                 `skip = true`",
                super::file::quote_key(table)
            ),
            PlanErrorKind::MergeOn { .. } => {
                "set `on` to the columns that equal the target's legacy id".into()
            }
            _ => return None,
        })
    }

    /// The name this error suggests instead of a misspelt one.
    pub fn suggestion(&self) -> Option<&str> {
        match self {
            PlanErrorKind::UnknownKey { suggestion, .. }
            | PlanErrorKind::InvalidValue { suggestion, .. }
            | PlanErrorKind::UnknownTable { suggestion, .. }
            | PlanErrorKind::UnknownColumn { suggestion, .. }
            | PlanErrorKind::UnknownReference { suggestion, .. } => suggestion.as_deref(),
            _ => None,
        }
    }
}

/// The candidate closest to `wanted`, when one is close enough to be a likely typo: a few
/// letters apart (case aside), one a prefix of the other (`parent` for `parent_id`), or the
/// unqualified name of a table (`users` for `public.users`).
pub(crate) fn suggest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = wanted.to_lowercase();
    let allowed = (lower.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter_map(|candidate| {
            let other = candidate.to_lowercase();
            let distance = strsim::osa_distance(&lower, &other);
            let prefix = lower.len().min(other.len()) >= 3
                && (other.starts_with(&lower) || lower.starts_with(&other));
            let unqualified = other.rsplit_once('.').is_some_and(|(_, name)| name == lower);
            let rank = if distance <= allowed {
                distance
            } else if prefix || unqualified {
                allowed + 1
            } else {
                return None;
            };
            Some((rank, candidate))
        })
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, candidate)| candidate.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_typos_and_unqualified_names() {
        let keys = ["field", "policy", "default", "json_keys"];
        assert_eq!(suggest("polcy", keys).as_deref(), Some("policy"));
        assert_eq!(suggest("Policy", keys).as_deref(), Some("policy"));
        assert_eq!(suggest("zzz", keys), None);
        let tables = ["public.users", "public.posts"];
        assert_eq!(suggest("users", tables).as_deref(), Some("public.users"));
        assert_eq!(suggest("public.user", tables).as_deref(), Some("public.users"));
        assert_eq!(suggest("colour", ["target", "columns", "references"]), None);
        assert_eq!(suggest("parent", ["post_id", "parent_id"]).as_deref(), Some("parent_id"));
        assert_eq!(suggest("emial", ["id", "email"]).as_deref(), Some("email"));
    }

    #[test]
    fn messages_name_the_place_and_hints_the_fix() {
        let at = Location { file: "migrations/0002_x.toml".into(), line: 7 };
        let error = PlanError::from(PlanErrorKind::UnknownKey {
            at,
            key: "polcy".into(),
            path: r#"tables."public.users".columns.balance"#.into(),
            expected: vec!["field", "policy"],
            suggestion: Some("policy".into()),
        });
        assert_eq!(
            error.to_string(),
            r#"migrations/0002_x.toml:7: unknown key `polcy` in `tables."public.users".columns.balance`"#
        );
        assert_eq!(error.hint().as_deref(), Some("did you mean `policy`?"));
        let no_location =
            PlanError::from(PlanErrorKind::NoLegacyId { at: None, table: "public.log".into() });
        assert_eq!(
            no_location.to_string(),
            "table `public.log` has no primary key or unique key to take its legacy id from"
        );
        assert_eq!(
            no_location.hint().as_deref(),
            Some(
                "set `legacy_id` under `[tables.\"public.log\"]` to columns that identify a row, \
                 or `skip = true`"
            )
        );
    }
}
