//! A `pg_dump` file as the source (`--from-dump FILE`): restored by real PostgreSQL into a
//! throwaway cluster (`cluster`), so that export reads it exactly as it reads a live server.
//!
//! Owns: recognising the dump (`file`: plain SQL, gzip, custom, directory, tar; its checksum
//! and what its text says), the binaries and the cluster (`cluster`), and the restore
//! (`restore`): roles the dump names are created first (NOLOGIN), statements that still fail
//! (extensions and objects that exist only on Supabase) are skipped and reported, and any
//! table whose rows did not all load stops the run.

mod cluster;
pub mod file;
mod restore;
mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use self::cluster::Binaries;
pub use self::cluster::Cluster;
use self::file::major_version;
pub use self::file::{DumpFile, DumpFormat};
pub use self::restore::Skipped;
use self::restore::{ErrorLog, query};
use crate::catalog::quote_ident;
use crate::exit_code;
use crate::output::{Reporter, Unit};
use crate::settings::DatabaseUrl;

/// What can stop a restore, each naming the file, tool or table it concerns.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("cannot read the dump `{}`", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a pg_dump file: {reason}", path.display())]
    NotADump { path: PathBuf, reason: String },
    #[error("no PostgreSQL binaries found (initdb, pg_ctl, pg_restore and psql)")]
    NoBinaries { needed_major: Option<u32> },
    #[error(
        "the dump comes from PostgreSQL {dump_version}, newer than the binaries found \
         (PostgreSQL {binaries_version} in `{}`)", dir.display()
    )]
    BinariesTooOld {
        dump_version: String,
        binaries_version: String,
        dir: PathBuf,
        needed_major: u32,
    },
    #[error("`{}` holds data but no tables (a data-only dump, pg_dump --data-only)", path.display())]
    DataOnly { path: PathBuf },
    #[error("cannot {what} the restore cluster in `{}`", dir.display())]
    ClusterIo {
        what: &'static str,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the restore cluster failed to {what}: {detail}")]
    ClusterFailed { what: &'static str, detail: String },
    #[error("cannot run `{tool}`")]
    Tool {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`{tool}` failed: {detail}")]
    RestoreFailed { tool: &'static str, detail: String },
    #[error("rows of {} did not load from the dump: {}", tables.len(), tables.join("; "))]
    DataNotLoaded { tables: Vec<String> },
}

impl DumpError {
    pub fn exit_code(&self) -> u8 {
        match self {
            DumpError::Unreadable { .. } | DumpError::ClusterIo { .. } => exit_code::LOCAL_IO,
            DumpError::NotADump { .. }
            | DumpError::NoBinaries { .. }
            | DumpError::BinariesTooOld { .. }
            | DumpError::DataOnly { .. } => exit_code::USAGE,
            DumpError::ClusterFailed { .. }
            | DumpError::Tool { .. }
            | DumpError::RestoreFailed { .. }
            | DumpError::DataNotLoaded { .. } => exit_code::SOURCE_FAILURE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        let install = |major: u32| {
            format!(
                "install PostgreSQL {major}'s server and client binaries: `apt install \
                 postgresql-{major}` (Debian, Ubuntu: from apt.postgresql.org for versions \
                 the distribution lacks), `brew install postgresql@{major}` (macOS); migrate \
                 looks in `pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH"
            )
        };
        Some(match self {
            DumpError::NoBinaries { needed_major } => install(needed_major.unwrap_or(17)),
            DumpError::BinariesTooOld { needed_major, .. } => install(*needed_major),
            DumpError::NotADump { .. } => "pass a file written by pg_dump: plain SQL (.sql, \
                .sql.gz), custom (-Fc), a directory (-Fd) or tar (-Ft)"
                .into(),
            DumpError::DataOnly { .. } => "dump the schema with the data (pg_dump without \
                --data-only), or restore the schema first and export from that database"
                .into(),
            DumpError::DataNotLoaded { .. } => "the restore's errors above say why; a table \
                whose definition needs a missing extension or type cannot load: make the \
                dump without it (pg_dump --exclude-table) or install the extension"
                .into(),
            DumpError::ClusterFailed { .. } => "the server log is above; migrate starts \
                PostgreSQL in a directory under TMPDIR: check its free space"
                .into(),
            _ => return None,
        })
    }
}

/// What the restore did, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub dump: DumpFile,
    /// The PostgreSQL binaries that restored it.
    pub binaries: String,
    /// The database in the throwaway cluster the export read.
    pub database: String,
    /// Roles the dump names that were created (NOLOGIN) so its owners and grants apply.
    pub roles_created: Vec<String>,
    /// Statements that failed and were passed over; no table data among them.
    pub skipped: Vec<Skipped>,
    /// What the dump does not hold that an export may expect.
    pub missing: Vec<String>,
    pub seconds: f64,
}

/// A restored dump: the cluster lives as long as this does.
pub struct Restored {
    pub cluster: Cluster,
    pub database_url: DatabaseUrl,
    pub report: RestoreReport,
}

/// Every ordinary table of the restored schemas made unlogged, each on its own (one that cannot
/// be, e.g. in a publication, stays as it is). Export reads them the same.
const UNLOGGED: &str = "DO $$ DECLARE t regclass; BEGIN
  FOR t IN SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND c.relpersistence = 'p'
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_%'
  LOOP
    BEGIN
      EXECUTE format('ALTER TABLE %s SET UNLOGGED', t);
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
  END LOOP;
END $$";

/// `ANALYZE` of the tables whose row count Postgres does not know (`reltuples < 0`: no index
/// was built on them).
const ANALYZE_UNCOUNTED: &str = "DO $$ DECLARE t regclass; BEGIN
  FOR t IN SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'm', 'p') AND c.reltuples < 0
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_%'
  LOOP
    EXECUTE format('ANALYZE %s', t);
  END LOOP;
END $$";

/// Restores `path` into a new throwaway cluster, `jobs` at once where the format allows.
pub async fn restore(
    path: &Path,
    jobs: usize,
    reporter: &dyn Reporter,
) -> Result<Restored, DumpError> {
    let started = Instant::now();
    let format = file::detect(path)?;
    let owned = path.to_owned();
    let describe = tokio::task::spawn_blocking(move || file::describe(&owned, format));

    let plain = match format.is_plain() {
        true => {
            let owned = path.to_owned();
            let scan = tokio::task::spawn_blocking(move || {
                file::scan_plain(file::open_plain(&owned, format)?, &owned)
            });
            Some(scan.await.expect("the scan does not panic")?)
        }
        false => None,
    };
    let needed = plain.as_ref().and_then(|p| p.dumped_from.as_deref()).map(major_version);
    let binaries =
        tokio::task::spawn_blocking(move || Binaries::find(needed)).await.expect("no panic")?;

    let (dumped_from, database_name, listing) = match &plain {
        Some(scan) => (scan.dumped_from.clone(), None, None),
        None => {
            let listing = list_archive(&binaries, path).await?;
            (listing.dumped_from.clone(), listing.database.clone(), Some(listing))
        }
    };
    // The archive's format version follows pg_dump's: pg_restore must be as new as both.
    let mut needed = dumped_from.as_deref().map(major_version).unwrap_or(0);
    if let Some(by) = listing.as_ref().and_then(|l| l.dumped_by.as_deref()) {
        needed = needed.max(major_version(by));
    }
    if needed > binaries.major {
        return Err(DumpError::BinariesTooOld {
            dump_version: dumped_from.unwrap_or_else(|| needed.to_string()),
            binaries_version: binaries.version.clone(),
            dir: binaries.dir.clone(),
            needed_major: needed,
        });
    }
    let mut missing = Vec::new();
    let (creates_tables, has_data) = match (&plain, &listing) {
        (Some(scan), _) => (scan.creates_tables, !scan.data.is_empty()),
        (_, Some(listing)) => (!listing.tables.is_empty(), !listing.table_data.is_empty()),
        _ => unreachable!("a dump is plain or an archive"),
    };
    if has_data && !creates_tables {
        return Err(DumpError::DataOnly { path: path.to_owned() });
    }
    if !has_data {
        missing.push(
            "rows: the dump holds no table data (a schema-only dump, pg_dump --schema-only?)"
                .to_owned(),
        );
    }

    let roles = match &plain {
        Some(scan) => scan.roles.clone(),
        None => archive_roles(&binaries, path).await?,
    };
    let mut dump = describe.await.expect("describe does not panic")?;
    dump.dumped_from = dumped_from;
    dump.database = database_name;

    let cluster_binaries = binaries.clone();
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&cluster_binaries))
        .await
        .expect("starting the cluster does not panic")?;

    let roles_created = create_roles(&binaries, &cluster, &roles).await?;
    let label = format!("restore {}", dump.file);
    let (log, database) = match &plain {
        Some(scan) => {
            let database = scan.connects_to.clone().unwrap_or_else(|| "postgres".to_owned());
            let total = (format == DumpFormat::Plain).then_some(dump.bytes);
            let mut progress = reporter.table_started(&label, total, Unit::Rows);
            let log = replay_plain(&binaries, &cluster, path, format, progress.as_mut()).await?;
            (log, database)
        }
        None => {
            let total = listing.as_ref().map(|l| l.table_data.len() as u64);
            let mut progress = reporter.table_started(&label, total, Unit::Rows);
            let jobs = format.parallel().then_some(jobs);
            let mut log = ErrorLog::default();
            let mut succeeded = true;
            // The sections one by one, so that the tables are made unlogged between the schema
            // and the rows: the throwaway cluster writes no WAL for them (it is thrown away).
            for section in ["pre-data", "data", "post-data"] {
                if section == "data" {
                    query(&binaries, &cluster, "postgres", UNLOGGED).await?;
                }
                let command = restore::pg_restore_command(&binaries, &cluster, path, section, jobs);
                succeeded &= restore::run_reading_stderr(command, "pg_restore", |line| {
                    log.pg_restore_line(line);
                    progress.rows(log.data_entries_done);
                })
                .await?;
            }
            progress.finished(log.data_entries_done);
            if !succeeded && log.skipped.is_empty() {
                let detail = log.other.join("\n");
                return Err(DumpError::RestoreFailed { tool: "pg_restore", detail });
            }
            (log, "postgres".to_owned())
        }
    };

    let mut failed: Vec<String> =
        log.skipped.iter().filter(|s| s.data).map(|s| format!("{}: {}", s.what, s.error)).collect();
    if let Some(scan) = &plain {
        failed.extend(compare_counts(&binaries, &cluster, &database, &scan.data).await?);
    }
    for skipped in &log.skipped {
        tracing::info!(what = %skipped.what, error = %skipped.error, "restore skipped a statement");
    }
    if !failed.is_empty() {
        return Err(DumpError::DataNotLoaded { tables: failed });
    }
    missing.extend(missing_relations(&log.skipped));
    // Planner statistics, which a restore does not bring: export reads the largest tables first.
    // Building an index counts a table's rows already; only tables without one are analyzed.
    query(&binaries, &cluster, &database, ANALYZE_UNCOUNTED).await?;

    let database_url = DatabaseUrl::parse(&format!(
        "host='{}' port={} user=postgres dbname='{}' sslmode=disable",
        cluster.socket_dir().display(),
        cluster::PORT,
        database.replace('\\', "\\\\").replace('\'', "\\'")
    ))
    .map_err(|e| DumpError::RestoreFailed { tool: "migrate", detail: e.to_string() })?;
    let report = RestoreReport {
        dump,
        binaries: format!("{} ({})", binaries.version, binaries.dir.display()),
        database,
        roles_created,
        skipped: log.skipped,
        missing,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(Restored { cluster, database_url, report })
}

/// `pg_restore -l`: the archive's header and entries. A pg_restore too old for the archive
/// says `unsupported version`.
async fn list_archive(binaries: &Binaries, path: &Path) -> Result<file::ArchiveHeader, DumpError> {
    let output = tokio::process::Command::new(binaries.tool("pg_restore"))
        .arg("-l")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| DumpError::Tool { tool: "pg_restore", source })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if stderr.contains("unsupported version") {
            return Err(DumpError::BinariesTooOld {
                dump_version: "a newer pg_dump".into(),
                binaries_version: binaries.version.clone(),
                dir: binaries.dir.clone(),
                needed_major: binaries.major + 1,
            });
        }
        return Err(DumpError::NotADump { path: path.to_owned(), reason: stderr.trim().into() });
    }
    Ok(file::parse_listing(&String::from_utf8_lossy(&output.stdout)))
}

