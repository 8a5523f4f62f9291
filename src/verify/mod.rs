//! `migrate verify`: proof that Convex holds exactly the documents transform produced.
//!
//! Every table is read back from Convex (`migrate:page`) and compared with
//! `transformed/<table>.jsonl` document by document: a fingerprint of the plain fields
//! ([`canonical`]), and each reference through the legacy identity of the document it points
//! at, so that ids, which differ per deployment, never need to match. Reported: documents
//! missing from Convex, documents Convex has that the source does not, documents that differ
//! (with the field), legacy ids held by two documents, and references that resolve to no
//! document or to one in the wrong table.

pub mod canonical;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use self::canonical::{Fingerprint, fingerprint, value_fingerprint};
use crate::convex::client::{ConvexClient, FunctionKind};
use crate::data_dir::DataDir;
use crate::import::order::TableStep;
use crate::import::transformed::TransformedFile;
use crate::import::{ConvexTarget, ImportError, Inputs, check_module};
use crate::output::{Reporter, Unit};

/// Documents per `migrate:page` call: well inside a query's 16 MiB read limit for documents
/// of ordinary size.
const PAGE_SIZE: u32 = 500;

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Convex holds exactly the transformed documents.
    pub identical: bool,
    pub tables: Vec<TableVerify>,
    /// The first `--show` differences (every one is counted in `tables`).
    pub differences: Vec<Difference>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TableVerify {
    pub table: String,
    /// Rows of the source tables in the export (before filters, merges and rejects).
    pub source_rows: u64,
    /// Documents transform produced.
    pub transformed: u64,
    /// Documents Convex holds.
    pub convex: u64,
    pub matching: u64,
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    pub duplicates: u64,
    pub unresolved_references: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub table: String,
    pub legacy_id: String,
    /// `missing`, `extra`, `different`, `duplicate` or `unresolved reference`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub detail: String,
    /// The transformed file's line of a document whose fields differ, to name them later.
    #[serde(skip)]
    source_line: Option<u64>,
}

/// Every difference counted, the first `show` kept.
struct Differences {
    listed: Vec<Difference>,
    total: u64,
    show: usize,
}

impl Differences {
    /// Counts a difference; returns it when it is one of those listed.
    fn add(
        &mut self,
        table: &str,
        legacy_id: &str,
        kind: &'static str,
        field: Option<&String>,
        detail: String,
    ) -> Option<&mut Difference> {
        self.total += 1;
        if self.listed.len() >= self.show {
            return None;
        }
        self.listed.push(Difference {
            table: table.to_owned(),
            legacy_id: legacy_id.to_owned(),
            kind,
            field: field.cloned(),
            detail,
            source_line: None,
        });
        self.listed.last_mut()
    }
}

/// What a reference field holds, in terms that do not depend on the deployment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// A document: its Convex table and legacy id.
    Document(String, String),
    /// Anything else, as JSON: a legacy id kept by `keep_legacy`, null, or an id of nothing.
    Plain(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Document(table, legacy) => write!(f, "{table} {legacy}"),
            Target::Plain(json) => f.write_str(json),
        }
    }
}

/// A Convex document reduced as it arrives: its legacy id, its plain fields (references not
/// yet resolved, with the Convex id as locator), and its reference fields still holding ids.
type ConvexReduced = (String, Reduced<String>, Vec<(String, Value)>);

/// One document reduced to what is compared.
struct Reduced<L> {
    fields: Fingerprint,
    references: Vec<(String, Target)>,
    /// Where the document is: its line in the transformed file (`u64`), or its Convex id
    /// (`String`).
    locator: L,
}

