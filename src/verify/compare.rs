//! One Convex table against its transformed file, in bounded memory.
//!
//! Each side is reduced to [`Record`]s (legacy id, fingerprint of the plain fields, references
//! by legacy identity, where the document is) as it streams in. A table of up to
//! `memory_limit` documents (transform's manifest count) is compared in memory; a larger one is
//! spilled into P partition files per side, by hash of the legacy id, and compared one
//! partition at a time: a legacy id is in the same partition on both sides, so each partition
//! is a complete comparison of its ids, and memory holds one partition.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::canonical::Fingerprint;
use crate::data_dir::DataDirError;

/// What a reference field holds, in terms that do not depend on the deployment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
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

/// Where a document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// Its 1-based line in the transformed file.
    Line(u64),
    /// Its position in the read-back order and its Convex id.
    Convex { ordinal: u64, id: String },
}

/// One document reduced to what is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub legacy: String,
    pub fields: Fingerprint,
    /// Sorted by field.
    pub references: Vec<(String, Target)>,
    pub at: Locator,
}

/// The comparison's counts for one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Documents read from the transformed file (reported as the row's `documents`).
    #[serde(skip)]
    pub documents: u64,
    /// Documents read from Convex.
    pub convex: u64,
    pub matching: u64,
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    pub duplicates: u64,
    pub unresolved_references: u64,
    /// Documents that share values on fields unique in the source (after the first of each
    /// group, in read-back order).
    pub not_unique: u64,
}

/// A difference found, before it is given its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub legacy_id: String,
    /// `missing`, `extra`, `different`, `duplicate`, `unresolved reference` or `not unique`.
    pub kind: &'static str,
    pub field: Option<String>,
    pub detail: String,
    /// The transformed line of a document whose plain fields differ, to name them later.
    pub source_line: Option<u64>,
    /// Where it sorts: duplicates (Convex order), then what the file has (line order), then
    /// extras (Convex order), then documents not unique (Convex order), so that the first
    /// listed are the same on every run.
    pub order: (u8, u64),
}

/// Records of one side, in memory or spilled into partition files.
pub struct Spool {
    memory: Vec<Record>,
    files: Vec<(PathBuf, BufWriter<File>)>,
}

/// The partitions a table of `documents` needs so that each holds about `memory_limit`.
pub fn partitions_for(documents: u64, memory_limit: u64) -> usize {
    documents.div_ceil(memory_limit.max(1)).max(1) as usize
}

impl Spool {
    /// A spool of `partitions`; with more than one, its files are `<dir>/<name>.<i>`.
    pub fn new(dir: &Path, name: &str, partitions: usize) -> Result<Self, DataDirError> {
        let mut files = Vec::new();
        if partitions > 1 {
            std::fs::create_dir_all(dir).map_err(DataDirError::new("create", dir))?;
            for i in 0..partitions {
                let path = dir.join(format!("{name}.{i}"));
                let file = File::create(&path).map_err(DataDirError::new("create", &path))?;
                files.push((path, BufWriter::with_capacity(256 << 10, file)));
            }
        }
        Ok(Self { memory: Vec::new(), files })
    }

    pub fn push(&mut self, record: Record) -> Result<(), DataDirError> {
        if self.files.is_empty() {
            self.memory.push(record);
            return Ok(());
        }
        let i = partition_of(&record.legacy, self.files.len());
        let (path, writer) = &mut self.files[i];
        write_record(writer, &record).map_err(|e| DataDirError::new("write", &*path)(e))
    }

    /// The records, ready to be read a partition at a time.
    pub fn finish(self) -> Result<Spooled, DataDirError> {
        let mut paths = Vec::new();
        for (path, writer) in self.files {
            writer.into_inner().map_err(|e| DataDirError::new("write", &path)(e.into_error()))?;
            paths.push(path);
        }
        Ok(Spooled { memory: self.memory, paths })
    }
}

pub struct Spooled {
    memory: Vec<Record>,
    paths: Vec<PathBuf>,
}

impl Spooled {
    pub fn partitions(&self) -> usize {
        self.paths.len().max(1)
    }

    /// Partition `i`'s records, in the order they were pushed; the file is removed.
    fn take(&mut self, i: usize) -> Result<Vec<Record>, DataDirError> {
        if self.paths.is_empty() {
            return Ok(std::mem::take(&mut self.memory));
        }
        let path = &self.paths[i];
        let file = File::open(path).map_err(DataDirError::new("open", path))?;
        let mut reader = BufReader::with_capacity(256 << 10, file);
        let mut records = Vec::new();
        while let Some(record) =
            read_record(&mut reader).map_err(DataDirError::new("read", path))?
        {
            records.push(record);
        }
        let _ = std::fs::remove_file(path);
        Ok(records)
    }
}

