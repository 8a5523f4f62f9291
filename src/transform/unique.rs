//! Legacy ids unique per Convex table, in bounded memory.
//!
//! Import upserts by legacy id, so two documents of one table with the same legacy id would
//! become one Convex document: the first silently replaced. A legacy id the catalog does not
//! vouch for (a table without a key whose plan names columns, or any plan `legacy_id`) can
//! repeat, so every written document's legacy id is checked, whatever the table's size:
//!
//! 1. The workers hash each written document's legacy id ([`id_hash`], 64 bits) and
//!    [`IdHashes`] collects the hashes; past a bound ([`ID_HASHES_IN_MEMORY`]) it partitions
//!    them by their top bits into bucket files in the data directory, so memory stays bounded.
//! 2. At the end of the table, sorting each bucket on its own gives the hashes seen more than
//!    once ([`IdHashes::repeated`]): usually none, and the check is done.
//! 3. Otherwise the table's rows whose hash repeats are read again to compare their actual ids
//!    (a 64-bit hash can collide); every row of a repeated id is moved from the transformed
//!    file to the rejects (`super::reject_repeated_ids`).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rayon::iter::{IntoParallelRefMutIterator, ParallelIterator};
use rayon::slice::ParallelSliceMut;

use crate::data_dir::{self, DataDirError};

/// The hash of a legacy id (its string form's bytes). xxh3: fast on short keys, and 64 bits
/// of a good hash make a collision among a billion ids unlikely (about 3%); a collision costs
/// only a second look at the rows, never a wrong verdict.
pub fn id_hash(id: impl AsRef<[u8]>) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_ref())
}

/// Hashes kept in memory before they go to bucket files: 1 MiB, so that transform's memory
/// stays flat from 100k rows on.
pub const ID_HASHES_IN_MEMORY: usize = 1 << 17;

/// Bucket files past the bound: the hash's top bits choose one, so that equal hashes meet in
/// one bucket, and each bucket is sorted on its own at the end (1/64 of the table's hashes: up
/// to 12.5 MiB at 100M rows).
const BUCKETS: usize = 64;
/// Each bucket file's write buffer.
const BUCKET_BUFFER: usize = 8 << 10;

/// The legacy id hashes of one Convex table's documents: in memory up to a bound, then
/// partitioned by their top bits into bucket files. Bucket files are removed when it is
/// dropped.
pub struct IdHashes {
    buffer: Vec<u64>,
    bound: usize,
    /// Where bucket files go, and the start of their names.
    dir: PathBuf,
    stem: String,
    buckets: Vec<(PathBuf, BufWriter<File>)>,
}

impl IdHashes {
    /// Bucket files go to `dir` as `.<stem>.ids-<n>.partial` (a partial file, so that one an
    /// interrupted run leaves is removed by the next).
    pub fn new(dir: &Path, stem: &str, bound: usize) -> Self {
        IdHashes {
            buffer: Vec::new(),
            bound: bound.max(1),
            dir: dir.to_path_buf(),
            stem: stem.to_owned(),
            buckets: Vec::new(),
        }
    }

    pub fn extend(&mut self, hashes: &[u64]) -> Result<(), DataDirError> {
        if self.buckets.is_empty() {
            if self.buffer.len() + hashes.len() <= self.bound {
                self.buffer.extend_from_slice(hashes);
                return Ok(());
            }
            self.open_buckets()?;
            let buffer = std::mem::take(&mut self.buffer);
            self.spread(&buffer)?;
        }
        self.spread(hashes)
    }

    fn open_buckets(&mut self) -> Result<(), DataDirError> {
        for n in 0..BUCKETS {
            let path = self.dir.join(format!(".{}.ids-{n}.partial", self.stem));
            let file = File::create(&path).map_err(DataDirError::new("create", &path))?;
            self.buckets.push((path, BufWriter::with_capacity(BUCKET_BUFFER, file)));
        }
        Ok(())
    }

    fn spread(&mut self, hashes: &[u64]) -> Result<(), DataDirError> {
        for &hash in hashes {
            let (path, out) = &mut self.buckets[bucket(hash)];
            out.write_all(&hash.to_le_bytes()).map_err(DataDirError::new("write", &*path))?;
        }
        Ok(())
    }

    /// The hashes seen more than once, sorted, each once.
    pub fn repeated(mut self) -> Result<Vec<u64>, DataDirError> {
        let mut repeated = Vec::new();
        if self.buckets.is_empty() {
            self.buffer.par_sort_unstable();
            find_repeated(&self.buffer, &mut repeated);
            return Ok(repeated);
        }
        // Buckets in order of their top bits: the result comes out sorted. A few at a time,
        // one per thread.
        drop(std::mem::take(&mut self.buffer));
        let found: Vec<Result<Vec<u64>, DataDirError>> = self
            .buckets
            .par_iter_mut()
            .map(|(path, out)| {
                out.flush().map_err(DataDirError::new("write", &*path))?;
                let mut bytes = Vec::new();
                let mut file = File::open(&*path).map_err(DataDirError::new("open", &*path))?;
                file.read_to_end(&mut bytes).map_err(DataDirError::new("read", &*path))?;
                let mut hashes: Vec<u64> = bytes
                    .chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect();
                drop(bytes);
                hashes.sort_unstable();
                let mut repeated = Vec::new();
                find_repeated(&hashes, &mut repeated);
                Ok(repeated)
            })
            .collect();
        for bucket in found {
            repeated.extend(bucket?);
        }
        Ok(repeated)
    }
}

/// The bucket of a hash: its top bits.
fn bucket(hash: u64) -> usize {
    (hash >> (64 - BUCKETS.trailing_zeros())) as usize
}

/// Appends the values of sorted `hashes` that appear more than once, each once.
fn find_repeated(hashes: &[u64], repeated: &mut Vec<u64>) {
    for pair in hashes.windows(2) {
        if pair[0] == pair[1] && repeated.last() != Some(&pair[0]) {
            repeated.push(pair[0]);
        }
    }
}

impl Drop for IdHashes {
    fn drop(&mut self) {
        for (path, _) in self.buckets.drain(..) {
            let _ = data_dir::remove_if_exists(&path);
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
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        let found = ids.repeated().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "bucket files are removed");
        (found, files)
    }

    #[test]
    fn repeated_hashes_are_found_in_memory_and_across_bucket_files() {
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
        let (found, files) = repeated(&hashes, ID_HASHES_IN_MEMORY);
        assert_eq!((found, files), (expected.clone(), 0));
        // WHEN a tiny bound sends them to bucket files, a repeat's copies before and after
        let (found, files) = repeated(&hashes, 16);
        // THEN the buckets find the same
        assert_eq!(found, expected);
        assert_eq!(files, BUCKETS);
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
