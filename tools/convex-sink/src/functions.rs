//! The functions of the generated `convex/migrate.ts` (docs/convex-module.md): which path is
//! which function, their arguments, their semantics on the store, and their results as JSON.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::id::DocId;
use crate::json::{self, OrderedMap, Str};
use crate::store::{Doc, Lookup, Store, Thrown, unknown_table, write_doc};

/// `migrate:get` takes at most this many legacy ids.
pub const MAX_GET: usize = 1000;

/// The endpoint a call came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Query,
    Mutation,
}

/// What a successful call wrote, for the counters.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writes {
    pub inserted: u64,
    pub replaced: u64,
    pub patched: u64,
    pub deleted: u64,
    /// 1 for a call of `ledgerRead` or `ledgerWrite`.
    pub ledger_calls: u64,
}

#[derive(Clone, Copy)]
enum Function {
    Info,
    Upsert,
    PatchRefs,
    Page,
    ReadBack,
    CreationTimes,
    Get,
    Remove,
    RemoveDocs,
    UnsetLegacyIds,
    LedgerWrite,
    LedgerRead,
    LedgerList,
}

impl Function {
    fn kind(self) -> Kind {
        match self {
            Function::Info
            | Function::Page
            | Function::ReadBack
            | Function::CreationTimes
            | Function::Get
            | Function::LedgerRead
            | Function::LedgerList => Kind::Query,
            Function::Upsert
            | Function::PatchRefs
            | Function::Remove
            | Function::RemoveDocs
            | Function::UnsetLegacyIds
            | Function::LedgerWrite => Kind::Mutation,
        }
    }
}

fn find(path: &str) -> Option<Function> {
    let (module, name) = path.split_once(':')?;
    if module != "migrate" && module != "migrate.js" {
        return None;
    }
    Some(match name {
        "info" => Function::Info,
        "upsert" => Function::Upsert,
        "patchRefs" => Function::PatchRefs,
        "page" => Function::Page,
        "readBack" => Function::ReadBack,
        "creationTimes" => Function::CreationTimes,
        "get" => Function::Get,
        "remove" => Function::Remove,
        "ledgerWrite" => Function::LedgerWrite,
        "ledgerRead" => Function::LedgerRead,
        "ledgerList" => Function::LedgerList,
        "removeDocs" => Function::RemoveDocs,
        "unsetLegacyIds" => Function::UnsetLegacyIds,
        _ => return None,
    })
}

/// Runs the function at `path` with `args` (a JSON object); returns the encoded result value
/// and what it wrote.
pub fn call(
    store: &mut Store,
    plan_json: &str,
    kind: Kind,
    path: &str,
    args: &RawValue,
) -> Result<(String, Writes), Thrown> {
    let Some(function) = find(path) else {
        return Err(Thrown(format!(
            "Could not find function for '{path}'. Did you forget to run `npx convex dev` or `npx convex deploy`?"
        )));
    };
    if function.kind() != kind {
        let (called, defined) = (kind_name(kind), kind_name(function.kind()));
        return Err(Thrown(format!(
            "Trying to execute {path} as {called}, but it is defined as {defined}."
        )));
    }
    let mut writes = Writes::default();
    let value = match function {
        Function::Info => {
            let _: InfoArgs = parse_args(args)?;
            plan_json.to_owned()
        }
        Function::Upsert => store.atomically(|s| upsert(s, parse_args(args)?, &mut writes))?,
        Function::PatchRefs => {
            store.atomically(|s| patch_refs(s, parse_args(args)?, &mut writes))?
        }
        Function::Page => page(store, parse_args(args)?)?,
        Function::ReadBack => read_back(store, parse_args(args)?)?,
        Function::CreationTimes => creation_times(store, parse_args(args)?)?,
        Function::Get => get(store, parse_args(args)?)?,
        Function::Remove => remove(store, parse_args(args)?, &mut writes)?,
        Function::LedgerWrite => ledger_write(store, parse_args(args)?)?,
        Function::RemoveDocs => remove_docs(store, parse_args(args)?, &mut writes)?,
        Function::UnsetLegacyIds => unset_legacy_ids(store, parse_args(args)?, &mut writes)?,
        Function::LedgerRead => ledger_read(store, parse_args(args)?),
        Function::LedgerList => {
            let _: InfoArgs = parse_args(args)?;
            format!("[{}]", store.ledger_records().join(","))
        }
    };
    writes.ledger_calls = u64::from(matches!(
        function,
        Function::LedgerWrite | Function::LedgerRead | Function::LedgerList
    ));
    Ok((value, writes))
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Query => "Query",
        Kind::Mutation => "Mutation",
    }
}

