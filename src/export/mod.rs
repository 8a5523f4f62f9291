//! `migrate export`: Postgres → `raw/*.jsonl` + `manifest.json`, in one consistent snapshot.
//!
//! The only code that talks to Postgres. One coordinator connection opens a REPEATABLE READ,
//! READ ONLY transaction, exports its snapshot and reads the catalog; up to `--jobs - 1` more
//! connections adopt the same snapshot with `SET TRANSACTION SNAPSHOT`, so every table is read
//! at the same instant. Each table streams through binary COPY into a [`JsonlWriter`]: memory
//! stays constant whatever the table size.

mod binary_copy;
mod error;
pub mod incremental;
mod introspect;
pub mod raw_json;
mod tls;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_postgres::Client;

use self::binary_copy::{ColumnCodec, RowDecoder};
pub use self::error::{ExportError, PostgresError};
use self::incremental::{Previous, Updated};
use self::raw_json::Wire;
use crate::catalog::{Catalog, Column, PgType, Table, TableKind, quote_ident};
use crate::data_dir::{self, DataDir, JsonlWriter};
use crate::import::line_index::{Entry, LineIndexWriter};
use crate::manifest::{self, ExportedTable, Manifest};
use crate::output::{Reporter, Unit};
use crate::settings::{DatabaseUrl, ExportSettings, TableSelector};

