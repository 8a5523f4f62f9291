//! `migrate export --incremental`: a table's raw file brought up to the new snapshot by reading
//! only what changed since the previous export, instead of every row.
//!
//! Postgres stamps every row version with the transaction that wrote it (`xmin`). A row version
//! written after the previous snapshot was taken has an `xmin` at or after that snapshot's
//! `xmin` (the oldest transaction still running then), so `age(xmin) <= age(<that xmin>)`
//! selects every row inserted or updated since, and a few more (those of transactions that had
//! finished when it was taken). The keys of the table's rows as they are now (read from its
//! primary key) tell which of the previous rows are gone. The new file is the previous one
//! without the lines of changed or gone rows, then the changed rows. Airbyte's "xmin" sync mode
//! detects changes the same way.
//!
//! What is read from the previous export is trusted only as far as it is checked: its file is
//! read through and must match the checksum of its manifest, and its key index
//! (`keys/<table>.jsonl.keys`, written by every export of a table with a primary key) must
//! describe that file. A table is exported whole instead when anything says the previous rows
//! may not stand for the ones of now: no key index, another catalog (a column added with a
//! default, a renamed enum label: values that change without a new row version), a column of a
//! composite or an extension's type (its text form can change the same way), another
//! server version, a previous snapshot more than a billion transactions ago (`xmin` is 32 bits
//! and wraps), or rows there now that neither the previous export nor the changed ones hold
//! (a partition attached with its rows).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use tokio_postgres::Client;

use super::binary_copy::RowDecoder;
use super::{ExportError, copy_rows, copy_statement_of};
use crate::catalog::{PgType, Table, TableKind};
use crate::data_dir::{DataDir, DataDirError, JsonlWriter};
use crate::import::line_index::{Entry, LineIndex, LineIndexWriter};
use crate::import::transformed::TransformedFile;
use crate::manifest::{ExportedTable, Manifest};

/// How far back a previous snapshot may be, in transactions: well inside the 2^31 that 32-bit
/// `xmin` comparisons can tell apart.
const MAX_AGE: u64 = 1 << 30;

/// Where the key index of a raw file (`<data>/raw/<name>`) is: `<data>/keys/<name>.keys`, out
/// of `raw/`, which holds exactly what the manifest lists.
pub fn keys_path(raw: &std::path::Path) -> PathBuf {
    let name = raw.file_name().unwrap_or_default().to_string_lossy();
    let data = raw.parent().and_then(std::path::Path::parent).unwrap_or(std::path::Path::new(""));
    data.join(KEYS_DIR).join(format!("{name}.keys"))
}

/// The key indexes' directory in the data directory.
pub const KEYS_DIR: &str = "keys";

/// The fields of a table's primary key, by position among its columns; `None` without one.
pub fn key_fields(table: &Table) -> Option<Vec<usize>> {
    if table.primary_key.is_empty() {
        return None;
    }
    table.primary_key.iter().map(|key| table.columns.iter().position(|c| &c.name == key)).collect()
}

/// The previous export an incremental one starts from, and its snapshot's oldest transaction.
pub struct Previous {
    pub manifest: Manifest,
    xmin: u64,
}

impl Previous {
    /// The export in `data_dir`, when an incremental export can start from it.
    pub fn of(manifest: Option<Manifest>) -> Result<Self, String> {
        let manifest = manifest.ok_or("there is no previous export")?;
        if !matches!(manifest.source, crate::manifest::Source::Server { .. }) {
            return Err("the previous export was not read from a server".into());
        }
        let xmin =
            manifest.snapshot.xmin().ok_or("the previous export's snapshot is not recorded")?;
        Ok(Self { manifest, xmin })
    }

    /// Why an export of `source`, whose snapshot's oldest transaction is `xmin`, cannot start
    /// from this one: `None` when it can.
    pub fn unusable(&self, source: &crate::manifest::Source, xmin: u64) -> Option<String> {
        use crate::manifest::Source::Server;
        let (
            Server {
                url: previous_url,
                database: previous_database,
                server_version: previous_version,
                identity: previous_identity,
            },
            Server { url, database, server_version, identity },
        ) = (&self.manifest.source, source)
        else {
            return Some("the previous export was not read from a server".into());
        };
        if previous_url != url {
            return Some(format!("the previous export read `{previous_url}`"));
        }
        if identity.is_none() || previous_identity != identity {
            // Another cluster, a restored one (another timeline), or the database made again:
            // its row versions say nothing about the previous export's.
            return Some("the server or database is not the one the previous export read".into());
        }
        if previous_database != database {
            return Some(format!("the previous export read database `{previous_database}`"));
        }
        if previous_version != server_version {
            return Some(format!("the previous export read PostgreSQL {previous_version}"));
        }
        if xmin < self.xmin || xmin - self.xmin > MAX_AGE {
            return Some("the previous export's snapshot is too many transactions ago".into());
        }
        None
    }