fn parse_args<'a, T: Deserialize<'a>>(args: &'a RawValue) -> Result<T, Thrown> {
    serde_json::from_str(args.get()).map_err(|e| Thrown(format!("ArgumentValidationError: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InfoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertArgs<'a> {
    #[serde(borrow)]
    table: Str<'a>,
    #[serde(borrow)]
    docs: Vec<UpsertElement<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertElement<'a> {
    #[serde(borrow)]
    doc: OrderedMap<Str<'a>, &'a RawValue>,
    #[serde(borrow, default)]
    refs: Option<OrderedMap<Str<'a>, RefTarget<'a>>>,
    /// Reference fields the second pass (`patchRefs`) sets: an existing document keeps them.
    #[serde(borrow, default)]
    deferred: Option<Vec<Str<'a>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefTarget<'a> {
    #[serde(borrow)]
    table: Str<'a>,
    #[serde(borrow, rename = "legacyId")]
    legacy_id: Str<'a>,
}

fn upsert(store: &mut Store, args: UpsertArgs<'_>, writes: &mut Writes) -> Result<String, Thrown> {
    let t = store.table_index(&args.table)?;
    let mut ids = Vec::with_capacity(args.docs.len());
    let (mut inserted, mut replaced) = (0, 0);
    for (index, element) in args.docs.iter().enumerate() {
        let legacy = legacy_id(store, t, index, &element.doc)?;
        let refs = match &element.refs {
            Some(refs) => resolve_refs(store, t, &legacy, refs)?,
            None => Vec::new(),
        };
        let lookup = store.lookup(t, &legacy);
        if let Lookup::Many = lookup {
            return Err(store.duplicates(t, &legacy));
        }
        let deferred: Vec<&str> = element.deferred.iter().flatten().map(|f| &**f).collect();
        check_deferred(store, t, &legacy, &deferred, element.refs.as_ref())?;
        let id = match lookup {
            Lookup::One(slot) => {
                replaced += 1;
                // The existing document's values of the deferred fields: what the second pass
                // wrote (nothing, before it ran). Borrowed while the new body is built.
                let body = {
                    let existing: OrderedMap<Str<'_>, &RawValue> = if deferred.is_empty() {
                        OrderedMap::default()
                    } else {
                        serde_json::from_str(&store.doc(t, slot).body)
                            .expect("stored bodies are JSON objects")
                    };
                    let kept: Vec<(&str, &RawValue)> = existing
                        .0
                        .iter()
                        .filter(|(field, _)| deferred.contains(&&**field))
                        .map(|(field, value)| (&**field, *value))
                        .collect();
                    build_body(&element.doc.0, &refs, &deferred, &kept)
                };
                store.replace(t, slot, body)
            }
            _ => {
                inserted += 1;
                let body = build_body(&element.doc.0, &refs, &deferred, &[]);
                store.insert(t, Some(&legacy), body)
            }
        };
        ids.push(id);
    }
    writes.inserted = inserted;
    writes.replaced = replaced;
    let mut out = ids_json(&ids);
    out.pop();
    out.push_str(&format!(",\"inserted\":{inserted},\"replaced\":{replaced}}}"));
    Ok(out)
}

/// `doc[legacyIdField]`, which must be a string; `index` is the element's, from 0.
fn legacy_id<'a>(
    store: &Store,
    t: usize,
    index: usize,
    doc: &'a OrderedMap<Str<'a>, &'a RawValue>,
) -> Result<Cow<'a, str>, Thrown> {
    let table = store.table(t);
    let field = &*table.legacy_field;
    let value = doc.0.iter().rev().find(|(key, _)| &**key == field).map(|(_, value)| *value);
    value.and_then(json::as_str).ok_or_else(|| {
        let got = value.map_or("undefined", js_type);
        let (name, n) = (&table.name, index + 1);
        Thrown(format!("{name}: document {n} of the batch has no string {field} (got {got})"))
    })
}

/// What the module's `typeof` (or `null`) says of a value in Convex's JSON encoding.
fn js_type(value: &RawValue) -> &'static str {
    let text = value.get().trim_start();
    match text.as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "boolean",
        Some(b'"') => "string",
        Some(b'{') if text[1..].trim_start().starts_with("\"$integer\"") => "bigint",
        Some(b'{') if text[1..].trim_start().starts_with("\"$float\"") => "number",
        Some(b'{' | b'[') => "object",
        _ => "number",
    }
}