fn partition_of(legacy: &str, partitions: usize) -> usize {
    let mut hasher = rustc_hash::FxHasher::default();
    legacy.hash(&mut hasher);
    // FxHash's high bits are its best mixed.
    ((hasher.finish() >> 32) % partitions as u64) as usize
}

/// Compares every partition of both sides; the differences found go to `found` (the first
/// `show` in order are kept).
pub fn compare(
    mut source: Spooled,
    mut convex: Spooled,
    show: usize,
    counts: &mut Counts,
    found: &mut Vec<Found>,
) -> Result<(), DataDirError> {
    debug_assert_eq!(source.partitions(), convex.partitions());
    for i in 0..source.partitions() {
        let source = source.take(i)?;
        let convex = convex.take(i)?;
        compare_partition(&source, &convex, counts, found);
        if found.len() > show {
            found.sort_by_key(|f| f.order);
            found.truncate(show);
        }
    }
    found.sort_by_key(|f| f.order);
    Ok(())
}

fn compare_partition(
    source: &[Record],
    convex: &[Record],
    counts: &mut Counts,
    found: &mut Vec<Found>,
) {
    counts.documents += source.len() as u64;
    counts.convex += convex.len() as u64;
    let expected: HashMap<&str, &Record> = source.iter().map(|r| (r.legacy.as_str(), r)).collect();
    let mut seen: HashMap<&str, ()> = HashMap::with_capacity(convex.len());
    // In read-back order: ranges are read at once and arrive in any order, and which of two
    // documents with one legacy id is called the second must not depend on that.
    let mut convex: Vec<&Record> = convex.iter().collect();
    convex.sort_unstable_by_key(|r| match r.at {
        Locator::Convex { ordinal, .. } => ordinal,
        Locator::Line(line) => line,
    });
    for actual in convex {
        let (ordinal, id) = match &actual.at {
            Locator::Convex { ordinal, id } => (*ordinal, id.as_str()),
            Locator::Line(line) => (*line, ""),
        };
        if seen.insert(actual.legacy.as_str(), ()).is_some() {
            counts.duplicates += 1;
            found.push(Found {
                legacy_id: actual.legacy.clone(),
                kind: "duplicate",
                field: None,
                detail: format!("a second document ({id}) has this legacy id"),
                source_line: None,
                order: (0, ordinal),
            });
            continue;
        }
        let Some(wanted) = expected.get(actual.legacy.as_str()) else {
            counts.extra += 1;
            found.push(Found {
                legacy_id: actual.legacy.clone(),
                kind: "extra",
                field: None,
                detail: format!("Convex document {id} is not in the source"),
                source_line: None,
                order: (2, ordinal),
            });
            continue;
        };
        let line = match wanted.at {
            Locator::Line(line) => line,
            Locator::Convex { ordinal, .. } => ordinal,
        };
        if compare_one(wanted, actual, line, counts, found) {
            counts.matching += 1;
        } else {
            counts.different += 1;
        }
    }
    for wanted in source {
        if !seen.contains_key(wanted.legacy.as_str()) {
            let line = match wanted.at {
                Locator::Line(line) => line,
                Locator::Convex { ordinal, .. } => ordinal,
            };
            counts.missing += 1;
            found.push(Found {
                legacy_id: wanted.legacy.clone(),
                kind: "missing",
                field: None,
                detail: format!("transformed line {line} is not in Convex"),
                source_line: None,
                order: (1, line),
            });
        }
    }
}

/// Compares one document found on both sides; true when it is the same.
fn compare_one(
    expected: &Record,
    actual: &Record,
    line: u64,
    counts: &mut Counts,
    found: &mut Vec<Found>,
) -> bool {
    let mut same = true;
    let mut add = |kind, field: &str, detail: String, source_line| {
        found.push(Found {
            legacy_id: actual.legacy.clone(),
            kind,
            field: (!field.is_empty()).then(|| field.to_owned()),
            detail,
            source_line,
            order: (1, line),
        });
    };
    for (field, target) in &actual.references {
        let wanted = expected.references.iter().find(|(f, _)| f == field).map(|(_, t)| t);
        if wanted != Some(target) {
            same = false;
            let dangling = is_dangling(target, wanted);
            if dangling {
                counts.unresolved_references += 1;
            }
            add(
                if dangling { "unresolved reference" } else { "different" },
                field,
                format!(
                    "Convex has {target}, the source has {}",
                    wanted.map_or("nothing".to_owned(), ToString::to_string)
                ),
                None,
            );
        }
    }
    for (field, target) in &expected.references {
        if !actual.references.iter().any(|(f, _)| f == field) {
            same = false;
            add("different", field, format!("Convex has nothing, the source has {target}"), None);
        }
    }
    if actual.fields != expected.fields {
        same = false;
        add("different", "", "fields differ".into(), Some(line));
    }
    same
}