/// What an export did, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub snapshot_taken_at: String,
    pub manifest: String,
    pub tables: Vec<TableReport>,
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl ExportReport {
    /// The report of an export whose manifest was just written: its tables, in the order they
    /// were read, with their time.
    pub fn of(
        data_dir: &DataDir,
        snapshot_taken_at: String,
        exported: Vec<(ExportedTable, f64, Option<Updated>)>,
        started: Instant,
    ) -> Self {
        let tables: Vec<TableReport> = exported
            .into_iter()
            .map(|(table, seconds, updated)| TableReport {
                table: table.table.to_string(),
                file: table.file,
                rows: table.rows,
                bytes: table.bytes,
                seconds,
                updated,
            })
            .collect();
        ExportReport {
            snapshot_taken_at,
            manifest: data_dir.manifest_path().display().to_string(),
            rows: tables.iter().map(|t| t.rows).sum(),
            bytes: tables.iter().map(|t| t.bytes).sum(),
            tables,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: String,
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// `--incremental`: what bringing the table up to date kept, read and found gone (`None`:
    /// read whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<Updated>,
}

/// Session settings every connection uses: text forms that do not depend on the server's
/// configuration (for the `::text` casts), and row-level security that fails loudly instead of
/// hiding rows.
const SESSION_SETUP: &str = "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601'; \
    SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET row_security = off; \
    SET statement_timeout = 0; SET client_encoding = 'UTF8'";
const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// Runs the export. On error nothing under its final name is left half-written, and the previous
/// manifest is gone, so later stages refuse to start from a partial export.
pub async fn export(
    settings: &ExportSettings,
    data_dir: &DataDir,
    reporter: Arc<dyn Reporter>,
) -> Result<ExportReport, ExportError> {
    export_recording(settings, data_dir, reporter, None).await
}

/// [`export`], recording `source` in the manifest instead of the server it reads (a restored
/// dump: the file, not the throwaway cluster).
pub async fn export_recording(
    settings: &ExportSettings,
    data_dir: &DataDir,
    reporter: Arc<dyn Reporter>,
    source: Option<manifest::Source>,
) -> Result<ExportReport, ExportError> {
    let started = Instant::now();
    let url = &settings.database_url;
    // Read before anything is written: an incremental export starts from it.
    let previous = if settings.incremental {
        let manifest = Manifest::read(data_dir).unwrap_or_else(|error| {
            tracing::warn!(%error, "the previous manifest cannot be read");
            None
        });
        Previous::of(manifest)
            .inspect_err(|why| tracing::warn!("reading every table whole: {why}"))
            .ok()
    } else {
        None
    };
    let coordinator = connect(url).await?;
    coordinator.batch_execute(SESSION_SETUP).await.map_err(ExportError::session)?;
    coordinator.batch_execute(BEGIN_SNAPSHOT).await.map_err(ExportError::session)?;
    let snapshot = Snapshot::export(&coordinator).await?;
    tracing::info!(snapshot = %snapshot.id, taken_at = %snapshot.taken_at, "snapshot exported");

    let mut tables =
        introspect::introspect(&coordinator, &settings.schemas, &settings.tables).await?;
    tables.sort_by_key(|t| std::cmp::Reverse(t.estimated_rows.unwrap_or(0)));
    let xmin = manifest::xmin_of(&snapshot.transaction_snapshot).unwrap_or(0);
    let source = source.unwrap_or_else(|| manifest::Source::Server {
        url: url.to_string(),
        database: snapshot.database.clone(),
        server_version: snapshot.server_version.clone(),
        identity: snapshot.identity.clone(),
    });
    let previous = previous.filter(|p| {
        let why = p.unusable(&source, xmin);
        if let Some(why) = &why {
            tracing::warn!("reading every table whole: {why}");
        }
        why.is_none()
    });
    let previous = Arc::new(previous);

    data_dir::remove_if_exists(&data_dir.manifest_path())?;
    data_dir.prepare(&data_dir.raw_dir())?;
    data_dir.prepare(&data_dir.root().join(incremental::KEYS_DIR))?;

    let jobs = settings.jobs.get().min(tables.len()).max(1);
    let mut clients = vec![coordinator];
    for _ in 1..jobs {
        clients.push(adopting(url, &snapshot.id).await?);
    }
    // An incremental export reads a table's keys and its changed rows at once: a second
    // connection per worker, in the same snapshot.
    let mut key_clients = Vec::new();
    for _ in 0..jobs {
        key_clients.push(match previous.as_ref() {
            Some(_) => Some(adopting(url, &snapshot.id).await?),
            None => None,
        });
    }
    tracing::debug!(jobs, tables = tables.len(), "reading tables");

    let queue = Arc::new(Mutex::new(tables.iter().rev().cloned().collect::<Vec<Table>>()));
    let mut workers = JoinSet::new();
    for (client, key_client) in clients.into_iter().zip(key_clients) {
        let queue = Arc::clone(&queue);
        let data_dir = data_dir.clone();
        let reporter = Arc::clone(&reporter);
        let previous = Arc::clone(&previous);
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().expect("queue lock").pop();
                let Some(table) = next else { break };
                let base = previous.as_ref().as_ref().and_then(|p| {
                    p.base_of(&table)
                        .inspect_err(|why| tracing::info!(table = %table.name, "read whole: {why}"))
                        .ok()
                });
                if let (Some(base), Some(key_client)) = (base, &key_client) {
                    let clients = [&client, key_client];
                    let updated =
                        incremental::update_table(clients, &table, base, &data_dir).await?;
                    if let Some((exported, seconds, updated)) = updated {
                        done.push((exported, seconds, Some(updated)));
                        continue;
                    }
                }
                let (exported, seconds) =
                    export_table(&client, &table, &data_dir, reporter.as_ref()).await?;
                done.push((exported, seconds, None));
            }
            client.batch_execute("COMMIT").await.map_err(ExportError::session)?;
            if let Some(key_client) = key_client {
                key_client.batch_execute("COMMIT").await.map_err(ExportError::session)?;
            }
            Ok::<_, ExportError>(done)
        });
    }
    let mut exported: Vec<(ExportedTable, f64, Option<Updated>)> = Vec::new();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Ok(done)) => exported.extend(done),
            Ok(Err(error)) => return Err(error),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
    exported.sort_by(|a, b| a.0.table.cmp(&b.0.table));
    tables.sort_by(|a, b| a.name.cmp(&b.name));

    remove_stale_raw_files(data_dir, &exported)?;
    let manifest = Manifest {
        format_version: manifest::FORMAT_VERSION,
        tool: concat!("migrate ", env!("CARGO_PKG_VERSION")).into(),
        source,
        snapshot: manifest::Snapshot {
            taken_at: snapshot.taken_at.clone(),
            transaction_snapshot: snapshot.transaction_snapshot.clone(),
        },
        schemas: settings.schemas.clone(),
        tables: exported.iter().map(|(table, _, _)| table.clone()).collect(),
        catalog: Catalog { tables },
    };
    manifest.write(&data_dir.manifest_path())?;
    Ok(ExportReport::of(data_dir, snapshot.taken_at, exported, started))
}