/// Each reference as (field, the parent's id), checked against the plan.
fn resolve_refs<'a>(
    store: &Store,
    t: usize,
    legacy: &str,
    refs: &'a OrderedMap<Str<'a>, RefTarget<'a>>,
) -> Result<Vec<(&'a str, DocId)>, Thrown> {
    let table = store.table(t);
    let mut resolved = Vec::with_capacity(refs.0.len());
    for (field, target) in &refs.0 {
        let (field, parent) = (&**field, &*target.table);
        let Some(planned) = table.references.get(field) else {
            return Err(Thrown(format!(
                "{} {legacy}: {field} is not a reference of {} in the plan",
                table.name, table.name
            )));
        };
        if *planned.parent != *parent {
            return Err(Thrown(format!(
                "{} {legacy}: {field} refers to {} in the plan, not to {parent}",
                table.name, planned.parent
            )));
        }
        let p = planned.parent_index.ok_or_else(|| unknown_table(parent))?;
        let Some(doc) = store.find(p, &target.legacy_id)? else {
            return Err(Thrown(format!(
                "{} {legacy}: {field} refers to {parent} {}, which is not in Convex",
                table.name, &*target.legacy_id
            )));
        };
        resolved.push((field, doc.id));
    }
    Ok(resolved)
}

/// Each deferred field must be a reference of the table that the element does not set.
fn check_deferred(
    store: &Store,
    t: usize,
    legacy: &str,
    deferred: &[&str],
    refs: Option<&OrderedMap<Str<'_>, RefTarget<'_>>>,
) -> Result<(), Thrown> {
    let table = store.table(t);
    let set = |field: &str| refs.is_some_and(|refs| refs.0.iter().any(|(f, _)| &**f == field));
    match deferred.iter().find(|f| !table.references.contains_key(**f) || set(f)) {
        Some(field) => Err(Thrown(format!(
            "{} {legacy}: {field} is deferred, but it is not a reference of {} in the plan, or \
             the document sets it",
            table.name, table.name
        ))),
        None => Ok(()),
    }
}

