//! Reading `transformed/<table>.jsonl` into the batches import sends: at most `size` documents
//! and `max_bytes` of arguments each, skipping lines an earlier run already checkpointed, and
//! checking the file against transform's manifest (line count and BLAKE3) on the way.
//!
//! A line goes to `migrate:upsert` as it is, byte for byte, unless the table has references in
//! a foreign-key cycle: those are taken out of the upsert and sent by `migrate:patchRefs` in a
//! second pass (docs/convex-module.md). The upsert names them in `deferred`, so that it keeps
//! what the second pass wrote should it be applied after it (a reply lost, the call retried,
//! the first attempt applied late).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::error::ImportError;
use super::state::Pass;
use super::transformed::TransformedFile;

/// One document line as import sends it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line of the transformed file.
    pub line: u64,
    pub legacy_id: String,
    /// The element of the call's `docs` array, JSON.
    pub json: Vec<u8>,
}

/// Consecutive lines `first_line..end_line`; `entries` are those of them to send (a line is
/// absent when it was done before, or has nothing for this pass).
#[derive(Debug)]
pub struct Batch {
    pub first_line: u64,
    pub end_line: u64,
    pub entries: Vec<Entry>,
}

/// What to read and how to cut it.
pub struct BatchPlan {
    pub file: TransformedFile,
    pub pass: Pass,
    pub legacy_field: String,
    /// Reference fields sent in the second pass.
    pub deferred: Vec<String>,
    pub size: usize,
    pub max_bytes: usize,
    /// Lines already acknowledged, as sorted `[first, end)` ranges.
    pub done: Vec<(u64, u64)>,
}

/// Reads the whole file, handing each batch to `emit`; stops early when `emit` returns false
/// (the receiver is gone). The file is checked against the manifest as it is read.
pub fn read_batches(
    plan: &BatchPlan,
    mut emit: impl FnMut(Batch) -> bool,
) -> Result<(), ImportError> {
    let mut done = plan.done.iter().peekable();
    let mut batch = Batch::at(1);
    let mut batch_bytes = 0usize;
    let mut receiver_gone = false;
    plan.file.for_each_line(|line_number, text| {
        while done.next_if(|&&(_, end)| end <= line_number).is_some() {}
        if done.peek().is_some_and(|&&(first, _)| first <= line_number) {
            // A done line closes the batch being built: a batch is a range of lines.
            let open = std::mem::replace(&mut batch, Batch::at(line_number + 1));
            batch_bytes = 0;
            receiver_gone = !open.entries.is_empty() && !emit(open);
            return Ok(!receiver_gone);
        }
        if let Some(entry) = entry(plan, line_number, text)? {
            let full =
                batch.entries.len() == plan.size || batch_bytes + entry.json.len() > plan.max_bytes;
            if full && !batch.entries.is_empty() {
                batch_bytes = 0;
                if !emit(std::mem::replace(&mut batch, Batch::at(line_number))) {
                    receiver_gone = true;
                    return Ok(false);
                }
            }
            batch_bytes += entry.json.len() + 1;
            batch.entries.push(entry);
        }
        batch.end_line = line_number + 1;
        Ok(true)
    })?;
    if !receiver_gone && !batch.entries.is_empty() {
        emit(batch);
    }
    Ok(())
}

impl Batch {
    fn at(line: u64) -> Self {
        Batch { first_line: line, end_line: line, entries: Vec::new() }
    }
}

/// A line of the transformed file (docs/transformed-format.md).
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    doc: &'a RawValue,
    #[serde(default, borrow)]
    refs: BTreeMap<Cow<'a, str>, &'a RawValue>,
}

/// The legacy id of a document line (`None` when the line has no string `legacy_field`).
pub fn legacy_id_of(text: &[u8], legacy_field: &str) -> Result<Option<String>, String> {
    // UTF-8 checked once for the whole line: values skipped as `IgnoredAny` are not otherwise.
    let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
    let mut line = serde_json::Deserializer::from_str(text);
    let legacy_id = LegacyIdOf::Line(legacy_field).deserialize(&mut line);
    // Nothing but whitespace after the object, as `serde_json::from_slice` requires.
    legacy_id.and_then(|legacy_id| line.end().map(|()| legacy_id)).map_err(|e| e.to_string())
}

