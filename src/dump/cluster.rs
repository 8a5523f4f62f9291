//! The throwaway PostgreSQL cluster a dump is restored into: found binaries, a private data
//! directory and socket under the temporary directory, no TCP at all (`listen_addresses` empty),
//! trust on the socket only (readable by its owner alone). Stopped and removed on drop, which
//! runs on errors, panics and Ctrl-C; a cluster left by a process that was killed is stopped and
//! removed by the next run.
//!
//! `initdb` and the server refuse to run as root: as root they run as the `postgres` user
//! (`runuser`), as `scripts/lib/postgres.sh` does. The client tools (`pg_restore`, `psql`) run
//! as the current user, so they can read the dump wherever it is.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use super::DumpError;
use super::file::major_version;
use super::template;

/// The tools a restore needs.
const TOOLS: [&str; 5] = ["initdb", "postgres", "pg_ctl", "pg_restore", "psql"];
/// The name every cluster directory starts with, followed by the owning process id.
const PREFIX: &str = "migrate-dump-";
/// The socket's port number: there is no TCP listener, so it only names the socket file.
pub const PORT: u16 = 5432;

/// A directory holding the PostgreSQL binaries, and their version.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
    /// `15.5 (Debian 15.5-1)`
    pub version: String,
    pub major: u32,
}

impl Binaries {
    /// The newest complete set among `pg_config --bindir`, `/usr/lib/postgresql/*/bin` and
    /// the `PATH`.
    pub fn find(needed_major: Option<u32>) -> Result<Self, DumpError> {
        let mut candidates = Vec::new();
        if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
            && output.status.success()
        {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
        }
        if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
            candidates.extend(entries.flatten().map(|e| e.path().join("bin")));
        }
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path));
        }
        let mut best: Option<Binaries> = None;
        for dir in candidates {
            if !TOOLS.iter().all(|tool| dir.join(tool).is_file()) {
                continue;
            }
            let Some(version) = tool_version(&dir.join("pg_restore")) else { continue };
            let major = major_version(&version);
            if best.as_ref().is_none_or(|b| b.major < major) {
                best = Some(Binaries { dir, version, major });
            }
        }
        best.ok_or(DumpError::NoBinaries { needed_major })
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `pg_restore (PostgreSQL) 15.5 (Debian 15.5-1)` → `15.5 (Debian 15.5-1)`.
fn tool_version(tool: &Path) -> Option<String> {
    let output = Command::new(tool).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.trim().split_once(") ")?.1.to_owned();
    Some(version)
}

pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// A running throwaway cluster; stopped and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    binaries: Binaries,
    as_root: bool,
    /// The server, started by us (through `runuser` as root): its exit is seen at once.
    server: Option<Child>,
}