/// `{ ...fields, [field]: parentId, ..., [deferred]: kept }` as JSON text: system fields and
/// `deferred` fields are dropped from `fields`, and the deferred fields get their `kept` values.
fn build_body(
    fields: &[(Str<'_>, &RawValue)],
    refs: &[(&str, DocId)],
    deferred: &[&str],
    kept: &[(&str, &RawValue)],
) -> Box<str> {
    let size: usize = fields.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum();
    let mut out = String::with_capacity(size + refs.len() * 48 + 2);
    out.push('{');
    for (key, value) in fields {
        let key = &**key;
        if key == "_id"
            || key == "_creationTime"
            || refs.iter().any(|(field, _)| *field == key)
            || deferred.contains(&key)
        {
            continue;
        }
        json::write_str(&mut out, key);
        out.push(':');
        out.push_str(value.get());
        out.push(',');
    }
    for (field, id) in refs {
        json::write_str(&mut out, field);
        out.push(':');
        json::write_str(&mut out, id.as_str());
        out.push(',');
    }
    for (field, value) in kept {
        json::write_str(&mut out, field);
        out.push(':');
        out.push_str(value.get());
        out.push(',');
    }
    if out.ends_with(',') {
        out.pop();
    }
    out.push('}');
    out.into_boxed_str()
}

fn ids_json(ids: &[DocId]) -> String {
    let mut out = String::with_capacity(ids.len() * 35 + 16);
    out.push_str("{\"ids\":[");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(&mut out, id.as_str());
    }
    out.push_str("]}");
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchRefsArgs<'a> {
    #[serde(borrow)]
    table: Str<'a>,
    #[serde(borrow)]
    docs: Vec<PatchElement<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchElement<'a> {
    #[serde(borrow, rename = "legacyId")]
    legacy_id: Str<'a>,
    #[serde(borrow)]
    refs: OrderedMap<Str<'a>, RefTarget<'a>>,
}

fn patch_refs(
    store: &mut Store,
    args: PatchRefsArgs<'_>,
    writes: &mut Writes,
) -> Result<String, Thrown> {
    let t = store.table_index(&args.table)?;
    let mut ids = Vec::with_capacity(args.docs.len());
    for element in &args.docs {
        let legacy = &*element.legacy_id;
        let slot = match store.lookup(t, legacy) {
            Lookup::One(slot) => slot,
            Lookup::None => {
                return Err(Thrown(format!("{} {legacy}: not in Convex", store.table(t).name)));
            }
            Lookup::Many => return Err(store.duplicates(t, legacy)),
        };
        let refs = resolve_refs(store, t, legacy, &element.refs)?;
        // The stored body is borrowed only while the new one is built from it.
        let body = {
            let fields: OrderedMap<Str<'_>, &RawValue> =
                serde_json::from_str(&store.doc(t, slot).body)
                    .expect("stored bodies are JSON objects");
            build_body(&fields.0, &refs, &[], &[])
        };
        ids.push(store.replace(t, slot, body));
    }
    writes.patched = ids.len() as u64;
    Ok(ids_json(&ids))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageArgs<'a> {
    #[serde(borrow)]
    table: Str<'a>,
    #[serde(borrow)]
    cursor: Option<Str<'a>>,
    #[serde(rename = "numItems")]
    num_items: f64,
    /// `readBack` only: `from <= _creationTime < to`, each optional.
    #[serde(default)]
    from: Option<f64>,
    #[serde(default)]
    to: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableArgs<'a> {
    #[serde(borrow)]
    table: Str<'a>,
}

/// `creationTimes`: `{"first": t, "last": t}` of the table's documents, null when it is empty.
fn creation_times(store: &Store, args: TableArgs<'_>) -> Result<String, Thrown> {
    let t = store.table_index(&args.table)?;
    Ok(match store.creation_times(t) {
        Some((first, last)) => format!("{{\"first\":{first},\"last\":{last}}}"),
        None => "{\"first\":null,\"last\":null}".to_owned(),
    })
}

/// The documents of a page: its table, the documents and the cursor, as `page` and `readBack`
/// read them.
fn page_of<'s>(
    store: &'s Store,
    args: &PageArgs<'_>,
) -> Result<(usize, Vec<&'s Doc>, usize, bool), Thrown> {
    let t = store.table_index(&args.table)?;
    let start = match &args.cursor {
        None => None,
        Some(cursor) => Some(cursor.parse::<usize>().map_err(|_| {
            Thrown(format!("InvalidCursor: {:?} is not a cursor of this query", &**cursor))
        })?),
    };
    if args.num_items.is_nan() || args.num_items < 0.0 {
        return Err(Thrown(format!("numItems must be a positive number, not {}", args.num_items)));
    }
    let (docs, next, done) = store.page_in(t, start, args.num_items as usize, args.from, args.to);
    Ok((t, docs, next, done))
}

