//! `migrate export --from-convex URL`: a Convex deployment → `raw/*.jsonl` + `manifest.json`,
//! the same files a Postgres export writes, so that init, transform, import and verify work
//! unchanged (docs/convex-source.md).
//!
//! Owns reading a deployment: its schema through the dashboard's system query
//! `_system/frontend/getSchemas` (`catalog` turns it into the catalog), and its documents through
//! the streaming export endpoint `GET /api/list_snapshot`, page by page, every table at the one
//! snapshot timestamp the first page returned. Each document's line keeps Convex's tagged
//! encoding exactly (`$integer`, `$bytes`, `$float`, nested objects and arrays), `_id` and
//! `_creationTime` first; a field the document leaves out is `null`. One page in memory at a
//! time. A run that is killed leaves no manifest and only `.partial` files, which the next run
//! removes: it starts over at a new snapshot, so one export never mixes two reads.

pub mod catalog;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value as Json;

use crate::catalog::{Catalog, Table, TableName};
use crate::convex::client::{CallError, ConvexClient, FunctionKind, RetryPolicy};
use crate::data_dir::{self, DataDir, DataDirError, JsonlWriter};
use crate::exit_code;
use crate::export::ExportReport;
use crate::manifest::{self, ExportedTable, Manifest};
use crate::output::{Reporter, Unit};
use crate::settings::{Secret, TableSelector};

/// What `export --from-convex` needs.
#[derive(Debug, Clone)]
pub struct ConvexSource {
    /// The deployment URL, validated.
    pub url: String,
    pub deploy_key: Secret,
    pub tables: Vec<TableSelector>,
    /// `--component`: a component's tables instead of the app's, read through its adapter.
    pub component: Option<String>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvexSourceError {
    #[error("cannot read the source deployment's {what}")]
    Call {
        what: String,
        #[source]
        source: CallError,
    },
    #[error("the source deployment has no schema deployed")]
    NoSchema,
    #[error("the source deployment's schema cannot be read: {reason}")]
    Schema { reason: String },
    #[error("no table of the source deployment matches --tables {selectors}")]
    NoTables { selectors: String },
    #[error("table `{table}`, document {id}: {reason}")]
    Document { table: String, id: String, reason: String },
    #[error(
        "the source deployment answered list_snapshot for `{table}` at snapshot {got}, not {expected}"
    )]
    SnapshotMoved { table: String, expected: i64, got: i64 },
    #[error("cannot set up the HTTP client: {reason}")]
    HttpClient { reason: String },
    #[error(transparent)]
    DataDir(#[from] DataDirError),
}

impl ConvexSourceError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ConvexSourceError::DataDir(_) => exit_code::LOCAL_IO,
            ConvexSourceError::HttpClient { .. } | ConvexSourceError::NoTables { .. } => {
                exit_code::USAGE
            }
            _ => exit_code::SOURCE_FAILURE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ConvexSourceError::NoSchema | ConvexSourceError::Schema { .. } => {
                "the catalog comes from the deployment's schema.ts: deploy one that declares \
                 every table to export"
                    .into()
            }
            ConvexSourceError::Call { source: CallError::DeployKey { .. }, .. } => {
                "set MIGRATE_SOURCE_DEPLOY_KEY (or CONVEX_DEPLOY_KEY) to the source \
                 deployment's deploy key"
                    .into()
            }
            ConvexSourceError::SnapshotMoved { .. } => {
                "run the export again: it starts over at a new snapshot".into()
            }
            ConvexSourceError::DataDir(e) => return e.hint(),
            _ => return None,
        })
    }
}

/// One page of `GET /api/list_snapshot`.
#[derive(Deserialize)]
struct SnapshotPage {
    values: Vec<serde_json::Map<String, Json>>,
    snapshot: i64,
    cursor: Option<String>,
    #[serde(rename = "hasMore")]
    has_more: bool,
}

/// Fields `list_snapshot` adds to each document (its streaming-export metadata).
const METADATA: [&str; 4] = ["_table", "_ts", "_deleted", "_component"];