/// The catalog of the selected tables as an export would record it, read in the same kind of
/// snapshot, without reading any row (for `migrate init`).
pub async fn read_catalog(
    url: &DatabaseUrl,
    schemas: &[String],
    selectors: &[TableSelector],
) -> Result<Catalog, ExportError> {
    let client = connect(url).await?;
    client.batch_execute(SESSION_SETUP).await.map_err(ExportError::session)?;
    client.batch_execute(BEGIN_SNAPSHOT).await.map_err(ExportError::session)?;
    check_server(&client).await?;
    let mut tables = introspect::introspect(&client, schemas, selectors).await?;
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    client.batch_execute("COMMIT").await.map_err(ExportError::session)?;
    Ok(Catalog { tables })
}

/// Refuses servers older than 12 (`pg_partition_tree`); returns the version and database name.
async fn check_server(client: &Client) -> Result<(String, String), ExportError> {
    let row = client
        .query_one(
            "select current_setting('server_version_num')::int,
                    current_setting('server_version'), current_database()::text",
            &[],
        )
        .await
        .map_err(ExportError::session)?;
    let version_num: i32 = row.get(0);
    let server_version: String = row.get(1);
    if version_num < 120_000 {
        return Err(ExportError::ServerTooOld { version: server_version });
    }
    Ok((server_version, row.get(2)))
}

/// A connection in the snapshot `snapshot_id` exported.
async fn adopting(url: &DatabaseUrl, snapshot_id: &str) -> Result<Client, ExportError> {
    let client = connect(url).await?;
    client.batch_execute(SESSION_SETUP).await.map_err(ExportError::session)?;
    let adopt =
        format!("{BEGIN_SNAPSHOT}; SET TRANSACTION SNAPSHOT {}", quote_literal(snapshot_id));
    client.batch_execute(&adopt).await.map_err(ExportError::session)?;
    Ok(client)
}

async fn connect(url: &DatabaseUrl) -> Result<Client, ExportError> {
    let connector = tls::connector(url.tls())?;
    let (client, connection) =
        url.config().connect(connector).await.map_err(|e| ExportError::connect(url, e))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %PostgresError(error), "connection closed");
        }
    });
    Ok(client)
}

struct Snapshot {
    id: String,
    taken_at: String,
    transaction_snapshot: String,
    server_version: String,
    database: String,
    identity: Option<String>,
}

/// The cluster's system identifier, its timeline and the database's oid, where the user may read
/// them (an error would end the snapshot's transaction: the privileges are checked first).
const IDENTITY: &str = "select case
      when has_function_privilege('pg_control_system()', 'execute')
       and has_function_privilege('pg_control_checkpoint()', 'execute')
      then (select system_identifier::text from pg_control_system()) || ':'
        || (select timeline_id::text from pg_control_checkpoint()) || ':'
        || (select oid::text from pg_database where datname = current_database())
    end";

