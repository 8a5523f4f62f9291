//! Running `pg_restore` (archive formats) or `psql` (plain SQL) against the throwaway cluster,
//! going on past statements that fail, and reading their error output into what was skipped.

use std::path::Path;
use std::process::Stdio;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::DumpError;
use super::cluster::{Binaries, Cluster, PORT};

/// A statement or archive entry the restore could not apply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// The archive entry (`TABLE DATA public users postgres`) or the statement's first line,
    /// cut short, never past a `PASSWORD`.
    pub what: String,
    pub error: String,
    /// It carried rows: a table's data did not load.
    #[serde(skip)]
    pub data: bool,
}

/// A client tool connected to the cluster's socket as `postgres`, with no libpq variable of
/// the caller's environment in the way.
pub fn client(binaries: &Binaries, tool: &str, cluster: &Cluster, database: &str) -> Command {
    let mut command = Command::new(binaries.tool(tool));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            command.env_remove(name);
        }
    }
    command
        .arg("-h")
        .arg(cluster.socket_dir())
        .args(["-p", &PORT.to_string(), "-U", "postgres", "-d", database])
        .kill_on_drop(true);
    command
}

/// Runs a query through psql and returns its unaligned rows.
pub async fn query(
    binaries: &Binaries,
    cluster: &Cluster,
    database: &str,
    sql: &str,
) -> Result<Vec<String>, DumpError> {
    let output = client(binaries, "psql", cluster, database)
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| DumpError::Tool { tool: "psql", source })?;
    if !output.status.success() {
        return Err(DumpError::RestoreFailed {
            tool: "psql",
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect())
}

/// What a tool's error output says was skipped, and how far it got.
#[derive(Debug, Default)]
pub struct ErrorLog {
    pub skipped: Vec<Skipped>,
    /// `pg_restore: processing data for table …` lines seen: tables whose data was sent.
    pub data_entries_done: u64,
    /// Lines that belong to no skipped statement (connection failures and the like).
    pub other: Vec<String>,
    current_entry: Option<String>,
    /// The last skipped statement still collects its `STATEMENT:`/`Command was:` line.
    open: bool,
    /// The last skipped statement's text goes on over the next lines.
    continued: bool,
}

impl ErrorLog {
    /// Feeds one line of `pg_restore --verbose` stderr.
    pub fn pg_restore_line(&mut self, line: &str) {
        if self.continue_statement(line, "pg_restore:") {
            return;
        }
        if let Some(entry) = line.strip_prefix("pg_restore: from TOC entry ") {
            // `215; 1259 61354 TABLE c dtry_anon` → `TABLE c dtry_anon`
            let words: Vec<&str> =
                entry.split_once("; ").map_or(entry, |(_, r)| r).split(' ').collect();
            self.current_entry = Some(words.get(2..).unwrap_or_default().join(" "));
            self.open = false;
        } else if let Some(error) = line.strip_prefix("pg_restore: error: ") {
            let entry = self.current_entry.take();
            let data = entry.as_deref().is_some_and(|e| e.starts_with("TABLE DATA "))
                || error.starts_with("COPY failed");
            let Some(what) = entry.or_else(|| (self.open || data).then(String::new)) else {
                self.other.push(error.to_owned());
                return;
            };
            self.skipped.push(Skipped { what, error: clean_error(error), data });
            self.open = true;
        } else if let Some(command) = line.strip_prefix("Command was: ") {
            if self.open
                && let Some(last) = self.skipped.last_mut()
                && last.what.is_empty()
            {
                last.what = summarize(command);
                self.continued = !last.what.ends_with('…');
            }
            self.open = false;
        } else if line.starts_with("pg_restore: processing data for table ")
            || (line.starts_with("pg_restore: finished item ") && line.contains(" TABLE DATA "))
        {
            self.data_entries_done += 1;
        } else if line.starts_with("pg_restore: warning: errors ignored on restore") {
            // The count is ours already.
        } else if line.starts_with("pg_restore: error") || line.starts_with("pg_restore: fatal") {
            self.other.push(line.to_owned());
        }
    }

    /// Feeds one line of `psql -b` stderr (`psql:<stdin>:35: ERROR:  …`, then `STATEMENT:`).
    pub fn psql_line(&mut self, line: &str) {
        if self.continue_statement(line, "psql:") {
            return;
        }
        let Some(rest) = line.strip_prefix("psql:") else { return };
        // `<stdin>:35: ERROR:  role "x" does not exist`
        let message = rest.splitn(3, ':').nth(2).unwrap_or(rest).trim_start();
        if let Some(error) = message.strip_prefix("ERROR:") {
            self.skipped.push(Skipped {
                what: String::new(),
                error: clean_error(error),
                data: false,
            });
            self.open = true;
        } else if let Some(statement) = message.strip_prefix("STATEMENT:") {
            if self.open
                && let Some(last) = self.skipped.last_mut()
            {
                let statement = statement.trim();
                last.data = statement.starts_with("COPY ") || statement.starts_with("INSERT ");
                last.what = summarize(statement);
                self.continued = !last.what.ends_with('…');
            }
            self.open = false;
        } else if message.starts_with("invalid command") || message.starts_with("error:") {
            // Data lines read as commands after a COPY that failed, or a meta-command that did.
            self.skipped.push(Skipped {
                what: String::new(),
                error: clean_error(message.trim_start_matches("error:")),
                data: message.starts_with("invalid command"),
            });
            self.open = false;
        }
    }
}

impl ErrorLog {
    /// Adds a continuation line of the last statement to its summary; false when `line` is not
    /// one (it starts with the tool's prefix, or the statement was cut short).
    fn continue_statement(&mut self, line: &str, prefix: &str) -> bool {
        if !self.continued || line.starts_with(prefix) || line.trim().is_empty() {
            self.continued = false;
            return false;
        }
        if let Some(last) = self.skipped.last_mut() {
            last.what = summarize(&format!("{} {}", last.what, line.trim()));
            self.continued = !last.what.ends_with('…');
        }
        true
    }
}

fn clean_error(error: &str) -> String {
    let error = error.trim();
    let error = error.strip_prefix("could not execute query: ").unwrap_or(error);
    let error = error.strip_prefix("ERROR:").unwrap_or(error);
    error.trim().to_owned()
}

/// A statement's first line, at most 100 characters, cut before any `PASSWORD`.
pub fn summarize(statement: &str) -> String {
    let line = statement.lines().next().unwrap_or_default().trim();
    let line = match line.to_ascii_uppercase().find("PASSWORD") {
        Some(at) => format!("{} …", line[..at].trim_end()),
        None => line.to_owned(),
    };
    match line.char_indices().nth(100) {
        Some((at, _)) => format!("{} …", &line[..at]),
        None => line,
    }
}

/// Runs `command`, feeding each stderr line to `each_line`; returns whether it succeeded.
pub async fn run_reading_stderr(
    mut command: Command,
    tool: &'static str,
    mut each_line: impl FnMut(&str),
) -> Result<bool, DumpError> {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| DumpError::Tool { tool, source })?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    while let Some(line) =
        lines.next_line().await.map_err(|source| DumpError::Tool { tool, source })?
    {
        tracing::trace!(tool, %line, "restore output");
        each_line(&line);
    }
    let status = child.wait().await.map_err(|source| DumpError::Tool { tool, source })?;
    Ok(status.success())
}

