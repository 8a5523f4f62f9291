//! The Postgres connection, built as libpq (and so psql) builds it: the connection string
//! (`--database-url` or `DATABASE_URL`, a URL or `key=value` pairs) first; what it leaves out
//! from the libpq variables (`PGHOST`, `PGHOSTADDR`, `PGPORT`, `PGUSER`, `PGDATABASE`,
//! `PGPASSWORD`, `PGPASSFILE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`,
//! `PGAPPNAME`, `PGCONNECT_TIMEOUT`, `PGOPTIONS`); then libpq's defaults (the local socket
//! when one is there, else `localhost`; port 5432; the operating-system user; a database named
//! after the user; the password from the password file; `~/.postgresql/root.crt`,
//! `postgresql.crt` and `postgresql.key` when they exist). The TLS options tokio-postgres does
//! not know (`verify-ca`, `verify-full`, root and client certificates, `passfile`) are taken out
//! of the string before it parses the rest; `export::tls` loads the files.
//!
//! [`DatabaseUrl`] holds the password and never shows it; it remembers where every setting came
//! from, for `--show-settings` and for the hints of connection errors.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use tokio_postgres::config::Host;

use super::SettingsError;
use super::pgpass;

/// The directories libpq builds look for the server's socket in: Debian's and upstream's.
const SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];

/// Where the libpq variables, the home directory and the user name come from: the process
/// for real runs ([`Environment::process`]), fixed values in tests.
pub struct Environment<'a> {
    /// A variable's value; `None` when it is unset or empty.
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// The file (`.env.local`, `.env`) a variable came from; `None` for the real environment.
    pub origin: &'a dyn Fn(&str) -> Option<&'static str>,
    /// `$HOME`: `~/.pgpass` and `~/.postgresql/` are looked for there.
    pub home: Option<PathBuf>,
    /// The operating-system user: libpq's default user name.
    pub os_user: Option<String>,
    /// Whether a server socket exists at this path (for the default host).
    pub socket_exists: &'a dyn Fn(&Path) -> bool,
}

fn process_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn no_var(_: &str) -> Option<String> {
    None
}

fn no_origin(_: &str) -> Option<&'static str> {
    None
}

fn path_exists(path: &Path) -> bool {
    path.exists()
}

fn nothing_exists(_: &Path) -> bool {
    false
}

impl Environment<'static> {
    /// The process environment (with the `.env` files [`crate::dotenv`] loaded into it).
    pub fn process() -> Self {
        Environment {
            var: &process_var,
            origin: &crate::dotenv::origin,
            home: std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from),
            os_user: whoami::username().ok(),
            socket_exists: &path_exists,
        }
    }

    /// No variable, no home, no user, no socket: the connection string alone.
    pub fn empty() -> Self {
        Environment {
            var: &no_var,
            origin: &no_origin,
            home: None,
            os_user: None,
            socket_exists: &nothing_exists,
        }
    }
}

impl Environment<'_> {
    /// `NAME`, or `NAME (from .env)` when a `.env` file set it.
    fn named(&self, name: &str) -> String {
        match (self.origin)(name) {
            Some(file) => format!("{name} (from {file})"),
            None => name.to_owned(),
        }
    }

    /// Whether any variable naming the server, the database or the user is set: then
    /// `migrate init` reads the catalog from the database rather than from the last export.
    pub fn names_a_server(&self) -> bool {
        ["PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE"]
            .iter()
            .any(|name| (self.var)(name).is_some())
    }
}

/// A Postgres connection whose password never leaves this type: `Display` and `Debug` show
/// `postgres://user@host:port/database`.
#[derive(Clone)]
pub struct DatabaseUrl {
    config: tokio_postgres::Config,
    tls: Tls,
    redacted: String,
    shown: Vec<Shown>,
    /// A connection string or at least one libpq variable gave something.
    given: bool,
    /// Why the password file was not read, when it was not.
    passfile_ignored: Option<String>,
}

/// One setting as `--show-settings` shows it: never a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    pub name: &'static str,
    pub value: String,
    pub from: String,
}

/// TLS as libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey` ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    pub root_cert: RootCert,
    /// The certificate and key to present when the server asks for one.
    pub client_cert: Option<ClientCert>,
}

/// The authorities the server's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// None named and no `~/.postgresql/root.crt`: `prefer` and `require` check nothing;
    /// `verify-ca` and `verify-full` trust the system's store and the Mozilla roots.
    Default,
    /// A PEM file of authorities (`sslrootcert=FILE`, `PGSSLROOTCERT`, `~/.postgresql/root.crt`):
    /// these alone are trusted, and `require` checks the chain too, as in libpq.
    File(PathBuf),
    /// `sslrootcert=system` (libpq 16): the system's store alone, with `verify-full`.
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub cert: PathBuf,
    /// `None` when no key was named and no home directory is known to look in.
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, certificate not checked (libpq's default). `allow`
    /// means the same here.
    Prefer,
    /// TLS or fail; the certificate is checked only against a root file.
    Require,
    /// TLS, the certificate chain checked, not the host name.
    VerifyCa,
    /// TLS, the certificate chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str, name: &'static str) -> Result<Self, SettingsError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(SettingsError::InvalidSslMode { name, value: value.to_owned() }),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = SettingsError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        SslMode::parse(value, "sslmode")
    }
}

