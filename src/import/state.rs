//! The import's state file, `data/state.sqlite`: which batches Convex acknowledged (per table,
//! per pass, as ranges of lines of the transformed file), how many documents each pass wrote,
//! the documents Convex refused, and a ledger of runs.
//!
//! Correctness never depends on it: every write is an upsert by legacy id, so a lost or deleted
//! state only means sending documents again. It makes a resumed import skip what is done.
//! Checkpoints are written by one thread ([`Checkpointer`]) that commits whatever has arrived in
//! one transaction, so recording never slows the requests down.

pub mod place;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::data_dir::{DataDirError, create_private_dir};

/// Bumped when the tables below change incompatibly; a file of another version is started over
/// (an import half done under it sends everything again: upserts by legacy id duplicate
/// nothing). 2: no `ids` table (the legacy id → Convex id map nothing read).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tables (
    target TEXT PRIMARY KEY,
    checksum TEXT NOT NULL,
    upserted INTEGER NOT NULL DEFAULT 0,
    patched INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batches (
    target TEXT NOT NULL,
    pass INTEGER NOT NULL,
    first_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    PRIMARY KEY (target, pass, first_line)
);
CREATE TABLE IF NOT EXISTS rejects (
    target TEXT NOT NULL,
    line INTEGER NOT NULL,
    legacy_id TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (target, line)
);
CREATE TABLE IF NOT EXISTS files (
    bucket TEXT NOT NULL,
    path TEXT NOT NULL,
    sending_since INTEGER NOT NULL,
    storage_id TEXT,
    size INTEGER,
    content_type TEXT,
    sha256 TEXT,
    PRIMARY KEY (bucket, path)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT
);
";

/// A file whose bytes were being sent when a run ended, with no record of where they went.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSending {
    pub bucket: String,
    pub path: String,
    /// When the first upload started, ms since the epoch.
    pub since_ms: i64,
}

/// The `meta` key of the import's marker id: chosen when import first writes to a deployment,
/// recorded there in the generated module's ledger; the checkpoints count only while the
/// deployment holds it.
pub const IMPORT_ID: &str = "import_id";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the import state `{path}` cannot be used")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("the checkpoint writer stopped")]
    WriterGone,
}

/// Which of import's two passes a batch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pass {
    /// Documents upserted, references outside foreign-key cycles resolved.
    Upsert = 1,
    /// References inside cycles patched in.
    PatchRefs = 2,
}

/// A document Convex refused, with its message.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImportReject {
    pub table: String,
    /// 1-based line of `transformed/<table>.jsonl`.
    pub line: u64,
    pub legacy_id: String,
    pub message: String,
}

/// A batch Convex acknowledged: lines `first_line..end_line` of the table's file are done.
#[derive(Debug)]
pub struct Acked {
    pub table: String,
    pub pass: Pass,
    pub first_line: u64,
    pub end_line: u64,
    /// Documents written (Convex returned an id for each); the rest are in `rejects`.
    pub written: u64,
    pub rejects: Vec<ImportReject>,
}

pub struct State {
    conn: Connection,
    path: PathBuf,
}