/// The element to send for `text` in this pass; `None` when the line has nothing for it.
fn entry(plan: &BatchPlan, line: u64, text: &[u8]) -> Result<Option<Entry>, ImportError> {
    let bad_line =
        |reason: String| ImportError::BadLine { path: plan.file.path.clone(), line, reason };
    let no_legacy_id =
        || bad_line(format!("the document has no string field `{}`", plan.legacy_field));
    if plan.pass == Pass::Upsert && plan.deferred.is_empty() {
        // Most tables: the line goes as it is, and one reading finds its legacy id.
        let legacy_id =
            legacy_id_of(text, &plan.legacy_field).map_err(bad_line)?.ok_or_else(no_legacy_id)?;
        return Ok(Some(Entry { line, legacy_id, json: text.to_vec() }));
    }
    let parsed: Line<'_> = serde_json::from_slice(text).map_err(|e| bad_line(e.to_string()))?;
    let legacy_id = LegacyIdOf::Document(&plan.legacy_field)
        .deserialize(&mut serde_json::Deserializer::from_str(parsed.doc.get()))
        .map_err(|e| bad_line(e.to_string()))?
        .ok_or_else(no_legacy_id)?;

    let deferred = |field: &str| plan.deferred.iter().any(|d| d == field);
    let json = match plan.pass {
        Pass::Upsert if !parsed.refs.keys().any(|f| deferred(f)) => text.to_vec(),
        Pass::Upsert => {
            let kept = parsed.refs.iter().filter(|(field, _)| !deferred(field));
            let mut json = b"{\"doc\":".to_vec();
            json.extend_from_slice(parsed.doc.get().as_bytes());
            json.extend_from_slice(b",\"refs\":");
            write_refs(&mut json, kept);
            json.extend_from_slice(b",\"deferred\":[");
            let later = parsed.refs.keys().filter(|field| deferred(field));
            for (index, field) in later.enumerate() {
                if index > 0 {
                    json.push(b',');
                }
                crate::json_text::write_string(&mut json, field);
            }
            json.extend_from_slice(b"]}");
            json
        }
        Pass::PatchRefs => {
            let mut patched = parsed.refs.iter().filter(|(field, _)| deferred(field)).peekable();
            if patched.peek().is_none() {
                return Ok(None);
            }
            let mut json = b"{\"legacyId\":".to_vec();
            crate::json_text::write_string(&mut json, &legacy_id);
            json.extend_from_slice(b",\"refs\":");
            write_refs(&mut json, patched);
            json.push(b'}');
            json
        }
    };
    Ok(Some(Entry { line, legacy_id, json }))
}

fn write_refs<'a, 'b: 'a>(
    out: &mut Vec<u8>,
    refs: impl Iterator<Item = (&'a Cow<'b, str>, &'a &'b RawValue)>,
) {
    out.push(b'{');
    for (index, (field, value)) in refs.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        crate::json_text::write_string(out, field);
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
    }
    out.push(b'}');
}

/// Reads a legacy id, skipping every other value without building it: `Document`, one JSON
/// object's string field; `Line`, the same of a transformed line's `doc`, the line read whole
/// (every value checked as JSON, `refs` an object with string names, as [`Line`] reads it): one
/// reading where [`Line`] then `Document` make two.
#[derive(Clone, Copy)]
enum LegacyIdOf<'f> {
    Document(&'f str),
    Line(&'f str),
}

impl<'de> DeserializeSeed<'de> for LegacyIdOf<'_> {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LegacyIdOf<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LegacyIdOf::Document(_) => "a document object",
            LegacyIdOf::Line(_) => "a transformed line",
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut found, mut doc) = (None, false);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match self {
                LegacyIdOf::Document(field) if key == field => {
                    found = map.next_value::<Option<String>>()?;
                }
                LegacyIdOf::Line(field) if key == "doc" => {
                    if doc {
                        return Err(serde::de::Error::duplicate_field("doc"));
                    }
                    found = map.next_value_seed(LegacyIdOf::Document(field))?;
                    doc = true;
                }
                LegacyIdOf::Line(_) if key == "refs" => {
                    map.next_value::<BTreeMap<Cow<'de, str>, IgnoredAny>>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match self {
            LegacyIdOf::Line(_) if !doc => Err(serde::de::Error::missing_field("doc")),
            _ => Ok(found),
        }
    }
}

