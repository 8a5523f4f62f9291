//! `<file>.lines`: the XXH3-128 of every line of a transformed file, with the line's number and
//! byte offset, sorted by hash in runs, beside the file.
//!
//! Transform writes one with each file and `import::sent` keeps it with the file it records, so
//! `migrate sync` finds the unchanged documents of two files by merging their sorted hashes,
//! without reading either file through. An index names the size and modification time of the
//! file it describes and the checksum the manifest gives it: a file written again or edited
//! since has another, and its index is stale. A missing or stale index is built again by reading
//! the file through, which checks it against its manifest.
//!
//! `export` keeps the same kind of index of its raw files, with the hash of each row's key in
//! place of the line's (`export::incremental`).
//!
//! The layout: runs of 32-byte entries (hash, line, offset; little-endian), each run sorted by
//! hash and at most [`RUN_ENTRIES`] long, so that writing takes bounded memory and time spread
//! over the file; then a JSON trailer and its length as 8 bytes. Reading merges the runs (one
//! buffered reader per run).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use super::error::ImportError;
use super::transformed::TransformedFile;
use crate::data_dir::DataDirError;

/// Entries sorted in memory before a run is written: 4 MiB, so that transform sorts and writes
/// a run while its workers go on, and little is left to sort when the file ends.
const RUN_ENTRIES: usize = 1 << 17;
/// Bytes of read buffer the runs of one index share when it is read (64 KiB per run at most).
const READ_BUFFERS: usize = 8 << 20;
const ENTRY: usize = 32;

/// A line of an indexed file: the hash of its bytes (newline excluded), its 1-based number and
/// the offset of its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub hash: u128,
    pub line: u64,
    pub offset: u64,
}

/// The hash an index holds for a line (without its newline).
pub fn line_hash(text: &[u8]) -> u128 {
    xxh3_128(text)
}

/// Where the index of `file` is.
pub fn path_of(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".lines");
    PathBuf::from(name)
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Trailer {
    /// The file's manifest checksum, line count, size and modification time (ns since the epoch)
    /// when the index was written.
    checksum: String,
    lines: u64,
    size: u64,
    modified_ns: u128,
    /// Entries per run, in file order.
    runs: Vec<u64>,
    /// The XXH3-128 of the entries' bytes, hex: an index edited or damaged since is not used
    /// (empty in an index written before it was recorded: not used either).
    #[serde(default)]
    entries: String,
}

/// The size and modification time of `path`, as an index records them.
fn stamp(path: &Path) -> Result<(u64, u128), DataDirError> {
    let metadata = std::fs::metadata(path).map_err(DataDirError::new("read", path))?;
    let modified = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok((metadata.len(), modified))
}

/// Writes the index of a file whose lines are handed over in order.
pub struct LineIndexWriter {
    to: PathBuf,
    partial: PathBuf,
    out: BufWriter<File>,
    /// The hash of the entries written so far.
    hasher: xxhash_rust::xxh3::Xxh3,
    run: Vec<Entry>,
    run_entries: usize,
    runs: Vec<u64>,
    line: u64,
    offset: u64,
}

impl LineIndexWriter {
    /// An index for `file`, written under a partial name of its own until
    /// [`finish`](Self::finish): two writers of one index (targets syncing at once, each finding
    /// it missing) never write into each other's file; the last to finish puts its copy in place.
    pub fn create(file: &Path) -> Result<Self, DataDirError> {
        Self::create_at(path_of(file))
    }

    /// An index written to `to` (an index of something else than lines: `export`'s of keys).
    pub fn create_at(to: PathBuf) -> Result<Self, DataDirError> {
        static WRITERS: AtomicU64 = AtomicU64::new(0);
        let mut partial = to.clone().into_os_string();
        let writer = WRITERS.fetch_add(1, Ordering::Relaxed);
        partial.push(format!(".{}-{writer}.partial", std::process::id()));
        let partial = PathBuf::from(partial);
        let out = File::create(&partial).map_err(DataDirError::new("create", &partial))?;
        Ok(Self {
            to,
            out: BufWriter::with_capacity(256 << 10, out),
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            partial,
            run: Vec::with_capacity(RUN_ENTRIES),
            run_entries: RUN_ENTRIES,
            runs: Vec::new(),
            line: 0,
            offset: 0,
        })
    }

