//! The in-memory database: per table, the documents in insertion order and an index from legacy
//! id to them (the `by_legacy_id` index), plus the undo log that makes each call atomic.
//!
//! A document is its id, creation time and body: the JSON object text of its fields without the
//! system fields, references already Convex ids. Bodies stay text; only the handle's test helpers
//! build `serde_json::Value`s. A removed document leaves an empty slot, so a slot number is a
//! stable position: the paging cursor.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use rustc_hash::FxHashMap;

use crate::id::{DocId, FIRST_TABLE_NUMBER, IdMinter};
use crate::json;
use crate::plan::Plan;

/// A function threw: the call answers `{"status":"error","errorMessage":...}`, nothing applied.
#[derive(Debug, PartialEq, Eq)]
pub struct Thrown(pub String);

pub struct Doc {
    pub id: DocId,
    pub created: f64,
    /// The fields as a JSON object, system fields left out.
    pub body: Box<str>,
}

/// In [`Table::index`]: the legacy id has more than one document, listed in
/// [`Table::duplicates`] (only if a test made it so).
const MANY: u32 = u32::MAX;

/// What a legacy id finds.
pub enum Lookup {
    None,
    One(u32),
    Many,
}

pub struct Table {
    pub name: Box<str>,
    number: u32,
    pub legacy_field: Box<str>,
    /// Reference field → parent table, from the plan.
    pub references: FxHashMap<Box<str>, Reference>,
    docs: Vec<Option<Doc>>,
    /// Each slot's creation time, removed slots too: increasing, searched for a range's start.
    created: Vec<f64>,
    /// Legacy id → the slot of its document, or [`MANY`]. Ids need no index: an id leads to its
    /// slot (`id::slot_of`).
    index: FxHashMap<Box<str>, u32>,
    /// The slots of each legacy id the index says [`MANY`] of, sorted.
    duplicates: FxHashMap<Box<str>, Vec<u32>>,
    live: usize,
}

/// A reference field's parent table: its name, and its index, resolved once when the store is
/// built (`None` if the plan names a table it does not have).
pub struct Reference {
    pub parent: Box<str>,
    pub parent_index: Option<usize>,
}

enum Undo {
    Inserted { table: usize, legacy: Option<Box<str>> },
    Replaced { table: usize, slot: u32, body: Box<str> },
}

pub struct Store {
    tables: Vec<Table>,
    /// The module's ledger table: (import id, plan hash, its record as JSON text), in creation
    /// order.
    ledger: Vec<(Box<str>, Box<str>, Box<str>)>,
    by_name: FxHashMap<Box<str>, usize>,
    minter: IdMinter,
    last_created: f64,
    undo: Vec<Undo>,
}

impl Store {
    pub fn new(plan: &Plan, seed: u64) -> Store {
        let by_name: FxHashMap<Box<str>, usize> =
            plan.tables().iter().enumerate().map(|(i, t)| (t.name.as_str().into(), i)).collect();
        let tables: Vec<Table> = plan
            .tables()
            .iter()
            .zip(FIRST_TABLE_NUMBER..)
            .map(|(table, number)| Table {
                name: table.name.as_str().into(),
                number,
                legacy_field: table.legacy_id_field.as_str().into(),
                references: table
                    .references
                    .iter()
                    .map(|(field, parent)| {
                        let reference = Reference {
                            parent: parent.as_str().into(),
                            parent_index: by_name.get(parent.as_str()).copied(),
                        };
                        (field.as_str().into(), reference)
                    })
                    .collect(),
                docs: Vec::new(),
                created: Vec::new(),
                index: FxHashMap::default(),
                duplicates: FxHashMap::default(),
                live: 0,
            })
            .collect();
        Store {
            tables,
            ledger: Vec::new(),
            by_name,
            minter: IdMinter::new(seed),
            last_created: 0.0,
            undo: Vec::new(),
        }
    }