/// `readBack`: a page whose documents come as `{"doc": …, "refs": {field: parent}}`, each
/// reference field holding an id of its parent table resolved to `{"table", "legacyId"}`, or
/// null when that id is no document's (the module's `normalizeId` + `db.get`).
fn read_back(store: &Store, args: PageArgs<'_>) -> Result<String, Thrown> {
    let (t, docs, next, done) = page_of(store, &args)?;
    let table = store.table(t);
    let mut out =
        String::with_capacity(docs.iter().map(|d| d.body.len() + 100).sum::<usize>() + 64);
    out.push_str("{\"page\":[");
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"doc\":");
        write_doc(&mut out, doc);
        out.push_str(",\"refs\":{");
        if !table.references.is_empty() {
            let fields: OrderedMap<Str<'_>, &RawValue> =
                serde_json::from_str(&doc.body).expect("stored bodies are JSON objects");
            let mut first = true;
            for (field, value) in &fields.0 {
                let Some(reference) = table.references.get(&**field) else { continue };
                let (Some(p), Some(id)) = (reference.parent_index, json::as_str(value)) else {
                    continue;
                };
                let Some(parent) = store.resolve_id(p, &id) else { continue };
                if !first {
                    out.push(',');
                }
                first = false;
                json::write_str(&mut out, field);
                out.push(':');
                match parent {
                    Some(legacy) => {
                        out.push_str("{\"table\":");
                        json::write_str(&mut out, &reference.parent);
                        out.push_str(",\"legacyId\":");
                        json::write_str(&mut out, &legacy);
                        out.push('}');
                    }
                    None => out.push_str("null"),
                }
            }
        }
        out.push_str("}}");
    }
    out.push_str(&format!("],\"isDone\":{done},\"continueCursor\":\"{next}\"}}"));
    Ok(out)
}

fn page(store: &Store, args: PageArgs<'_>) -> Result<String, Thrown> {
    if args.from.is_some() || args.to.is_some() {
        return Err(Thrown("ArgumentValidationError: `page` takes no `from` or `to`".into()));
    }
    let t = store.table_index(&args.table)?;
    let start = match &args.cursor {
        None => 0,
        Some(cursor) => cursor.parse::<usize>().map_err(|_| {
            Thrown(format!("InvalidCursor: {:?} is not a cursor of this query", &**cursor))
        })?,
    };
    if args.num_items.is_nan() || args.num_items < 0.0 {
        return Err(Thrown(format!("numItems must be a positive number, not {}", args.num_items)));
    }
    let (docs, next, done) = store.page(t, start, args.num_items as usize);
    let mut out = String::with_capacity(docs.iter().map(|d| d.body.len() + 80).sum::<usize>() + 64);
    out.push_str("{\"page\":[");
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_doc(&mut out, doc);
    }
    out.push_str(&format!("],\"isDone\":{done},\"continueCursor\":\"{next}\"}}"));
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyIdsArgs<'a> {
    #[serde(borrow)]
    table: Str<'a>,
    #[serde(borrow, rename = "legacyIds")]
    legacy_ids: Vec<Str<'a>>,
}

fn get(store: &Store, args: LegacyIdsArgs<'_>) -> Result<String, Thrown> {
    let t = store.table_index(&args.table)?;
    if args.legacy_ids.len() > MAX_GET {
        return Err(Thrown(format!(
            "get takes at most {MAX_GET} legacy ids, not {}",
            args.legacy_ids.len()
        )));
    }
    let mut out = String::from("[");
    for (i, legacy) in args.legacy_ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match store.find(t, legacy)? {
            Some(doc) => write_doc(&mut out, doc),
            None => out.push_str("null"),
        }
    }
    out.push(']');
    Ok(out)
}

fn remove(
    store: &mut Store,
    args: LegacyIdsArgs<'_>,
    writes: &mut Writes,
) -> Result<String, Thrown> {
    let t = store.table_index(&args.table)?;
    let deleted: usize = args.legacy_ids.iter().map(|legacy| store.remove_all(t, legacy)).sum();
    writes.deleted = deleted as u64;
    Ok(format!("{{\"deleted\":{deleted}}}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveDocsArgs<'a> {
    #[serde(borrow)]
    table: Str<'a>,
    #[serde(borrow)]
    docs: Vec<RemoveDoc<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveDoc<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow, rename = "legacyId")]
    legacy_id: Str<'a>,
}

