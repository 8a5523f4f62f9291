//! Flags, environment and `.env` turned into typed settings, validated once at the edge.
//!
//! Precedence is flag > environment (a `.env` file in the working directory fills variables that
//! are not already set) > default; clap applies the first two. Secrets live in types whose
//! `Debug` and `Display` never show them: [`DatabaseUrl`] and [`Secret`].

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use tokio_postgres::config::Host;

use crate::cli::{ExportArgs, GlobalArgs, InitArgs, OutputFormat};
use crate::exit_code;

/// A setting that is missing or malformed. Always a usage error: nothing was touched.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("no database URL given")]
    MissingDatabaseUrl,
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
    #[error("`sslmode={value}` is not a TLS mode")]
    InvalidSslMode { value: String },
}

impl SettingsError {
    pub fn exit_code(&self) -> u8 {
        exit_code::USAGE
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            SettingsError::MissingDatabaseUrl => {
                "pass --database-url or set DATABASE_URL (in the environment or a .env file)".into()
            }
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
                "use disable, prefer, require, verify-ca or verify-full".into()
            }
            SettingsError::NoSchemas => return None,
        })
    }
}

/// A Postgres connection string whose password never leaves this type: `Display` and `Debug`
/// show `postgres://user@host:port/database`.
#[derive(Clone)]
pub struct DatabaseUrl {
    config: tokio_postgres::Config,
    tls: Tls,
    redacted: String,
}

/// TLS as libpq's `sslmode` and `sslrootcert` ask for it. tokio-postgres knows only
/// disable/prefer/require, so the URL's own TLS options are taken out before it parses the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tls {
    pub mode: SslMode,
    /// PEM file of the certificate authorities to trust (`sslrootcert`); default: the Mozilla
    /// roots.
    pub root_cert: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, certificate not checked (libpq's default).
    Prefer,
    /// TLS or fail; the certificate is checked only when `sslrootcert` is given.
    Require,
    /// TLS, the certificate chain checked, not the host name.
    VerifyCa,
    /// TLS, the certificate chain and the host name checked.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = SettingsError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(SettingsError::InvalidSslMode { value: value.to_owned() }),
        })
    }
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query or a key=value string.
fn take_tls_options(raw: &str) -> Result<(String, Tls), SettingsError> {
    let mut tls = Tls { mode: SslMode::Prefer, root_cert: None };
    let mut apply = |key: &str, value: &str| -> Result<bool, SettingsError> {
        match key {
            "sslmode" => tls.mode = value.parse()?,
            "sslrootcert" => tls.root_cert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if let Some(after_scheme) = url_body(raw) {
        // The query starts after the credentials, which end at the first `@` (as tokio-postgres
        // reads them): a `?` in a password is not a query.
        let credentials_end = after_scheme.find('@').map_or(0, |at| at + 1);
        let query_start = after_scheme[credentials_end..]
            .find('?')
            .map(|q| raw.len() - after_scheme.len() + credentials_end + q);
        match query_start.map(|q| (&raw[..q], &raw[q + 1..])) {
            None => raw.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    let value = percent_decode(value);
                    if !apply(key, &value)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
        }
    } else {
        let mut kept = Vec::new();
        for token in raw.split_whitespace() {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            if !apply(key.trim(), value.trim().trim_matches('\'').trim())? {
                kept.push(token);
            }
        }
        kept.join(" ")
    };
    Ok((rest, tls))
}

/// What follows `postgres://` or `postgresql://`; `None` for a key=value string.
fn url_body(raw: &str) -> Option<&str> {
    raw.strip_prefix("postgres://").or_else(|| raw.strip_prefix("postgresql://"))
}

/// Refuses a URL with more than one literal `@`: a password (or user name) holding an
/// unencoded `@`. tokio-postgres, like libpq, ends the credentials at the first `@`, so the rest
/// of the password would be read as the host and shown in every message. The host named is
/// what follows the last `@`, which no part of the password can be.
fn check_single_at(raw: &str) -> Result<(), SettingsError> {
    let Some(body) = url_body(raw) else { return Ok(()) };
    if body.matches('@').count() < 2 {
        return Ok(());
    }
    let after = body.rsplit('@').next().unwrap_or_default();
    let host = after.split(['/', '?']).next().unwrap_or_default();
    let host = if host.is_empty() { "localhost".to_owned() } else { host.to_owned() };
    Err(SettingsError::UnencodedAt { host })
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok();
        match (bytes[i], hex().and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, SettingsError> {
        check_single_at(raw)?;
        let (rest, tls) = take_tls_options(raw)?;
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|source| SettingsError::InvalidDatabaseUrl { source })?;
        config.ssl_mode(match tls.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("migrate");
        }
        let redacted = redact(&config);
        let url = Self { config, tls, redacted };
        if url.is_transaction_pooler() {
            return Err(SettingsError::TransactionPooler { url: url.redacted });
        }
        Ok(url)
    }

    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// `host:port` of the first host, for messages.
    pub fn endpoint(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("(default user)")
    }

    pub fn database(&self) -> &str {
        self.config.get_dbname().or(self.config.get_user()).unwrap_or("postgres")
    }

    /// Supavisor answers transaction mode on port 6543 of `*.pooler.supabase.com`: every
    /// statement may run on another server connection, so no snapshot can be held or shared.
    fn is_transaction_pooler(&self) -> bool {
        let on_pooler = self.config.get_hosts().iter().any(|host| {
            matches!(host, Host::Tcp(name) if name.to_ascii_lowercase().ends_with(".pooler.supabase.com"))
        });
        on_pooler && self.config.get_ports().contains(&6543)
    }
}

fn redact(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) if host.contains(':') => format!("[{host}]"),
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().map(|p| format!(":{p}")).unwrap_or_default();
    let database = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{host}{port}/{database}")
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted)
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted)
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
}