/// The roles an archive's definitions name: its schema as SQL (`pg_restore -s -f -`), read
/// line by line.
async fn archive_roles(
    binaries: &Binaries,
    path: &Path,
) -> Result<std::collections::BTreeSet<String>, DumpError> {
    let output = tokio::process::Command::new(binaries.tool("pg_restore"))
        .args(["-s", "-f", "-"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| DumpError::Tool { tool: "pg_restore", source })?;
    if !output.status.success() {
        let detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(DumpError::RestoreFailed { tool: "pg_restore", detail });
    }
    let mut roles = std::collections::BTreeSet::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        file::roles_named(line, &mut roles);
    }
    Ok(roles)
}

/// Creates, NOLOGIN, each role the dump names that the cluster lacks.
async fn create_roles(
    binaries: &Binaries,
    cluster: &Cluster,
    roles: &std::collections::BTreeSet<String>,
) -> Result<Vec<String>, DumpError> {
    if roles.is_empty() {
        return Ok(Vec::new());
    }
    let existing = query(binaries, cluster, "postgres", "select rolname from pg_roles").await?;
    let created: Vec<String> = roles.iter().filter(|r| !existing.contains(r)).cloned().collect();
    if !created.is_empty() {
        let sql: String =
            created.iter().map(|r| format!("CREATE ROLE {} NOLOGIN;", quote_ident(r))).collect();
        query(binaries, cluster, "postgres", &sql).await?;
        tracing::info!(roles = ?created, "created the roles the dump names");
    }
    Ok(created)
}