    /// The next line: its [`line_hash`] and its length without the newline.
    pub fn push(&mut self, hash: u128, len: u64) -> Result<(), DataDirError> {
        self.line += 1;
        self.run.push(Entry { hash, line: self.line, offset: self.offset });
        self.offset += len + 1;
        if self.run.len() == self.run_entries {
            self.write_run()?;
        }
        Ok(())
    }

    /// An entry whose hash, line and offset the caller gives (a key index: the hash of a row's
    /// key, not of its line), in any order.
    pub fn push_entry(&mut self, entry: Entry) -> Result<(), DataDirError> {
        self.line += 1;
        self.run.push(entry);
        if self.run.len() == self.run_entries {
            self.write_run()?;
        }
        Ok(())
    }

    /// Every line of `bytes` (whole lines, each ending in a newline).
    pub fn push_lines(&mut self, bytes: &[u8]) -> Result<(), DataDirError> {
        if bytes.is_empty() {
            return Ok(());
        }
        for text in bytes.strip_suffix(b"\n").unwrap_or(bytes).split(|&b| b == b'\n') {
            self.push(line_hash(text), text.len() as u64)?;
        }
        Ok(())
    }

    fn write_run(&mut self) -> Result<(), DataDirError> {
        self.run.sort_unstable_by_key(|e| e.hash);
        for entry in &self.run {
            let mut bytes = [0u8; ENTRY];
            bytes[..16].copy_from_slice(&entry.hash.to_le_bytes());
            bytes[16..24].copy_from_slice(&entry.line.to_le_bytes());
            bytes[24..].copy_from_slice(&entry.offset.to_le_bytes());
            self.hasher.update(&bytes);
            self.out.write_all(&bytes).map_err(DataDirError::new("write", &self.partial))?;
        }
        self.runs.push(self.run.len() as u64);
        self.run.clear();
        Ok(())
    }

    /// Ends the index of `file` (written and renamed into place, with `checksum` and the line
    /// count its manifest gives it) and moves it to its name.
    pub fn finish(mut self, file: &Path, checksum: &str) -> Result<(), DataDirError> {
        if !self.run.is_empty() {
            self.write_run()?;
        }
        let (size, modified_ns) = stamp(file)?;
        let trailer = Trailer {
            checksum: checksum.to_owned(),
            lines: self.line,
            size,
            modified_ns,
            runs: std::mem::take(&mut self.runs),
            entries: format!("{:032x}", self.hasher.digest128()),
        };
        let text = serde_json::to_vec(&trailer).expect("a trailer serializes");
        let write = |out: &mut BufWriter<File>| {
            out.write_all(&text)?;
            out.write_all(&(text.len() as u64).to_le_bytes())?;
            out.flush()
        };
        write(&mut self.out).map_err(DataDirError::new("write", &self.partial))?;
        std::fs::rename(&self.partial, &self.to)
            .map_err(DataDirError::new("rename into place", &self.to))
    }
}

/// A writer dropped before it finished (a failed or stopped transform) leaves no partial file.
impl Drop for LineIndexWriter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.partial);
    }
}

/// The index of a file, checked to describe it as it is.
#[derive(Debug)]
pub struct LineIndex {
    path: PathBuf,
    runs: Vec<u64>,
}

impl LineIndex {
    /// The index of `file`: the one beside it when it describes the file as it is now, or one
    /// built by reading the file through (which checks it against its manifest) and left beside
    /// it for next time.
    pub fn of(file: &TransformedFile) -> Result<Self, ImportError> {
        if let Some(index) = Self::open(file)? {
            return Ok(index);
        }
        let mut writer = LineIndexWriter::create(&file.path)?;
        let built = file.for_each_line(|_, text| {
            writer.push(line_hash(text), text.len() as u64)?;
            Ok(true)
        });
        built?;
        writer.finish(&file.path, &file.checksum)?;
        Self::open(file)?.ok_or_else(|| ImportError::TransformedChanged {
            path: file.path.clone(),
            lines: 0,
            expected_lines: file.lines,
        })
    }

