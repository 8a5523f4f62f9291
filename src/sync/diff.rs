//! One table's difference between what the deployment last received (`import::sent`) and the
//! new transformed file, in bounded memory.
//!
//! Transform writes a document's line byte for byte the same when its row and the plan did not
//! change (fields in name order), and a line holds its legacy id, which is unique in its file.
//! So the difference is found in two stages:
//! 1. whole lines: each line of either file is reduced to the XXH3-128 of its bytes, which
//!    the file's line index holds sorted (`import::line_index`: transform writes it, the sent
//!    record keeps it, a missing or stale one is built by reading the file through). Merging
//!    the two sorted indexes finds the lines on both sides, unchanged documents, without
//!    reading either file.
//! 2. legacy ids, only for the lines stage 1 left unmatched (the changes): their ids are parsed
//!    and matched the same way, by the XXH3-128 of the id: an id on both sides is an updated
//!    document, one only in the new file an insert, one only in the old file a delete.
//!
//! Each record keeps its line's byte offset: when the unmatched lines are few, stage 2 and the
//! file of documents to send read them where they are instead of reading the files through.
//! Memory holds one partition and 16 bytes per unmatched line; what comes out is the sorted
//! list of new lines to send and a file of the legacy ids to delete.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_128;

use crate::data_dir::DataDirError;
use crate::import::ImportError;
use crate::import::batches::legacy_id_of;
use crate::import::line_index::{Entry, LineIndex, Sorted};
use crate::import::transformed::TransformedFile;

/// Lines per partition: a partition's map holds about this many old records.
pub const PARTITION_ROWS: u64 = 256 * 1024;

/// What changed in one table.
#[derive(Debug, Default)]
pub struct TableDiff {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deleted: u64,
    /// Lines of the new file to send, ascending: 1-based number and byte offset.
    pub send: Vec<Located>,
    /// One legacy id per line (JSON strings), the documents to delete; absent when none.
    pub deletes: Option<PathBuf>,
}

/// A line of a file: its 1-based number and the offset of its first byte.
pub type Located = (u64, u64);

/// Partition files of one side: fixed-size records, `partition_of` choosing the file.
struct Spill {
    paths: Vec<PathBuf>,
    writers: Vec<BufWriter<File>>,
}

impl Spill {
    fn create(work: &Path, name: &str, partitions: usize) -> Result<Self, ImportError> {
        let mut spill = Spill { paths: Vec::new(), writers: Vec::new() };
        for p in 0..partitions {
            let path = work.join(format!(".{name}-{p}.spill"));
            let file = File::create(&path).map_err(DataDirError::new("create", &path))?;
            spill.writers.push(BufWriter::with_capacity(128 << 10, file));
            spill.paths.push(path);
        }
        Ok(spill)
    }

    fn write(&mut self, hash: u128, rest: &[u8]) -> Result<(), ImportError> {
        let p = ((hash >> 64) as u64 % self.writers.len() as u64) as usize;
        let w = &mut self.writers[p];
        w.write_all(&hash.to_le_bytes())
            .and_then(|()| w.write_all(rest))
            .map_err(|e| DataDirError::new("write", &self.paths[p])(e).into())
    }

    /// Flushes; the partition files to read.
    fn finish(self) -> Result<Vec<PathBuf>, ImportError> {
        for (w, path) in self.writers.into_iter().zip(&self.paths) {
            w.into_inner().map_err(|e| DataDirError::new("write", path)(e.into_error()))?;
        }
        Ok(self.paths)
    }
}

/// Reads a partition file of `(hash, line, offset)` records into `each`, then removes it.
fn read_located(path: &Path, mut each: impl FnMut(u128, Located)) -> Result<(), ImportError> {
    let mut reader = reader(path)?;
    while let Some(record) = read_exact::<32>(&mut reader, path)? {
        let hash = u128::from_le_bytes(record[..16].try_into().expect("16 bytes"));
        let line = u64::from_le_bytes(record[16..24].try_into().expect("8 bytes"));
        each(hash, (line, u64::from_le_bytes(record[24..].try_into().expect("8 bytes"))));
    }
    drop(reader);
    Ok(crate::data_dir::remove_if_exists(path)?)
}

