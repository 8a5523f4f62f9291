//! What every integration test needs: a database of its own on a real PostgreSQL, the `migrate`
//! binary run in a clean working directory, and a throwaway cluster for cases the shared server
//! cannot stage (password authentication).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;
use tokio_postgres::NoTls;

/// The server the tests use, as design.md fixes it: override with `MIGRATE_TEST_DATABASE_URL`.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn test_server_url() -> String {
    std::env::var("MIGRATE_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// `url` with its database replaced by `database`; works for `postgres://…` URLs and for
/// `key=value` connection strings.
pub fn url_with_database(url: &str, database: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={database}");
    };
    let authority_start = scheme_end + 3;
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{database}{query}")
}

/// `url` with the user and password replaced, for connecting as another role.
pub fn url_with_login(url: &str, user: &str, password: &str) -> String {
    let scheme_end = url.find("://").expect("the test server URL is a postgres:// URL") + 3;
    let rest = &url[scheme_end..];
    let host_start = rest.find('@').map_or(0, |at| at + 1);
    format!("{}{user}:{password}@{}", &url[..scheme_end], &rest[host_start..])
}

/// `url` with `password` added for its user (the test server's trust authentication ignores
/// it), to check that messages never show it.
pub fn url_with_password(url: &str, password: &str) -> String {
    let scheme_end = url.find("://").expect("the test server URL is a postgres:// URL") + 3;
    let rest = &url[scheme_end..];
    let user = match rest.find('@') {
        Some(at) => rest[..at].split(':').next().unwrap_or_default(),
        None => "postgres",
    };
    url_with_login(url, user, password)
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if url[scheme + 3..at].contains(':') => {
            let colon = scheme + 3 + url[scheme + 3..at].find(':').unwrap_or(0);
            format!("{}:****{}", &url[..colon], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A synchronous PostgreSQL connection: tokio-postgres driven by a runtime of its own.
pub struct Conn {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Conn {
    pub fn connect(url: &str) -> Result<Self, tokio_postgres::Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the test connection");
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
            tokio::spawn(connection);
            Ok::<_, tokio_postgres::Error>(client)
        })?;
        Ok(Self { runtime, client })
    }

    /// Connects or fails the test, saying how to get a server.
    pub fn connect_or_fail(url: &str) -> Self {
        Self::connect(url).unwrap_or_else(|error| {
            panic!(
                "cannot connect to the test PostgreSQL at {} ({}).\n\
                 The integration tests need a real server: start one there, point \
                 MIGRATE_TEST_DATABASE_URL at another, or run scripts/test.sh, which starts a \
                 throwaway cluster when nothing answers.",
                redacted(url),
                error_chain(&error)
            )
        })
    }

    /// Runs one or more statements (simple query protocol).
    pub fn try_execute(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.runtime.block_on(self.client.batch_execute(sql))
    }

    pub fn execute(&self, sql: &str) {
        if let Err(error) = self.try_execute(sql) {
            panic!("SQL failed: {}\n{sql}", error_chain(&error));
        }
    }

    /// The first column of every row, as text (`NULL` as `None`).
    pub fn column(&self, sql: &str) -> Vec<Option<String>> {
        let messages = self
            .runtime
            .block_on(self.client.simple_query(sql))
            .unwrap_or_else(|error| panic!("SQL failed: {}\n{sql}", error_chain(&error)));
        messages
            .into_iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
                _ => None,
            })
            .collect()
    }

    /// The single non-NULL value `sql` returns, as text.
    pub fn value(&self, sql: &str) -> String {
        match self.column(sql).as_slice() {
            [Some(value)] => value.clone(),
            other => panic!("expected one value from `{sql}`, got {other:?}"),
        }
    }

    pub fn count(&self, sql: &str) -> u64 {
        self.value(sql).parse().expect("a count")
    }
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

/// A database of its own on the test server, dropped (with any roles the test created) when the
/// test ends, whether it passed or not.
pub struct TestDb {
    name: String,
    url: String,
    admin: Conn,
    conn: Conn,
    roles: Vec<String>,
}

impl TestDb {
    pub fn new() -> Self {
        Self::created_with("")
    }

    /// A fresh database made by `create database … <options>` (`template template0 lc_ctype
    /// 'C'`), with `sql` already run in it.
    pub fn with_options(options: &str, sql: &str) -> Self {
        let db = Self::created_with(options);
        db.execute(sql);
        db
    }