    /// What `table` can be brought up to date from: the previous export's file of it and the
    /// fields of its primary key; else why it is read whole.
    pub fn base_of(&self, table: &Table) -> Result<Base<'_>, String> {
        let Some(previous) = self.manifest.catalog.tables.iter().find(|t| t.name == table.name)
        else {
            return Err("it is new".into());
        };
        if !matches!(table.kind, TableKind::Table | TableKind::Partitioned) {
            return Err("it is not a table".into());
        }
        let key_fields = key_fields(table).ok_or("it has no primary key")?;
        // A composite or an extension's type prints what its definition or the extension's
        // version says, which can change without a new row version.
        if let Some(column) = table.columns.iter().find(|c| matches!(c.ty, PgType::Other(_))) {
            return Err(format!("column `{}` is of a type migrate reads as text", column.name));
        }
        let same = Table { estimated_rows: None, ..table.clone() }
            == Table { estimated_rows: None, ..previous.clone() };
        if !same {
            return Err("its definition changed".into());
        }
        let exported = self
            .manifest
            .tables
            .iter()
            .find(|t| t.table == table.name)
            .ok_or("the previous export has no file of it")?;
        Ok(Base { exported, key_fields, xmin32: self.xmin as u32 })
    }
}

/// What a table is brought up to date from.
pub struct Base<'a> {
    /// The previous export's file of it.
    exported: &'a ExportedTable,
    /// Its primary key's fields, by position among its columns.
    key_fields: Vec<usize>,
    /// The 32-bit form of the previous snapshot's oldest transaction, as `xmin` holds it.
    xmin32: u32,
}

/// What bringing a table up to date found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Updated {
    /// Rows kept from the previous export.
    pub kept: u64,
    /// Rows read again: inserted or updated since (and a few unchanged ones).
    pub read: u64,
    /// Rows of the previous export gone since.
    pub gone: u64,
    /// Bytes the server sent: the keys and the changed rows, in binary COPY.
    pub read_bytes: u64,
}