/// The options taken out of the connection string: tokio-postgres does not know them.
#[derive(Debug, Default)]
struct OwnOptions {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
    passfile: Option<String>,
}

impl OwnOptions {
    fn slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        Some(match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            "passfile" => &mut self.passfile,
            _ => return None,
        })
    }
}

/// A `postgres://` URL cut in byte ranges: the host list (after the credentials, which end at
/// the first `@` as tokio-postgres reads them, up to the path) and the query. `None` for a
/// `key=value` string.
struct UrlParts {
    hosts: Range<usize>,
    query: Option<Range<usize>>,
}

fn url_parts(raw: &str) -> Option<UrlParts> {
    let body = url_body(raw)?;
    let body_start = raw.len() - body.len();
    let hosts_start = body_start + body.find('@').map_or(0, |at| at + 1);
    let after = &raw[hosts_start..];
    let hosts_end = hosts_start + after.find(['/', '?']).unwrap_or(after.len());
    let query = after.find('?').map(|q| hosts_start + q + 1..raw.len());
    Some(UrlParts { hosts: hosts_start..hosts_end, query })
}

/// What follows `postgres://` or `postgresql://`; `None` for a key=value string.
fn url_body(raw: &str) -> Option<&str> {
    raw.strip_prefix("postgres://").or_else(|| raw.strip_prefix("postgresql://"))
}

/// Takes our own options out of a URL's query or a key=value string.
fn take_own_options(raw: &str) -> (String, OwnOptions) {
    let mut own = OwnOptions::default();
    let rest = if let Some(parts) = url_parts(raw) {
        match parts.query {
            None => raw.to_owned(),
            Some(query) => {
                let mut kept = Vec::new();
                for pair in raw[query.clone()].split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    match own.slot(key) {
                        Some(slot) => *slot = Some(percent_decode(value)),
                        None => kept.push(pair),
                    }
                }
                let base = &raw[..query.start - 1];
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
        }
    } else {
        let mut kept = Vec::new();
        for token in raw.split_whitespace() {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            match own.slot(key.trim()) {
                Some(slot) => *slot = Some(value.trim().trim_matches('\'').trim().to_owned()),
                None => kept.push(token),
            }
        }
        kept.join(" ")
    };
    (rest, own)
}

/// Whether a host of a URL's host list names its port. tokio-postgres reads a host without a
/// port as port 5432 (and a `port=` in the query as one more port), so the port libpq would
/// use (the query's, else `PGPORT`) is written into the URL's hosts before it parses them.
fn hosts_name_a_port(raw: &str, parts: &UrlParts) -> bool {
    raw[parts.hosts.clone()].split(',').any(host_has_port)
}

/// The URL without `port=…` in its query, and that value (the last one given).
fn take_query_port(raw: &str, parts: &UrlParts) -> (String, Option<String>) {
    let Some(query) = &parts.query else { return (raw.to_owned(), None) };
    let mut port = None;
    let mut kept = Vec::new();
    for pair in raw[query.clone()].split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("port=") {
            Some(value) => port = Some(percent_decode(value)),
            None => kept.push(pair),
        }
    }
    let base = &raw[..query.start - 1];
    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    (rest, port)
}

fn host_has_port(chunk: &str) -> bool {
    match chunk.strip_prefix('[') {
        Some(v6) => v6.split_once(']').is_some_and(|(_, rest)| rest.starts_with(':')),
        None => chunk.contains(':'),
    }
}

/// The URL with `ports` (one for all hosts, or one per host) written after each host.
fn with_ports(raw: &str, parts: &UrlParts, ports: &[&str]) -> String {
    let hosts: Vec<String> = raw[parts.hosts.clone()]
        .split(',')
        .enumerate()
        .map(|(i, host)| {
            let port = if ports.len() == 1 { ports.first() } else { ports.get(i) };
            match port {
                Some(port) if !port.is_empty() => format!("{host}:{port}"),
                _ => host.to_owned(),
            }
        })
        .collect();
    format!("{}{}{}", &raw[..parts.hosts.start], hosts.join(","), &raw[parts.hosts.end..])
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

/// Where the connection string came from (`--database-url`, `DATABASE_URL (from .env)`) and
/// its text.
pub struct Given<'a> {
    pub raw: &'a str,
    pub from: String,
}

impl DatabaseUrl {
    /// The connection string alone, with no variable, home directory or socket looked at.
    pub fn parse(raw: &str) -> Result<Self, SettingsError> {
        Self::resolve(
            Some(Given { raw, from: "the connection string".into() }),
            &Environment::empty(),
        )
    }