/// `pg_restore --section=SECTION … FILE` of an archive (`pre-data`, `data`, `post-data`): its
/// data entries counted on `progress`.
pub fn pg_restore_command(
    binaries: &Binaries,
    cluster: &Cluster,
    path: &Path,
    section: &str,
    jobs: Option<usize>,
) -> Command {
    let mut command = client(binaries, "pg_restore", cluster, "postgres");
    command.args(["--verbose", "--no-password"]).arg(format!("--section={section}"));
    if let Some(jobs) = jobs.filter(|&j| j > 1) {
        command.arg(format!("--jobs={jobs}"));
    }
    command.arg(path);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_restore_errors_name_their_entry_and_data_errors_are_told_apart() {
        let mut log = ErrorLog::default();
        for line in [
            "pg_restore: connecting to database for restore",
            "pg_restore: creating TABLE \"public.c\"",
            "pg_restore: while PROCESSING TOC:",
            "pg_restore: from TOC entry 215; 1259 61354 TABLE c dtry_anon",
            "pg_restore: error: could not execute query: ERROR:  role \"dtry_anon\" does not exist",
            "Command was: ALTER TABLE public.c OWNER TO dtry_anon;",
            "pg_restore: processing data for table \"public.c\"",
            "pg_restore: from TOC entry 3347; 0 61347 TABLE DATA p postgres",
            "pg_restore: error: COPY failed for table \"p\": ERROR:  invalid input syntax",
            "pg_restore: warning: errors ignored on restore: 2",
        ] {
            log.pg_restore_line(line);
        }
        assert_eq!(
            log.skipped,
            [
                Skipped {
                    what: "TABLE c dtry_anon".into(),
                    error: "role \"dtry_anon\" does not exist".into(),
                    data: false
                },
                Skipped {
                    what: "TABLE DATA p postgres".into(),
                    error: "COPY failed for table \"p\": ERROR:  invalid input syntax".into(),
                    data: true
                },
            ]
        );
        assert_eq!(log.data_entries_done, 1);
        assert!(log.other.is_empty());
    }

    #[test]
    fn psql_errors_take_their_statement_and_copies_are_data() {
        let mut log = ErrorLog::default();
        for line in [
            "psql:<stdin>:35: ERROR:  role \"x\" does not exist",
            "psql:<stdin>:35: STATEMENT:  ALTER ROLE x WITH LOGIN PASSWORD 'md5abc';",
            "psql:<stdin>:59: ERROR:  relation \"public.p\" does not exist",
            "psql:<stdin>:59: STATEMENT:  COPY public.p (id) FROM stdin;",
            "    ADD CONSTRAINT c_p_fkey FOREIGN KEY (p) REFERENCES public.p(id);",
        ] {
            log.psql_line(line);
        }
        assert_eq!(log.skipped.len(), 2);
        assert_eq!(log.skipped[0].what, "ALTER ROLE x WITH LOGIN …");
        assert!(!log.skipped[0].data);
        assert_eq!(
            log.skipped[1].what,
            "COPY public.p (id) FROM stdin; ADD CONSTRAINT c_p_fkey FOREIGN KEY (p) REFERENCES public.p(id);"
        );
        assert!(log.skipped[1].data);
    }
}