impl State {
    /// Opens (or creates) the state file, readable by its owner only, in a directory created
    /// owner-only like the rest of the data directory (the `-wal` and `-shm` files beside it
    /// hold the same data).
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent)?;
        }
        let sqlite = |source| StateError::Sqlite { path: path.to_owned(), source };
        let conn = Connection::open(path).map_err(sqlite)?;
        restrict_to_owner(path);
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(sqlite)?;
        let state = Self { conn, path: path.to_owned() };
        state.migrate_schema()?;
        Ok(state)
    }

    /// Opens an existing state file to read it and changes nothing: no directory or file is
    /// created, and the journal mode and the schema stay as they are. `None` when there is no
    /// file, or when another version of migrate wrote it (another schema version): there is no
    /// usable state then, and the next import starts it over.
    pub fn open_read_only(path: &Path) -> Result<Option<Self>, StateError> {
        if !path.exists() {
            return Ok(None);
        }
        let sqlite = |source| StateError::Sqlite { path: path.to_owned(), source };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
        let version: i64 =
            conn.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(sqlite)?;
        if version != SCHEMA_VERSION {
            return Ok(None);
        }
        Ok(Some(Self { conn, path: path.to_owned() }))
    }

    fn sqlite(&self) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        |source| StateError::Sqlite { path: self.path.clone(), source }
    }

    fn migrate_schema(&self) -> Result<(), StateError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(self.sqlite())?;
        if version != SCHEMA_VERSION {
            self.conn
                .execute_batch(
                    // `ids`: version 1's.
                    "DROP TABLE IF EXISTS meta; DROP TABLE IF EXISTS tables; \
                     DROP TABLE IF EXISTS batches; DROP TABLE IF EXISTS ids; \
                     DROP TABLE IF EXISTS rejects; DROP TABLE IF EXISTS runs;",
                )
                .map_err(self.sqlite())?;
        }
        self.conn.execute_batch(SCHEMA).map_err(self.sqlite())?;
        self.conn
            .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(self.sqlite())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| row.get(0))
            .optional()
            .map_err(self.sqlite())
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(self.sqlite())
    }

    /// Forgets every checkpoint and reject, and the import's marker id: the next import sends
    /// everything again, under a new marker.
    pub fn reset_all(&self) -> Result<(), StateError> {
        self.conn
            .execute_batch(&format!(
                "DELETE FROM tables; DELETE FROM batches; DELETE FROM rejects; \
                 DELETE FROM meta WHERE key = '{IMPORT_ID}';"
            ))
            .map_err(self.sqlite())
    }

    /// Notes that the bytes of `bucket/path` are about to be sent (kept from the first attempt):
    /// a run killed before their record finds them with [`State::files_sending`].
    pub fn file_sending(&self, bucket: &str, path: &str, now_ms: i64) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO files (bucket, path, sending_since) VALUES (?1, ?2, ?3)
                 ON CONFLICT (bucket, path) DO UPDATE SET storage_id = NULL,
                 sending_since = CASE WHEN storage_id IS NULL THEN sending_since ELSE ?3 END",
                rusqlite::params![bucket, path, now_ms],
            )
            .map(drop)
            .map_err(self.sqlite())
    }

    /// Records where the bytes of `bucket/path` went, once Convex recorded them too.
    pub fn file_recorded(
        &self,
        bucket: &str,
        path: &str,
        storage_id: &str,
        size: u64,
        content_type: &str,
        sha256: &str,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO files (bucket, path, sending_since, storage_id, size, content_type, sha256)
                 VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)
                 ON CONFLICT (bucket, path) DO UPDATE SET storage_id = ?3, size = ?4,
                 content_type = ?5, sha256 = ?6",
                rusqlite::params![bucket, path, storage_id, size as i64, content_type, sha256],
            )
            .map(drop)
            .map_err(self.sqlite())
    }

    /// Files whose bytes were being sent with no record of where they went.
    pub fn files_sending(&self) -> Result<Vec<FileSending>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT bucket, path, sending_since FROM files WHERE storage_id IS NULL")
            .map_err(self.sqlite())?;
        let rows = statement
            .query_map([], |row| {
                Ok(FileSending { bucket: row.get(0)?, path: row.get(1)?, since_ms: row.get(2)? })
            })
            .map_err(self.sqlite())?;
        rows.collect::<Result<_, _>>().map_err(self.sqlite())
    }

    /// Whether any batch is checkpointed (or any document recorded as refused).
    pub fn has_checkpoints(&self) -> Result<bool, StateError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM batches) OR EXISTS (SELECT 1 FROM rejects)",
                [],
                |row| row.get(0),
            )
            .map_err(self.sqlite())
    }

    /// The checksum of the transformed file the table's checkpoints refer to.
    pub fn table_checksum(&self, table: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row("SELECT checksum FROM tables WHERE target = ?1", [table], |row| row.get(0))
            .optional()
            .map_err(self.sqlite())
    }

    /// Starts the table over for a transformed file with `checksum`.
    pub fn reset_table(&self, table: &str, checksum: &str) -> Result<(), StateError> {
        let tx = self.conn.unchecked_transaction().map_err(self.sqlite())?;
        forget(&tx, table).map_err(self.sqlite())?;
        tx.execute(
            "INSERT INTO tables (target, checksum) VALUES (?1, ?2)",
            params![table, checksum],
        )
        .map_err(self.sqlite())?;
        tx.commit().map_err(self.sqlite())
    }

    /// Forgets the table: its checksum, checkpoints and rejects. The next import finds no
    /// checksum for it and sends it all again.
    pub fn forget_table(&self, table: &str) -> Result<(), StateError> {
        let tx = self.conn.unchecked_transaction().map_err(self.sqlite())?;
        forget(&tx, table).map_err(self.sqlite())?;
        tx.commit().map_err(self.sqlite())
    }

    /// Line ranges `[first, end)` of the table acknowledged in `pass`, sorted.
    pub fn acked_ranges(&self, table: &str, pass: Pass) -> Result<Vec<(u64, u64)>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT first_line, end_line FROM batches WHERE target = ?1 AND pass = ?2 \
                 ORDER BY first_line",
            )
            .map_err(self.sqlite())?;
        let rows = statement
            .query_map(params![table, pass as i64], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
            })
            .map_err(self.sqlite())?;
        rows.collect::<Result<_, _>>().map_err(self.sqlite())
    }

    /// Documents of the table Convex refused, in line order.
    pub fn rejects(&self, table: &str) -> Result<Vec<ImportReject>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT line, legacy_id, message FROM rejects WHERE target = ?1 ORDER BY line")
            .map_err(self.sqlite())?;
        let rows = statement
            .query_map([table], |row| {
                Ok(ImportReject {
                    table: table.to_owned(),
                    line: row.get::<_, i64>(0)? as u64,
                    legacy_id: row.get(1)?,
                    message: row.get(2)?,
                })
            })
            .map_err(self.sqlite())?;
        rows.collect::<Result<_, _>>().map_err(self.sqlite())
    }

    /// How many documents of the table Convex refused.
    pub fn rejected(&self, table: &str) -> Result<u64, StateError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM rejects WHERE target = ?1", [table], |row| {
                row.get::<_, i64>(0)
            })
            .map(|count| count as u64)
            .map_err(self.sqlite())
    }

    /// Documents of the table written in `pass` (counted from acknowledged batches).
    pub fn written(&self, table: &str, pass: Pass) -> Result<u64, StateError> {
        let column = match pass {
            Pass::Upsert => "upserted",
            Pass::PatchRefs => "patched",
        };
        let count: Option<i64> = self
            .conn
            .query_row(&format!("SELECT {column} FROM tables WHERE target = ?1"), [table], |row| {
                row.get(0)
            })
            .optional()
            .map_err(self.sqlite())?;
        Ok(count.unwrap_or(0) as u64)
    }

    fn record(&mut self, batches: &[Acked]) -> Result<(), StateError> {
        let path = self.path.clone();
        let sqlite = |source| StateError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(sqlite)?;
        {
            let mut batch = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO batches (target, pass, first_line, end_line) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sqlite)?;
            let mut reject = tx
                .prepare_cached(
                    // A document refused by the upsert is refused again by the second pass
                    // ("not in Convex"): the first reason is the one to keep.
                    "INSERT OR IGNORE INTO rejects (target, line, legacy_id, message) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sqlite)?;
            let mut upserted = tx
                .prepare_cached("UPDATE tables SET upserted = upserted + ?2 WHERE target = ?1")
                .map_err(sqlite)?;
            let mut patched = tx
                .prepare_cached("UPDATE tables SET patched = patched + ?2 WHERE target = ?1")
                .map_err(sqlite)?;
            for acked in batches {
                let pass = acked.pass as i64;
                batch
                    .execute(params![
                        acked.table,
                        pass,
                        acked.first_line as i64,
                        acked.end_line as i64
                    ])
                    .map_err(sqlite)?;
                for r in &acked.rejects {
                    reject
                        .execute(params![acked.table, r.line as i64, r.legacy_id, r.message])
                        .map_err(sqlite)?;
                }
                let count = match acked.pass {
                    Pass::Upsert => &mut upserted,
                    Pass::PatchRefs => &mut patched,
                };
                count.execute(params![acked.table, acked.written as i64]).map_err(sqlite)?;
            }
        }
        tx.commit().map_err(sqlite)
    }

    /// Opens a ledger entry for a run of `command`; returns its id.
    pub fn run_started(&self, command: &str) -> Result<i64, StateError> {
        self.conn
            .execute(
                "INSERT INTO runs (command, started_at) VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ'))",
                [command],
            )
            .map_err(self.sqlite())?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn run_finished(&self, run: i64, outcome: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE runs SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ'), outcome = ?2 \
                 WHERE id = ?1",
                params![run, outcome],
            )
            .map(drop)
            .map_err(self.sqlite())
    }
}