/// Whether Convex holding `target` where the source has `wanted` is a reference that resolves
/// to nothing: the source points at a document, and Convex holds a Convex id (the shape of one)
/// that is no document's. Any other value there (a legacy id, null, a number) is a plain
/// difference.
pub fn is_dangling(target: &Target, wanted: Option<&Target>) -> bool {
    let Target::Plain(json) = target else { return false };
    matches!(wanted, Some(Target::Document(..)))
        && serde_json::from_str::<String>(json).is_ok_and(|id| crate::convex::is_document_id(&id))
}

// ── Spill files: one record after another, lengths little-endian ─────────────────────────────

pub(super) fn write_str(out: &mut impl Write, s: &str) -> std::io::Result<()> {
    out.write_all(&(s.len() as u32).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

fn write_record(out: &mut impl Write, record: &Record) -> std::io::Result<()> {
    write_str(out, &record.legacy)?;
    out.write_all(&record.fields)?;
    out.write_all(&(record.references.len() as u32).to_le_bytes())?;
    for (field, target) in &record.references {
        write_str(out, field)?;
        match target {
            Target::Document(table, legacy) => {
                out.write_all(&[0])?;
                write_str(out, table)?;
                write_str(out, legacy)?;
            }
            Target::Plain(json) => {
                out.write_all(&[1])?;
                write_str(out, json)?;
            }
        }
    }
    match &record.at {
        Locator::Line(line) => {
            out.write_all(&[0])?;
            out.write_all(&line.to_le_bytes())
        }
        Locator::Convex { ordinal, id } => {
            out.write_all(&[1])?;
            out.write_all(&ordinal.to_le_bytes())?;
            write_str(out, id)
        }
    }
}

pub(super) fn read_u32(input: &mut impl Read) -> std::io::Result<u32> {
    let mut bytes = [0; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn read_u8(input: &mut impl Read) -> std::io::Result<u8> {
    let mut byte = [0; 1];
    input.read_exact(&mut byte)?;
    Ok(byte[0])
}

pub(super) fn read_u64(input: &mut impl Read) -> std::io::Result<u64> {
    let mut bytes = [0; 8];
    input.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

pub(super) fn read_string(input: &mut impl Read) -> std::io::Result<String> {
    let len = read_u32(input)? as usize;
    let mut bytes = vec![0; len];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The next record, `None` at the end of the file.
fn read_record(input: &mut impl Read) -> std::io::Result<Option<Record>> {
    let mut len = [0; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut legacy = vec![0; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut legacy)?;
    let legacy = String::from_utf8(legacy)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut fields = [0; 16];
    input.read_exact(&mut fields)?;
    let count = read_u32(input)?;
    let mut references = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let field = read_string(input)?;
        let target = match read_u8(input)? {
            0 => Target::Document(read_string(input)?, read_string(input)?),
            _ => Target::Plain(read_string(input)?),
        };
        references.push((field, target));
    }
    let at = match read_u8(input)? {
        0 => Locator::Line(read_u64(input)?),
        _ => Locator::Convex { ordinal: read_u64(input)?, id: read_string(input)? },
    };
    Ok(Some(Record { legacy, fields, references, at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(value: serde_json::Value) -> Target {
        Target::Plain(value.to_string())
    }

    fn line(legacy: &str, field: u8, line: u64) -> Record {
        Record {
            legacy: legacy.into(),
            fields: [field; 16],
            references: vec![("userId".into(), Target::Document("users".into(), "7".into()))],
            at: Locator::Line(line),
        }
    }

    fn doc(legacy: &str, field: u8, ordinal: u64) -> Record {
        Record {
            at: Locator::Convex { ordinal, id: format!("id{ordinal}") },
            ..line(legacy, field, 0)
        }
    }

    /// Both sides through spools of `partitions`, compared.
    fn run(
        partitions: usize,
        source: &[Record],
        convex: &[Record],
    ) -> (Counts, Vec<Found>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Spool::new(dir.path(), "source", partitions).unwrap();
        let mut b = Spool::new(dir.path(), "convex", partitions).unwrap();
        source.iter().for_each(|r| a.push(r.clone()).unwrap());
        convex.iter().for_each(|r| b.push(r.clone()).unwrap());
        let (a, b) = (a.finish().unwrap(), b.finish().unwrap());
        let spilled: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let (mut counts, mut found) = (Counts::default(), Vec::new());
        compare(a, b, 3, &mut counts, &mut found).unwrap();
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, 0, "the partition files are removed once compared");
        (counts, found, spilled)
    }

    #[test]
    fn spilled_partitions_find_what_the_memory_path_finds() {
        // GIVEN 200 documents in the file; Convex lacks 5 of them, has one changed, one
        // duplicate, one reference pointing at nothing and two documents the file does not have
        let source: Vec<Record> = (1..=200).map(|i| line(&i.to_string(), 1, i)).collect();
        let mut convex: Vec<Record> = (6..=200).map(|i| doc(&i.to_string(), 1, i)).collect();
        convex[10].fields = [2; 16];
        convex[20].references[0].1 = plain(serde_json::json!(convex_sink::id::encode(3, &[9; 16])));
        convex.push(doc("50", 1, 500));
        convex.push(doc("x1", 1, 501));
        convex.push(doc("x2", 1, 502));

        // WHEN compared in memory and through a tiny partition threshold (16 partitions)
        let (in_memory, memory_found, none) = run(1, &source, &convex);
        assert!(none.is_empty(), "nothing spilled in memory: {none:?}");
        assert_eq!(partitions_for(200, 13), 16);
        let (spilled, spilled_found, files) = run(partitions_for(200, 13), &source, &convex);

        // THEN both count the same, and list the same first differences in the same order
        assert_eq!(files.len(), 32, "16 partitions per side: {files:?}");
        let expected = Counts {
            documents: 200,
            convex: 198,
            matching: 193,
            missing: 5,
            extra: 2,
            different: 2,
            duplicates: 1,
            unresolved_references: 1,
            not_unique: 0,
        };
        assert_eq!(in_memory, expected);
        assert_eq!(spilled, expected);
        assert_eq!(memory_found, spilled_found);
        let kinds: Vec<(&str, &str)> =
            spilled_found.iter().map(|f| (f.kind, f.legacy_id.as_str())).collect();
        assert_eq!(kinds, [("duplicate", "50"), ("missing", "1"), ("missing", "2")]);
    }

    #[test]
    fn the_second_of_two_documents_with_one_legacy_id_is_the_later_one_read_back() {
        // GIVEN two documents with legacy id 7, pushed later one first, as two ranges read at
        // once may deliver them
        let source = [line("7", 1, 1)];
        let convex = [doc("7", 1, 2 << 40), doc("7", 1, 5)];

        // WHEN compared THEN the duplicate named is the one later in read-back order
        let (counts, found, _) = run(1, &source, &convex);
        assert_eq!((counts.matching, counts.duplicates), (1, 1));
        assert_eq!(
            found[0].detail,
            format!("a second document (id{}) has this legacy id", 2u64 << 40)
        );
    }

    #[test]
    fn a_record_survives_its_spill_file() {
        let records = [
            Record {
                legacy: "[\"a\",\"é\"]".into(),
                fields: [7; 16],
                references: vec![
                    ("a".into(), Target::Document("t".into(), "1".into())),
                    ("b".into(), plain(serde_json::Value::Null)),
                ],
                at: Locator::Convex { ordinal: 9, id: "abc".into() },
            },
            line("", 0, u64::MAX),
        ];
        let mut bytes = Vec::new();
        for record in &records {
            write_record(&mut bytes, record).unwrap();
        }
        let mut input = &bytes[..];
        for record in &records {
            assert_eq!(read_record(&mut input).unwrap().as_ref(), Some(record));
        }
        assert_eq!(read_record(&mut input).unwrap(), None);
    }

    #[test]
    fn only_an_id_of_no_document_is_an_unresolved_reference() {
        let wanted = Target::Document("users".into(), "7".into());
        let id = convex_sink::id::encode(3, &[9; 16]);
        assert!(is_dangling(&plain(serde_json::Value::String(id.clone())), Some(&wanted)));

        // A legacy value left in the field, or anything else that is no Convex id, is a plain
        // difference, whatever its type.
        for value in [
            serde_json::Value::String("7".into()),
            serde_json::Value::String("legacy-user-7".into()),
            serde_json::Value::String(id.to_uppercase()),
            serde_json::Value::Null,
            serde_json::json!(7),
        ] {
            assert!(!is_dangling(&plain(value.clone()), Some(&wanted)), "{value}");
        }
        // An id where the source has no reference, or a plain value, is a plain difference too.
        assert!(!is_dangling(&plain(serde_json::Value::String(id.clone())), None));
        assert!(!is_dangling(
            &plain(serde_json::Value::String(id)),
            Some(&plain(serde_json::Value::Null))
        ));
        assert!(!is_dangling(&wanted, Some(&wanted)));
    }
}