/// Replays a plain dump through psql, going on past errors; its bytes counted on `progress`.
async fn replay_plain(
    binaries: &Binaries,
    cluster: &Cluster,
    path: &Path,
    format: DumpFormat,
    progress: &mut dyn crate::output::TableProgress,
) -> Result<ErrorLog, DumpError> {
    let mut command = restore::client(binaries, "psql", cluster, "postgres");
    command.args(["-X", "-q", "-b", "-v", "ON_ERROR_STOP=0", "-f", "-"]).stdin(Stdio::piped());
    let mut command_stdout = command;
    command_stdout.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child =
        command_stdout.spawn().map_err(|source| DumpError::Tool { tool: "psql", source })?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    // The file is read on a blocking thread and sent in blocks to psql's stdin.
    let (blocks, mut receive) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let mut reader = file::open_plain(path, format)?;
    let reading = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Read;
        loop {
            let mut block = vec![0; 1 << 20];
            let read = reader.read(&mut block)?;
            if read == 0 {
                return Ok(());
            }
            block.truncate(read);
            if blocks.blocking_send(block).is_err() {
                return Ok(());
            }
        }
    });
    let writing = async {
        let mut sent = 0u64;
        while let Some(block) = receive.recv().await {
            if stdin.write_all(&block).await.is_err() {
                break; // psql stopped: its exit status says why
            }
            sent += block.len() as u64;
            progress.rows(sent);
        }
        drop(stdin);
        sent
    };
    let mut log = ErrorLog::default();
    let reading_errors = async {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::trace!(%line, "psql output");
            log.psql_line(&line);
        }
    };
    let (sent, ()) = tokio::join!(writing, reading_errors);
    progress.finished(sent);
    reading
        .await
        .expect("reading does not panic")
        .map_err(|source| DumpError::Unreadable { path: path.to_owned(), source })?;
    let status = child.wait().await.map_err(|source| DumpError::Tool { tool: "psql", source })?;
    if !status.success() {
        let detail = format!("exit status {status}");
        return Err(DumpError::RestoreFailed { tool: "psql", detail });
    }
    Ok(log)
}