    fn created_with(options: &str) -> Self {
        let server = test_server_url();
        let admin = Conn::connect_or_fail(&server);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let name = format!(
            "migrate_test_{}_{}_{nanos}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        admin.execute(&format!("create database \"{name}\" {options}"));
        let url = url_with_database(&server, &name);
        let conn = Conn::connect_or_fail(&url);
        Self { name, url, admin, conn, roles: Vec::new() }
    }

    /// A fresh database with `sql` already run in it.
    pub fn with(sql: &str) -> Self {
        let db = Self::new();
        db.execute(sql);
        db
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn execute(&self, sql: &str) {
        self.conn.execute(sql)
    }

    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// A new connection of its own (for a concurrent writer).
    pub fn connect(&self) -> Conn {
        Conn::connect_or_fail(&self.url)
    }

    /// Creates a login role unique to this test; returns its name. Dropped with the database.
    pub fn create_role(&mut self, suffix: &str) -> String {
        let role = format!("{}_{suffix}", self.name);
        self.admin.execute(&format!("create role \"{role}\" login"));
        self.roles.push(role.clone());
        role
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self
            .admin
            .try_execute(&format!("drop database if exists \"{}\" with (force)", self.name));
        for role in &self.roles {
            let _ = self.admin.try_execute(&format!("drop role if exists \"{role}\""));
        }
    }
}

/// What a run of `migrate` printed and how it exited.
#[derive(Debug)]
pub struct Run {
    /// `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(mut command: Command) -> Self {
        Self::from_output(&command.output().expect("migrate runs"))
    }

    /// What a finished child printed and how it exited, e.g. from `Child::wait_with_output`
    /// (a stream that was not piped reads as empty).
    pub fn from_output(output: &Output) -> Self {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Fails the test, showing both streams, unless the run exited 0.
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "migrate failed\n{self}");
        self
    }

    /// Asserts the exit code and that stderr contains every one of `expected`.
    #[track_caller]
    pub fn fails_with(&self, code: i32, expected: &[&str]) {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
        for text in expected {
            assert!(self.stderr.contains(text), "stderr lacks {text:?}\n{self}");
        }
    }

    /// Asserts `secret` appears in neither stream.
    #[track_caller]
    pub fn never_shows(&self, secret: &str) {
        assert!(!self.stdout.contains(secret), "stdout shows the secret {secret:?}\n{self}");
        assert!(!self.stderr.contains(secret), "stderr shows the secret {secret:?}\n{self}");
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A fresh temporary working directory for `migrate`, so that no stray `.env` or `data/` of
/// the repository is read, with its data directory at `<dir>/data`.
pub struct Workdir {
    dir: TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("a temporary directory") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    pub fn raw_dir(&self) -> PathBuf {
        self.data_dir().join("raw")
    }

    pub fn raw_file(&self, stem: &str) -> PathBuf {
        self.raw_dir().join(format!("{stem}.jsonl"))
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.data_dir().join("manifest.json")
    }

    pub fn manifest(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.manifest_path()).expect("manifest.json exists");
        serde_json::from_str(&text).expect("manifest.json is JSON")
    }

    /// Names of the files in `data/raw`, sorted, hidden ones included.
    pub fn raw_files(&self) -> Vec<String> {
        file_names(&self.raw_dir())
    }

    /// `<dir>/plan`, where the `--plan-dir` of [`Workdir::dirs_command`] points.
    pub fn plan_dir(&self) -> PathBuf {
        self.path().join("plan")
    }

    /// `migrate <args>` in this directory, with nothing of the caller's settings: every
    /// `DATABASE_URL`, `CONVEX_*`, `MIGRATE_*`, libpq (`PG*`), `SSL_CERT_*`, `RUST_LOG` and `CI`
    /// variable removed, and `HOME` set to this directory, so that no `~/.pgpass` or
    /// `~/.postgresql/` of the machine is read.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_migrate"));
        command.args(args).current_dir(self.path()).stdin(Stdio::null());
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if matches!(key.as_ref(), "DATABASE_URL" | "RUST_LOG" | "CI")
                || key.starts_with("CONVEX_")
                || key.starts_with("MIGRATE_")
                || key.starts_with("PG")
                || key.starts_with("SSL_CERT_")
            {
                command.env_remove(key.as_ref());
            }
        }
        command.env("HOME", self.path());
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.command(args))
    }

    /// `migrate --data-dir <dir>/data --plan-dir <dir>/plan <args>`, not yet started.
    pub fn dirs_command(&self, args: &[&str]) -> Command {
        let (data_dir, plan_dir) = (self.data_dir(), self.plan_dir());
        let mut all = vec!["--data-dir", utf8(&data_dir), "--plan-dir", utf8(&plan_dir)];
        all.extend_from_slice(args);
        self.command(&all)
    }

    /// `migrate export --database-url <url> --data-dir <dir>/data <extra>`, not yet started.
    pub fn export_command(&self, url: &str, extra: &[&str]) -> Command {
        let data_dir = self.data_dir();
        let mut args = vec!["export", "--database-url", url, "--data-dir"];
        args.push(utf8(&data_dir));
        args.extend_from_slice(extra);
        self.command(&args)
    }

    pub fn export(&self, url: &str, extra: &[&str]) -> Run {
        Run::of(self.export_command(url, extra))
    }
}