/// Reads the deployment into the data directory. On error nothing under its final name is left
/// half-written and the previous manifest is gone.
pub async fn export(
    source: &ConvexSource,
    data_dir: &DataDir,
    reporter: Arc<dyn Reporter>,
) -> Result<ExportReport, ConvexSourceError> {
    let started = Instant::now();
    let client = ConvexClient::new(&source.url, &source.deploy_key, source.timeout, source.retry)
        .map_err(|e| ConvexSourceError::HttpClient { reason: e.to_string() })?;
    let catalog = read_catalog(&client, source.component.as_deref(), &source.tables).await?;
    data_dir::remove_if_exists(&data_dir.manifest_path())?;
    data_dir.prepare(&data_dir.raw_dir())?;
    let taken_at = now_utc();

    let mut snapshot = None;
    let mut exported = Vec::new();
    for table in &catalog.tables {
        let done = match &source.component {
            None => {
                export_table(&client, table, data_dir, reporter.as_ref(), &mut snapshot).await?
            }
            Some(component) => {
                export_component_table(&client, component, table, data_dir, reporter.as_ref())
                    .await?
            }
        };
        exported.push(done);
    }
    remove_stale_raw_files(data_dir, &exported)?;
    let manifest = Manifest {
        format_version: manifest::FORMAT_VERSION,
        tool: concat!("migrate ", env!("CARGO_PKG_VERSION")).into(),
        source: manifest::Source::Convex {
            convex: source.url.clone(),
            component: source.component.clone(),
        },
        snapshot: manifest::Snapshot {
            taken_at: taken_at.clone(),
            // A component's pages are each consistent, not one snapshot (docs/convex-source.md).
            transaction_snapshot: match snapshot {
                Some(snapshot) => format!("convex:{snapshot}"),
                None => "convex:pages".into(),
            },
        },
        schemas: vec![source.component.clone().unwrap_or_else(|| catalog::APP_SCHEMA.into())],
        tables: exported.iter().map(|(table, _)| table.clone()).collect(),
        catalog,
    };
    manifest.write(&data_dir.manifest_path())?;
    let exported = exported.into_iter().map(|(table, seconds)| (table, seconds, None)).collect();
    Ok(ExportReport::of(data_dir, taken_at, exported, started))
}

/// The catalog of the selected tables, from the deployment's active schema.
pub async fn read_catalog(
    client: &ConvexClient,
    component: Option<&str>,
    selectors: &[TableSelector],
) -> Result<Catalog, ConvexSourceError> {
    #[derive(Deserialize)]
    struct Schemas {
        active: Option<String>,
    }
    let schemas: Schemas = client
        .call(
            FunctionKind::Query,
            "_system/frontend/getSchemas",
            &serde_json::json!({ "componentId": component }),
        )
        .await
        .map_err(|source| ConvexSourceError::Call { what: "schema".into(), source })?;
    let text = schemas.active.ok_or(ConvexSourceError::NoSchema)?;
    let schema_name = component.unwrap_or(catalog::APP_SCHEMA);
    let schema: Json = serde_json::from_str(&text)
        .map_err(|e| ConvexSourceError::Schema { reason: e.to_string() })?;
    let selected = |name: &TableName| {
        selectors.is_empty()
            || selectors.iter().any(|s| {
                s.name == name.name && s.schema.as_ref().is_none_or(|schema| *schema == name.schema)
            })
    };
    let catalog = catalog::catalog(&schema, schema_name, selected)
        .map_err(|reason| ConvexSourceError::Schema { reason })?;
    if catalog.tables.is_empty() && !selectors.is_empty() {
        let selectors: Vec<String> = selectors
            .iter()
            .map(|s| match &s.schema {
                Some(schema) => format!("{schema}.{}", s.name),
                None => s.name.clone(),
            })
            .collect();
        return Err(ConvexSourceError::NoTables { selectors: selectors.join(",") });
    }
    Ok(catalog)
}

async fn export_table(
    client: &ConvexClient,
    table: &Table,
    data_dir: &DataDir,
    reporter: &dyn Reporter,
    snapshot: &mut Option<i64>,
) -> Result<(ExportedTable, f64), ConvexSourceError> {
    write_pages(table, data_dir, reporter, "list_snapshot", async |cursor: Option<String>| {
        let snapshot_text = snapshot.map(|s| s.to_string());
        let mut query =
            vec![("tableName", table.name.name.as_str()), ("format", "convex_encoded_json")];
        if let Some(s) = &snapshot_text {
            query.push(("snapshot", s));
        }
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let page: SnapshotPage =
            client.get_json("list_snapshot", &query).await.map_err(|source| {
                ConvexSourceError::Call { what: format!("table `{}`", table.name.name), source }
            })?;
        match *snapshot {
            None => *snapshot = Some(page.snapshot),
            Some(expected) if expected != page.snapshot => {
                return Err(ConvexSourceError::SnapshotMoved {
                    table: table.name.name.clone(),
                    expected,
                    got: page.snapshot,
                });
            }
            Some(_) => {}
        }
        Ok(DocumentsPage { documents: page.values, more: page.has_more, cursor: page.cursor })
    })
    .await
}

/// Documents a page when a component's adapter is read.
const COMPONENT_PAGE: u64 = 100;

/// A component's table through its Better Auth adapter's `findMany`, page by page in creation
/// order. Each page is one consistent read; across pages a document written meanwhile may or may
/// not be seen (a component's tables are not in `list_snapshot`).
async fn export_component_table(
    client: &ConvexClient,
    component: &str,
    table: &Table,
    data_dir: &DataDir,
    reporter: &dyn Reporter,
) -> Result<(ExportedTable, f64), ConvexSourceError> {
    #[derive(Deserialize)]
    struct Page {
        page: Vec<serde_json::Map<String, Json>>,
        #[serde(rename = "isDone")]
        is_done: bool,
        #[serde(rename = "continueCursor")]
        continue_cursor: Option<String>,
    }
    write_pages(table, data_dir, reporter, "adapter:findMany", async |cursor: Option<String>| {
        let args = serde_json::json!({
            "model": table.name.name,
            "paginationOpts": { "cursor": cursor, "numItems": COMPONENT_PAGE },
        });
        let page: Page = client
            .call_in_component(component, "adapter:findMany", &args)
            .await
            .map_err(|source| ConvexSourceError::Call {
                what: format!("table `{}` of component `{component}`", table.name.name),
                source,
            })?;
        Ok(DocumentsPage {
            documents: page.page,
            more: !page.is_done,
            cursor: page.continue_cursor,
        })
    })
    .await
}

