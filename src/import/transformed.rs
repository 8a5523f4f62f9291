//! `transformed/<table>.jsonl` as transform's manifest describes it, read line by line and
//! checked against the manifest's line count and BLAKE3 on the way: import and verify both
//! read it, and neither may take a changed or cut-short file for the real one.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use super::error::ImportError;
use crate::data_dir::{DataDir, DataDirError};
use crate::transform::TableReport;

#[derive(Debug, Clone)]
pub struct TransformedFile {
    pub path: PathBuf,
    /// From transform's manifest.
    pub lines: u64,
    pub checksum: String,
}

/// Bytes of lines gathered before they are hashed (see [`TransformedFile::for_each_line`]).
const UNHASHED: usize = 64 << 10;

impl TransformedFile {
    /// The table's file; `None` when transform wrote none (a dry run's manifest).
    pub fn of(data_dir: &DataDir, report: &TableReport) -> Option<Self> {
        Some(Self {
            path: data_dir.path(report.file.as_ref()?),
            lines: report.documents,
            checksum: report.checksum.clone().unwrap_or_default(),
        })
    }

    /// Hands every line (1-based number, text without its newline) to `each`, then checks the
    /// file against the manifest. `each` returning `Ok(false)` stops early, unchecked.
    pub fn for_each_line(
        &self,
        mut each: impl FnMut(u64, &[u8]) -> Result<bool, ImportError>,
    ) -> Result<(), ImportError> {
        let file = File::open(&self.path).map_err(DataDirError::new("open", &self.path))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut hasher = blake3::Hasher::new();
        // Lines are hashed 64 KiB at a time: BLAKE3 hashes a long input several blocks at once
        // (SIMD), a line of a few hundred bytes one block at a time; the checksum is the same.
        let mut unhashed = Vec::with_capacity(UNHASHED + (64 << 10));
        let mut text = Vec::new();
        let mut line = 0u64;
        loop {
            text.clear();
            let read = reader
                .read_until(b'\n', &mut text)
                .map_err(DataDirError::new("read", &self.path))?;
            if read == 0 {
                break;
            }
            unhashed.extend_from_slice(&text);
            if unhashed.len() >= UNHASHED {
                hasher.update(&unhashed);
                unhashed.clear();
            }
            line += 1;
            if !each(line, text.strip_suffix(b"\n").unwrap_or(&text))? {
                return Ok(());
            }
        }
        hasher.update(&unhashed);
        let checksum = format!("blake3:{}", hasher.finalize().to_hex());
        if line != self.lines || checksum != self.checksum {
            return Err(ImportError::TransformedChanged {
                path: self.path.clone(),
                lines: line,
                expected_lines: self.lines,
            });
        }
        Ok(())
    }
}