/// Deletes each document by id while it still holds its legacy id (`removeDocs`); `gone` counts
/// those no longer there afterwards, deleted now or by an earlier attempt.
fn remove_docs(
    store: &mut Store,
    args: RemoveDocsArgs<'_>,
    writes: &mut Writes,
) -> Result<String, Thrown> {
    let t = store.table_index(&args.table)?;
    let (mut deleted, mut gone) = (0, 0);
    for doc in &args.docs {
        if store.remove_doc(t, &doc.id, &doc.legacy_id) {
            deleted += 1;
            gone += 1;
        } else if store.resolve_id(t, &doc.id) == Some(None) {
            // An id of the table with no document: removed by an earlier attempt.
            gone += 1;
        }
    }
    writes.deleted = deleted;
    Ok(format!("{{\"deleted\":{deleted},\"gone\":{gone}}}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdsArgs<'a> {
    #[serde(borrow)]
    table: Str<'a>,
    #[serde(borrow)]
    ids: Vec<Str<'a>>,
}

/// Takes the legacy id field out of each document (`unsetLegacyIds`); a document gone or
/// without it is skipped.
fn unset_legacy_ids(
    store: &mut Store,
    args: IdsArgs<'_>,
    writes: &mut Writes,
) -> Result<String, Thrown> {
    let t = store.table_index(&args.table)?;
    let patched = args.ids.iter().filter(|id| store.unset_legacy_id(t, id)).count();
    writes.patched = patched as u64;
    Ok(format!("{{\"patched\":{patched}}}"))
}

/// The statuses `ledgerWrite` accepts; the first three start a run.
const LEDGER_STATUSES: [&str; 7] =
    ["running", "rolling_back", "finalizing", "completed", "failed", "rolled_back", "finalized"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerWriteArgs {
    #[serde(rename = "importId")]
    import_id: String,
    #[serde(rename = "planHash")]
    plan_hash: String,
    #[serde(rename = "planVersion")]
    plan_version: f64,
    #[serde(rename = "planFiles")]
    plan_files: Vec<String>,
    status: String,
    #[serde(default)]
    counts: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerReadArgs<'a> {
    #[serde(borrow, rename = "importId")]
    import_id: Str<'a>,
}

/// Creates or updates the ledger's entry of the import under the plan, as the module does;
/// returns the entry.
fn ledger_write(store: &mut Store, args: LedgerWriteArgs) -> Result<String, Thrown> {
    let Some(position) = LEDGER_STATUSES.iter().position(|s| *s == args.status) else {
        return Err(Thrown(format!(
            "ArgumentValidationError: status {:?} is not one of {LEDGER_STATUSES:?}",
            args.status
        )));
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let now = now.map_or(0, |d| d.as_millis()) as f64;
    let found: Option<serde_json::Value> = store
        .ledger_entry(&args.import_id, &args.plan_hash)
        .map(|r| serde_json::from_str(r).expect("entries are JSON"));
    let starting = position < 3;
    let started = match &found {
        Some(entry) if !starting => entry["startedAt"].clone(),
        _ => serde_json::json!(now),
    };
    let counts = match (args.counts, &found) {
        (Some(counts), _) => serde_json::Value::Object(counts),
        (None, Some(entry)) => entry["counts"].clone(),
        (None, None) => serde_json::json!({}),
    };
    let mut entry = serde_json::json!({
        "importId": args.import_id,
        "planHash": args.plan_hash,
        "planVersion": args.plan_version,
        "planFiles": args.plan_files,
        "status": args.status,
        "counts": counts,
        "startedAt": started,
        "updatedAt": now,
    });
    if !starting {
        entry["finishedAt"] = serde_json::json!(now);
    }
    let record = entry.to_string();
    store.ledger_write(&args.import_id, &args.plan_hash, record.clone().into_boxed_str());
    Ok(record)
}

/// The ledger's latest entry of the import, or `null`.
fn ledger_read(store: &Store, args: LedgerReadArgs<'_>) -> String {
    let latest = store.ledger_of(&args.import_id).into_iter().max_by(|a, b| {
        let at = |r: &str| {
            serde_json::from_str::<serde_json::Value>(r).ok().and_then(|v| v["updatedAt"].as_f64())
        };
        at(a).partial_cmp(&at(b)).unwrap_or(std::cmp::Ordering::Equal)
    });
    latest.unwrap_or("null").to_owned()
}