impl ExportSettings {
    pub fn from_args(args: &ExportArgs) -> Result<Self, SettingsError> {
        let database_url =
            optional_url(args.database_url.as_deref())?.ok_or(SettingsError::MissingDatabaseUrl)?;
        let (schemas, tables) = selection(&args.schemas, args.tables.as_deref())?;
        Ok(ExportSettings { database_url, schemas, tables, jobs: args.jobs })
    }
}

/// What `migrate init` needs, validated.
#[derive(Debug, Clone, Serialize)]
pub struct InitSettings {
    /// `None`: use the catalog of the last export.
    pub database_url: Option<DatabaseUrl>,
    pub schemas: Vec<String>,
    pub tables: Vec<TableSelector>,
    pub convex_dir: PathBuf,
    pub force: bool,
    /// `--after-import`: the schema for after a complete import (cycle references required).
    pub after_import: bool,
}

impl InitSettings {
    pub fn from_args(args: &InitArgs) -> Result<Self, SettingsError> {
        let (schemas, tables) = selection(&args.schemas, args.tables.as_deref())?;
        Ok(InitSettings {
            database_url: optional_url(args.database_url.as_deref())?,
            schemas,
            tables,
            convex_dir: args.convex_dir.clone(),
            force: args.force,
            after_import: args.after_import,
        })
    }
}