/// Brings `table`'s raw file up to the snapshot the `clients` read in (two connections: the
/// changed rows and the keys are read at once). `None` when its rows cannot be trusted to this
/// (the caller exports it whole).
pub async fn update_table(
    [client, key_client]: [&Client; 2],
    table: &Table,
    base: Base<'_>,
    data_dir: &DataDir,
) -> Result<Option<(ExportedTable, f64, Updated)>, ExportError> {
    let started = Instant::now();
    let Base { exported, key_fields, xmin32 } = base;
    let raw = data_dir.path(&exported.file);
    let index_file = TransformedFile {
        path: raw.clone(),
        lines: exported.rows,
        checksum: exported.checksum.clone(),
    };
    let index = match LineIndex::open_at(keys_path(&raw), &index_file) {
        Ok(Some(index)) => index,
        Ok(None) => {
            tracing::info!(table = %table.name, "read whole: no key index describes its file");
            return Ok(None);
        }
        Err(error) => {
            tracing::info!(table = %table.name, %error, "the key index cannot be read");
            return Ok(None);
        }
    };
    // The keys of now.
    let (key_sql, key_codecs) = copy_statement_of(table, &key_fields, None);
    let mut keys = RowDecoder::keys_only(key_codecs);
    let mut current: HashSet<u128, rustc_hash::FxBuildHasher> =
        HashSet::with_capacity_and_hasher(exported.rows as usize, Default::default());
    let keys_read = copy_rows(key_client, table, &key_sql, &mut keys, |decoder, chunk| {
        decoder.feed(chunk, &mut Vec::new()).map_err(|e| ExportError::value(&table.name, e))?;
        current.extend(decoder.take_keyed().map(|(hash, _)| hash));
        Ok(())
    });

    // The rows written since the previous snapshot.
    let every: Vec<usize> = (0..table.columns.len()).collect();
    let since = format!("age(xmin) <= age('{xmin32}'::xid)");
    let (changed_sql, codecs) = copy_statement_of(table, &every, Some(&since));
    let mut rows = RowDecoder::new(codecs).keyed(key_fields);
    let mut lines = Vec::new();
    let mut changed: Vec<(u128, usize)> = Vec::new();
    let changed_read = copy_rows(client, table, &changed_sql, &mut rows, |decoder, chunk| {
        decoder.feed(chunk, &mut lines).map_err(|e| ExportError::value(&table.name, e))?;
        changed.extend(decoder.take_keyed());
        Ok(())
    });
    let (keys_read, changed_read) = tokio::join!(keys_read, changed_read);
    let read_bytes = keys_read?.1 + changed_read?.1;
    let changed_keys: HashSet<u128, rustc_hash::FxBuildHasher> =
        changed.iter().map(|&(hash, _)| hash).collect();

    // The previous rows to leave out: changed or gone.
    let index_error = |e: crate::import::ImportError| ExportError::KeyIndex {
        table: table.name.clone(),
        reason: e.to_string(),
    };
    let mut skip: Vec<(u64, u64)> = Vec::new(); // (offset, line)
    let mut gone = 0u64;
    let mut sorted = index.sorted().map_err(index_error)?;
    while let Some(entry) = sorted.next_entry().map_err(index_error)? {
        let here = current.contains(&entry.hash);
        if !here || changed_keys.contains(&entry.hash) {
            gone += u64::from(!here);
            skip.push((entry.offset, entry.line));
        }
    }
    let kept = exported.rows - skip.len() as u64;
    if kept + changed.len() as u64 != current.len() as u64 {
        tracing::warn!(
            table = %table.name,
            "rows are there that neither the previous export nor the changed rows hold: \
             exporting it whole"
        );
        return Ok(None);
    }
    skip.sort_unstable();

    // The new file: the previous one without the skipped lines, checked against its checksum
    // on the way, then the changed rows.
    let mut writer = JsonlWriter::create(raw.clone())?;
    let Some(skipped_lengths) = copy_without(&raw, exported, &skip, &mut writer)? else {
        tracing::warn!(
            table = %table.name,
            "the key index's lines and offsets do not match the file: exporting it whole"
        );
        return Ok(None);
    };
    writer.write_lines(&lines, changed.len() as u64)?;
    let digest = tokio::task::block_in_place(|| writer.finish())?;
    debug_assert_eq!(digest.lines, current.len() as u64);

    // Its key index: the kept entries moved up past the skipped lines, then the changed rows.
    let mut new_index = LineIndexWriter::create_at(keys_path(&raw))?;
    let mut skipped_before = vec![0u64; skip.len() + 1];
    for (i, len) in skipped_lengths.iter().enumerate() {
        skipped_before[i + 1] = skipped_before[i] + len + 1;
    }
    let mut sorted = index.sorted().map_err(index_error)?;
    while let Some(entry) = sorted.next_entry().map_err(index_error)? {
        let before = skip.partition_point(|&(offset, _)| offset < entry.offset);
        if skip.get(before).is_some_and(|&(offset, _)| offset == entry.offset) {
            continue;
        }
        new_index.push_entry(Entry {
            hash: entry.hash,
            line: entry.line - before as u64,
            offset: entry.offset - skipped_before[before],
        })?;
    }
    let kept_bytes = exported.bytes - skipped_before[skip.len()];
    for (i, &(hash, start)) in changed.iter().enumerate() {
        let entry = Entry { hash, line: kept + i as u64 + 1, offset: kept_bytes + start as u64 };
        new_index.push_entry(entry)?;
    }
    new_index.finish(&raw, &digest.checksum)?;

    let updated = Updated { kept, read: changed.len() as u64, gone, read_bytes };
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(table = %table.name, kept, read = updated.read, gone, seconds, "table updated");
    let file = exported.file.clone();
    Ok(Some((ExportedTable::new(table.name.clone(), file, digest), seconds, updated)))
}