    /// The connection libpq would make from `given` (if any) and `env`.
    pub fn resolve(given: Option<Given<'_>>, env: &Environment<'_>) -> Result<Self, SettingsError> {
        let var = |name: &str| (env.var)(name);
        let mut shown = Vec::new();
        let mut given_anything = given.is_some();
        let mut from_env = |name: &'static str| {
            let value = var(name);
            if value.is_some() {
                given_anything = true;
            }
            value.map(|value| (value, env.named(name)))
        };
        let url_from = given.as_ref().map(|g| g.from.clone()).unwrap_or_default();

        // The connection string, without our options; PGPORT written into its hosts when it
        // names hosts but no port.
        let pgport = from_env("PGPORT");
        let mut port_from = None;
        let (mut config, own) = match &given {
            Some(Given { raw, .. }) => {
                check_single_at(raw)?;
                let (mut rest, own) = take_own_options(raw);
                if let Some(parts) = url_parts(&rest)
                    && !parts.hosts.is_empty()
                {
                    if hosts_name_a_port(&rest, &parts) {
                        port_from = Some(url_from.clone());
                    } else {
                        let (without, query_port) = take_query_port(&rest, &parts);
                        let (ports, from) = match (query_port, &pgport) {
                            (Some(port), _) => (port, url_from.clone()),
                            (None, Some((ports, from))) => (ports.clone(), from.clone()),
                            (None, None) => ("5432".to_owned(), "default".to_owned()),
                        };
                        let ports: Vec<&str> = ports.split(',').map(str::trim).collect();
                        check_ports(&ports, &from)?;
                        let parts = url_parts(&without).expect("still a URL");
                        rest = with_ports(&without, &parts, &ports);
                        port_from = Some(from);
                    }
                }
                let config = tokio_postgres::Config::from_str(&rest)
                    .map_err(|source| SettingsError::InvalidDatabaseUrl { source })?;
                (config, own)
            }
            None => (tokio_postgres::Config::new(), OwnOptions::default()),
        };

        // Port.
        let port_from = match port_from {
            Some(from) => from,
            None if !config.get_ports().is_empty() => url_from.clone(),
            None => match &pgport {
                Some((ports, from)) => {
                    let ports: Vec<&str> = ports.split(',').map(str::trim).collect();
                    for port in check_ports(&ports, from)? {
                        config.port(port);
                    }
                    from.clone()
                }
                None => {
                    config.port(5432);
                    "default".to_owned()
                }
            },
        };

        // Host: `host` and `hostaddr` each from the string, else from their variable; with
        // neither, the local socket when the server's is there, else localhost.
        let mut host_from = (!config.get_hosts().is_empty()).then(|| url_from.clone());
        let mut hostaddr_from = (!config.get_hostaddrs().is_empty()).then(|| url_from.clone());
        if host_from.is_none()
            && let Some((hosts, from)) = from_env("PGHOST")
        {
            for host in hosts.split(',') {
                config.host(host.trim());
            }
            host_from = Some(from);
        }
        if hostaddr_from.is_none()
            && let Some((addrs, from)) = from_env("PGHOSTADDR")
        {
            for addr in addrs.split(',') {
                let ip =
                    addr.trim().parse::<IpAddr>().map_err(|_| SettingsError::InvalidVariable {
                        name: "PGHOSTADDR",
                        value: addrs.clone(),
                        expected: "a list of IP addresses",
                    })?;
                config.hostaddr(ip);
            }
            hostaddr_from = Some(from);
        }
        if host_from.is_none() && hostaddr_from.is_none() {
            let port = config.get_ports().first().copied().unwrap_or(5432);
            host_from = Some(default_host(&mut config, port, env.socket_exists));
        }
        if let Some(from) = host_from {
            shown.push(Shown { name: "host", value: hosts_text(&config), from });
        }
        if let Some(from) = hostaddr_from {
            let addrs: Vec<String> =
                config.get_hostaddrs().iter().map(ToString::to_string).collect();
            shown.push(Shown { name: "hostaddr", value: addrs.join(","), from });
        }
        let ports: Vec<String> = config.get_ports().iter().map(ToString::to_string).collect();
        shown.push(Shown { name: "port", value: ports.join(","), from: port_from });

        // User and database.
        let user_from = if config.get_user().is_some() {
            url_from.clone()
        } else if let Some((user, from)) = from_env("PGUSER") {
            config.user(user);
            from
        } else if let Some(user) = &env.os_user {
            config.user(user.clone());
            "default (the operating-system user)".to_owned()
        } else {
            "default".to_owned()
        };
        let user = config.get_user().unwrap_or_default().to_owned();
        shown.push(Shown { name: "user", value: user.clone(), from: user_from });
        let dbname_from = if config.get_dbname().is_some() {
            url_from.clone()
        } else if let Some((dbname, from)) = from_env("PGDATABASE") {
            config.dbname(dbname);
            from
        } else {
            if !user.is_empty() {
                config.dbname(user.clone());
            }
            "default (the user name)".to_owned()
        };
        let dbname = config.get_dbname().unwrap_or_default().to_owned();
        shown.push(Shown { name: "dbname", value: dbname.clone(), from: dbname_from });

