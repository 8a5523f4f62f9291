//! One table's difference between what the deployment last received (`import::sent`) and the
//! new transformed file, in bounded memory.
//!
//! Each line of either file is reduced to the XXH3-128 of its legacy id and the XXH3-128 of the
//! whole line (transform writes a document's line byte for byte the same when the row and the
//! plan did not change: fields in name order). Records go into P partition files per side by
//! the id's hash (P grows with the table, one partition per [`PARTITION_ROWS`] lines), and each
//! partition is compared on its own: the old side's records in a hash map, the new side's
//! streamed past it. Memory holds one partition; what comes out is the sorted list of new lines
//! to send (8 bytes per changed document) and a file of the legacy ids to delete.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_128;

use crate::data_dir::DataDirError;
use crate::import::ImportError;
use crate::import::batches::legacy_id_of;
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
    /// 1-based lines of the new file to send, ascending.
    pub send: Vec<u64>,
    /// One legacy id per line (JSON strings), the documents to delete; absent when none.
    pub deletes: Option<PathBuf>,
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
    let lines = new.lines.max(old.map_or(0, |o| o.lines));
    let partitions = lines.div_ceil(PARTITION_ROWS).max(1) as usize;
    let spill = |side: &str, p: usize| work.join(format!(".{table}.{side}-{p}.spill"));
    let partition_of = |id_hash: u128| ((id_hash >> 64) as u64 % partitions as u64) as usize;
    let open = |side: &str| -> Result<Vec<BufWriter<File>>, ImportError> {
        (0..partitions)
            .map(|p| {
                let path = spill(side, p);
                let file = File::create(&path).map_err(DataDirError::new("create", &path))?;
                Ok(BufWriter::with_capacity(256 << 10, file))
            })
            .collect()
    };
    let write_err = |path: PathBuf| DataDirError::new("write", path);

    // Old side: id hash, line hash, the legacy id itself (for the deletes).
    if let Some(old) = old {
        let mut writers = open("old")?;
        old.for_each_line(|line, text| {
            let id = id_of(old, line, text, legacy_field)?;
            let id_hash = xxh3_128(id.as_bytes());
            let p = partition_of(id_hash);
            let w = &mut writers[p];
            w.write_all(&id_hash.to_le_bytes())
                .and_then(|()| w.write_all(&xxh3_128(text).to_le_bytes()))
                .and_then(|()| w.write_all(&(id.len() as u32).to_le_bytes()))
                .and_then(|()| w.write_all(id.as_bytes()))
                .map_err(write_err(spill("old", p)))?;
            Ok(true)
        })?;
        for (p, mut w) in writers.into_iter().enumerate() {
            w.flush().map_err(write_err(spill("old", p)))?;
        }
    }
    // New side: id hash, line hash, line number, whether to send it anyway.
    let mut writers = open("new")?;
    new.for_each_line(|line, text| {
        let id = id_of(new, line, text, legacy_field)?;
        let id_hash = xxh3_128(id.as_bytes());
        let p = partition_of(id_hash);
        let w = &mut writers[p];
        w.write_all(&id_hash.to_le_bytes())
            .and_then(|()| w.write_all(&xxh3_128(text).to_le_bytes()))
            .and_then(|()| w.write_all(&line.to_le_bytes()))
            .and_then(|()| w.write_all(&[u8::from(resend.contains(&id))]))
            .map_err(write_err(spill("new", p)))?;
        Ok(true)
    })?;
    for (p, mut w) in writers.into_iter().enumerate() {
        w.flush().map_err(write_err(spill("new", p)))?;
    }

    let mut result = TableDiff::default();
    let deletes_path = work.join(format!("{table}.deletes.jsonl"));
    let mut deletes = None::<BufWriter<File>>;
    for p in 0..partitions {
        let mut sent: HashMap<u128, (u128, String)> = HashMap::new();
        if old.is_some() {
            let path = spill("old", p);
            let mut reader = reader(&path)?;
            while let Some(head) = read_exact::<36>(&mut reader, &path)? {
                let id_hash = u128::from_le_bytes(head[..16].try_into().unwrap());
                let line_hash = u128::from_le_bytes(head[16..32].try_into().unwrap());
                let len = u32::from_le_bytes(head[32..].try_into().unwrap()) as usize;
                let mut id = vec![0; len];
                reader.read_exact(&mut id).map_err(DataDirError::new("read", &path))?;
                let id = String::from_utf8(id).expect("written from a string");
                sent.insert(id_hash, (line_hash, id));
            }
            drop(reader);
            crate::data_dir::remove_if_exists(&path)?;
        }
        let path = spill("new", p);
        let mut reader = reader(&path)?;
        while let Some(record) = read_exact::<41>(&mut reader, &path)? {
            let id_hash = u128::from_le_bytes(record[..16].try_into().unwrap());
            let line_hash = u128::from_le_bytes(record[16..32].try_into().unwrap());
            let line = u64::from_le_bytes(record[32..40].try_into().unwrap());
            match sent.remove(&id_hash) {
                None => {
                    result.inserted += 1;
                    result.send.push(line);
                }
                Some((before, _)) if before != line_hash || record[40] == 1 => {
                    result.updated += 1;
                    result.send.push(line);
                }
                Some(_) => result.unchanged += 1,
            }
        }
        drop(reader);
        crate::data_dir::remove_if_exists(&path)?;
        for (_, (_, id)) in sent {
            if deletes.is_none() {
                let file = File::create(&deletes_path)
                    .map_err(DataDirError::new("create", &deletes_path))?;
                deletes = Some(BufWriter::new(file));
            }
            let w = deletes.as_mut().expect("opened above");
            let mut text = Vec::with_capacity(id.len() + 3);
            crate::json_text::write_string(&mut text, &id);
            text.push(b'\n');
            w.write_all(&text).map_err(write_err(deletes_path.clone()))?;
            result.deleted += 1;
        }
    }
    if let Some(mut w) = deletes {
        w.flush().map_err(write_err(deletes_path.clone()))?;
        result.deletes = Some(deletes_path);
    }
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