/// Writes `raw` into `writer` without the lines starting at the `skip` offsets (ascending, with
/// their line numbers), checking it against `exported`'s checksum; returns each skipped line's
/// length. `None` when the index does not match the file: an offset that is not where its line
/// starts (the lines copied between two skipped ones are counted).
fn copy_without(
    raw: &std::path::Path,
    exported: &ExportedTable,
    skip: &[(u64, u64)],
    writer: &mut JsonlWriter,
) -> Result<Option<Vec<u64>>, ExportError> {
    let file = File::open(raw).map_err(DataDirError::new("open", raw))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hasher = blake3::Hasher::new();
    let mut lengths = Vec::with_capacity(skip.len());
    let mut at = 0u64;
    let mut line = 0u64;
    let mut chunk = vec![0u8; 1 << 20];
    // Copies bytes up to `end`, which must be where a line starts: `lines` whole lines.
    let mut copy_to = |reader: &mut BufReader<File>,
                       hasher: &mut blake3::Hasher,
                       at: &mut u64,
                       end: u64,
                       lines: u64|
     -> Result<bool, ExportError> {
        let (mut newlines, mut last) = (0u64, b'\n');
        while *at < end {
            let want = ((end - *at) as usize).min(chunk.len());
            let bytes = &mut chunk[..want];
            reader.read_exact(bytes).map_err(DataDirError::new("read", raw))?;
            hasher.update(bytes);
            newlines += memchr::memchr_iter(b'\n', bytes).count() as u64;
            last = bytes[want - 1];
            *at += want as u64;
            writer.write_lines(bytes, if *at == end { lines } else { 0 })?;
        }
        Ok(newlines == lines && last == b'\n')
    };
    let mut text = Vec::new();
    let mut matches = true;
    for &(offset, skipped) in skip {
        if offset < at || skipped <= line {
            return Ok(None);
        }
        matches &= copy_to(&mut reader, &mut hasher, &mut at, offset, skipped - line - 1)?;
        text.clear();
        reader.read_until(b'\n', &mut text).map_err(DataDirError::new("read", raw))?;
        hasher.update(&text);
        at += text.len() as u64;
        line = skipped;
        matches &= text.last() == Some(&b'\n');
        lengths.push(text.len().saturating_sub(1) as u64);
    }
    if exported.bytes < at || exported.rows < line {
        return Ok(None);
    }
    matches &= copy_to(&mut reader, &mut hasher, &mut at, exported.bytes, exported.rows - line)?;
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).map_err(DataDirError::new("read", raw))?;
    let checksum = format!("blake3:{}", hasher.finalize().to_hex());
    if !rest.is_empty() || checksum != exported.checksum {
        return Err(ExportError::PreviousChanged { path: raw.to_owned() });
    }
    Ok(matches.then_some(lengths))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableName;
    use crate::manifest::{Snapshot, Source};

    fn server(url: &str, identity: Option<&str>) -> Source {
        Source::Server {
            url: url.into(),
            database: "app".into(),
            server_version: "15.20".into(),
            identity: identity.map(Into::into),
        }
    }

    fn previous(source: Source) -> Previous {
        let manifest = Manifest {
            format_version: crate::manifest::FORMAT_VERSION,
            tool: String::new(),
            source,
            snapshot: Snapshot {
                taken_at: String::new(),
                transaction_snapshot: "1000:1005:".into(),
            },
            schemas: Vec::new(),
            tables: Vec::new(),
            catalog: crate::catalog::Catalog { tables: Vec::new() },
        };
        Previous::of(Some(manifest)).unwrap()
    }

    #[test]
    fn only_the_same_database_of_the_same_cluster_and_history_recently_is_a_base() {
        let base = previous(server("postgres://a/app", Some("7:1:16384")));
        assert_eq!(base.unusable(&server("postgres://a/app", Some("7:1:16384")), 1200), None);
        let refused = [
            // another URL, another cluster, a restored one (timeline), the database made again
            (server("postgres://b/app", Some("7:1:16384")), 1200),
            (server("postgres://a/app", Some("8:1:16384")), 1200),
            (server("postgres://a/app", Some("7:2:16384")), 1200),
            (server("postgres://a/app", Some("7:1:16999")), 1200),
            // unknown identity; transactions gone backwards, or too far forwards
            (server("postgres://a/app", None), 1200),
            (server("postgres://a/app", Some("7:1:16384")), 999),
            (server("postgres://a/app", Some("7:1:16384")), 1000 + MAX_AGE + 1),
        ];
        for (source, xmin) in refused {
            assert!(base.unusable(&source, xmin).is_some(), "{source:?} at {xmin}");
        }
    }

    #[test]
    fn a_file_is_copied_without_the_skipped_lines_only_where_the_offsets_are_line_starts() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("t.jsonl");
        let text = "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n";
        std::fs::write(&raw, text).unwrap();
        let digest = crate::data_dir::FileDigest {
            lines: 3,
            bytes: text.len() as u64,
            checksum: format!("blake3:{}", blake3::hash(text.as_bytes()).to_hex()),
        };
        let exported =
            ExportedTable::new(TableName::new("public", "t"), "raw/t.jsonl".into(), digest);
        let copy = |skip: &[(u64, u64)]| {
            let out = dir.path().join("out.jsonl");
            let mut writer = JsonlWriter::create(out.clone()).unwrap();
            let kept = copy_without(&raw, &exported, skip, &mut writer).unwrap();
            writer.finish().unwrap();
            (kept, std::fs::read_to_string(out).unwrap())
        };
        // line 2 starts at 9
        assert_eq!(copy(&[(9, 2)]), (Some(vec![8]), "{\"id\":1}\n{\"id\":3}\n".into()));
        // an offset inside line 2, or line 3's offset named as line 2's: not where it says
        assert_eq!(copy(&[(12, 2)]).0, None);
        assert_eq!(copy(&[(18, 2)]).0, None);
    }
}
