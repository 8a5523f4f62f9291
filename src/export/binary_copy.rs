//! Reads the `COPY ... TO STDOUT (FORMAT binary)` stream and turns each tuple into one raw JSON
//! line. Chunks may split tuples anywhere; a tuple is encoded only once all of it has arrived.

use std::ops::Range;

use super::raw_json::{self, DecodeError, Wire};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// How one selected column is written: its key, and how its binary value is read.
#[derive(Debug, Clone)]
pub struct ColumnCodec {
    pub name: String,
    pub wire: Wire,
    pub array: bool,
}

/// A tuple that could not be encoded, located by its 1-based row number and column.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the COPY stream is malformed: {0}")]
    Malformed(&'static str),
    #[error("row {row}, column `{column}`: {source}")]
    Value {
        row: u64,
        column: String,
        #[source]
        source: DecodeError,
    },
}

/// Parses the stream and encodes rows; feed it chunks in order, then call [`finish`].
///
/// [`finish`]: RowDecoder::finish
pub struct RowDecoder {
    columns: Vec<ColumnCodec>,
    /// `{"a":`, `,"b":`, … precomputed once per table.
    keys: Vec<Vec<u8>>,
    pending: Vec<u8>,
    header_seen: bool,
    trailer_seen: bool,
    fields: Vec<Option<Range<usize>>>,
    rows: u64,
    /// The fields whose bytes make a row's key (its primary key's columns), when keyed.
    key_fields: Vec<usize>,
    /// Whether rows are encoded as JSON (not when only their keys are wanted).
    encode: bool,
    /// Per row decoded since [`take_keyed`](RowDecoder::take_keyed): its key's hash and where
    /// its line starts in the output.
    keyed: Vec<(u128, usize)>,
    key_bytes: Vec<u8>,
}

/// The hash of a row's key: its key fields' bytes as binary COPY sends them, each after its
/// length. Two rows of a table have the same key exactly when these bytes are the same (the
/// binary form of a value is unique for the types a primary key is made of).
fn key_hash(
    buf: &[u8],
    fields: &[Option<Range<usize>>],
    key_fields: &[usize],
    scratch: &mut Vec<u8>,
) -> u128 {
    scratch.clear();
    for &field in key_fields {
        match &fields[field] {
            None => scratch.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(range) => {
                scratch.extend_from_slice(&(range.len() as i32).to_be_bytes());
                scratch.extend_from_slice(&buf[range.clone()]);
            }
        }
    }
    xxhash_rust::xxh3::xxh3_128(scratch)
}