        // Password: the string's, else PGPASSWORD, else the password file.
        let mut passfile_ignored = None;
        let password = if config.get_password().is_some_and(|p| !p.is_empty()) {
            Shown { name: "password", value: "set".into(), from: url_from.clone() }
        } else if let Some((password, from)) = from_env("PGPASSWORD") {
            config.password(password);
            Shown { name: "password", value: "set".into(), from }
        } else {
            let passfile = match (&own.passfile, from_env("PGPASSFILE")) {
                (Some(path), _) => Some((PathBuf::from(path), format!("passfile in {url_from}"))),
                (None, Some((path, from))) => Some((PathBuf::from(path), from)),
                (None, None) => env.home.as_ref().map(|h| (h.join(".pgpass"), "~/.pgpass".into())),
            };
            match passfile {
                None => Shown {
                    name: "password",
                    value: "not set".into(),
                    from: "none given, and no home directory for ~/.pgpass".into(),
                },
                Some((path, _)) => {
                    let host = passfile_host(&config);
                    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
                    let lookup =
                        pgpass::Lookup { host: &host, port: &port, database: &dbname, user: &user };
                    match pgpass::find(&path, lookup) {
                        pgpass::Outcome::Found { password, line } => {
                            config.password(password);
                            Shown {
                                name: "password",
                                value: "from .pgpass".into(),
                                from: format!("{} line {line}", path.display()),
                            }
                        }
                        pgpass::Outcome::Ignored { reason } => {
                            tracing::warn!("password file `{}` ignored: {reason}", path.display());
                            let note =
                                format!("password file `{}` was ignored: {reason}", path.display());
                            passfile_ignored = Some(note.clone());
                            Shown { name: "password", value: "not set".into(), from: note }
                        }
                        pgpass::Outcome::Missing | pgpass::Outcome::NoMatch => Shown {
                            name: "password",
                            value: "not set".into(),
                            from: format!(
                                "none given, and no line of `{}` matches",
                                path.display()
                            ),
                        },
                    }
                }
            }
        };
        shown.push(password);