fn located_bytes((line, offset): Located) -> [u8; 16] {
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&line.to_le_bytes());
    bytes[8..].copy_from_slice(&offset.to_le_bytes());
    bytes
}

/// Hands `each` the text of the `wanted` lines (ascending) of a file whose line index describes
/// it as it is (or read whole before, its checksum checked): a few are read where they are, many
/// by reading the file through.
pub fn lines_at(
    file: &TransformedFile,
    wanted: &[Located],
    mut each: impl FnMut(u64, &[u8]) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    use std::io::{BufRead, Seek, SeekFrom};
    if wanted.is_empty() {
        return Ok(());
    }
    if (wanted.len() as u64) * 64 > file.lines {
        let mut next = wanted.iter().peekable();
        return file.for_each_line(|line, text| {
            if next.next_if(|(l, _)| *l == line).is_some() {
                each(line, text)?;
            }
            Ok(next.peek().is_some())
        });
    }
    let handle = File::open(&file.path).map_err(DataDirError::new("open", &file.path))?;
    let mut reader = BufReader::with_capacity(8 << 10, handle);
    let mut text = Vec::new();
    for &(line, offset) in wanted {
        text.clear();
        reader
            .seek(SeekFrom::Start(offset))
            .and_then(|_| reader.read_until(b'\n', &mut text))
            .map_err(DataDirError::new("read", &file.path))?;
        each(line, text.strip_suffix(b"\n").unwrap_or(&text))?;
    }
    Ok(())
}

/// Diffs `old` (none: nothing was sent) against `new`. `resend` names legacy ids to send even
/// when unchanged (documents Convex refused last time). Spill files go to `work` and are
/// removed before returning, except the deletes file.
pub fn diff(
    table: &str,
    old: Option<&TransformedFile>,
    new: &TransformedFile,
    legacy_field: &str,
    resend: &HashSet<String>,
    work: &Path,
) -> Result<TableDiff, ImportError> {
    diff_in(table, old, new, legacy_field, resend, work, PARTITION_ROWS)
}