impl RowDecoder {
    pub fn new(columns: Vec<ColumnCodec>) -> Self {
        let keys = columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let mut key = vec![if i == 0 { b'{' } else { b',' }];
                crate::json_text::write_string(&mut key, &column.name);
                key.push(b':');
                key
            })
            .collect();
        Self {
            columns,
            keys,
            pending: Vec::new(),
            header_seen: false,
            trailer_seen: false,
            fields: Vec::new(),
            rows: 0,
            key_fields: Vec::new(),
            encode: true,
            keyed: Vec::new(),
            key_bytes: Vec::new(),
        }
    }

    /// Also hashes each row's key, made of the fields at `key_fields` ([`take_keyed`]).
    ///
    /// [`take_keyed`]: RowDecoder::take_keyed
    pub fn keyed(mut self, key_fields: Vec<usize>) -> Self {
        self.key_fields = key_fields;
        self
    }

    /// Only hashes each row's key (every field is part of it), writing no JSON.
    pub fn keys_only(columns: Vec<ColumnCodec>) -> Self {
        let fields = (0..columns.len()).collect();
        Self { encode: false, ..Self::new(columns).keyed(fields) }
    }

    /// The key hash and output offset of each row decoded since the last call.
    pub fn take_keyed(&mut self) -> std::vec::Drain<'_, (u128, usize)> {
        self.keyed.drain(..)
    }

    /// Rows encoded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Encodes every complete tuple of `chunk` (plus what an earlier chunk left) into `out`,
    /// one JSON object and `\n` per row.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), CopyError> {
        if self.pending.is_empty() {
            let used = self.decode(chunk, out)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(chunk);
            let used = self.decode(&pending, out)?;
            pending.drain(..used);
            self.pending = pending;
        }
        Ok(())
    }

    /// Checks that the stream ended where the format says it ends.
    pub fn finish(&self) -> Result<u64, CopyError> {
        if !self.trailer_seen || !self.pending.is_empty() {
            return Err(CopyError::Malformed("the stream ended inside a tuple"));
        }
        Ok(self.rows)
    }

    /// Decodes complete tuples from the start of `buf`; returns how many bytes it consumed.
    fn decode(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Result<usize, CopyError> {
        let mut at = 0;
        if !self.header_seen {
            if buf.len() < SIGNATURE.len() + 8 {
                return Ok(0);
            }
            if &buf[..SIGNATURE.len()] != SIGNATURE {
                return Err(CopyError::Malformed("missing binary COPY signature"));
            }
            at = SIGNATURE.len() + 4; // flags
            let extension = read_i32(buf, at).expect("length checked above");
            let extension = usize::try_from(extension)
                .map_err(|_| CopyError::Malformed("negative header extension length"))?;
            at += 4;
            if buf.len() < at + extension {
                return Ok(0);
            }
            at += extension;
            self.header_seen = true;
        }
        while !self.trailer_seen {
            let Some(count) = read_i16(buf, at) else {
                break;
            };
            if count == -1 {
                self.trailer_seen = true;
                at += 2;
                break;
            }
            if count as usize != self.columns.len() {
                return Err(CopyError::Malformed("tuple has an unexpected number of fields"));
            }
            let Some(end) = self.locate_fields(buf, at + 2)? else {
                break;
            };
            if !self.key_fields.is_empty() {
                let hash = key_hash(buf, &self.fields, &self.key_fields, &mut self.key_bytes);
                self.keyed.push((hash, out.len()));
            }
            if self.encode {
                self.encode_row(buf, out)?;
            } else {
                self.rows += 1;
            }
            at = end;
        }
        if self.trailer_seen && at < buf.len() {
            return Err(CopyError::Malformed("bytes after the trailer"));
        }
        Ok(at)
    }

    /// Records each field's range; `None` when the tuple is not complete in `buf` yet.
    fn locate_fields(&mut self, buf: &[u8], mut at: usize) -> Result<Option<usize>, CopyError> {
        self.fields.clear();
        for _ in 0..self.columns.len() {
            let Some(len) = read_i32(buf, at) else {
                return Ok(None);
            };
            at += 4;
            if len == -1 {
                self.fields.push(None);
                continue;
            }
            let len =
                usize::try_from(len).map_err(|_| CopyError::Malformed("negative field length"))?;
            if buf.len() < at + len {
                return Ok(None);
            }
            self.fields.push(Some(at..at + len));
            at += len;
        }
        Ok(Some(at))
    }

    fn encode_row(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Result<(), CopyError> {
        self.rows += 1;
        let row_start = out.len();
        for ((column, key), field) in self.columns.iter().zip(&self.keys).zip(&self.fields) {
            out.extend_from_slice(key);
            match field {
                None => out.extend_from_slice(b"null"),
                Some(range) => {
                    raw_json::write_value(column.wire, column.array, &buf[range.clone()], out)
                        .map_err(|source| {
                            out.truncate(row_start);
                            CopyError::Value { row: self.rows, column: column.name.clone(), source }
                        })?
                }
            }
        }
        if self.columns.is_empty() {
            out.push(b'{');
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

fn read_i16(buf: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut s = SIGNATURE.to_vec();
        s.extend_from_slice(&0i32.to_be_bytes());
        s.extend_from_slice(&0i32.to_be_bytes());
        for row in rows {
            s.extend_from_slice(&(row.len() as i16).to_be_bytes());
            for field in row {
                match field {
                    None => s.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(bytes) => {
                        s.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                        s.extend_from_slice(bytes);
                    }
                }
            }
        }
        s.extend_from_slice(&(-1i16).to_be_bytes());
        s
    }

    fn decoder() -> RowDecoder {
        RowDecoder::new(vec![
            ColumnCodec { name: "id".into(), wire: Wire::Int4, array: false },
            ColumnCodec { name: "Full \"Name\"".into(), wire: Wire::Text, array: false },
        ])
    }

    #[test]
    fn tuples_split_across_chunks_at_every_byte_decode_the_same() {
        let data = stream(&[
            vec![Some(1i32.to_be_bytes().to_vec()), Some(b"Ada".to_vec())],
            vec![Some(2i32.to_be_bytes().to_vec()), None],
        ]);
        let expected =
            "{\"id\":1,\"Full \\\"Name\\\"\":\"Ada\"}\n{\"id\":2,\"Full \\\"Name\\\"\":null}\n";
        for split in 0..=data.len() {
            let mut decoder = decoder();
            let mut out = Vec::new();
            decoder.feed(&data[..split], &mut out).unwrap();
            decoder.feed(&data[split..], &mut out).unwrap();
            assert_eq!(decoder.finish().unwrap(), 2);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "split at {split}");
        }
    }

    #[test]
    fn a_stream_cut_short_is_an_error() {
        let data = stream(&[vec![Some(1i32.to_be_bytes().to_vec()), Some(b"Ada".to_vec())]]);
        let mut decoder = decoder();
        decoder.feed(&data[..data.len() - 4], &mut Vec::new()).unwrap();
        assert!(decoder.finish().is_err());
    }

    #[test]
    fn a_bad_value_names_row_and_column_and_writes_nothing_of_the_row() {
        let data = stream(&[
            vec![Some(1i32.to_be_bytes().to_vec()), Some(b"ok".to_vec())],
            vec![Some(2i32.to_be_bytes().to_vec()), Some(vec![0xff])],
        ]);
        let mut decoder = decoder();
        let mut out = Vec::new();
        let err = decoder.feed(&data, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 2, column `Full \"Name\"`: text is not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 0)"
        );
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
    }

    #[test]
    fn a_table_without_columns_writes_empty_objects() {
        let data = stream(&[vec![], vec![]]);
        let mut decoder = RowDecoder::new(Vec::new());
        let mut out = Vec::new();
        decoder.feed(&data, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{}\n{}\n");
    }
}