        // TLS.
        let home_file = |name: &str| {
            env.home.as_ref().map(|h| h.join(".postgresql").join(name)).filter(|p| p.exists())
        };
        let (root_cert, root_from) = match (&own.sslrootcert, from_env("PGSSLROOTCERT")) {
            (Some(value), _) => (root_cert(value), url_from.clone()),
            (None, Some((value, from))) => (root_cert(&value), from),
            (None, None) => match home_file("root.crt") {
                Some(path) => (RootCert::File(path), "default (~/.postgresql/root.crt)".into()),
                None => (RootCert::Default, "default (no ~/.postgresql/root.crt)".into()),
            },
        };
        let (mode, mode_from) = match (&own.sslmode, from_env("PGSSLMODE")) {
            (Some(value), _) => (SslMode::parse(value, "sslmode")?, url_from.clone()),
            (None, Some((value, from))) => (SslMode::parse(&value, "PGSSLMODE")?, from),
            (None, None) if root_cert == RootCert::System => {
                (SslMode::VerifyFull, "default with sslrootcert=system".into())
            }
            (None, None) => (SslMode::Prefer, "default".into()),
        };
        if root_cert == RootCert::System && mode != SslMode::VerifyFull {
            return Err(SettingsError::WeakSslModeForSystemRoots { mode: mode.as_str() });
        }
        let client_cert = match (&own.sslcert, from_env("PGSSLCERT")) {
            (Some(path), _) => Some((PathBuf::from(path), url_from.clone())),
            (None, Some((path, from))) => Some((PathBuf::from(path), from)),
            (None, None) => home_file("postgresql.crt")
                .map(|path| (path, "default (~/.postgresql/postgresql.crt)".to_owned())),
        };
        let client_key = match (&own.sslkey, from_env("PGSSLKEY")) {
            (Some(path), _) => Some((PathBuf::from(path), url_from.clone())),
            (None, Some((path, from))) => Some((PathBuf::from(path), from)),
            (None, None) => env.home.as_ref().map(|h| {
                let path = h.join(".postgresql").join("postgresql.key");
                (path, "default (~/.postgresql/postgresql.key)".to_owned())
            }),
        };
        shown.push(Shown { name: "sslmode", value: mode.as_str().into(), from: mode_from });
        shown.push(Shown {
            name: "sslrootcert",
            value: match &root_cert {
                RootCert::Default if mode == SslMode::VerifyCa || mode == SslMode::VerifyFull => {
                    "the system's store and the Mozilla roots".into()
                }
                RootCert::Default => "none (the certificate is not checked)".into(),
                RootCert::File(path) => path.display().to_string(),
                RootCert::System => "system".into(),
            },
            from: root_from,
        });
        let client_cert = match client_cert {
            Some((cert, cert_from)) => {
                shown.push(Shown {
                    name: "sslcert",
                    value: cert.display().to_string(),
                    from: cert_from,
                });
                let key = client_key.map(|(key, key_from)| {
                    shown.push(Shown {
                        name: "sslkey",
                        value: key.display().to_string(),
                        from: key_from,
                    });
                    key
                });
                Some(ClientCert { cert, key })
            }
            None => {
                shown.push(Shown {
                    name: "sslcert",
                    value: "none".into(),
                    from: "default (no ~/.postgresql/postgresql.crt)".into(),
                });
                None
            }
        };
        let tls = Tls { mode, root_cert, client_cert };
        config.ssl_mode(match tls.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });

        // The rest libpq reads from the environment.
        if config.get_connect_timeout().is_none() {
            let seconds = match from_env("PGCONNECT_TIMEOUT") {
                Some((value, _)) => {
                    value.trim().parse::<u64>().map_err(|_| SettingsError::InvalidVariable {
                        name: "PGCONNECT_TIMEOUT",
                        value: value.clone(),
                        expected: "a number of seconds",
                    })?
                }
                None => 10,
            };
            if seconds > 0 {
                config.connect_timeout(Duration::from_secs(seconds));
            }
        }
        if config.get_application_name().is_none() {
            let name = from_env("PGAPPNAME").map_or_else(|| "migrate".to_owned(), |(name, _)| name);
            config.application_name(name);
        }
        if config.get_options().is_none()
            && let Some((options, _)) = from_env("PGOPTIONS")
        {
            config.options(options);
        }
        if let Some(service) = var("PGSERVICE") {
            tracing::warn!(
                service,
                "PGSERVICE is set, but migrate does not read pg_service.conf: it connects with \
                 the connection string and the other PG* variables"
            );
        }

        let redacted = redact(&config);
        shown.insert(
            0,
            Shown {
                name: "connection",
                value: redacted.clone(),
                from: if given.is_some() {
                    url_from
                } else if given_anything {
                    "the PG* variables and libpq's defaults".into()
                } else {
                    "libpq's defaults (no --database-url, DATABASE_URL or PG* variable)".into()
                },
            },
        );
        let url = Self { config, tls, redacted, shown, given: given_anything, passfile_ignored };
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

    /// Every setting with its value and where it came from; the password only as `set`,
    /// `from .pgpass` or `not set`.
    pub fn shown(&self) -> &[Shown] {
        &self.shown
    }

    /// Where the setting `name` (`host`, `port`, `user`, `dbname`, `password`, …) came from.
    pub fn from_of(&self, name: &str) -> &str {
        self.shown.iter().find(|s| s.name == name).map_or("", |s| s.from.as_str())
    }

    /// Whether a connection string or a libpq variable gave anything; `false`: every setting
    /// is libpq's default.
    pub fn given(&self) -> bool {
        self.given
    }

    /// Why the password file was ignored, when it was (its permissions, most often).
    pub fn passfile_ignored(&self) -> Option<&str> {
        self.passfile_ignored.as_deref()
    }

    /// `host:port` of the first host (the socket file for a Unix socket), for messages.
    pub fn endpoint(&self) -> String {
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        match (self.config.get_hosts().first(), self.config.get_hostaddrs().first()) {
            (Some(Host::Tcp(host)), _) => format!("{host}:{port}"),
            (Some(Host::Unix(path)), _) => format!("{}/.s.PGSQL.{port}", path.display()),
            (None, Some(addr)) => format!("{addr}:{port}"),
            (None, None) => format!("localhost:{port}"),
        }
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

/// The ports as numbers; `from` names where they came from, for the error.
fn check_ports(ports: &[&str], from: &str) -> Result<Vec<u16>, SettingsError> {
    let invalid = || {
        if from.starts_with("PGPORT") {
            SettingsError::InvalidVariable {
                name: "PGPORT",
                value: ports.join(","),
                expected: "a port number (or a comma-separated list, one per host)",
            }
        } else {
            SettingsError::InvalidPort { value: ports.join(",") }
        }
    };
    ports.iter().map(|port| port.parse::<u16>().map_err(|_| invalid())).collect()
}

/// libpq's default host: the server's socket directory when its socket is there, else
/// `localhost`. Returns where that came from.
fn default_host(
    config: &mut tokio_postgres::Config,
    port: u16,
    socket_exists: &dyn Fn(&Path) -> bool,
) -> String {
    #[cfg(unix)]
    for dir in SOCKET_DIRS {
        if socket_exists(&Path::new(dir).join(format!(".s.PGSQL.{port}"))) {
            config.host_path(dir);
            return "default (the local server's socket)".to_owned();
        }
    }
    #[cfg(not(unix))]
    let _ = (port, socket_exists);
    config.host("localhost");
    "default (no local server socket)".to_owned()
}

fn hosts_text(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    hosts.join(",")
}

/// The host name the password file is searched for, as libpq picks it: the host, `localhost`
/// for the default socket directory, else the host address.
fn passfile_host(config: &tokio_postgres::Config) -> String {
    match (config.get_hosts().first(), config.get_hostaddrs().first()) {
        (Some(Host::Tcp(name)), _) if !name.is_empty() => name.clone(),
        (Some(Host::Unix(path)), _) if !SOCKET_DIRS.iter().any(|dir| path == Path::new(dir)) => {
            path.display().to_string()
        }
        (Some(Host::Unix(_)), _) => "localhost".into(),
        (_, Some(addr)) => addr.to_string(),
        _ => "localhost".into(),
    }
}

fn root_cert(value: &str) -> RootCert {
    if value == "system" { RootCert::System } else { RootCert::File(PathBuf::from(value)) }
}

fn redact(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let host = match (config.get_hosts().first(), config.get_hostaddrs().first()) {
        (Some(Host::Tcp(host)), _) if host.contains(':') => format!("[{host}]"),
        (Some(Host::Tcp(host)), _) => host.clone(),
        (Some(Host::Unix(path)), _) => path.display().to_string().replace('/', "%2F"),
        (None, Some(IpAddr::V6(addr))) => format!("[{addr}]"),
        (None, Some(addr)) => addr.to_string(),
        (None, None) => "localhost".into(),
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Resolves `url` with `vars` as the only variables, `home` as the home directory, user
    /// `osuser`, and a server socket in `/var/run/postgresql` for port 5432 only.
    fn resolve(
        url: Option<&str>,
        vars: &[(&str, &str)],
        home: Option<&Path>,
    ) -> Result<DatabaseUrl, SettingsError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let var = move |name: &str| vars.get(name).cloned();
        let socket = |path: &Path| path == Path::new("/var/run/postgresql/.s.PGSQL.5432");
        let env = Environment {
            var: &var,
            origin: &|name| (name == "PGUSER").then_some(".env"),
            home: home.map(Path::to_path_buf),
            os_user: Some("osuser".into()),
            socket_exists: &socket,
        };
        DatabaseUrl::resolve(url.map(|raw| Given { raw, from: "DATABASE_URL".into() }), &env)
    }

    fn shown(url: &DatabaseUrl, name: &str) -> (String, String) {
        let s = url.shown().iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name}"));
        (s.value.clone(), s.from.clone())
    }

    #[test]
    fn with_nothing_given_libpqs_defaults_apply() {
        let url = resolve(None, &[], None).unwrap();
        assert_eq!(url.config().get_hosts(), [Host::Unix("/var/run/postgresql".into())]);
        assert_eq!(url.config().get_ports(), [5432]);
        assert_eq!(url.config().get_user(), Some("osuser"));
        assert_eq!(url.config().get_dbname(), Some("osuser"));
        assert_eq!(url.endpoint(), "/var/run/postgresql/.s.PGSQL.5432");
        assert_eq!(url.tls().mode, SslMode::Prefer);
        assert!(!url.given());
        assert!(shown(&url, "connection").1.contains("libpq's defaults"));
        // No socket for this port: localhost over TCP.
        let url = resolve(None, &[("PGPORT", "5999")], None).unwrap();
        assert_eq!(url.config().get_hosts(), [Host::Tcp("localhost".into())]);
        assert_eq!(shown(&url, "port"), ("5999".into(), "PGPORT".into()));
        assert!(url.given());
    }

    #[test]
    fn the_pg_variables_build_the_connection_without_a_url() {
        let vars = [
            ("PGHOST", "db.example.com"),
            ("PGPORT", "6432"),
            ("PGUSER", "alice"),
            ("PGDATABASE", "app"),
            ("PGPASSWORD", "s3cret-pw"),
            ("PGSSLMODE", "require"),
            ("PGAPPNAME", "nightly"),
            ("PGCONNECT_TIMEOUT", "3"),
        ];
        let url = resolve(None, &vars, None).unwrap();
        assert_eq!(url.to_string(), "postgres://alice@db.example.com:6432/app");
        assert_eq!(url.config().get_password(), Some(&b"s3cret-pw"[..]));
        assert_eq!(url.tls().mode, SslMode::Require);
        assert_eq!(url.config().get_application_name(), Some("nightly"));
        assert_eq!(url.config().get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(shown(&url, "user"), ("alice".into(), "PGUSER (from .env)".into()));
        assert_eq!(shown(&url, "password"), ("set".into(), "PGPASSWORD".into()));
        assert_eq!(shown(&url, "sslmode"), ("require".into(), "PGSSLMODE".into()));
        let everything = format!("{url} {url:?} {:?}", url.shown());
        assert!(!everything.contains("s3cret-pw"), "{everything}");
    }

    #[test]
    fn the_url_wins_and_the_variables_fill_what_it_leaves_out() {
        let vars = [
            ("PGHOST", "env-host"),
            ("PGPORT", "6543"),
            ("PGUSER", "env-user"),
            ("PGDATABASE", "env-db"),
            ("PGPASSWORD", "env-pw"),
            ("PGSSLMODE", "verify-ca"),
        ];
        let url =
            resolve(Some("postgres://alice:url-pw@url-host:5433/app?sslmode=disable"), &vars, None)
                .unwrap();
        assert_eq!(url.to_string(), "postgres://alice@url-host:5433/app");
        assert_eq!(url.config().get_password(), Some(&b"url-pw"[..]));
        assert_eq!(url.tls().mode, SslMode::Disable);
        assert_eq!(shown(&url, "host").1, "DATABASE_URL");

        // A URL naming only the host: port, user, database, password and sslmode from the
        // variables, as libpq fills them.
        let url = resolve(Some("postgres://url-host"), &vars, None).unwrap();
        assert_eq!(url.to_string(), "postgres://env-user@url-host:6543/env-db");
        assert_eq!(url.config().get_password(), Some(&b"env-pw"[..]));
        assert_eq!(url.tls().mode, SslMode::VerifyCa);
        assert_eq!(shown(&url, "port"), ("6543".into(), "PGPORT".into()));
        // Several hosts take one port each, or the one for all.
        let many = [("PGPORT", "5001,5002")];
        let url = resolve(Some("postgres://a,[::1]/db"), &many, None).unwrap();
        assert_eq!(url.config().get_ports(), [5001, 5002]);
        // A URL with no host at all takes PGHOST.
        let url = resolve(Some("postgres:///app"), &vars, None).unwrap();
        assert_eq!(url.to_string(), "postgres://env-user@env-host:6543/app");
        // A key=value string too.
        let url = resolve(Some("dbname=kv user=bob"), &vars, None).unwrap();
        assert_eq!(url.to_string(), "postgres://bob@env-host:6543/kv");
        // The URL's own port wins, and without PGPORT a host alone means 5432.
        let url = resolve(Some("postgres://h/db?port=7000"), &vars, None).unwrap();
        assert_eq!(url.config().get_ports(), [7000]);
        let url = resolve(Some("postgres://h/db"), &[], None).unwrap();
        assert_eq!(shown(&url, "port"), ("5432".into(), "default".into()));
    }

    #[test]
    fn invalid_variables_are_named_with_what_was_expected() {
        let err = resolve(None, &[("PGPORT", "fivefourthreetwo")], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`PGPORT=fivefourthreetwo` is not a port number (or a comma-separated list, one per host)"
        );
        let err = resolve(None, &[("PGSSLMODE", "always")], None).unwrap_err();
        assert_eq!(err.to_string(), "`PGSSLMODE=always` is not a TLS mode");
        let err = resolve(None, &[("PGHOSTADDR", "db.example.com")], None).unwrap_err();
        assert!(err.to_string().contains("PGHOSTADDR"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn the_password_file_is_read_when_no_password_is_given() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let pgpass = home.path().join(".pgpass");
        std::fs::write(
            &pgpass,
            "db.example.com:5432:app:alice:from-file\nlocalhost:5432:*:osuser:socket-pw\n",
        )
        .unwrap();
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();

        let url =
            resolve(Some("postgres://alice@db.example.com/app"), &[], Some(home.path())).unwrap();
        assert_eq!(url.config().get_password(), Some(&b"from-file"[..]));
        let (value, from) = shown(&url, "password");
        assert_eq!(value, "from .pgpass");
        assert!(from.ends_with(".pgpass line 1"), "{from}");
        // The default socket directory is searched for as `localhost`.
        let url = resolve(None, &[], Some(home.path())).unwrap();
        assert_eq!(url.config().get_password(), Some(&b"socket-pw"[..]));
        // PGPASSWORD and the URL's password come first.
        let url = resolve(
            Some("postgres://alice@db.example.com/app"),
            &[("PGPASSWORD", "env")],
            Some(home.path()),
        )
        .unwrap();
        assert_eq!(url.config().get_password(), Some(&b"env"[..]));
        let url = resolve(Some("postgres://alice:url@db.example.com/app"), &[], Some(home.path()))
            .unwrap();
        assert_eq!(url.config().get_password(), Some(&b"url"[..]));
        // PGPASSFILE and the passfile option name another file.
        let other = home.path().join("other");
        std::fs::write(&other, "*:*:*:*:other-pw\n").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
        let other_text = other.to_str().unwrap();
        let url = resolve(
            Some("postgres://alice@db.example.com/app"),
            &[("PGPASSFILE", other_text)],
            Some(home.path()),
        )
        .unwrap();
        assert_eq!(url.config().get_password(), Some(&b"other-pw"[..]));
        let with_option = format!("postgres://alice@db.example.com/app?passfile={other_text}");
        let url = resolve(Some(&with_option), &[], Some(home.path())).unwrap();
        assert_eq!(url.config().get_password(), Some(&b"other-pw"[..]));

        // Readable by others: ignored, and the reason kept for the hint.
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let url =
            resolve(Some("postgres://alice@db.example.com/app"), &[], Some(home.path())).unwrap();
        assert_eq!(url.config().get_password(), None);
        assert!(url.passfile_ignored().unwrap().contains("group or world access"));
        assert_eq!(shown(&url, "password").0, "not set");
    }

    #[test]
    fn tls_options_come_from_the_url_the_variables_and_the_home_directory() {
        let url = DatabaseUrl::parse(
            "postgres://u:pw@db.example.com/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&sslcert=c.pem&sslkey=k.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            url.tls(),
            &Tls {
                mode: SslMode::VerifyFull,
                root_cert: RootCert::File("/etc/ca.pem".into()),
                client_cert: Some(ClientCert { cert: "c.pem".into(), key: Some("k.pem".into()) }),
            }
        );
        assert_eq!(url.config().get_application_name(), Some("x"));
        assert_eq!(url.config().get_ssl_mode(), tokio_postgres::config::SslMode::Require);

        let kv = DatabaseUrl::parse("host=localhost user=u sslmode=verify-ca dbname=app").unwrap();
        assert_eq!(kv.tls().mode, SslMode::VerifyCa);
        assert_eq!(kv.database(), "app");

        let plain = DatabaseUrl::parse("postgres://u@localhost/app").unwrap();
        assert_eq!(
            plain.tls(),
            &Tls { mode: SslMode::Prefer, root_cert: RootCert::Default, client_cert: None }
        );
        let off = DatabaseUrl::parse("postgres://u@localhost/app?sslmode=disable").unwrap();
        assert_eq!(off.config().get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@localhost/app?sslmode=sometimes"),
            Err(SettingsError::InvalidSslMode { .. })
        ));

        // sslrootcert=system: verify-full by default, and nothing weaker.
        let system = DatabaseUrl::parse("postgres://u@h/app?sslrootcert=system").unwrap();
        assert_eq!(
            (system.tls().mode, &system.tls().root_cert),
            (SslMode::VerifyFull, &RootCert::System)
        );
        let weak = DatabaseUrl::parse("postgres://u@h/app?sslrootcert=system&sslmode=require");
        assert!(matches!(weak, Err(SettingsError::WeakSslModeForSystemRoots { .. })));

        // The variables, then ~/.postgresql/.
        let vars = [
            ("PGSSLCERT", "/env/c.pem"),
            ("PGSSLKEY", "/env/k.pem"),
            ("PGSSLROOTCERT", "/env/ca.pem"),
        ];
        let url = resolve(Some("postgres://u@h/app"), &vars, None).unwrap();
        assert_eq!(url.tls().root_cert, RootCert::File("/env/ca.pem".into()));
        assert_eq!(
            url.tls().client_cert,
            Some(ClientCert { cert: "/env/c.pem".into(), key: Some("/env/k.pem".into()) })
        );
        let home = tempfile::tempdir().unwrap();
        let url = resolve(Some("postgres://u@h/app"), &[], Some(home.path())).unwrap();
        assert_eq!((&url.tls().root_cert, &url.tls().client_cert), (&RootCert::Default, &None));
        let dir = home.path().join(".postgresql");
        std::fs::create_dir(&dir).unwrap();
        for file in ["root.crt", "postgresql.crt"] {
            std::fs::write(dir.join(file), "").unwrap();
        }
        let url = resolve(Some("postgres://u@h/app"), &[], Some(home.path())).unwrap();
        assert_eq!(url.tls().root_cert, RootCert::File(dir.join("root.crt")));
        assert_eq!(
            url.tls().client_cert,
            Some(ClientCert {
                cert: dir.join("postgresql.crt"),
                key: Some(dir.join("postgresql.key"))
            })
        );
        assert_eq!(shown(&url, "sslcert").1, "default (~/.postgresql/postgresql.crt)");
    }

    #[test]
    fn database_url_never_shows_the_password() {
        let url = DatabaseUrl::parse("postgres://alice:s3cret-pw@db.example.com:6432/app").unwrap();
        for shown in [
            url.to_string(),
            format!("{url:?}"),
            serde_json::to_string(&url).unwrap(),
            serde_json::to_string(url.shown()).unwrap(),
        ] {
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
    fn supabase_transaction_pooler_is_refused_and_session_pooler_accepted() {
        let tx = "postgres://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres";
        assert!(matches!(DatabaseUrl::parse(tx), Err(SettingsError::TransactionPooler { .. })));
        let session =
            "postgres://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres";
        assert!(DatabaseUrl::parse(session).is_ok());
        assert!(DatabaseUrl::parse("postgres://u@localhost:6543/db").is_ok());
        // The pooler named by the variables alone is refused too.
        let vars = [("PGHOST", "aws-0-eu-west-1.pooler.supabase.com"), ("PGPORT", "6543")];
        assert!(matches!(resolve(None, &vars, None), Err(SettingsError::TransactionPooler { .. })));
    }
}