    /// The table named `name`, or the error every function throws for a table outside the plan.
    pub fn table_index(&self, name: &str) -> Result<usize, Thrown> {
        self.by_name.get(name).copied().ok_or_else(|| unknown_table(name))
    }

    pub fn table(&self, table: usize) -> &Table {
        &self.tables[table]
    }

    /// Runs `f` as one transaction: if it throws, every write it made is undone.
    pub fn atomically<R>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<R, Thrown>,
    ) -> Result<R, Thrown> {
        self.undo.clear();
        let result = f(self);
        if result.is_err() {
            while let Some(undo) = self.undo.pop() {
                self.revert(undo);
            }
        }
        self.undo.clear();
        result
    }

    fn revert(&mut self, undo: Undo) {
        match undo {
            Undo::Inserted { table, legacy } => {
                let t = &mut self.tables[table];
                t.docs.pop();
                t.created.pop();
                t.live -= 1;
                if let Some(legacy) = legacy {
                    t.unindex(&legacy, t.docs.len() as u32);
                }
            }
            Undo::Replaced { table, slot, body } => {
                self.tables[table].docs[slot as usize]
                    .as_mut()
                    .expect("replaced a live slot")
                    .body = body;
            }
        }
    }

    pub fn lookup(&self, table: usize, legacy: &str) -> Lookup {
        match self.tables[table].index.get(legacy) {
            None => Lookup::None,
            Some(&MANY) => Lookup::Many,
            Some(&slot) => Lookup::One(slot),
        }
    }

    /// The document with this legacy id, if any; two of them throw (`findByLegacyId` of the
    /// module).
    pub fn find(&self, table: usize, legacy: &str) -> Result<Option<&Doc>, Thrown> {
        match self.lookup(table, legacy) {
            Lookup::None => Ok(None),
            Lookup::One(slot) => Ok(Some(self.doc(table, slot))),
            Lookup::Many => Err(self.duplicates(table, legacy)),
        }
    }

    /// What the module throws when a legacy id finds more than one document.
    pub fn duplicates(&self, table: usize, legacy: &str) -> Thrown {
        Thrown(format!("{} {legacy}: 2 documents have this legacy id", self.tables[table].name))
    }

    pub fn doc(&self, table: usize, slot: u32) -> &Doc {
        self.tables[table].docs[slot as usize].as_ref().expect("indexed slots are live")
    }

    /// Inserts a new document; `legacy` (if any) is indexed.
    pub fn insert(&mut self, table: usize, legacy: Option<&str>, body: Box<str>) -> DocId {
        let created = self.next_creation_time();
        let t = &mut self.tables[table];
        let slot = t.docs.len() as u32;
        assert!(slot < MANY, "a table of the sink holds fewer than 2^32 - 1 documents");
        let id = self.minter.mint(t.number, slot);
        t.docs.push(Some(Doc { id, created, body }));
        t.created.push(created);
        t.live += 1;
        if let Some(legacy) = legacy {
            t.index_add(legacy, slot);
        }
        self.undo.push(Undo::Inserted { table, legacy: legacy.map(Into::into) });
        id
    }

    /// Replaces the fields of the document in `slot`, keeping its id and creation time.
    pub fn replace(&mut self, table: usize, slot: u32, body: Box<str>) -> DocId {
        let doc = self.tables[table].docs[slot as usize].as_mut().expect("replacing a live slot");
        let old = std::mem::replace(&mut doc.body, body);
        let id = doc.id;
        self.undo.push(Undo::Replaced { table, slot, body: old });
        id
    }

    /// Deletes every document with this legacy id; not undoable (`remove` cannot fail midway).
    pub fn remove_all(&mut self, table: usize, legacy: &str) -> usize {
        let t = &mut self.tables[table];
        let slots = match t.index.remove(legacy) {
            None => return 0,
            Some(MANY) => t.duplicates.remove(legacy).expect("MANY slots are listed"),
            Some(slot) => vec![slot],
        };
        for &slot in &slots {
            t.docs[slot as usize] = None;
        }
        t.live -= slots.len();
        slots.len()
    }

    /// Up to `n` documents from slot `start` on, the slot to continue from, and whether that is
    /// the end of the table.
    pub fn page(&self, table: usize, start: usize, n: usize) -> (Vec<&Doc>, usize, bool) {
        self.page_in(table, Some(start), n, None, None)
    }

    /// [`Store::page`] of the documents created in `[from, to)` (`by_creation_time`), from slot
    /// `start` on (`None`: the range's first).
    pub fn page_in(
        &self,
        table: usize,
        start: Option<usize>,
        n: usize,
        from: Option<f64>,
        to: Option<f64>,
    ) -> (Vec<&Doc>, usize, bool) {
        let t = &self.tables[table];
        let (docs, created) = (&t.docs, &t.created);
        // Creation times increase with the slot: the range is a run of slots.
        let end = to.map_or(docs.len(), |to| created.partition_point(|&c| c < to));
        let first = from.map_or(0, |from| created.partition_point(|&c| c < from));
        let mut page = Vec::with_capacity(n.min(1024));
        let mut pos = start.unwrap_or(first).clamp(first, end.max(first));
        while pos < end && page.len() < n {
            if let Some(doc) = &docs[pos] {
                page.push(doc);
            }
            pos += 1;
        }
        while pos < end && docs[pos].is_none() {
            pos += 1;
        }
        (page, pos, pos >= end)
    }

    /// The first and last creation time of the live documents of `table`.
    pub fn creation_times(&self, table: usize) -> Option<(f64, f64)> {
        let docs = &self.tables[table].docs;
        let first = docs.iter().flatten().next()?;
        let last = docs.iter().rev().flatten().next()?;
        Some((first.created, last.created))
    }

    /// What the module's `normalizeId(parent, value)` and `db.get` make of `value` for a
    /// reference to table `parent`: `None` when it is no id of that table; `Some(None)` when it
    /// is one of no document; `Some(Some(legacy id))` for a document (its legacy id field as a
    /// string, or `None` when it has none).
    pub fn resolve_id(&self, parent: usize, value: &str) -> Option<Option<String>> {
        let t = &self.tables[parent];
        let (number, _) = crate::id::decode(value).filter(|(n, _)| *n == t.number)?;
        debug_assert_eq!(number, t.number);
        let Some(slot) = t.slot_of(value) else {
            return Some(None);
        };
        let body = &self.doc(parent, slot).body;
        let fields: json::OrderedMap<json::Str<'_>, &serde_json::value::RawValue> =
            serde_json::from_str(body).expect("stored bodies are JSON objects");
        let legacy = fields.0.iter().rev().find(|(key, _)| **key == *t.legacy_field);
        Some(legacy.and_then(|(_, value)| json::as_str(value)).map(|s| s.into_owned()))
    }

    pub fn live_count(&self, table: usize) -> usize {
        self.tables[table].live
    }

    /// Moves the document in `slot` from one legacy id to another (after a test changed it).
    pub fn reindex(&mut self, table: usize, slot: u32, from: Option<&str>, to: Option<&str>) {
        let t = &mut self.tables[table];
        if let Some(from) = from {
            t.unindex(from, slot);
        }
        if let Some(to) = to {
            t.index_add(to, slot);
        }
    }

    /// The first slot holding a document with this legacy id, duplicates or not (for the handle).
    pub fn first_slot(&self, table: usize, legacy: &str) -> Option<u32> {
        let t = &self.tables[table];
        match *t.index.get(legacy)? {
            MANY => Some(t.duplicates[legacy][0]),
            slot => Some(slot),
        }
    }

    /// Writes the ledger's entry of an import under a plan (not undoable: `ledgerWrite` cannot
    /// fail midway).
    pub fn ledger_write(&mut self, import_id: &str, plan_hash: &str, record: Box<str>) {
        match self.ledger.iter_mut().find(|(i, p, _)| &**i == import_id && &**p == plan_hash) {
            Some(entry) => entry.2 = record,
            None => self.ledger.push((import_id.into(), plan_hash.into(), record)),
        }
    }

    /// The ledger's entry of an import under a plan, JSON.
    pub fn ledger_entry(&self, import_id: &str, plan_hash: &str) -> Option<&str> {
        let found = self.ledger.iter().find(|(i, p, _)| &**i == import_id && &**p == plan_hash);
        found.map(|(_, _, record)| &**record)
    }

    /// The ledger's entries of an import, JSON, oldest first.
    pub fn ledger_of(&self, import_id: &str) -> Vec<&str> {
        self.ledger.iter().filter(|(i, _, _)| &**i == import_id).map(|(_, _, r)| &**r).collect()
    }

    /// Every entry of the ledger, JSON, oldest first.
    pub fn ledger_records(&self) -> Vec<&str> {
        self.ledger.iter().map(|(_, _, record)| &**record).collect()
    }

    /// Takes the legacy id field out of the document with this id (`unsetLegacyIds`); not
    /// undoable. Whether it had one.
    pub fn unset_legacy_id(&mut self, table: usize, id: &str) -> bool {
        let t = &mut self.tables[table];
        let Some(slot) = t.slot_of(id) else { return false };
        let doc = t.docs[slot as usize].as_mut().expect("slot_of finds live slots");
        let mut body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&doc.body).expect("a body is a JSON object");
        let Some(legacy) = body.remove(&*t.legacy_field) else { return false };
        doc.body = serde_json::Value::Object(body).to_string().into_boxed_str();
        if let Some(legacy) = legacy.as_str() {
            t.unindex(legacy, slot);
        }
        true
    }

    /// Deletes the document with this id if it holds `legacy` in its legacy id field
    /// (`removeDocs`); not undoable. Whether it deleted one.
    pub fn remove_doc(&mut self, table: usize, id: &str, legacy: &str) -> bool {
        let t = &mut self.tables[table];
        let Some(slot) = t.slot_of(id) else { return false };
        let doc = t.docs[slot as usize].as_ref().expect("slot_of finds live slots");
        let body: serde_json::Value = serde_json::from_str(&doc.body).expect("a body is JSON");
        if body.get(&*t.legacy_field).and_then(|v| v.as_str()) != Some(legacy) {
            return false;
        }
        t.docs[slot as usize] = None;
        t.unindex(legacy, slot);
        t.live -= 1;
        true
    }

    /// Empties every table and the ledger: a deployment wiped, or a fresh one at the same URL.
    pub fn clear(&mut self) {
        for table in &mut self.tables {
            table.docs.clear();
            table.created.clear();
            table.index.clear();
            table.duplicates.clear();
            table.live = 0;
        }
        self.ledger.clear();
        self.undo.clear();
    }

    /// Creation times in milliseconds since the epoch, strictly increasing.
    fn next_creation_time(&mut self) -> f64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
        let now = now.as_micros() as f64 / 1000.0;
        self.last_created = if now > self.last_created { now } else { self.last_created + 0.001 };
        self.last_created
    }
}

