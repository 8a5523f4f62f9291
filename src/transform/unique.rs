//! Legacy ids unique per Convex table, in bounded memory.
//!
//! Import upserts by legacy id, so two documents of one table with the same legacy id would
//! become one Convex document: the first silently replaced. A legacy id the catalog does not
//! vouch for (a table without a key whose plan names columns, or any plan `legacy_id`) can
//! repeat, so every written document's legacy id is checked, whatever the table's size:
//!
//! 1. The workers hash each written document's legacy id ([`id_hash`], 64 bits) and
//!    [`IdHashes`] collects the hashes; past a bound ([`ID_HASHES_IN_MEMORY`]) it sorts them and spills
//!    them to a run file in the data directory, so memory stays bounded.
//! 2. At the end of the table, merging the sorted runs gives the hashes seen more than once
//!    ([`IdHashes::repeated`]): usually none, and the check is done.
//! 3. Otherwise the table's rows whose hash repeats are read again to compare their actual ids
//!    (a 64-bit hash can collide); every row of a repeated id is moved from the transformed
//!    file to the rejects (`super::reject_repeated_ids`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rayon::slice::ParallelSliceMut;

use crate::data_dir::{self, DataDirError};

/// The hash of a legacy id (its string form's bytes). xxh3: fast on short keys, and 64 bits
/// of a good hash make a collision among a billion ids unlikely (about 3%); a collision costs
/// only a second look at the rows, never a wrong verdict.
pub fn id_hash(id: impl AsRef<[u8]>) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_ref())
}

/// Hashes kept in memory before they are sorted and spilled to a run file: 64 MiB.
pub const ID_HASHES_IN_MEMORY: usize = 8 << 20;

/// The legacy id hashes of one Convex table's documents, in memory up to a bound and in
/// sorted run files beyond it. Run files are removed when it is dropped.
pub struct IdHashes {
    buffer: Vec<u64>,
    bound: usize,
    /// Where run files go, and the start of their names.
    dir: PathBuf,
    stem: String,
    runs: Vec<PathBuf>,
}

impl IdHashes {
    /// Run files go to `dir` as `.<stem>.ids-<n>.partial` (a partial file, so that one an
    /// interrupted run leaves is removed by the next).
    pub fn new(dir: &Path, stem: &str, bound: usize) -> Self {
        IdHashes {
            buffer: Vec::new(),
            bound: bound.max(1),
            dir: dir.to_path_buf(),
            stem: stem.to_owned(),
            runs: Vec::new(),
        }
    }