/// Reads `transformed/` and every table in Convex, and compares them.
pub async fn verify(
    data_dir: &DataDir,
    inputs: &Inputs,
    target: &ConvexTarget,
    show: usize,
    reporter: Arc<dyn Reporter>,
) -> Result<VerifyReport, ImportError> {
    let started = Instant::now();
    let client = target.client()?;
    let info = check_module(&client, inputs).await?;
    let references: BTreeMap<String, BTreeMap<String, String>> =
        info.tables.into_iter().map(|(table, module)| (table, module.references)).collect();

    // Convex first: every id's table and legacy id is needed before references compare.
    // Documents are reduced as they arrive; their references stay ids until all are read.
    let no_references = BTreeMap::new();
    let mut convex_docs: BTreeMap<&str, Vec<ConvexReduced>> = BTreeMap::new();
    let mut owners: HashMap<String, (&str, String)> = HashMap::new();
    for step in &inputs.order {
        let reference_fields = references.get(&step.table).unwrap_or(&no_references);
        let mut progress = reporter.table_started(
            &format!("{} (Convex)", step.table),
            inputs.manifest.tables.iter().find(|t| t.table == step.table).map(|t| t.documents),
            Unit::Documents,
        );
        let mut reduced = Vec::new();
        read_convex_table(&client, step, &mut |legacy, document| {
            let fields = fingerprint(&document, |k| skipped(k, reference_fields));
            // The id and the reference values are moved out of the document, not copied: the
            // references become targets once every table's ids are known.
            let mut id = String::new();
            let mut ids = Vec::new();
            for (key, value) in document {
                if key == "_id" {
                    if let Value::String(s) = value {
                        id = s;
                    }
                } else if reference_fields.contains_key(&key) {
                    ids.push((key, value));
                }
            }
            owners.insert(id.clone(), (step.table.as_str(), legacy.clone()));
            reduced.push((legacy, Reduced { fields, references: Vec::new(), locator: id }, ids));
            progress.rows(reduced.len() as u64);
        })
        .await?;
        progress.finished(reduced.len() as u64);
        convex_docs.insert(&step.table, reduced);
    }

    let mut tables = Vec::new();
    let mut differences = Differences { listed: Vec::new(), total: 0, show };
    for step in &inputs.order {
        let reference_fields = references.get(&step.table).unwrap_or(&no_references);
        let manifest = inputs.manifest.tables.iter().find(|t| t.table == step.table);
        let mut report = TableVerify {
            table: step.table.clone(),
            source_rows: manifest.map_or(0, |t| t.rows),
            transformed: manifest.map_or(0, |t| t.documents),
            ..TableVerify::default()
        };
        let source = match manifest.and_then(|t| TransformedFile::of(data_dir, t)) {
            Some(file) => read_source(&file, step, reference_fields)?,
            None => HashMap::new(),
        };
        let mut seen: HashMap<&str, &Reduced<String>> = HashMap::new();
        let mut reduced_convex = Vec::new();
        for (legacy, mut reduced, ids) in
            convex_docs.remove(step.table.as_str()).unwrap_or_default()
        {
            reduced.references = ids
                .into_iter()
                .map(|(field, value)| (field, convex_target(&value, &owners)))
                .collect();
            reduced.references.sort();
            reduced_convex.push((legacy, reduced));
        }
        report.convex = reduced_convex.len() as u64;
        for (legacy, reduced) in &reduced_convex {
            if seen.insert(legacy.as_str(), reduced).is_some() {
                report.duplicates += 1;
                differences.add(
                    &step.table,
                    legacy,
                    "duplicate",
                    None,
                    format!("a second document ({}) has this legacy id", reduced.locator),
                );
            }
        }
        // In line order, so that the first differences listed are the same on every run.
        let mut in_line_order: Vec<(&String, &Reduced<u64>)> = source.iter().collect();
        in_line_order.sort_by_key(|(_, reduced)| reduced.locator);
        for (legacy, expected) in in_line_order {
            let Some(actual) = seen.get(legacy.as_str()) else {
                report.missing += 1;
                differences.add(
                    &step.table,
                    legacy,
                    "missing",
                    None,
                    format!("transformed line {} is not in Convex", expected.locator),
                );
                continue;
            };
            let mut same = true;
            for (field, target) in &actual.references {
                let wanted = expected.references.iter().find(|(f, _)| f == field).map(|(_, t)| t);
                if wanted != Some(target) {
                    same = false;
                    let dangling = is_dangling(target, wanted);
                    if dangling {
                        report.unresolved_references += 1;
                    }
                    differences.add(
                        &step.table,
                        legacy,
                        if dangling { "unresolved reference" } else { "different" },
                        Some(field),
                        format!(
                            "Convex has {target}, the source has {}",
                            wanted.map_or("nothing".to_owned(), ToString::to_string)
                        ),
                    );
                }
            }
            for (field, target) in &expected.references {
                if !actual.references.iter().any(|(f, _)| f == field) {
                    same = false;
                    differences.add(
                        &step.table,
                        legacy,
                        "different",
                        Some(field),
                        format!("Convex has nothing, the source has {target}"),
                    );
                }
            }
            if actual.fields != expected.fields {
                same = false;
                if let Some(difference) =
                    differences.add(&step.table, legacy, "different", None, "fields differ".into())
                {
                    difference.source_line = Some(expected.locator);
                }
            }
            if same {
                report.matching += 1;
            } else {
                report.different += 1;
            }
        }
        for (legacy, reduced) in &reduced_convex {
            if !source.contains_key(legacy) {
                report.extra += 1;
                differences.add(
                    &step.table,
                    legacy,
                    "extra",
                    None,
                    format!("Convex document {} is not in the source", reduced.locator),
                );
            }
        }
        tables.push(report);
    }
    name_differing_fields(&client, data_dir, inputs, &mut differences.listed, &references).await?;
    Ok(VerifyReport {
        identical: differences.total == 0,
        tables,
        differences: differences.listed,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    page: Vec<Map<String, Value>>,
    is_done: bool,
    continue_cursor: String,
}

/// Hands every document of the table, with its legacy id, to `each`.
async fn read_convex_table(
    client: &ConvexClient,
    step: &TableStep,
    each: &mut dyn FnMut(String, Map<String, Value>),
) -> Result<(), ImportError> {
    let mut cursor = Value::Null;
    loop {
        let args =
            serde_json::json!({"table": step.table, "cursor": cursor, "numItems": PAGE_SIZE});
        let page: Page = client
            .call(FunctionKind::Query, "migrate:page", &args)
            .await
            .map_err(|source| ImportError::Convex { table: step.table.clone(), source })?;
        for document in page.page {
            let legacy = match document.get(&step.legacy_field) {
                Some(Value::String(s)) => s.clone(),
                other => other.map(Value::to_string).unwrap_or_default(),
            };
            each(legacy, document);
        }
        if page.is_done {
            return Ok(());
        }
        cursor = Value::String(page.continue_cursor);
    }
}

/// A transformed line: the document and its references in legacy form.
#[derive(Deserialize)]
struct SourceLine {
    doc: Map<String, Value>,
    #[serde(default)]
    refs: BTreeMap<String, SourceRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceRef {
    table: String,
    legacy_id: String,
}

fn read_source(
    file: &TransformedFile,
    step: &TableStep,
    reference_fields: &BTreeMap<String, String>,
) -> Result<HashMap<String, Reduced<u64>>, ImportError> {
    // Checked against transform's manifest as it is read, as import checks it: compared with a
    // file cut short, Convex would look complete.
    let mut documents = HashMap::new();
    file.for_each_line(|line, text| {
        let bad = |reason: String| ImportError::BadLine { path: file.path.clone(), line, reason };
        let parsed: SourceLine = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        let legacy = match parsed.doc.get(&step.legacy_field) {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(bad(format!("no string field `{}`", step.legacy_field))),
        };
        let mut reduced = reduce(&parsed.doc, reference_fields, line);
        for (field, reference) in parsed.refs {
            reduced
                .references
                .push((field, Target::Document(reference.table, reference.legacy_id)));
        }
        reduced.references.sort();
        documents.insert(legacy, reduced);
        Ok(true)
    })?;
    Ok(documents)
}

/// Whether a field is left out of a document's fingerprint: system fields and references.
fn skipped(field: &str, reference_fields: &BTreeMap<String, String>) -> bool {
    field == "_id" || field == "_creationTime" || reference_fields.contains_key(field)
}

/// Fingerprints a transformed document's plain fields; its reference fields become
/// [`Target::Plain`]s.
fn reduce(
    document: &Map<String, Value>,
    reference_fields: &BTreeMap<String, String>,
    line: u64,
) -> Reduced<u64> {
    let fields = fingerprint(document, |k| skipped(k, reference_fields));
    let mut references: Vec<(String, Target)> = document
        .iter()
        .filter(|(k, _)| reference_fields.contains_key(*k))
        .map(|(k, v)| (k.clone(), plain_target(v)))
        .collect();
    references.sort();
    Reduced { fields, references, locator: line }
}

fn plain_target(value: &Value) -> Target {
    Target::Plain(value.to_string())
}

fn convex_target(value: &Value, owners: &HashMap<String, (&str, String)>) -> Target {
    match value.as_str().and_then(|id| owners.get(id)) {
        Some((table, legacy)) => Target::Document((*table).to_owned(), legacy.clone()),
        None => plain_target(value),
    }
}

/// Whether Convex holding `target` where the source has `wanted` is a reference that resolves
/// to nothing: the source points at a document, and Convex holds a Convex id (the shape of one)
/// that is no document's. Any other value there (a legacy id, null, a number) is a plain
/// difference.
fn is_dangling(target: &Target, wanted: Option<&Target>) -> bool {
    let Target::Plain(json) = target else { return false };
    matches!(wanted, Some(Target::Document(..)))
        && serde_json::from_str::<String>(json).is_ok_and(|id| crate::convex::is_document_id(&id))
}

/// `migrate:get` takes at most this many legacy ids.
const MAX_GET: usize = 1000;

/// For documents whose plain fields differ, reads both sides again (each table's file once,
/// up to the last line needed; each table's documents in Convex with one `migrate:get` call per
/// [`MAX_GET`] of them) and names the fields.
async fn name_differing_fields(
    client: &ConvexClient,
    data_dir: &DataDir,
    inputs: &Inputs,
    differences: &mut [Difference],
    references: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(), ImportError> {
    let mut lines_by_table: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for d in differences.iter() {
        if let Some(line) = d.source_line {
            lines_by_table.entry(d.table.as_str()).or_default().insert(line);
        }
    }
    let mut sources: HashMap<(String, u64), Map<String, Value>> = HashMap::new();
    for (table, lines) in lines_by_table {
        let report = inputs.manifest.tables.iter().find(|t| t.table == table);
        let Some(file) = report.and_then(|t| TransformedFile::of(data_dir, t)) else { continue };
        let last = lines.last().copied().unwrap_or(0);
        file.for_each_line(|line, text| {
            if lines.contains(&line)
                && let Ok(parsed) = serde_json::from_slice::<SourceLine>(text)
            {
                sources.insert((table.to_owned(), line), parsed.doc);
            }
            Ok(line < last)
        })?;
    }
    // Per table, the differences (by index) whose source line was read, in list order.
    let mut wanted: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, difference) in differences.iter().enumerate() {
        let Some(line) = difference.source_line else { continue };
        if sources.contains_key(&(difference.table.clone(), line)) {
            wanted.entry(difference.table.clone()).or_default().push(index);
        }
    }
    for (table, indexes) in wanted {
        let table_references = references.get(&table);
        for chunk in indexes.chunks(MAX_GET) {
            let legacy_ids: Vec<&str> =
                chunk.iter().map(|&i| differences[i].legacy_id.as_str()).collect();
            let args = serde_json::json!({"table": table, "legacyIds": legacy_ids});
            let convex: Vec<Option<Map<String, Value>>> = client
                .call(FunctionKind::Query, "migrate:get", &args)
                .await
                .map_err(|source| ImportError::Convex { table: table.clone(), source })?;
            for (&index, convex) in chunk.iter().zip(convex) {
                let Some(convex) = convex else { continue };
                let difference = &mut differences[index];
                let Some(line) = difference.source_line else { continue };
                let Some(source) = sources.get(&(table.clone(), line)) else { continue };
                name_fields(difference, source, &convex, table_references);
            }
        }
    }
    Ok(())
}

/// Names the fields in which `source` and `convex` differ, references and system fields left
/// out, in `difference`: the first with both values, the others by name.
fn name_fields(
    difference: &mut Difference,
    source: &Map<String, Value>,
    convex: &Map<String, Value>,
    table_references: Option<&BTreeMap<String, String>>,
) {
    let skip = |k: &str| {
        k == "_id" || k == "_creationTime" || table_references.is_some_and(|r| r.contains_key(k))
    };
    let mut fields: Vec<&String> =
        source.keys().chain(convex.keys()).filter(|k| !skip(k)).collect();
    fields.sort();
    fields.dedup();
    let differing: Vec<String> = fields
        .into_iter()
        .filter(|k| source.get(*k).map(value_fingerprint) != convex.get(*k).map(value_fingerprint))
        .map(|k| k.to_string())
        .collect();
    if let Some(first) = differing.first() {
        let shown =
            |v: Option<&Value>| v.map_or("nothing".to_owned(), |v| truncate(&v.to_string()));
        difference.detail = format!(
            "Convex has {}, the source has {}",
            shown(convex.get(first)),
            shown(source.get(first))
        );
        if differing.len() > 1 {
            difference.detail.push_str(&format!(
                " (and {} more fields differ: {})",
                differing.len() - 1,
                differing[1..].join(", ")
            ));
        }
        difference.field = Some(first.clone());
    }
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(80).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(value: Value) -> Target {
        Target::Plain(value.to_string())
    }

    #[test]
    fn only_an_id_of_no_document_is_an_unresolved_reference() {
        let wanted = Target::Document("users".into(), "7".into());
        let id = convex_sink::id::encode(3, &[9; 16]);
        assert!(is_dangling(&plain(Value::String(id.clone())), Some(&wanted)));

        // A legacy value left in the field, or anything else that is no Convex id, is a plain
        // difference, whatever its type.
        for value in [
            Value::String("7".into()),
            Value::String("legacy-user-7".into()),
            Value::String(id.to_uppercase()),
            Value::Null,
            serde_json::json!(7),
        ] {
            assert!(!is_dangling(&plain(value.clone()), Some(&wanted)), "{value}");
        }
        // An id where the source has no reference, or a plain value, is a plain difference too.
        assert!(!is_dangling(&plain(Value::String(id.clone())), None));
        assert!(!is_dangling(&plain(Value::String(id)), Some(&plain(Value::Null))));
        assert!(!is_dangling(&wanted, Some(&wanted)));
    }
}
