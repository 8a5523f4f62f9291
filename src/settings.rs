//! Flags, environment and `.env` turned into typed settings, validated once at the edge.
//!
//! Precedence is flag > environment (a `.env` file in the working directory fills variables that
//! are not already set) > default; clap applies the first two. The Postgres connection follows
//! libpq's rules (`postgres`); the password file is `pgpass`. Secrets live in types whose
//! `Debug` and `Display` never show them: [`DatabaseUrl`] and [`Secret`].

mod pgpass;
mod postgres;
pub mod shown;

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Serialize;

pub use self::postgres::{
    ClientCert, DatabaseUrl, Environment, Given, RootCert, Shown, SslMode, Tls,
};
use crate::cli::{ExportArgs, GlobalArgs, InitArgs, OutputFormat};
use crate::exit_code;

/// A setting that is missing or malformed. Always a usage error: nothing was touched.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("the database URL is not valid")]
    InvalidDatabaseUrl {
        /// tokio-postgres' reason; it names options, never their values.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A literal `@` in the user name or password: where the credentials end cannot be told, so
    /// nothing before the last `@` is shown.
    #[error("the database URL for `{host}` holds more than one `@`")]
    UnencodedAt { host: String },
    #[error("`{url}` is a Supabase pooler in transaction mode, which cannot hold a snapshot")]
    TransactionPooler { url: String },
    #[error("`{value}` is not a table name")]
    InvalidTableName { value: String },
    #[error("`--schemas` is empty")]
    NoSchemas,
    /// `name` is `sslmode` (in the connection string) or `PGSSLMODE`.
    #[error("`{name}={value}` is not a TLS mode")]
    InvalidSslMode { name: &'static str, value: String },
    /// A libpq variable that holds no secret, with its value.
    #[error("`{name}={value}` is not {expected}")]
    InvalidVariable { name: &'static str, value: String, expected: &'static str },
    /// The `port=` of a URL's query: a port number, not a secret.
    #[error("the database URL's `port={value}` is not a port number")]
    InvalidPort { value: String },
    #[error("`sslmode={mode}` cannot be used with `sslrootcert=system`")]
    WeakSslModeForSystemRoots { mode: &'static str },
}

impl SettingsError {
    pub fn exit_code(&self) -> u8 {
        exit_code::USAGE
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            SettingsError::InvalidDatabaseUrl { .. } => {
                "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE".into()
            }
            SettingsError::UnencodedAt { .. } => "a `@` in the password or user name must be \
                percent-encoded as `%40` (postgres://USER:p%40ss@HOST:PORT/DATABASE); only the \
                `@` before the host stays as it is"
                .into(),
            SettingsError::TransactionPooler { .. } => "use the direct connection \
                (db.<project>.supabase.co:5432) or the session pooler on port 5432; a consistent \
                export needs one session that holds its snapshot"
                .into(),
            SettingsError::InvalidTableName { .. } => {
                "write `schema.table` or `table`; quote names with dots: `public.\"a.b\"`".into()
            }
            SettingsError::InvalidSslMode { .. } => {
                "use disable, allow, prefer, require, verify-ca or verify-full".into()
            }
            SettingsError::InvalidPort { .. } => {
                "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE or ?port=5432".into()
            }
            SettingsError::InvalidVariable { name, .. } => {
                format!("fix {name} or unset it (libpq's variables are read as psql reads them)")
            }
            SettingsError::WeakSslModeForSystemRoots { .. } => "use sslmode=verify-full (the \
                default with sslrootcert=system): trusting the system's authorities means checking \
                the host name too, as libpq 16 requires"
                .into(),
            SettingsError::NoSchemas => return None,
        })
    }
}

/// A secret read from the environment (the Convex deploy key). Shows as `****`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("****")
    }
}

/// `url` for messages: a user name and password (whatever follows the scheme up to the last
/// `@`, so an unencoded `@` or `/` in a password is covered too) become `****`, and a query or
/// fragment after the host becomes `?****`. Works on text that does not parse as a URL.
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    let start = url.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = url.split_at(start);
    let (userinfo, host_and_path) = match rest.rfind('@') {
        Some(at) => (true, &rest[at + 1..]),
        None => (false, rest),
    };
    let (host_and_path, query) = match host_and_path.find(['?', '#']) {
        Some(q) => (&host_and_path[..q], true),
        None => (host_and_path, false),
    };
    format!(
        "{scheme}{}{host_and_path}{}",
        if userinfo { "****@" } else { "" },
        if query { "?****" } else { "" }
    )
}

/// A table named on the command line: `schema.table` or a bare `table` looked up in the
/// selected schemas. Double quotes protect dots: `public."a.b"`; `""` is a literal quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableSelector {
    pub schema: Option<String>,
    pub name: String,
}

