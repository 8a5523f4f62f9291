//! Uniqueness the source enforced and Convex does not: documents of one table that share their
//! values on the fields of a unique index of the source (`plan::indexes` lists them). Such
//! documents arrive when values that differed in Postgres become one in Convex (timestamps cut
//! to the millisecond), or when the deployment's documents were changed since the import.
//!
//! A document with null or no value in one of the fields clashes with none, as a row with a NULL
//! never does in Postgres, unless the index was `NULLS NOT DISTINCT`. Memory stays bounded like
//! `compare`'s: one entry per document and key, spilled for a large table into partitions by the
//! hash of the values, so that equal values meet in one partition.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_json::value::RawValue;

use super::canonical::{Entries, Fingerprint, values_fingerprint};
use super::compare::{Counts, Found, read_string, read_u32, read_u64, write_str};
use crate::data_dir::DataDirError;
use crate::plan::UniqueKey;

/// One document's values on one unique key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key's position in the table's list.
    pub key: u32,
    pub values: Fingerprint,
    /// Its position in the read-back order (see `compare::Locator`).
    pub ordinal: u64,
    pub legacy: String,
    pub id: String,
    /// The values as the report shows them: `email = "ada@example.com"`.
    pub shown: String,
}

/// The entries of one Convex document for `keys`: none for a key whose fields hold a null or
/// nothing, unless nulls are not distinct for it.
pub fn entries(
    doc: &Entries<'_>,
    keys: &[UniqueKey],
    legacy: &str,
    id: &str,
    ordinal: u64,
) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let values: Vec<Option<&RawValue>> =
            key.fields.iter().map(|f| doc.get(f).filter(|v| v.get() != "null")).collect();
        if values.iter().any(Option::is_none) && !key.nulls_not_distinct {
            continue;
        }
        let shown: Vec<String> = key
            .fields
            .iter()
            .zip(&values)
            .map(|(field, value)| format!("{field} = {}", shown(*value)))
            .collect();
        entries.push(Entry {
            key: i as u32,
            values: values_fingerprint(&values),
            ordinal,
            legacy: legacy.to_owned(),
            id: id.to_owned(),
            shown: shown.join(", "),
        });
    }
    entries
}

/// A value as compact JSON, cut at 80 characters; `null` for none.
fn shown(value: Option<&RawValue>) -> String {
    let Some(value) = value else { return "null".to_owned() };
    let text = serde_json::from_str::<Value>(value.get())
        .map_or_else(|_| value.get().to_owned(), |v| v.to_string());
    if text.chars().count() <= 80 {
        text
    } else {
        format!("{}…", text.chars().take(80).collect::<String>())
    }
}

/// The entries of a table, in memory or spilled into partition files.
pub struct Spool {
    memory: Vec<Entry>,
    files: Vec<(PathBuf, BufWriter<File>)>,
}

impl Spool {
    /// A spool of `partitions`; with more than one, its files are `<dir>/unique.<i>`.
    pub fn new(dir: &Path, partitions: usize) -> Result<Self, DataDirError> {
        let mut files = Vec::new();
        if partitions > 1 {
            std::fs::create_dir_all(dir).map_err(DataDirError::new("create", dir))?;
            for i in 0..partitions {
                let path = dir.join(format!("unique.{i}"));
                let file = File::create(&path).map_err(DataDirError::new("create", &path))?;
                files.push((path, BufWriter::with_capacity(64 << 10, file)));
            }
        }
        Ok(Self { memory: Vec::new(), files })
    }

    pub fn push(&mut self, entry: Entry) -> Result<(), DataDirError> {
        if self.files.is_empty() {
            self.memory.push(entry);
            return Ok(());
        }
        let mut high = [0; 8];
        high.copy_from_slice(&entry.values[8..]);
        let i = (u64::from_le_bytes(high) % self.files.len() as u64) as usize;
        let (path, writer) = &mut self.files[i];
        write_entry(writer, &entry).map_err(|e| DataDirError::new("write", &*path)(e))
    }

    /// Finds the documents that share values, partition by partition (each file is removed
    /// once read): for each group of equal values on one key, every document after the first
    /// in read-back order is counted and listed (the first `show` differences are kept in
    /// `found`).
    pub fn check(
        self,
        keys: &[UniqueKey],
        show: usize,
        counts: &mut Counts,
        found: &mut Vec<Found>,
    ) -> Result<(), DataDirError> {
        if self.files.is_empty() {
            check_partition(self.memory, keys, counts, found);
        }
        for (path, writer) in self.files {
            writer.into_inner().map_err(|e| DataDirError::new("write", &path)(e.into_error()))?;
            let file = File::open(&path).map_err(DataDirError::new("open", &path))?;
            let mut reader = BufReader::with_capacity(64 << 10, file);
            let mut entries = Vec::new();
            while let Some(entry) =
                read_entry(&mut reader).map_err(DataDirError::new("read", &path))?
            {
                entries.push(entry);
            }
            let _ = std::fs::remove_file(&path);
            check_partition(entries, keys, counts, found);
            if found.len() > show {
                sort(found);
                found.truncate(show);
            }
        }
        sort(found);
        Ok(())
    }
}

/// In read-back order, then by key: the same order whatever the partitions.
fn sort(found: &mut [Found]) {
    found.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.field.cmp(&b.field)));
}