impl State {
    /// (command, started, finished, outcome) of the last `limit` runs, newest first.
    #[allow(clippy::type_complexity)]
    pub fn recent_runs(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, String, Option<String>, Option<String>)>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT command, started_at, finished_at, outcome FROM runs \
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(self.sqlite())?;
        let rows = statement
            .query_map([limit as i64], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .map_err(self.sqlite())?;
        rows.collect::<Result<_, _>>().map_err(self.sqlite())
    }
}

/// A run of the ledger: when it started and finished (UTC), and how it ended (`completed`,
/// `interrupted`, `failed`; none while it runs, or when it was killed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Option<String>,
}

impl State {
    /// The last run of `command`, if any ran.
    pub fn last_run(&self, command: &str) -> Result<Option<Run>, StateError> {
        self.conn
            .query_row(
                "SELECT started_at, finished_at, outcome FROM runs WHERE command = ?1 \
                 ORDER BY id DESC LIMIT 1",
                [command],
                |row| {
                    Ok(Run {
                        started_at: row.get(0)?,
                        finished_at: row.get(1)?,
                        outcome: row.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(self.sqlite())
    }
}

/// Deletes what the state holds about `table`, in the caller's transaction.
fn forget(tx: &rusqlite::Transaction<'_>, table: &str) -> rusqlite::Result<()> {
    for sql in [
        "DELETE FROM batches WHERE target = ?1",
        "DELETE FROM rejects WHERE target = ?1",
        "DELETE FROM tables WHERE target = ?1",
    ] {
        tx.execute(sql, [table])?;
    }
    Ok(())
}

/// The data directory holds user data; so does the state file.
fn restrict_to_owner(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

/// Writes acknowledged batches on its own thread, many per transaction.
/// How long the checkpoint writer gathers acknowledged batches before it commits them.
const COMMIT_EVERY: Duration = Duration::from_millis(20);
/// The most batches one transaction records.
const COMMIT_AT_MOST: usize = 1024;

pub struct Checkpointer {
    sender: mpsc::Sender<Acked>,
    thread: JoinHandle<(State, Result<(), StateError>)>,
}

impl Checkpointer {
    pub fn spawn(mut state: State) -> Self {
        let (sender, receiver) = mpsc::channel::<Acked>();
        let thread = std::thread::spawn(move || {
            while let Ok(first) = receiver.recv() {
                // What arrives within COMMIT_EVERY of the first goes into the same transaction:
                // committing each batch as it came was a tenth of import's CPU at 2,000
                // batches/s. A crash loses at most that much of checkpoints, which only means
                // those batches are upserted again.
                let deadline = Instant::now() + COMMIT_EVERY;
                let mut pending = vec![first];
                while pending.len() < COMMIT_AT_MOST {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match receiver.recv_timeout(left) {
                        Ok(acked) => pending.push(acked),
                        Err(_) => break,
                    }
                }
                if let Err(error) = state.record(&pending) {
                    return (state, Err(error));
                }
            }
            (state, Ok(()))
        });
        Self { sender, thread }
    }

    /// Queues a checkpoint. Fails when the writer stopped on an error; `finish` says which.
    pub fn record(&self, acked: Acked) -> Result<(), StateError> {
        self.sender.send(acked).map_err(|_| StateError::WriterGone)
    }

    /// Waits until every queued checkpoint is written; returns the state for reading.
    pub fn finish(self) -> (State, Result<(), StateError>) {
        drop(self.sender);
        self.thread.join().expect("the checkpoint writer does not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(first: u64, end: u64) -> Acked {
        Acked {
            table: "users".into(),
            pass: Pass::Upsert,
            first_line: first,
            end_line: end,
            written: end - first,
            rejects: vec![],
        }
    }

    #[test]
    fn checkpoints_survive_reopening_and_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let state = State::open(&path).unwrap();
        state.reset_table("users", "blake3:a").unwrap();
        let writer = Checkpointer::spawn(state);
        writer.record(acked(101, 201)).unwrap();
        writer.record(acked(1, 101)).unwrap();
        let (state, result) = writer.finish();
        result.unwrap();
        drop(state);

        let state = State::open(&path).unwrap();
        assert_eq!(state.acked_ranges("users", Pass::Upsert).unwrap(), [(1, 101), (101, 201)]);
        assert_eq!(state.acked_ranges("users", Pass::PatchRefs).unwrap(), []);
        assert_eq!(state.written("users", Pass::Upsert).unwrap(), 200);
        assert_eq!(state.table_checksum("users").unwrap().as_deref(), Some("blake3:a"));

        state.reset_table("users", "blake3:b").unwrap();
        assert_eq!(state.acked_ranges("users", Pass::Upsert).unwrap(), []);
        assert_eq!(state.written("users", Pass::Upsert).unwrap(), 0);
    }

    #[test]
    fn resetting_everything_forgets_the_import_marker_too() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.sqlite")).unwrap();
        assert!(!state.has_checkpoints().unwrap());
        state.reset_table("users", "blake3:a").unwrap();
        state.set_meta(IMPORT_ID, "0123").unwrap();
        state.set_meta("deployment", "http://127.0.0.1:1").unwrap();
        let writer = Checkpointer::spawn(state);
        writer.record(acked(1, 3)).unwrap();
        let (state, result) = writer.finish();
        result.unwrap();
        assert!(state.has_checkpoints().unwrap());

        state.reset_all().unwrap();
        assert!(!state.has_checkpoints().unwrap());
        assert_eq!(state.meta(IMPORT_ID).unwrap(), None);
        assert_eq!(state.meta("deployment").unwrap().as_deref(), Some("http://127.0.0.1:1"));
    }

    #[test]
    fn rejects_are_kept_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.sqlite")).unwrap();
        state.reset_table("users", "blake3:a").unwrap();
        let mut batch = acked(1, 3);
        batch.rejects.push(ImportReject {
            table: "users".into(),
            line: 2,
            legacy_id: "2".into(),
            message: "Validator error".into(),
        });
        let writer = Checkpointer::spawn(state);
        writer.record(batch).unwrap();
        let (state, result) = writer.finish();
        result.unwrap();
        assert_eq!(state.rejects("users").unwrap()[0].message, "Validator error");

        // The second pass refuses the same document again; the first reason stays.
        let mut again = acked(1, 3);
        again.pass = Pass::PatchRefs;
        again.rejects.push(ImportReject {
            table: "users".into(),
            line: 2,
            legacy_id: "2".into(),
            message: "users 2: not in Convex".into(),
        });
        let writer = Checkpointer::spawn(state);
        writer.record(again).unwrap();
        let (state, result) = writer.finish();
        result.unwrap();
        let rejects = state.rejects("users").unwrap();
        assert_eq!((rejects.len(), rejects[0].message.as_str()), (1, "Validator error"));
        assert_eq!(state.rejected("users").unwrap(), 1);
        assert_eq!(state.rejected("posts").unwrap(), 0);
    }

    #[test]
    fn forgetting_a_table_leaves_no_checksum_checkpoint_or_reject_of_it_and_the_rest_alone() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.sqlite")).unwrap();
        state.reset_table("users", "blake3:a").unwrap();
        state.reset_table("posts", "blake3:p").unwrap();
        let mut users = acked(1, 3);
        users.rejects.push(ImportReject {
            table: "users".into(),
            line: 2,
            legacy_id: "2".into(),
            message: "Validator error".into(),
        });
        let mut posts = acked(1, 3);
        posts.table = "posts".into();
        let writer = Checkpointer::spawn(state);
        writer.record(users).unwrap();
        writer.record(posts).unwrap();
        let (state, result) = writer.finish();
        result.unwrap();

        state.forget_table("users").unwrap();
        // No checksum: whatever the transformed file's is, the next import starts it over.
        assert_eq!(state.table_checksum("users").unwrap(), None);
        assert_eq!(state.acked_ranges("users", Pass::Upsert).unwrap(), []);
        assert_eq!(state.written("users", Pass::Upsert).unwrap(), 0);
        assert_eq!(state.rejected("users").unwrap(), 0);
        assert_eq!(state.table_checksum("posts").unwrap().as_deref(), Some("blake3:p"));
        assert_eq!(state.acked_ranges("posts", Pass::Upsert).unwrap(), [(1, 3)]);
    }

    #[test]
    fn the_state_keeps_no_id_map_and_a_version_1_file_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        // A half-done import recorded by version 1, which also kept every (legacy, Convex) id.
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&SCHEMA.replace(
            "CREATE TABLE IF NOT EXISTS rejects",
            "CREATE TABLE IF NOT EXISTS ids (target TEXT NOT NULL, legacy_id TEXT NOT NULL, \
             convex_id TEXT NOT NULL);\nCREATE TABLE IF NOT EXISTS rejects",
        ))
        .unwrap();
        old.execute_batch(
            "INSERT INTO tables (target, checksum, upserted) VALUES ('users', 'blake3:a', 2);
             INSERT INTO batches VALUES ('users', 1, 1, 3);
             INSERT INTO ids VALUES ('users', '1', 'id1'), ('users', '2', 'id2');
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(old);
        assert!(State::open_read_only(&path).unwrap().is_none(), "not this version's state");

        // Opened for an import, it starts over: the import sends the table again.
        let state = State::open(&path).unwrap();
        assert_eq!(state.table_checksum("users").unwrap(), None);
        assert_eq!(state.acked_ranges("users", Pass::Upsert).unwrap(), []);
        drop(state);
        let (tables, version) = contents(&path);
        assert_eq!(version, SCHEMA_VERSION);
        assert!(tables.iter().all(|(name, _)| name != "ids"), "{tables:?}");

        // … and recording batches writes counts only, however many documents they hold.
        let state = State::open(&path).unwrap();
        state.reset_table("users", "blake3:a").unwrap();
        let writer = Checkpointer::spawn(state);
        writer.record(acked(1, 1001)).unwrap();
        let (state, result) = writer.finish();
        result.unwrap();
        assert_eq!(state.written("users", Pass::Upsert).unwrap(), 1000);
        drop(state);
        assert!(contents(&path).0.iter().all(|(name, _)| name != "ids"));
    }

    /// (tables, user_version) of the file, read without migrate's code.
    fn contents(path: &Path) -> (Vec<(String, i64)>, i64) {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let tables = names
            .into_iter()
            .map(|name| {
                let rows = conn
                    .query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |row| row.get(0))
                    .unwrap();
                (name, rows)
            })
            .collect();
        let version = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
        (tables, version)
    }