/// `path` as text, for a command line: the tests' temporary paths are UTF-8.
pub fn utf8(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Every line of the JSON Lines file `path`, parsed.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// Names of the entries of `dir`, sorted, hidden ones included; empty when `dir` does not
/// exist.
pub fn file_names(dir: &Path) -> Vec<String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let mut names: Vec<String> =
        entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("a local address").port()
}

/// Waits until `done` holds, failing the test after `timeout`.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The directory of the installed PostgreSQL server binaries (`initdb`, `pg_ctl`).
pub fn postgres_bin_dir() -> PathBuf {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_initdb(&dir) {
            return dir;
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_initdb(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return dir;
    }
    let on_path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|dir| has_initdb(dir));
    on_path.expect("initdb not found: install the PostgreSQL server binaries")
}

pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL cluster of this test's own, with password (SCRAM) authentication for user
/// `postgres`; stopped and removed on drop.
pub struct ThrowawayCluster {
    dir: TempDir,
    bin: PathBuf,
    as_root: bool,
    pub port: u16,
}

/// A server certificate for a [`ThrowawayCluster`]: PEM certificate and key.
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

impl ServerTls {
    /// A self-signed certificate for `localhost` only: trusted when given as `sslrootcert`,
    /// valid for the name `localhost` and not for `127.0.0.1`.
    pub fn self_signed_for_localhost() -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a self-signed certificate");
        ServerTls { cert_pem: certified.cert.pem(), key_pem: certified.signing_key.serialize_pem() }
    }
}

/// A certificate authority of the test's own, issuing server and client certificates.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // A name of its own: two CAs of one name would be taken for each other.
        static CAS: AtomicU32 = AtomicU32::new(0);
        let name = format!("migrate test CA {}", CAS.fetch_add(1, Ordering::Relaxed));
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.key_usages =
            vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let key = rcgen::KeyPair::generate().expect("a CA key");
        TestCa { issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("a CA") }
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for the name `localhost`, for a server.
    pub fn server_for_localhost(&self) -> ServerTls {
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]);
        self.issue(params.expect("server certificate params"), true)
    }

    /// A client certificate whose common name is `user` (what Postgres' `cert` authentication
    /// compares with the user name).
    pub fn client(&self, user: &str) -> ServerTls {
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("client certificate params");
        params.distinguished_name.push(rcgen::DnType::CommonName, user);
        self.issue(params, false)
    }

    fn issue(&self, mut params: rcgen::CertificateParams, server: bool) -> ServerTls {
        params.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &*self.issuer).expect("a certificate");
        ServerTls { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }
}

impl ThrowawayCluster {
    pub fn start_with_password(password: &str) -> Self {
        Self::start(password, None, None)
    }

    /// A cluster that accepts TCP connections only over TLS (`hostssl` lines alone in
    /// pg_hba.conf), with `tls` as its certificate.
    pub fn start_tls_only(password: &str, tls: &ServerTls) -> Self {
        Self::start(password, Some(tls), None)
    }