    /// The index beside `file`, `None` when there is none or it is stale.
    pub fn open(file: &TransformedFile) -> Result<Option<Self>, ImportError> {
        Self::open_at(path_of(&file.path), file)
    }

    /// The index at `path` of `file`, `None` when there is none or it is stale.
    pub fn open_at(path: PathBuf, file: &TransformedFile) -> Result<Option<Self>, ImportError> {
        let Some(trailer) = read_trailer(&path)? else { return Ok(None) };
        let (size, modified_ns) = stamp(&file.path)?;
        let current = trailer.checksum == file.checksum
            && trailer.lines == file.lines
            && trailer.size == size
            && trailer.modified_ns == modified_ns
            && trailer.runs.iter().sum::<u64>() == file.lines
            && entries_hash(&path, file.lines)? == trailer.entries;
        Ok(current.then_some(Self { path, runs: trailer.runs }))
    }

    /// Every entry, by ascending hash.
    pub fn sorted(&self) -> Result<Sorted, ImportError> {
        let mut readers = Vec::with_capacity(self.runs.len());
        let buffer = (READ_BUFFERS / self.runs.len().max(1)).clamp(4 << 10, 64 << 10);
        let mut start = 0u64;
        for &entries in &self.runs {
            let mut file = File::open(&self.path).map_err(DataDirError::new("open", &self.path))?;
            file.seek(SeekFrom::Start(start)).map_err(DataDirError::new("read", &self.path))?;
            readers.push((BufReader::with_capacity(buffer, file), entries));
            start += entries * ENTRY as u64;
        }
        let mut sorted = Sorted { path: self.path.clone(), readers, heap: BinaryHeap::new() };
        for run in 0..sorted.readers.len() {
            sorted.refill(run)?;
        }
        Ok(sorted)
    }
}

/// The hash of the first `entries` entries of the index at `path`, as its trailer records it.
fn entries_hash(path: &Path, entries: u64) -> Result<String, DataDirError> {
    let file = File::open(path).map_err(DataDirError::new("open", path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file).take(entries * ENTRY as u64);
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => hasher.update(&buffer[..read]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DataDirError::new("read", path)(e)),
        }
    }
    Ok(format!("{:032x}", hasher.digest128()))
}

fn read_trailer(path: &Path) -> Result<Option<Trailer>, DataDirError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DataDirError::new("open", path)(e)),
    };
    let read = |file: &mut File| -> std::io::Result<Option<Vec<u8>>> {
        let size = file.metadata()?.len();
        if size < 8 {
            return Ok(None);
        }
        let mut len = [0u8; 8];
        file.seek(SeekFrom::Start(size - 8))?;
        file.read_exact(&mut len)?;
        let len = u64::from_le_bytes(len);
        if len > size - 8 {
            return Ok(None);
        }
        let mut text = vec![0; len as usize];
        file.seek(SeekFrom::Start(size - 8 - len))?;
        file.read_exact(&mut text)?;
        Ok(Some(text))
    };
    let text = read(&mut file).map_err(DataDirError::new("read", path))?;
    // An index that does not parse is as good as none: it is built again.
    Ok(text.and_then(|t| serde_json::from_slice(&t).ok()))
}

/// The entries of an index by ascending hash: a merge of its runs.
pub struct Sorted {
    path: PathBuf,
    readers: Vec<(BufReader<File>, u64)>,
    heap: BinaryHeap<Reverse<(Entry, usize)>>,
}

impl Sorted {
    fn refill(&mut self, run: usize) -> Result<(), ImportError> {
        let (reader, left) = &mut self.readers[run];
        if *left == 0 {
            return Ok(());
        }
        *left -= 1;
        let mut bytes = [0u8; ENTRY];
        reader.read_exact(&mut bytes).map_err(DataDirError::new("read", &self.path))?;
        let entry = Entry {
            hash: u128::from_le_bytes(bytes[..16].try_into().expect("16 bytes")),
            line: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
            offset: u64::from_le_bytes(bytes[24..].try_into().expect("8 bytes")),
        };
        self.heap.push(Reverse((entry, run)));
        Ok(())
    }