/// Tables whose row count after the replay differs from the rows the dump carries.
async fn compare_counts(
    binaries: &Binaries,
    cluster: &Cluster,
    database: &str,
    data: &[(String, u64)],
) -> Result<Vec<String>, DumpError> {
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for (table, rows) in data {
        *expected.entry(table).or_default() += rows;
    }
    let mut failed = Vec::new();
    for (table, rows) in expected {
        let sql = format!("select count(*) from ONLY {table}");
        match query(binaries, cluster, database, &sql).await {
            Ok(found) => {
                let found: u64 = found.first().and_then(|n| n.parse().ok()).unwrap_or(0);
                if found != rows {
                    failed.push(format!("{table}: {found} of {rows} rows loaded"));
                }
            }
            Err(DumpError::RestoreFailed { detail, .. }) => {
                failed.push(format!("{table}: 0 of {rows} rows loaded ({detail})"));
            }
            Err(error) => return Err(error),
        }
    }
    Ok(failed)
}

/// Relations the dump refers to but does not define: foreign keys to tables left out of a dump
/// of only some tables.
fn missing_relations(skipped: &[Skipped]) -> Vec<String> {
    let mut missing = Vec::new();
    for s in skipped {
        let Some(rest) = s.error.strip_prefix("relation \"") else { continue };
        let Some(relation) = rest.split('"').next() else { continue };
        let message = format!(
            "table `{relation}`: not in the dump, yet named by `{}` (a dump of only some \
             tables?)",
            s.what
        );
        if !missing.contains(&message) {
            missing.push(message);
        }
    }
    missing
}