/// One page of a table's documents as the source gave it.
struct DocumentsPage {
    documents: Vec<serde_json::Map<String, Json>>,
    /// Whether more pages follow.
    more: bool,
    /// Where the next page starts.
    cursor: Option<String>,
}

/// Writes a table's documents into its raw file, asking `next_page` for each page from the
/// cursor the previous one gave (`None` first). `what` names the call in the error for a page
/// that says more follow but gives no cursor: without it the rest of the table would be left
/// out silently.
async fn write_pages(
    table: &Table,
    data_dir: &DataDir,
    reporter: &dyn Reporter,
    what: &str,
    mut next_page: impl AsyncFnMut(Option<String>) -> Result<DocumentsPage, ConvexSourceError>,
) -> Result<(ExportedTable, f64), ConvexSourceError> {
    let started = Instant::now();
    let file = DataDir::raw_file(&table.name);
    let mut writer = JsonlWriter::create(data_dir.path(&file))?;
    let mut progress = reporter.table_started(&table.name.to_string(), None, Unit::Documents);
    let mut cursor: Option<String> = None;
    let mut rows = 0;
    loop {
        let page = next_page(cursor.take()).await?;
        for document in &page.documents {
            write_line(table, document, writer.buffer())?;
            writer.end_lines(1)?;
            rows += 1;
        }
        progress.rows(rows);
        if !page.more {
            break;
        }
        let Some(next) = page.cursor else {
            return Err(ConvexSourceError::Document {
                table: table.name.name.clone(),
                id: format!("after {rows} documents"),
                reason: format!("{what} said more pages follow but gave no cursor"),
            });
        };
        cursor = Some(next);
    }
    let digest = tokio::task::block_in_place(|| writer.finish())?;
    progress.finished(rows);
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(table = %table.name, rows, bytes = digest.bytes, seconds, "table exported");
    Ok((ExportedTable::new(table.name.clone(), file, digest), seconds))
}

/// One document as a raw line: the catalog's columns in order, each value as Convex encoded it
/// (numbers with their digits as sent), a field the document leaves out as `null`. A field the
/// schema does not declare is an error: it would be lost without a word.
fn write_line(
    table: &Table,
    document: &serde_json::Map<String, Json>,
    out: &mut Vec<u8>,
) -> Result<(), ConvexSourceError> {
    let id = document.get("_id").and_then(Json::as_str).unwrap_or("?");
    let failed = |reason: String| ConvexSourceError::Document {
        table: table.name.name.clone(),
        id: id.to_owned(),
        reason,
    };
    for key in document.keys() {
        if table.column(key).is_none() && !METADATA.contains(&key.as_str()) {
            return Err(failed(format!(
                "field `{key}` is not in the deployment's schema; declare it in schema.ts"
            )));
        }
    }
    out.push(b'{');
    for (i, column) in table.columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        crate::json_text::write_string(out, &column.name);
        out.push(b':');
        match document.get(&column.name) {
            Some(value) => serde_json::to_writer(&mut *out, value)
                .map_err(|e| failed(format!("field `{}`: {e}", column.name)))?,
            None if column.nullable => out.extend_from_slice(b"null"),
            None => return Err(failed(format!("required field `{}` is missing", column.name))),
        }
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// Removes `raw/*.jsonl` files that this export did not write.
fn remove_stale_raw_files(
    data_dir: &DataDir,
    exported: &[(ExportedTable, f64)],
) -> Result<(), ConvexSourceError> {
    let raw_dir = data_dir.raw_dir();
    let entries = std::fs::read_dir(&raw_dir).map_err(DataDirError::new("read", &raw_dir))?;
    for entry in entries {
        let path = entry.map_err(DataDirError::new("read", &raw_dir))?.path();
        let relative = format!("raw/{}", path.file_name().unwrap_or_default().to_string_lossy());
        if relative.ends_with(".jsonl") && !exported.iter().any(|(t, _)| t.file == relative) {
            data_dir::remove_if_exists(&path)?;
        }
    }
    Ok(())
}

/// Now, UTC, as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (the manifest's form for `taken_at`).
fn now_utc() -> String {
    let since =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs() as i64;
    let (year, month, day) = crate::calendar::civil_from_days(seconds.div_euclid(86_400));
    let time = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        time / 3600,
        time / 60 % 60,
        time % 60,
        since.subsec_micros()
    )
}