/// How many documents and batches a table will send, for `--dry-run` and progress bars.
pub fn expected_batches(documents: u64, size: usize) -> u64 {
    documents.div_ceil(size as u64)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn write(lines: &[&str]) -> (tempfile::TempDir, PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let checksum = format!("blake3:{}", blake3::hash(text.as_bytes()).to_hex());
        (dir, path, checksum)
    }

    fn plan(path: &Path, checksum: &str, lines: u64, deferred: &[String]) -> BatchPlan {
        BatchPlan {
            file: TransformedFile { path: path.to_owned(), lines, checksum: checksum.into() },
            pass: Pass::Upsert,
            legacy_field: "legacyId".into(),
            deferred: deferred.to_vec(),
            size: 2,
            max_bytes: 1 << 20,
            done: vec![],
        }
    }

    fn collect(plan: &BatchPlan) -> Vec<Batch> {
        let mut batches = vec![];
        read_batches(plan, |b| {
            batches.push(b);
            true
        })
        .unwrap();
        batches
    }

    const LINES: [&str; 5] = [
        r#"{"doc":{"legacyId":"1","name":"a"}}"#,
        r#"{"doc":{"legacyId":"2","name":"b"},"refs":{"managerId":{"table":"users","legacyId":"1"}}}"#,
        r#"{"doc":{"aaa":{"legacyId":"nested"},"legacyId":"3"}}"#,
        r#"{"doc":{"legacyId":"4"},"refs":{"managerId":{"table":"users","legacyId":"3"},"teamId":{"table":"teams","legacyId":"9"}}}"#,
        r#"{"doc":{"legacyId":"5"}}"#,
    ];

    #[test]
    fn lines_are_cut_into_batches_and_sent_as_they_are() {
        let (_dir, path, checksum) = write(&LINES);
        let batches = collect(&plan(&path, &checksum, 5, &[]));
        let lines: Vec<_> =
            batches.iter().map(|b| (b.first_line, b.end_line, b.entries.len())).collect();
        assert_eq!(lines, [(1, 3, 2), (3, 5, 2), (5, 6, 1)]);
        assert_eq!(batches[0].entries[1].json, LINES[1].as_bytes());
        // The legacy id is the top-level field, not a nested key of the same name.
        assert_eq!(batches[1].entries[0].legacy_id, "3");
    }

    #[test]
    fn done_ranges_are_skipped() {
        let (_dir, path, checksum) = write(&LINES);
        let mut plan = plan(&path, &checksum, 5, &[]);
        plan.done = vec![(1, 3), (4, 5)];
        let batches = collect(&plan);
        let lines: Vec<_> = batches
            .iter()
            .map(|b| {
                (b.first_line, b.end_line, b.entries.iter().map(|e| e.line).collect::<Vec<_>>())
            })
            .collect();
        assert_eq!(lines, [(3, 4, vec![3]), (5, 6, vec![5])]);
    }

    #[test]
    fn deferred_references_move_to_the_second_pass() {
        let (_dir, path, checksum) = write(&LINES);
        let deferred = vec!["managerId".to_owned()];
        let first = collect(&plan(&path, &checksum, 5, &deferred));
        let sent = |b: &Batch, i: usize| String::from_utf8(b.entries[i].json.clone()).unwrap();
        // The upsert names what the second pass sets: an existing document keeps it.
        assert_eq!(
            sent(&first[0], 1),
            r#"{"doc":{"legacyId":"2","name":"b"},"refs":{},"deferred":["managerId"]}"#
        );
        assert_eq!(
            sent(&first[1], 1),
            r#"{"doc":{"legacyId":"4"},"refs":{"teamId":{"table":"teams","legacyId":"9"}},"deferred":["managerId"]}"#
        );
        // A line without a deferred reference goes as it is: its upsert owns every field.
        assert_eq!(sent(&first[0], 0), LINES[0]);

        let mut second = plan(&path, &checksum, 5, &deferred);
        second.pass = Pass::PatchRefs;
        let batches = collect(&second);
        let entries: Vec<_> = batches.iter().flat_map(|b| &b.entries).collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            String::from_utf8(entries[0].json.clone()).unwrap(),
            r#"{"legacyId":"2","refs":{"managerId":{"table":"users","legacyId":"1"}}}"#
        );
    }

    #[test]
    fn a_changed_file_is_an_error_and_a_bad_line_names_its_number() {
        let (_dir, path, checksum) = write(&LINES);
        let error = read_batches(&plan(&path, &checksum, 6, &[]), |_| true).unwrap_err();
        assert!(matches!(error, ImportError::TransformedChanged { lines: 5, .. }));

        let (_dir, path, checksum) = write(&[LINES[0], "{\"doc\":"]);
        let error = read_batches(&plan(&path, &checksum, 2, &[]), |_| true).unwrap_err();
        assert!(matches!(error, ImportError::BadLine { line: 2, .. }), "{error:?}");
    }

    #[test]
    fn batches_are_bounded_in_bytes() {
        let (_dir, path, checksum) = write(&LINES);
        let mut plan = plan(&path, &checksum, 5, &[]);
        plan.size = 100;
        plan.max_bytes = 80;
        let sizes: Vec<_> = collect(&plan).iter().map(|b| b.entries.len()).collect();
        assert!(sizes.iter().all(|&n| n >= 1) && sizes.len() >= 3, "{sizes:?}");
    }
}

#[cfg(test)]
mod fuzz;