fn check_partition(
    mut entries: Vec<Entry>,
    keys: &[UniqueKey],
    counts: &mut Counts,
    found: &mut Vec<Found>,
) {
    entries.sort_unstable_by_key(|e| (e.key, e.values, e.ordinal));
    for group in entries.chunk_by(|a, b| a.key == b.key && a.values == b.values) {
        let [first, rest @ ..] = group else { continue };
        let key = &keys[first.key as usize];
        for entry in rest {
            counts.not_unique += 1;
            found.push(Found {
                legacy_id: entry.legacy.clone(),
                kind: "not unique",
                field: Some(key.fields.join(",")),
                detail: format!(
                    "shares {} with legacy id {} (document {}): unique in the source (`{}`), \
                     which Convex does not enforce",
                    entry.shown, first.legacy, first.id, key.index
                ),
                source_line: None,
                order: (3, entry.ordinal),
            });
        }
    }
}

fn write_entry(out: &mut impl Write, entry: &Entry) -> std::io::Result<()> {
    out.write_all(&entry.key.to_le_bytes())?;
    out.write_all(&entry.values)?;
    out.write_all(&entry.ordinal.to_le_bytes())?;
    write_str(out, &entry.legacy)?;
    write_str(out, &entry.id)?;
    write_str(out, &entry.shown)
}

/// The next entry, `None` at the end of the file.
fn read_entry(input: &mut impl Read) -> std::io::Result<Option<Entry>> {
    let key = match read_u32(input) {
        Ok(key) => key,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut values = [0; 16];
    input.read_exact(&mut values)?;
    Ok(Some(Entry {
        key,
        values,
        ordinal: read_u64(input)?,
        legacy: read_string(input)?,
        id: read_string(input)?,
        shown: read_string(input)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: &str, fields: &[&str], nulls_not_distinct: bool) -> UniqueKey {
        UniqueKey {
            index: index.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            nulls_not_distinct,
        }
    }

    fn keys() -> Vec<UniqueKey> {
        vec![
            key("users_email_key", &["email"], false),
            key("users_org_handle_key", &["orgId", "handle"], false),
            key("users_code_key", &["code"], true),
        ]
    }

    /// The entries of documents given as JSON text, in read-back order.
    fn entries_of(docs: &[&str]) -> Vec<Entry> {
        docs.iter()
            .enumerate()
            .flat_map(|(i, text)| {
                let doc: Entries<'_> = serde_json::from_str(text).unwrap();
                let legacy = (i + 1).to_string();
                entries(&doc, &keys(), &legacy, &format!("id{}", i + 1), i as u64 + 1)
            })
            .collect()
    }

    fn run(partitions: usize, docs: &[&str]) -> (Counts, Vec<Found>) {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path(), partitions).unwrap();
        for entry in entries_of(docs) {
            spool.push(entry).unwrap();
        }
        let (mut counts, mut found) = (Counts::default(), Vec::new());
        spool.check(&keys(), 10, &mut counts, &mut found).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "spill files removed");
        (counts, found)
    }

    /// Legacy ids 1 to 6. Email `a@x` three times; org 1 with handle `a` twice (1.0 is 1 in
    /// Convex), besides two documents with a null and an absent org, which clash with none;
    /// code null or absent five times, which clash, as its nulls are not distinct.
    const DOCS: &[&str] = &[
        r#"{"email":"a@x","orgId":1,"handle":"a","code":null}"#,
        r#"{"email":"a@x","orgId":null,"handle":"a"}"#,
        r#"{"email":"a@x","handle":"a"}"#,
        r#"{"email":"b@x","orgId":1.0,"handle":"a","code":null}"#,
        r#"{"email":"c@x","orgId":2,"handle":"a"}"#,
        r#"{"email":"d@x","orgId":2,"handle":"b","code":"k"}"#,
    ];

    #[test]
    fn documents_sharing_values_are_found_and_nulls_clash_only_where_not_distinct() {
        let (counts, found) = run(1, DOCS);
        assert_eq!(counts.not_unique, 7, "{found:#?}");
        let listed: Vec<(&str, &str)> =
            found.iter().map(|f| (f.legacy_id.as_str(), f.field.as_deref().unwrap())).collect();
        assert_eq!(
            listed,
            [
                ("2", "code"),
                ("2", "email"),
                ("3", "code"),
                ("3", "email"),
                ("4", "code"),
                ("4", "orgId,handle"),
                ("5", "code")
            ]
        );
        assert_eq!(
            found[5].detail,
            "shares orgId = 1.0, handle = \"a\" with legacy id 1 (document id1): unique in the \
             source (`users_org_handle_key`), which Convex does not enforce"
        );
    }

    #[test]
    fn spilled_partitions_find_the_same() {
        let (memory, memory_found) = run(1, DOCS);
        let (spilled, spilled_found) = run(7, DOCS);
        assert_eq!(memory, spilled);
        assert_eq!(memory_found, spilled_found);
    }

    #[test]
    fn an_entry_survives_its_spill_file() {
        let entries = entries_of(DOCS);
        let mut bytes = Vec::new();
        for entry in &entries {
            write_entry(&mut bytes, entry).unwrap();
        }
        let mut input = &bytes[..];
        for entry in &entries {
            assert_eq!(read_entry(&mut input).unwrap().as_ref(), Some(entry));
        }
        assert_eq!(read_entry(&mut input).unwrap(), None);
    }
}