fn optional_url(raw: Option<&str>) -> Result<Option<DatabaseUrl>, SettingsError> {
    raw.filter(|u| !u.trim().is_empty()).map(DatabaseUrl::parse).transpose()
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
    fn database_url_never_shows_the_password() {
        let url = DatabaseUrl::parse("postgres://alice:s3cret-pw@db.example.com:6432/app").unwrap();
        for shown in [url.to_string(), format!("{url:?}"), serde_json::to_string(&url).unwrap()] {
            assert!(!shown.contains("s3cret-pw"), "{shown}");
            assert!(shown.contains("alice@db.example.com:6432/app"), "{shown}");
        }
    }

    #[test]
    fn an_invalid_url_error_does_not_echo_the_password() {
        let err = DatabaseUrl::parse("postgres://alice:s3cret-pw@host:notaport/db").unwrap_err();
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text.push_str(&s.to_string());
            source = s.source();
        }
        assert!(!text.contains("s3cret-pw"), "{text}");
    }

    #[test]
    fn a_password_holding_an_unencoded_at_is_refused_naming_only_the_host() {
        for raw in [
            "postgres://postgres:p@ss@word-Zq8x@127.0.0.1:5432/db",
            "postgresql://postgres:p@ss@word-Zq8x@127.0.0.1:5432/db?sslmode=require",
            "postgres://me@corp:p@ss/word-Zq8x@127.0.0.1:5432/db",
            "postgres://postgres:p@ss?sslmode=word-Zq8x@127.0.0.1:5432/db",
        ] {
            let err = DatabaseUrl::parse(raw).unwrap_err();
            let shown = format!("{err} {}", err.hint().unwrap_or_default());
            assert!(matches!(err, SettingsError::UnencodedAt { .. }), "{raw}: {shown}");
            assert!(shown.contains("`127.0.0.1:5432`") && shown.contains("%40"), "{shown}");
            for part in ["ss", "word", "Zq8x"] {
                assert!(!err.to_string().contains(part), "{raw}: {shown}");
            }
        }
        // Percent-encoded, the same password is read whole.
        let url =
            DatabaseUrl::parse("postgres://postgres:p%40ss%40word@127.0.0.1:5432/db").unwrap();
        assert_eq!(url.config().get_password(), Some(&b"p@ss@word"[..]));
        assert_eq!(url.endpoint(), "127.0.0.1:5432");
        // A `?` in a password is no query: its text never becomes a TLS option (or a message).
        let url = DatabaseUrl::parse("postgres://u:p?sslmode=Zq8x@db.example.com/app").unwrap();
        assert_eq!(url.config().get_password(), Some(&b"p?sslmode=Zq8x"[..]));
        assert_eq!(url.to_string(), "postgres://u@db.example.com:5432/app");
    }

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
    fn tls_options_are_taken_from_urls_and_key_value_strings() {
        let url = DatabaseUrl::parse(
            "postgres://u:pw@db.example.com/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            url.tls(),
            &Tls { mode: SslMode::VerifyFull, root_cert: Some(PathBuf::from("/etc/ca.pem")) }
        );
        assert_eq!(url.config().get_application_name(), Some("x"));
        assert_eq!(url.config().get_ssl_mode(), tokio_postgres::config::SslMode::Require);

        let kv = DatabaseUrl::parse("host=localhost user=u sslmode=verify-ca dbname=app").unwrap();
        assert_eq!(kv.tls().mode, SslMode::VerifyCa);
        assert_eq!(kv.database(), "app");

        let plain = DatabaseUrl::parse("postgres://u@localhost/app").unwrap();
        assert_eq!(plain.tls(), &Tls { mode: SslMode::Prefer, root_cert: None });
        let off = DatabaseUrl::parse("postgres://u@localhost/app?sslmode=disable").unwrap();
        assert_eq!(off.config().get_ssl_mode(), tokio_postgres::config::SslMode::Disable);

        assert!(matches!(
            DatabaseUrl::parse("postgres://u@localhost/app?sslmode=sometimes"),
            Err(SettingsError::InvalidSslMode { .. })
        ));
    }

    #[test]
    fn supabase_transaction_pooler_is_refused_and_session_pooler_accepted() {
        let tx = "postgres://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres";
        assert!(matches!(DatabaseUrl::parse(tx), Err(SettingsError::TransactionPooler { .. })));
        let session =
            "postgres://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres";
        assert!(DatabaseUrl::parse(session).is_ok());
        assert!(DatabaseUrl::parse("postgres://u@localhost:6543/db").is_ok());
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