    pub fn extend(&mut self, hashes: &[u64]) -> Result<(), DataDirError> {
        let mut hashes = hashes;
        while !hashes.is_empty() {
            let room = self.bound - self.buffer.len();
            let (now, later) = hashes.split_at(room.min(hashes.len()));
            self.buffer.extend_from_slice(now);
            hashes = later;
            if self.buffer.len() == self.bound {
                self.spill()?;
            }
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<(), DataDirError> {
        self.buffer.par_sort_unstable();
        let path = self.dir.join(format!(".{}.ids-{}.partial", self.stem, self.runs.len()));
        let file = File::create(&path).map_err(DataDirError::new("create", &path))?;
        self.runs.push(path.clone());
        let mut out = BufWriter::with_capacity(1 << 20, file);
        for hash in &self.buffer {
            out.write_all(&hash.to_le_bytes()).map_err(DataDirError::new("write", &path))?;
        }
        out.flush().map_err(DataDirError::new("write", &path))?;
        self.buffer.clear();
        Ok(())
    }

    /// The hashes seen more than once, sorted, each once.
    pub fn repeated(mut self) -> Result<Vec<u64>, DataDirError> {
        self.buffer.par_sort_unstable();
        let mut repeated = Vec::new();
        let mut note = |hash: u64, previous: Option<u64>| {
            if previous == Some(hash) && repeated.last() != Some(&hash) {
                repeated.push(hash);
            }
        };
        if self.runs.is_empty() {
            let mut previous = None;
            for &hash in &self.buffer {
                note(hash, previous);
                previous = Some(hash);
            }
            return Ok(repeated);
        }
        // A k-way merge of the runs and the sorted buffer.
        let mut sources = Vec::with_capacity(self.runs.len());
        for path in &self.runs {
            let file = File::open(path).map_err(DataDirError::new("open", path))?;
            sources.push(Sorted::Run { path, reader: BufReader::with_capacity(1 << 16, file) });
        }
        sources.push(Sorted::Memory(self.buffer.iter()));
        let mut heads = BinaryHeap::new();
        for (index, source) in sources.iter_mut().enumerate() {
            if let Some(hash) = source.next()? {
                heads.push(Reverse((hash, index)));
            }
        }
        let mut previous = None;
        while let Some(Reverse((hash, index))) = heads.pop() {
            note(hash, previous);
            previous = Some(hash);
            if let Some(next) = sources[index].next()? {
                heads.push(Reverse((next, index)));
            }
        }
        Ok(repeated)
    }
}

impl Drop for IdHashes {
    fn drop(&mut self) {
        for path in &self.runs {
            let _ = data_dir::remove_if_exists(path);
        }
    }
}

/// One sorted sequence of hashes in the merge.
enum Sorted<'a> {
    Run { path: &'a Path, reader: BufReader<File> },
    Memory(std::slice::Iter<'a, u64>),
}

impl Sorted<'_> {
    fn next(&mut self) -> Result<Option<u64>, DataDirError> {
        match self {
            Sorted::Memory(hashes) => Ok(hashes.next().copied()),
            Sorted::Run { path, reader } => {
                let mut bytes = [0; 8];
                match reader.read_exact(&mut bytes) {
                    Ok(()) => Ok(Some(u64::from_le_bytes(bytes))),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                    Err(e) => Err(DataDirError::new("read", *path)(e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeated(hashes: &[u64], bound: usize) -> (Vec<u64>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = IdHashes::new(dir.path(), "t", bound);
        // In blocks of three, as the pipeline hands them over.
        for block in hashes.chunks(3) {
            ids.extend(block).unwrap();
        }
        let runs = ids.runs.len();
        let found = ids.repeated().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "run files are removed");
        (found, runs)
    }

    #[test]
    fn repeated_hashes_are_found_in_memory_and_across_spilled_runs() {
        // GIVEN 1000 hashes where 5 values repeat (2 to 4 times), in no order
        let mut hashes: Vec<u64> =
            (0..1000u64).map(|n| n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        let repeats = [hashes[3], hashes[500], hashes[999], hashes[42], hashes[7]];
        hashes.extend([repeats[0], repeats[1], repeats[1], repeats[2], repeats[3]]);
        hashes.extend([repeats[3], repeats[3], repeats[4]]);
        fastrand::Rng::with_seed(7).shuffle(&mut hashes);
        let mut expected = repeats.to_vec();
        expected.sort_unstable();

        // WHEN everything fits in memory, THEN the repeated hashes are found, each once
        let (found, runs) = repeated(&hashes, ID_HASHES_IN_MEMORY);
        assert_eq!((found, runs), (expected.clone(), 0));
        // WHEN a tiny bound spills them to many runs (a repeat's copies in different runs)
        let (found, runs) = repeated(&hashes, 16);
        // THEN the merge finds the same
        assert_eq!(found, expected);
        assert_eq!(runs, hashes.len() / 16);
        // AND nothing is found where nothing repeats
        let unique: Vec<u64> = (0..100).collect();
        assert_eq!(repeated(&unique, 7).0, Vec::<u64>::new());
    }

    #[test]
    fn a_legacy_id_hashes_the_same_from_a_str_and_a_string() {
        assert_eq!(id_hash("42"), id_hash(String::from("42")));
        assert_ne!(id_hash("42"), id_hash("43"));
    }
}