    #[test]
    fn reading_the_state_changes_nothing_even_under_another_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        assert!(State::open_read_only(&path).unwrap().is_none());
        assert!(!path.exists(), "reading creates no state file");

        let state = State::open(&path).unwrap();
        state.reset_table("users", "blake3:a").unwrap();
        state.run_started("import").unwrap();
        let writer = Checkpointer::spawn(state);
        writer.record(acked(1, 101)).unwrap();
        let (state, result) = writer.finish();
        result.unwrap();
        drop(state);

        let read = State::open_read_only(&path).unwrap().expect("the same schema version");
        assert_eq!(read.written("users", Pass::Upsert).unwrap(), 100);
        assert_eq!(read.recent_runs(5).unwrap().len(), 1);
        assert!(read.set_meta("plan_hash", "x").is_err(), "a read-only state cannot be written");
        drop(read);

        // Another version of migrate: no usable state, and what is there stays there.
        Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
        let before = contents(&path);
        assert_eq!(before.1, 99);
        assert!(before.0.contains(&("batches".to_owned(), 1)), "{before:?}");
        assert!(State::open_read_only(&path).unwrap().is_none());
        assert_eq!(contents(&path), before);
    }

    #[cfg(unix)]
    #[test]
    fn the_state_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        // The data directory does not exist yet: the state creates it, like any other stage.
        let data = dir.path().join("data");
        let path = data.join("state.sqlite");
        let state = State::open(&path).unwrap();
        assert_eq!(mode(&data), 0o700, "the directory, and so the -wal and -shm files in it");
        assert_eq!(mode(&path), 0o600);
        for companion in ["state.sqlite-wal", "state.sqlite-shm"] {
            assert_eq!(mode(&data.join(companion)), 0o600, "{companion}");
        }
        drop(state);
    }
}