impl FromStr for TableSelector {
    type Err = SettingsError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = || SettingsError::InvalidTableName { value: value.to_owned() };
        let mut parts = vec![String::new()];
        let mut chars = value.trim().chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    chars.next();
                    parts.last_mut().expect("parts is never empty").push('"');
                }
                '"' => quoted = !quoted,
                '.' if !quoted => parts.push(String::new()),
                c => parts.last_mut().expect("parts is never empty").push(c),
            }
        }
        if quoted || parts.iter().any(String::is_empty) {
            return Err(invalid());
        }
        match <[String; 2]>::try_from(parts) {
            Ok([schema, name]) => Ok(TableSelector { schema: Some(schema), name }),
            Err(parts) if parts.len() == 1 => Ok(TableSelector {
                schema: None,
                name: parts.into_iter().next().unwrap_or_default(),
            }),
            Err(_) => Err(invalid()),
        }
    }
}

impl fmt::Display for TableSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Settings every command shares.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub plan_dir: PathBuf,
    pub format: OutputFormat,
    /// Bars on a terminal; plain lines at a steady interval in CI, pipes and with `-v`;
    /// nothing with `--no-progress` or `-q`.
    pub progress: Progress,
    /// The Convex deployment from the environment and `.env.local`/`.env` (without
    /// `--convex-url`, which the commands that take it add), URL redacted, key hidden.
    pub convex: crate::deployment::Deployment,
}

impl Settings {
    pub fn from_args(args: &GlobalArgs) -> Self {
        let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        Settings {
            data_dir: args.data_dir.clone(),
            plan_dir: args.plan_dir.clone(),
            format: args.format,
            progress: show_progress(args.no_progress, args.verbose, args.quiet, on_terminal, in_ci),
            // A command that calls Convex stops on the error; the others show it.
            convex: crate::deployment::from_env(None).unwrap_or_else(|error| {
                crate::deployment::Deployment {
                    url_from: Some(format!("not resolved: {error}")),
                    ..Default::default()
                }
            }),
        }
    }
}

/// How progress shows on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Progress {
    Off,
    /// Bars redrawn in place, for a person at a terminal.
    Bars,
    /// A plain line per table at a steady interval, for CI and log files.
    Lines,
}

/// Nothing with `--no-progress` or `-q`; bars only for a person watching: stderr is a
/// terminal, not CI, and no `-v` (logs would interleave); plain lines otherwise.
pub fn show_progress(
    no_progress: bool,
    verbose: u8,
    quiet: u8,
    on_terminal: bool,
    in_ci: bool,
) -> Progress {
    if no_progress || quiet > 0 {
        Progress::Off
    } else if verbose == 0 && on_terminal && !in_ci {
        Progress::Bars
    } else {
        Progress::Lines
    }
}

/// What `migrate export` needs, validated.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSettings {
    pub database_url: DatabaseUrl,
    pub schemas: Vec<String>,
    /// Empty: every table of the selected schemas.
    pub tables: Vec<TableSelector>,
    pub jobs: NonZeroUsize,
    /// `--incremental`: bring the previous export's files up to date (`export::incremental`).
    pub incremental: bool,
}

impl ExportSettings {
    /// The connection from `--database-url`/`DATABASE_URL`, the libpq variables and libpq's
    /// defaults, as psql would make it.
    pub fn from_args(args: &ExportArgs) -> Result<Self, SettingsError> {
        let env = Environment::process();
        let database_url = DatabaseUrl::resolve(given_url(args.database_url.as_deref()), &env)?;
        let (schemas, tables) = selection(&args.schemas, args.tables.as_deref())?;
        Ok(ExportSettings {
            database_url,
            schemas,
            tables,
            jobs: args.jobs,
            incremental: args.incremental,
        })
    }
}

/// What `migrate init` needs, validated.
#[derive(Debug, Clone, Serialize)]
pub struct InitSettings {
    /// `None`: use the catalog of the last export (or of `from_dump`).
    pub database_url: Option<DatabaseUrl>,
    /// A pg_dump file to read the catalog from instead of a server.
    pub from_dump: Option<PathBuf>,
    pub schemas: Vec<String>,
    pub tables: Vec<TableSelector>,
    /// `--schemas` or `--tables` was given on the command line: the catalog is read from the
    /// database even when an export exists.
    pub selection_given: bool,
    pub convex_dir: PathBuf,
    pub force: bool,
    /// `--after-import`: the schema for after a complete import (cycle references required).
    pub after_import: bool,
    /// `--preset`: an auth preset's plan file and Convex files are written too.
    pub preset: Option<crate::plan::presets::Preset>,
}