impl Table {
    /// The slot of the live document with id `id` (`db.get`).
    fn slot_of(&self, id: &str) -> Option<u32> {
        let slot = crate::id::slot_of(id, self.number)?;
        let doc = self.docs.get(slot as usize)?.as_ref()?;
        (doc.id.as_str() == id).then_some(slot)
    }

    fn index_add(&mut self, legacy: &str, slot: u32) {
        match self.index.get_mut(legacy) {
            None => {
                self.index.insert(legacy.into(), slot);
            }
            Some(&mut MANY) => {
                let all = self.duplicates.get_mut(legacy).expect("MANY slots are listed");
                all.push(slot);
                all.sort_unstable();
            }
            Some(first) => {
                let mut all = vec![*first, slot];
                all.sort_unstable();
                *first = MANY;
                self.duplicates.insert(legacy.into(), all);
            }
        }
    }

    fn unindex(&mut self, legacy: &str, slot: u32) {
        match self.index.get(legacy) {
            Some(&MANY) => {
                let all = self.duplicates.get_mut(legacy).expect("MANY slots are listed");
                all.retain(|&s| s != slot);
                if let [only] = all[..] {
                    self.duplicates.remove(legacy);
                    self.index.insert(legacy.into(), only);
                }
            }
            Some(&s) if s == slot => {
                self.index.remove(legacy);
            }
            _ => {}
        }
    }
}