    /// The next entry, `None` after the last.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ImportError> {
        let Some(Reverse((entry, run))) = self.heap.pop() else { return Ok(None) };
        self.refill(run)?;
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_lists_every_line_by_hash_and_goes_stale_when_its_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let lines: Vec<String> = (0..2500).map(|i| format!("{{\"n\":{i}}}")).collect();
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let file = TransformedFile {
            path: path.clone(),
            lines: lines.len() as u64,
            checksum: format!("blake3:{}", blake3::hash(text.as_bytes()).to_hex()),
        };
        // Written in runs of 1000 entries, as transform writes a file of millions, and handed
        // blocks of lines as transform writes them.
        let mut writer = LineIndexWriter::create(&path).unwrap();
        writer.run_entries = 1000;
        for block in lines.chunks(300) {
            writer
                .push_lines(block.iter().map(|l| format!("{l}\n")).collect::<String>().as_bytes())
                .unwrap();
        }
        writer.push_lines(b"").unwrap();
        writer.finish(&path, &file.checksum).unwrap();

        let index = LineIndex::open(&file).unwrap().expect("fresh");
        assert_eq!(index.runs, [1000, 1000, 500]);
        let mut sorted = index.sorted().unwrap();
        let mut entries = Vec::new();
        while let Some(entry) = sorted.next_entry().unwrap() {
            entries.push(entry);
        }
        assert_eq!(entries.len(), lines.len());
        assert!(entries.windows(2).all(|w| w[0].hash < w[1].hash), "ascending hashes");
        for entry in &entries {
            let line = &lines[entry.line as usize - 1];
            assert_eq!(entry.hash, line_hash(line.as_bytes()));
            assert_eq!(&text[entry.offset as usize..][..line.len()], line);
        }

        // Its entries edited (an offset pointing elsewhere), the trailer left as it was: not used.
        let index_path = path_of(&path);
        let mut bytes = std::fs::read(&index_path).unwrap();
        bytes[24] ^= 1;
        std::fs::write(&index_path, &bytes).unwrap();
        assert!(LineIndex::open(&file).unwrap().is_none(), "an edited index is not used");
        bytes[24] ^= 1;
        std::fs::write(&index_path, &bytes).unwrap();
        assert!(LineIndex::open(&file).unwrap().is_some(), "as written, it is used again");

        // Edited after (same length, so only the time tells): stale, and built again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, text.replace("{\"n\":7}", "{\"n\":8}")).unwrap();
        assert!(LineIndex::open(&file).unwrap().is_none(), "an edited file's index is stale");
        let error = LineIndex::of(&file).unwrap_err();
        assert!(matches!(error, ImportError::TransformedChanged { .. }), "{error}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".partial"))
            .collect();
        assert!(left.is_empty(), "a failed build leaves no partial file: {left:?}");
        std::fs::write(&path, &text).unwrap();
        let rebuilt = LineIndex::of(&file).unwrap();
        assert_eq!(rebuilt.runs, vec![lines.len() as u64]);
    }

    #[test]
    fn two_builders_of_one_missing_index_both_succeed_and_leave_a_sound_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let text: String = (0..200_000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let file = TransformedFile {
            path: path.clone(),
            lines: 200_000,
            checksum: format!("blake3:{}", blake3::hash(text.as_bytes()).to_hex()),
        };
        std::thread::scope(|scope| {
            let builders: Vec<_> = (0..2).map(|_| scope.spawn(|| LineIndex::of(&file))).collect();
            for builder in builders {
                builder.join().unwrap().unwrap();
            }
        });
        let index = LineIndex::open(&file).unwrap().expect("in place and fresh");
        let mut sorted = index.sorted().unwrap();
        let mut count = 0;
        while let Some(entry) = sorted.next_entry().unwrap() {
            assert_eq!(entry.hash, line_hash(format!("{{\"n\":{}}}", entry.line - 1).as_bytes()));
            count += 1;
        }
        assert_eq!(count, 200_000);
    }
}
