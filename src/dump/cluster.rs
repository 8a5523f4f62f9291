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
use std::process::Command;

use super::DumpError;
use super::file::major_version;

/// The tools a restore needs.
const TOOLS: [&str; 4] = ["initdb", "pg_ctl", "pg_restore", "psql"];
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
    running: bool,
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
            Cluster { dir: dir.clone(), binaries: binaries.clone(), as_root, running: false };
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(failed("set permissions of"))?;
        }
        if as_root {
            cluster.run("chown", Command::new("chown").arg("postgres:").arg(&dir))?;
        }
        let data = cluster.data_dir();
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        cluster.run("initdb", &mut initdb)?;
        // The socket only, readable by its owner alone: no host lines at all.
        cluster.write_owned(&data.join("pg_hba.conf"), "local all all trust\n")?;
        let options = [
            "-c listen_addresses=''".to_owned(),
            format!("-k '{}'", dir.display()),
            format!("-p {PORT}"),
            "-c unix_socket_permissions=0700".into(),
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off".into(),
            "-c wal_level=minimal -c max_wal_senders=0 -c autovacuum=off".into(),
            "-c max_wal_size=4GB -c maintenance_work_mem=256MB".into(),
        ]
        .join(" ");
        let mut start = cluster.command("pg_ctl");
        start
            .arg("start")
            .arg("-w")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .arg("-o")
            .arg(options);
        cluster.running = true;
        cluster.run("pg_ctl start", &mut start)?;
        tracing::info!(dir = %dir.display(), version = %binaries.version, "restore cluster started");
        Ok(cluster)
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
        if self.running {
            stop(&self.binaries, &self.data_dir(), self.as_root);
        }
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

fn stop(binaries: &Binaries, data: &Path, as_root: bool) {
    if !data.join("postmaster.pid").exists() {
        return;
    }
    let _ = as_owner(&binaries.tool("pg_ctl"), as_root)
        .arg("stop")
        .arg("-D")
        .arg(data)
        .args(["-m", "immediate", "-w"])
        .output();
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
        stop(binaries, &dir.join("data"), running_as_root());
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