impl Snapshot {
    async fn export(client: &Client) -> Result<Self, ExportError> {
        let (server_version, database) = check_server(client).await?;
        let row = client
            .query_one(
                r#"select pg_export_snapshot(),
                          to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                          txid_current_snapshot()::text"#,
                &[],
            )
            .await
            .map_err(ExportError::session)?;
        let identity = client.query_one(IDENTITY, &[]).await.map_err(ExportError::session)?.get(0);
        Ok(Snapshot {
            identity,
            id: row.get(0),
            taken_at: row.get(1),
            transaction_snapshot: row.get(2),
            server_version,
            database,
        })
    }
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// How a column is selected and decoded: natively in binary where `raw_json` knows the type,
/// else cast to text (or text[]) by the server.
fn column_plan(column: &Column) -> (String, ColumnCodec) {
    let native = match &column.ty {
        PgType::Bool => Some(Wire::Bool),
        PgType::Int2 => Some(Wire::Int2),
        PgType::Int4 => Some(Wire::Int4),
        PgType::Int8 => Some(Wire::Int8),
        PgType::Float4 => Some(Wire::Float4),
        PgType::Float8 => Some(Wire::Float8),
        PgType::Numeric => Some(Wire::Numeric),
        PgType::Text | PgType::Varchar | PgType::Bpchar | PgType::Enum { .. } => Some(Wire::Text),
        PgType::Uuid => Some(Wire::Uuid),
        PgType::Json => Some(Wire::Json),
        PgType::Jsonb => Some(Wire::Jsonb),
        PgType::Bytea => Some(Wire::Bytea),
        PgType::Date => Some(Wire::Date),
        PgType::Timestamp => Some(Wire::Timestamp),
        PgType::Timestamptz => Some(Wire::Timestamptz),
        PgType::Citext
        | PgType::Inet
        | PgType::Time
        | PgType::Interval
        | PgType::Tsvector
        | PgType::Other(_)
        // Never in a Postgres catalog.
        | PgType::Convex(_) => None,
    };
    // The text form is the type's output function, as psql shows it. `::text` is that for
    // every type but inet, whose cast adds the netmask (`10.0.0.1/32`) and whose `abbrev` is
    // the output form. Arrays go through the array's own output, which uses each element's
    // output function.
    let ident = quote_ident(&column.name);
    let (expression, wire) = match native {
        Some(wire) => (ident, wire),
        None if column.array => (format!("{ident}::text::text[]"), Wire::Text),
        None if column.ty == PgType::Inet => (format!("abbrev({ident})"), Wire::Text),
        None => (format!("{ident}::text"), Wire::Text),
    };
    (expression, ColumnCodec { name: column.name.clone(), wire, array: column.array })
}

/// The COPY statement for a table: partitioned parents include their partitions; plain tables
/// use `ONLY` so inheritance children are not read twice.
fn copy_statement(table: &Table) -> (String, Vec<ColumnCodec>) {
    let every: Vec<usize> = (0..table.columns.len()).collect();
    copy_statement_of(table, &every, None)
}

/// [`copy_statement`] of the columns at `fields` only, and of the rows `filter` (an SQL
/// condition) selects.
pub(crate) fn copy_statement_of(
    table: &Table,
    fields: &[usize],
    filter: Option<&str>,
) -> (String, Vec<ColumnCodec>) {
    let (expressions, codecs): (Vec<String>, Vec<ColumnCodec>) =
        fields.iter().map(|&f| column_plan(&table.columns[f])).unzip();
    let only = if table.kind == TableKind::Table { "ONLY " } else { "" };
    let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
    let sql = format!(
        "COPY (SELECT {} FROM {only}{}{filter}) TO STDOUT (FORMAT binary)",
        expressions.join(", "),
        table.name.quoted()
    );
    (sql, codecs)
}

/// Runs a COPY statement, handing `on_chunk` the decoder and each chunk the server sends;
/// returns the rows decoded and the bytes the server sent.
pub(crate) async fn copy_rows(
    client: &Client,
    table: &Table,
    sql: &str,
    decoder: &mut RowDecoder,
    mut on_chunk: impl FnMut(&mut RowDecoder, &[u8]) -> Result<(), ExportError>,
) -> Result<(u64, u64), ExportError> {
    tracing::debug!(table = %table.name, %sql, "copy");
    let stream = client.copy_out(sql).await.map_err(|e| ExportError::read(&table.name, e))?;
    futures_util::pin_mut!(stream);
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ExportError::read(&table.name, e))?;
        bytes += chunk.len() as u64;
        on_chunk(decoder, &chunk)?;
    }
    let rows = decoder.finish().map_err(|source| ExportError::value(&table.name, source))?;
    Ok((rows, bytes))
}

/// Progress is reported every this many rows, never per row.
const PROGRESS_EVERY: u64 = 4096;

async fn export_table(
    client: &Client,
    table: &Table,
    data_dir: &DataDir,
    reporter: &dyn Reporter,
) -> Result<(ExportedTable, f64), ExportError> {
    let started = Instant::now();
    let (sql, codecs) = copy_statement(table);
    let file = DataDir::raw_file(&table.name);
    let path = data_dir.path(&file);
    let mut writer = JsonlWriter::create(path.clone())?;
    let mut decoder = RowDecoder::new(codecs);
    // The key index an incremental export starts from (tables with a primary key).
    let keys = incremental::key_fields(table);
    let mut index = None;
    if let Some(keys) = keys {
        decoder = decoder.keyed(keys);
        index = Some(LineIndexWriter::create_at(incremental::keys_path(&path))?);
    }
    let mut progress =
        reporter.table_started(&table.name.to_string(), table.estimated_rows, Unit::Rows);

    let mut reported = 0;
    let (rows, _) = copy_rows(client, table, &sql, &mut decoder, |decoder, chunk| {
        let before = decoder.rows();
        let flushed = writer.flushed_bytes();
        decoder.feed(chunk, writer.buffer()).map_err(|e| ExportError::value(&table.name, e))?;
        if let Some(index) = index.as_mut() {
            for (i, (hash, start)) in decoder.take_keyed().enumerate() {
                let line = before + i as u64 + 1;
                index.push_entry(Entry { hash, line, offset: flushed + start as u64 })?;
            }
        }
        writer.end_lines(decoder.rows() - before)?;
        if decoder.rows() - reported >= PROGRESS_EVERY {
            reported = decoder.rows();
            progress.rows(reported);
        }
        Ok(())
    })
    .await?;
    // fsync of a large file can take a while: keep it off the async workers' backs so the
    // other tables' connections keep flowing.
    let digest = tokio::task::block_in_place(|| writer.finish())?;
    debug_assert_eq!(digest.lines, rows);
    if let Some(index) = index {
        index.finish(&path, &digest.checksum)?;
    }
    progress.finished(rows);
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(table = %table.name, rows, bytes = digest.bytes, seconds, "table exported");
    Ok((ExportedTable::new(table.name.clone(), file, digest), seconds))
}