impl Cluster {
    /// Removes leftovers of runs that died, then creates and starts a new cluster.
    pub fn start(binaries: &Binaries) -> Result<Self, DumpError> {
        remove_leftovers(binaries);
        let as_root = running_as_root();
        let dir = std::env::temp_dir().join(format!(
            "{PREFIX}{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let failed = |what: &'static str| {
            let dir = dir.clone();
            move |source| DumpError::ClusterIo { what, dir, source }
        };
        std::fs::create_dir(&dir).map_err(failed("create"))?;
        let mut cluster =
            Cluster { dir: dir.clone(), binaries: binaries.clone(), as_root, server: None };
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(failed("set permissions of"))?;
        }
        if as_root {
            cluster.run("chown", Command::new("chown").arg("postgres:").arg(&dir))?;
        }
        let template = template::path(binaries);
        let mut from_template = match &template {
            Some(template) if template::usable(template, binaries.major) => {
                match template::copy(template, &cluster.data_dir()) {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::debug!(%error, "cannot copy the restore template; initdb instead");
                        let _ = std::fs::remove_dir_all(cluster.data_dir());
                        false
                    }
                }
            }
            _ => false,
        };
        if !from_template {
            cluster.initdb(template.as_deref())?;
        }
        match cluster.configure_and_start() {
            Err(_) if from_template => {
                // The cached template did not give a working server: forget it, start over.
                if let Some(template) = &template {
                    tracing::warn!(
                        template = %template.display(),
                        "the cached restore template did not start a server: made a new one"
                    );
                    template::discard(template);
                }
                from_template = false;
                cluster.stop();
                std::fs::remove_dir_all(cluster.data_dir()).map_err(failed("clear"))?;
                cluster.initdb(template.as_deref())?;
                cluster.configure_and_start()?;
            }
            started => started?,
        }
        tracing::info!(
            dir = %dir.display(),
            version = %binaries.version,
            from_template,
            "restore cluster started"
        );
        Ok(cluster)
    }

    /// A new data directory from `initdb`, kept as the next run's template.
    fn initdb(&self, template: Option<&Path>) -> Result<(), DumpError> {
        let data = self.data_dir();
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        self.run("initdb", &mut initdb)?;
        if let Some(template) = template {
            template::save(&data, template);
        }
        Ok(())
    }

    /// Trust on the socket only, then the server started with the restore's settings; returns
    /// once it accepts connections. The server is our child in a process group of its own (so a
    /// Ctrl-C reaches migrate, which stops it, not the server mid-restore), not `pg_ctl`'s: its
    /// readiness is read from its pid file every 5 ms and its death seen at once, where
    /// `pg_ctl -w` looks every 100 ms.
    fn configure_and_start(&mut self) -> Result<(), DumpError> {
        use std::os::unix::process::CommandExt;
        let data = self.data_dir();
        // The socket only, readable by its owner alone: no host lines at all.
        self.write_owned(&data.join("pg_hba.conf"), "local all all trust\n")?;
        let log_path = self.dir.join("server.log");
        let io = |source| DumpError::ClusterIo { what: "write", dir: log_path.clone(), source };
        let log = std::fs::File::create(&log_path).map_err(io)?;
        let log_err = log.try_clone().map_err(io)?;
        let mut server = self.command("postgres");
        server.arg("-D").arg(&data).arg("-k").arg(&self.dir).arg("-p").arg(PORT.to_string());
        for setting in [
            "listen_addresses=",
            "unix_socket_permissions=0700",
            "fsync=off",
            "full_page_writes=off",
            "synchronous_commit=off",
            "wal_level=minimal",
            "max_wal_senders=0",
            "autovacuum=off",
            "max_wal_size=4GB",
            "maintenance_work_mem=256MB",
        ] {
            server.arg("-c").arg(setting);
        }
        server.stdin(Stdio::null()).stdout(log).stderr(log_err).process_group(0);
        let child = server.spawn().map_err(|source| DumpError::ClusterIo {
            what: "start the server in",
            dir: self.dir.clone(),
            source,
        })?;
        self.server = Some(child);
        self.wait_ready()
    }

    /// Waits for the postmaster's pid file to say `ready`, or for the server to exit.
    fn wait_ready(&mut self) -> Result<(), DumpError> {
        let pid_file = self.data_dir().join("postmaster.pid");
        let started = Instant::now();
        let problem = loop {
            if let Some(Ok(Some(status))) = self.server.as_mut().map(Child::try_wait) {
                self.server = None;
                break format!("the server exited ({status})");
            }
            if postmaster_status(&pid_file).is_some_and(|(_, status)| status == "ready") {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                break "the server was not ready after 60 s".to_owned();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Err(DumpError::ClusterFailed {
            what: "start its server",
            detail: format!("{problem}\n{}", self.log_tail()),
        })
    }

    /// Stops the server at once (nothing in it is kept) and waits until it has exited.
    fn stop(&mut self) {
        let Some(mut server) = self.server.take() else { return };
        if !stop(&self.binaries, &self.data_dir(), self.as_root) {
            // No pid file to signal through: the server never got that far.
            let _ = server.kill();
        }
        let _ = server.wait();
    }

    /// Where the socket is: the value for `host=`.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        tail(&log, 20)
    }

    fn command(&self, tool: &str) -> Command {
        as_owner(&self.binaries.tool(tool), self.as_root)
    }

    fn run(&self, what: &'static str, command: &mut Command) -> Result<(), DumpError> {
        let output = command.output().map_err(|source| DumpError::ClusterIo {
            what,
            dir: self.dir.clone(),
            source,
        })?;
        if output.status.success() {
            return Ok(());
        }
        let mut detail = String::from_utf8_lossy(&output.stderr).into_owned();
        detail.push_str(&String::from_utf8_lossy(&output.stdout));
        detail.push_str(&self.log_tail());
        Err(DumpError::ClusterFailed { what, detail: tail(&detail, 20) })
    }

    fn write_owned(&self, path: &Path, contents: &str) -> Result<(), DumpError> {
        std::fs::write(path, contents).map_err(|source| DumpError::ClusterIo {
            what: "write",
            dir: path.to_owned(),
            source,
        })?;
        if self.as_root {
            self.run("chown", Command::new("chown").arg("postgres:").arg(path))?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot remove the restore cluster");
        } else {
            tracing::debug!(dir = %self.dir.display(), "restore cluster removed");
        }
    }
}

fn as_owner(program: &Path, as_root: bool) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Stops the server of `data` at once through `pg_ctl` (`-W`: the immediate shutdown takes
/// milliseconds, `pg_ctl` would look every 100); false when no server has a pid file there.
fn stop(binaries: &Binaries, data: &Path, as_root: bool) -> bool {
    let pid_file = data.join("postmaster.pid");
    let Some((pid, _)) = postmaster_status(&pid_file) else { return false };
    let _ = as_owner(&binaries.tool("pg_ctl"), as_root)
        .arg("stop")
        .arg("-D")
        .arg(data)
        .args(["-m", "immediate", "-W"])
        .output();
    let started = Instant::now();
    while process_runs(pid) && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// The postmaster's pid and status (`starting`, `ready`, `stopping`) from its pid file.
fn postmaster_status(pid_file: &Path) -> Option<(u32, String)> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    // Line 8; absent until the postmaster has written it.
    let status = lines.nth(6).unwrap_or("").trim().to_owned();
    Some((pid, status))
}

/// Whether process `pid` runs (a zombie counts as gone).
fn process_runs(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return Command::new("kill")
            .args(["-0", &pid.to_string()])
            .output()
            .is_ok_and(|output| output.status.success());
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name's closing parenthesis.
        stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()) != Some('Z')
    })
}

/// Stops and removes the clusters of `migrate` processes that no longer run (killed, or the
/// machine stopped): their directory names carry the owner's process id.
fn remove_leftovers(binaries: &Binaries) {
    if !Path::new("/proc/self").exists() {
        return; // Cannot tell which processes run; leave them.
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let dir = entry.path();
        let _ = stop(binaries, &dir.join("data"), running_as_root());
        if std::fs::remove_dir_all(&dir).is_ok() {
            tracing::info!(dir = %dir.display(), "removed a restore cluster left by a run that died");
        }
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}