    /// A cluster that accepts TCP connections only over TLS and only from a client presenting
    /// a certificate issued by `client_ca` for the user's name (`cert` authentication).
    pub fn start_client_cert_only(tls: &ServerTls, client_ca: &TestCa) -> Self {
        Self::start("unused-password", Some(tls), Some(client_ca))
    }

    fn start(password: &str, tls: Option<&ServerTls>, client_ca: Option<&TestCa>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let bin = postgres_bin_dir();
        let as_root = running_as_root();
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).expect("write the password file");
        if as_root {
            // initdb refuses to run as root: the cluster belongs to `postgres`.
            let chown = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(chown.success(), "cannot chown {} to postgres", dir.path().display());
        }
        let port = free_port();
        let cluster = Self { dir, bin, as_root, port };
        let pgdata = cluster.dir.path().join("pgdata");
        cluster.pg(
            "initdb",
            &[
                "-D".as_ref(),
                pgdata.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=scram-sha-256".as_ref(),
                format!("--pwfile={}", pwfile.display()).as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
            ],
        );
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off",
            cluster.dir.path().display()
        );
        if let Some(tls) = tls {
            let cert = cluster.dir.path().join("server.crt");
            let key = cluster.dir.path().join("server.key");
            cluster.write_owned(&cert, &tls.cert_pem, 0o644);
            cluster.write_owned(&key, &tls.key_pem, 0o600);
            let method = if client_ca.is_some() { "cert" } else { "scram-sha-256" };
            cluster.write_owned(
                &pgdata.join("pg_hba.conf"),
                &format!("local all all trust\nhostssl all all 127.0.0.1/32 {method}\n"),
                0o600,
            );
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            ));
            if let Some(ca) = client_ca {
                let ca_file = cluster.dir.path().join("client-ca.crt");
                cluster.write_owned(&ca_file, &ca.cert_pem(), 0o644);
                options.push_str(&format!(" -c ssl_ca_file={}", ca_file.display()));
            }
        }
        let log = cluster.dir.path().join("log");
        cluster.pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                pgdata.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-o".as_ref(),
                options.as_ref(),
                "start".as_ref(),
            ],
        );
        cluster
    }

    /// Writes a file the server reads, owned by the user the server runs as.
    fn write_owned(&self, path: &Path, contents: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, contents).expect("write a server file");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .expect("set the file's mode");
        if self.as_root {
            let chown =
                Command::new("chown").arg("postgres:").arg(path).status().expect("chown runs");
            assert!(chown.success(), "cannot chown {} to postgres", path.display());
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL of database `postgres` as user `postgres` with `password`.
    pub fn url(&self, password: &str) -> String {
        format!("postgres://postgres:{password}@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    #[track_caller]
    fn pg(&self, tool: &str, args: &[&std::ffi::OsStr]) {
        let output = self.command(tool).args(args).output().expect("a PostgreSQL tool runs");
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        assert!(
            output.status.success(),
            "{tool} failed: {}\n{}\n{log}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        let pgdata = self.dir.path().join("pgdata");
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&pgdata)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// moto's S3-compatible server (`moto_server`, installed by scripts/test.sh from PyPI) on a free
/// port, in memory; stopped when dropped. Its buckets and objects are made with plain HTTP PUTs,
/// which moto takes without a signature.
pub struct S3Server {
    child: std::process::Child,
    url: String,
}

impl S3Server {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server (scripts/test.sh installs it): {e}")
            });
        let server = Self { child, url: format!("http://127.0.0.1:{port}") };
        wait_until("moto_server listening", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        server
    }

    /// `http://127.0.0.1:<port>`: `AWS_ENDPOINT_URL` for migrate.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Creates `bucket` and puts each `(key, content type, bytes)` into it.
    pub fn put(&self, bucket: &str, objects: &[(&str, &str, &[u8])]) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let http = reqwest::Client::new();
            let created = http.put(format!("{}/{bucket}", self.url)).send().await.unwrap();
            assert!(created.status().is_success(), "creating bucket {bucket}: {created:?}");
            for (key, content_type, bytes) in objects {
                let put = http
                    .put(format!("{}/{bucket}/{key}", self.url))
                    .header("content-type", *content_type)
                    .body(bytes.to_vec())
                    .send()
                    .await
                    .unwrap();
                assert!(put.status().is_success(), "putting {bucket}/{key}: {put:?}");
            }
        });
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