/// Removes `raw/*.jsonl` files that this export did not write (tables since dropped or no
/// longer selected), so the directory holds exactly what the manifest lists.
fn remove_stale_raw_files(
    data_dir: &DataDir,
    exported: &[(ExportedTable, f64, Option<Updated>)],
) -> Result<(), ExportError> {
    let raw_dir = data_dir.raw_dir();
    let entries =
        std::fs::read_dir(&raw_dir).map_err(data_dir::DataDirError::new("read", &raw_dir))?;
    for entry in entries {
        let path = entry.map_err(data_dir::DataDirError::new("read", &raw_dir))?.path();
        let relative = format!("raw/{}", path.file_name().unwrap_or_default().to_string_lossy());
        let listed = exported.iter().any(|(table, _, _)| table.file == relative);
        if !listed && relative.ends_with(".jsonl") {
            data_dir::remove_if_exists(&path)?;
        }
    }
    // Key indexes of files no longer there, and partial ones an export that stopped left.
    let keys_dir = data_dir.root().join(incremental::KEYS_DIR);
    let entries =
        std::fs::read_dir(&keys_dir).map_err(data_dir::DataDirError::new("read", &keys_dir))?;
    for entry in entries {
        let path = entry.map_err(data_dir::DataDirError::new("read", &keys_dir))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let raw = name.strip_suffix(".keys").map(|file| format!("raw/{file}"));
        let listed = raw.is_some_and(|raw| exported.iter().any(|(table, _, _)| table.file == raw));
        if !listed {
            data_dir::remove_if_exists(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableName;

    fn column(name: &str, ty: PgType, array: bool) -> Column {
        Column {
            nondeterministic_collation: None,
            citext_lowering: None,
            name: name.into(),
            sql_type: String::new(),
            ty,
            array,
            domain: None,
            nullable: true,
            generated: false,
        }
    }

    #[test]
    fn copy_selects_native_types_as_they_are_and_casts_the_rest_to_text() {
        let table = Table {
            name: TableName::new("public", "Order \"Items\""),
            kind: TableKind::Table,
            columns: vec![
                column("id", PgType::Int8, false),
                column("addr", PgType::Inet, false),
                column("spans", PgType::Interval, true),
                column("tags", PgType::Text, true),
            ],
            primary_key: vec![],
            unique_keys: vec![],
            foreign_keys: vec![],
            estimated_rows: None,
            partition_keys: None,
            indexes: vec![],
        };
        let (sql, codecs) = copy_statement(&table);
        assert_eq!(
            sql,
            r#"COPY (SELECT "id", abbrev("addr"), "spans"::text::text[], "tags" FROM ONLY "public"."Order ""Items""") TO STDOUT (FORMAT binary)"#
        );
        assert_eq!(codecs[1].wire, Wire::Text);
        assert!(codecs[2].array && codecs[3].array);

        let partitioned = Table { kind: TableKind::Partitioned, ..table };
        assert!(!copy_statement(&partitioned).0.contains("ONLY"));
    }

    #[test]
    fn snapshot_ids_are_quoted_as_literals() {
        assert_eq!(quote_literal("00000003-0000001B-1"), "'00000003-0000001B-1'");
        assert_eq!(quote_literal("x'; drop table y; --"), "'x''; drop table y; --'");
    }
}