fn diff_in(
    table: &str,
    old: Option<&TransformedFile>,
    new: &TransformedFile,
    legacy_field: &str,
    resend: &HashSet<String>,
    work: &Path,
    partition_rows: u64,
) -> Result<TableDiff, ImportError> {
    let lines = new.lines.max(old.map_or(0, |o| o.lines));
    let partitions = lines.div_ceil(partition_rows).max(1) as usize;

    // Stage 1: line hashes, from the files' indexes (built where missing, both at once).
    let (old_index, new_index) = std::thread::scope(|scope| {
        let old_side = scope.spawn(|| old.map(LineIndex::of).transpose());
        let new_side = LineIndex::of(new);
        (old_side.join().expect("the old side's reader does not panic"), new_side)
    });
    let (old_index, new_index) = (old_index?, new_index?);
    let mut old_only = Vec::new();
    let mut new_only = Vec::new();
    let mut result = TableDiff::default();
    let mut new_sorted = new_index.sorted()?;
    let mut old_sorted = old_index.as_ref().map(LineIndex::sorted).transpose()?;
    let mut next_old = || -> Result<Option<Entry>, ImportError> {
        old_sorted.as_mut().map_or(Ok(None), Sorted::next_entry)
    };
    let (mut o, mut n) = (next_old()?, new_sorted.next_entry()?);
    loop {
        match (o, n) {
            (Some(a), Some(b)) if a.hash == b.hash => {
                result.unchanged += 1;
                (o, n) = (next_old()?, new_sorted.next_entry()?);
            }
            (Some(a), Some(b)) if a.hash < b.hash => {
                old_only.push((a.line, a.offset));
                o = next_old()?;
            }
            (Some(a), None) => {
                old_only.push((a.line, a.offset));
                o = next_old()?;
            }
            (_, Some(b)) => {
                new_only.push((b.line, b.offset));
                n = new_sorted.next_entry()?;
            }
            (None, None) => break,
        }
    }
    old_only.sort_unstable();
    new_only.sort_unstable();

    // Stage 2: the legacy ids of the unmatched lines.
    let mut old_ids = Spill::create(work, &format!("{table}.old-ids"), partitions)?;
    if let Some(old) = old {
        lines_at(old, &old_only, |line, text| {
            let id = id_of(old, line, text, legacy_field)?;
            let mut rest = (id.len() as u64).to_le_bytes().to_vec();
            rest.extend_from_slice(id.as_bytes());
            old_ids.write(xxh3_128(id.as_bytes()), &rest)
        })?;
    }
    let old_ids = old_ids.finish()?;
    let mut new_ids = Spill::create(work, &format!("{table}.new-ids"), partitions)?;
    let offsets: HashMap<u64, u64> = new_only.iter().copied().collect();
    lines_at(new, &new_only, |line, text| {
        let id = id_of(new, line, text, legacy_field)?;
        new_ids.write(xxh3_128(id.as_bytes()), &located_bytes((line, offsets[&line])))
    })?;
    drop(offsets);
    // Unchanged documents Convex refused last time go again (rare: a scan of the file).
    let mut resent = Vec::new();
    if !resend.is_empty() {
        let mut offset = 0u64;
        let mut changed = new_only.iter().peekable();
        new.for_each_line(|line, text| {
            if changed.next_if(|(l, _)| *l == line).is_none()
                && resend.contains(&id_of(new, line, text, legacy_field)?)
            {
                resent.push((line, offset));
            }
            offset += text.len() as u64 + 1;
            Ok(true)
        })?;
    }
    let new_ids = new_ids.finish()?;

    let deletes_path = work.join(format!("{table}.deletes.jsonl"));
    let mut deletes = None::<BufWriter<File>>;
    for p in 0..partitions {
        let mut gone: HashMap<u128, String> = HashMap::new();
        let path = &old_ids[p];
        let mut reader = reader(path)?;
        while let Some(head) = read_exact::<24>(&mut reader, path)? {
            let hash = u128::from_le_bytes(head[..16].try_into().expect("16 bytes"));
            let len = u64::from_le_bytes(head[16..].try_into().expect("8 bytes")) as usize;
            let mut id = vec![0; len];
            reader.read_exact(&mut id).map_err(DataDirError::new("read", path))?;
            gone.insert(hash, String::from_utf8(id).expect("written from a string"));
        }
        drop(reader);
        crate::data_dir::remove_if_exists(path)?;
        read_located(&new_ids[p], |hash, at| {
            match gone.remove(&hash) {
                Some(_) => result.updated += 1,
                None => result.inserted += 1,
            }
            result.send.push(at);
        })?;
        for id in gone.into_values() {
            if deletes.is_none() {
                let file = File::create(&deletes_path)
                    .map_err(DataDirError::new("create", &deletes_path))?;
                deletes = Some(BufWriter::new(file));
            }
            let w = deletes.as_mut().expect("opened above");
            let mut text = Vec::with_capacity(id.len() + 3);
            crate::json_text::write_string(&mut text, &id);
            text.push(b'\n');
            w.write_all(&text).map_err(DataDirError::new("write", &deletes_path))?;
            result.deleted += 1;
        }
    }
    if let Some(w) = deletes {
        w.into_inner().map_err(|e| DataDirError::new("write", &deletes_path)(e.into_error()))?;
        result.deletes = Some(deletes_path);
    }
    result.unchanged -= resent.len() as u64;
    result.updated += resent.len() as u64;
    result.send.extend(resent);
    result.send.sort_unstable();
    Ok(result)
}

fn id_of(
    file: &TransformedFile,
    line: u64,
    text: &[u8],
    legacy_field: &str,
) -> Result<String, ImportError> {
    let bad_line = |reason: String| ImportError::BadLine { path: file.path.clone(), line, reason };
    legacy_id_of(text, legacy_field)
        .map_err(bad_line)?
        .ok_or_else(|| bad_line(format!("the document has no string field `{legacy_field}`")))
}

fn reader(path: &Path) -> Result<BufReader<File>, ImportError> {
    let file = File::open(path).map_err(DataDirError::new("open", path))?;
    Ok(BufReader::with_capacity(256 << 10, file))
}