impl InitSettings {
    /// The catalog comes from the database when a connection string or a libpq variable names
    /// one (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, …), else from the last export.
    pub fn from_args(args: &InitArgs) -> Result<Self, SettingsError> {
        let (schemas, tables) = selection(&args.schemas, args.tables.as_deref())?;
        let env = Environment::process();
        let given = given_url(args.database_url.as_deref());
        let database_url = if args.from_dump.is_some() {
            None
        } else if given.is_some() || env.names_a_server() {
            Some(DatabaseUrl::resolve(given, &env)?)
        } else {
            None
        };
        Ok(InitSettings {
            database_url,
            from_dump: args.from_dump.clone(),
            schemas,
            tables,
            selection_given: args.selection_given,
            convex_dir: args.convex_dir.clone(),
            force: args.force,
            after_import: args.after_import,
            preset: args.preset.as_deref().and_then(crate::plan::presets::Preset::from_name),
        })
    }
}

/// The connection string clap found, named by where it came from: `--database-url`, or
/// `DATABASE_URL` (`DATABASE_URL (from .env)`) when the variable holds the same text.
fn given_url(raw: Option<&str>) -> Option<Given<'_>> {
    let raw = raw.filter(|u| !u.trim().is_empty())?;
    let from = match std::env::var("DATABASE_URL") {
        Ok(value) if value == raw => match crate::dotenv::origin("DATABASE_URL") {
            Some(file) => format!("DATABASE_URL (from {file})"),
            None => "DATABASE_URL".to_owned(),
        },
        _ => "--database-url".to_owned(),
    };
    Some(Given { raw, from })
}

/// `--schemas` and `--tables`, parsed.
fn selection(
    schemas: &str,
    tables: Option<&str>,
) -> Result<(Vec<String>, Vec<TableSelector>), SettingsError> {
    let schemas = split_list(schemas);
    if schemas.is_empty() {
        return Err(SettingsError::NoSchemas);
    }
    let tables = split_list(tables.unwrap_or_default())
        .iter()
        .map(|t| t.parse())
        .collect::<Result<Vec<TableSelector>, _>>()?;
    Ok((schemas, tables))
}

/// `--tables` as a list of selectors (`schema.table` or `table`, comma-separated).
pub fn parse_table_list(list: &str) -> Result<Vec<TableSelector>, SettingsError> {
    split_list(list).iter().map(|t| t.parse()).collect()
}

/// Splits a comma-separated list, keeping commas inside double quotes.
fn split_list(list: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut quoted = false;
    for c in list.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                items.last_mut().expect("items is never empty").push(c);
            }
            ',' if !quoted => items.push(String::new()),
            c => items.last_mut().expect("items is never empty").push(c),
        }
    }
    items.into_iter().map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_for_messages_show_no_credentials_or_query() {
        let cases = [
            ("https://happy-animal-123.convex.cloud", "https://happy-animal-123.convex.cloud"),
            ("https://u:Zq8x@happy.convex.cloud/", "https://****@happy.convex.cloud/"),
            ("https://u:p@s/s@Zq8x@happy.convex.cloud", "https://****@happy.convex.cloud"),
            ("https://happy.convex.cloud?key=Zq8x#Zq8x", "https://happy.convex.cloud?****"),
            ("u:Zq8x@not a url", "****@not a url"),
            ("not a url", "not a url"),
        ];
        for (raw, shown) in cases {
            assert_eq!(redact_url(raw), shown, "{raw}");
        }
    }

    #[test]
    fn table_selectors_parse_quotes_and_dots() {
        let parse = |s: &str| s.parse::<TableSelector>();
        assert_eq!(parse("users").unwrap(), TableSelector { schema: None, name: "users".into() });
        assert_eq!(
            parse("auth.users").unwrap(),
            TableSelector { schema: Some("auth".into()), name: "users".into() }
        );
        assert_eq!(
            parse(r#"public."a.b""#).unwrap(),
            TableSelector { schema: Some("public".into()), name: "a.b".into() }
        );
        assert_eq!(
            parse(r#""say ""hi""""#).unwrap(),
            TableSelector { schema: None, name: r#"say "hi""#.into() }
        );
        assert_eq!(parse("Order Items").unwrap().name, "Order Items");
        for bad in ["a.b.c", "a.", ".b", r#""open"#, ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_split_on_commas_outside_quotes() {
        assert_eq!(split_list(" a, b ,,c"), ["a", "b", "c"]);
        assert_eq!(split_list(r#"public."x,y",z"#), [r#"public."x,y""#, "z"]);
    }

    #[test]
    fn progress_only_for_a_person_at_a_terminal() {
        assert_eq!(show_progress(false, 0, 0, true, false), Progress::Bars);
        assert_eq!(show_progress(true, 0, 0, true, false), Progress::Off);
        assert_eq!(show_progress(false, 1, 0, true, false), Progress::Lines);
        assert_eq!(show_progress(false, 0, 1, true, false), Progress::Off);
        assert_eq!(show_progress(false, 0, 0, false, false), Progress::Lines);
        assert_eq!(show_progress(false, 2, 0, false, false), Progress::Lines);
        assert_eq!(show_progress(true, 0, 0, false, false), Progress::Off);
        assert_eq!(show_progress(false, 0, 0, true, true), Progress::Lines);
    }
}