/// What every function throws for a table outside the plan.
pub fn unknown_table(name: &str) -> Thrown {
    let mut message = String::from("unknown table ");
    json::write_str(&mut message, name);
    Thrown(message)
}

/// Appends a document as Convex returns it: `_creationTime`, `_id`, then its fields.
pub fn write_doc(out: &mut String, doc: &Doc) {
    out.push_str("{\"_creationTime\":");
    write!(out, "{}", doc.created).expect("writing to a String cannot fail");
    out.push_str(",\"_id\":");
    json::write_str(out, doc.id.as_str());
    let fields = doc.body.trim_start().strip_prefix('{').expect("a body is an object").trim_start();
    if !fields.starts_with('}') {
        out.push(',');
    }
    out.push_str(fields);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        let plan = Plan::from_json(
            r#"{"version":1,"planHash":"blake3:0","tables":{"users":{"legacyIdField":"legacyId","references":{}}}}"#,
        )
        .unwrap();
        Store::new(&plan, 1)
    }

    #[test]
    fn a_thrown_transaction_leaves_nothing_behind() {
        let mut store = store();
        let kept = store.insert(0, Some("1"), r#"{"legacyId":"1","v":1}"#.into());
        let result: Result<(), Thrown> = store.atomically(|s| {
            s.insert(0, Some("2"), r#"{"legacyId":"2"}"#.into());
            s.replace(0, 0, r#"{"legacyId":"1","v":2}"#.into());
            s.insert(0, Some("1"), r#"{"legacyId":"1","dup":true}"#.into());
            Err(Thrown("boom".into()))
        });
        assert_eq!(result, Err(Thrown("boom".into())));
        assert_eq!(store.live_count(0), 1);
        assert!(matches!(store.lookup(0, "1"), Lookup::One(0)));
        assert!(matches!(store.lookup(0, "2"), Lookup::None));
        assert_eq!(store.doc(0, 0).id, kept);
        assert_eq!(&*store.doc(0, 0).body, r#"{"legacyId":"1","v":1}"#);
    }

    #[test]
    fn pages_skip_removed_slots_and_documents_print_with_system_fields() {
        let mut store = store();
        for i in 0..5 {
            store.insert(0, Some(&i.to_string()), format!(r#"{{"legacyId":"{i}"}}"#).into());
        }
        assert_eq!(store.remove_all(0, "1"), 1);
        assert_eq!(store.remove_all(0, "4"), 1);
        let (page, next, done) = store.page(0, 0, 2);
        assert_eq!((page.len(), next, done), (2, 3, false));
        let (page, next, done) = store.page(0, next, 2);
        assert_eq!((page.len(), next, done), (1, 5, true));
        let mut out = String::new();
        write_doc(&mut out, page[0]);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["legacyId"], "3");
        assert_eq!(value["_id"].as_str().unwrap().len(), 32);
        assert!(value["_creationTime"].as_f64().unwrap() > 1.7e12);
        let mut empty = String::new();
        write_doc(&mut empty, &Doc { id: page[0].id, created: 1.5, body: "{}".into() });
        assert_eq!(empty, format!(r#"{{"_creationTime":1.5,"_id":"{}"}}"#, page[0].id.as_str()));
    }
}