/// The next `N` bytes, `None` at the end of the file.
fn read_exact<const N: usize>(
    reader: &mut BufReader<File>,
    path: &Path,
) -> Result<Option<[u8; N]>, ImportError> {
    let mut buf = [0u8; N];
    match reader.read_exact(&mut buf) {
        Ok(()) => Ok(Some(buf)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(DataDirError::new("read", path)(e).into()),
    }
}

/// The legacy ids in a deletes file, `batch` at a time.
pub fn read_deletes(
    path: &Path,
    batch: usize,
    mut each: impl FnMut(Vec<String>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    use std::io::BufRead;
    let mut ids = Vec::with_capacity(batch);
    for (index, line) in reader(path)?.lines().enumerate() {
        let line = line.map_err(DataDirError::new("read", path))?;
        let id: String = serde_json::from_str(&line).map_err(|e| ImportError::BadLine {
            path: path.to_owned(),
            line: index as u64 + 1,
            reason: e.to_string(),
        })?;
        ids.push(id);
        if ids.len() == batch {
            each(std::mem::take(&mut ids))?;
        }
    }
    if !ids.is_empty() {
        each(ids)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, lines: &[String]) -> TransformedFile {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let path = dir.join(name);
        std::fs::write(&path, &text).unwrap();
        TransformedFile {
            path,
            lines: lines.len() as u64,
            checksum: format!("blake3:{}", blake3::hash(text.as_bytes()).to_hex()),
        }
    }

    fn line(id: u32, value: &str) -> String {
        format!(r#"{{"doc":{{"legacyId":"{id}","v":"{value}"}},"refs":{{}}}}"#)
    }

    #[test]
    fn many_partitions_find_each_insert_update_delete_and_resend() {
        let dir = tempfile::tempdir().unwrap();
        let old: Vec<String> = (1..=1000).map(|i| line(i, "a")).collect();
        // 7 and 500 updated, 3 and 999 deleted, 1001 and 1002 inserted (1001 first: new lines
        // are numbered in the new file), 20 unchanged but refused last time.
        let mut new: Vec<String> = vec![line(1001, "n")];
        for i in 1..=1000u32 {
            match i {
                3 | 999 => {}
                7 | 500 => new.push(line(i, "b")),
                _ => new.push(line(i, "a")),
            }
        }
        new.push(line(1002, "n"));
        let (old_file, new_file) = (file(dir.path(), "old", &old), file(dir.path(), "new", &new));
        let resend: HashSet<String> = ["20".to_owned()].into();
        let diff =
            diff_in("t", Some(&old_file), &new_file, "legacyId", &resend, dir.path(), 64).unwrap();
        assert_eq!((diff.inserted, diff.updated, diff.deleted), (2, 3, 2));
        assert_eq!(diff.unchanged, 995);
        let line_of =
            |id: u32| new.iter().position(|l| l.contains(&format!("\"{id}\""))).unwrap() as u64 + 1;
        let mut expected: Vec<u64> = [1001, 7, 500, 20, 1002].map(line_of).to_vec();
        expected.sort_unstable();
        assert_eq!(diff.send.iter().map(|(line, _)| *line).collect::<Vec<_>>(), expected);
        // … each at its offset
        let mut sent = Vec::new();
        lines_at(&new_file, &diff.send, |line, text| {
            sent.push((line, String::from_utf8(text.to_vec()).unwrap()));
            Ok(())
        })
        .unwrap();
        assert!(sent.iter().all(|(line, text)| new[*line as usize - 1] == *text), "{sent:?}");
        let mut deleted = Vec::new();
        read_deletes(diff.deletes.as_ref().unwrap(), 100, |ids| {
            deleted.extend(ids);
            Ok(())
        })
        .unwrap();
        deleted.sort();
        assert_eq!(deleted, ["3", "999"]);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".spill"))
            .collect();
        assert!(left.is_empty(), "spill files left: {left:?}");

        // Nothing sent before: everything is an insert.
        let all =
            diff_in("t", None, &new_file, "legacyId", &HashSet::new(), dir.path(), 64).unwrap();
        assert_eq!((all.inserted, all.send.len()), (1000, 1000));
    }
}
