//! Transform's fast path: one raw row written straight into its document line, without
//! building a [`Document`](crate::convex::Document).
//!
//! [`DirectPlan`] is a table plan compiled once per table: the fields in the order Convex keeps
//! them (by name), each with its JSON key already spelled, the top-level names already checked.
//! A row then costs one pass over its columns' JSON text. A row the fast path cannot vouch for
//! (any reason to reject it, an orphan, a json key to rename, a duplicate key, an escaped key)
//! comes back as [`NotDirect`], and the caller runs the general path on it
//! ([`super::document::transform_row`]), which gives the same line or the precise rejection.
//! The two paths must agree byte for byte on every row the fast path writes; a property test
//! holds them to it.

use std::ops::Range;

use super::convert::{convert_text, exact_f64, json_at_path, plain_string};
use super::document::{Columns, Lookups, ParentKeys, legacy_id, reference_key};
use super::keys::write_canonical_key;
use super::row::{Row, RowShape};
use super::unique::id_hash;
use crate::convex::rules::{
    self, MAX_ARRAY_LEN, MAX_DOCUMENT_FIELDS, MAX_DOCUMENT_SIZE, MAX_NESTING, MAX_OBJECT_FIELDS,
};
use crate::convex::{Value, check_field_name};
use crate::json_text::{plain_run_end, write_string};
use crate::plan::{Conversion, NullPolicy, TablePlan};

/// The row needs the general path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotDirect;

type Direct<T> = Result<T, NotDirect>;

/// A table plan compiled for [`DirectPlan::write_line`].
#[derive(Debug)]
pub struct DirectPlan {
    /// The document's fields in Convex's order (by name).
    fields: Vec<DirectField>,
    legacy_columns: Vec<String>,
    legacy_positions: Vec<Option<usize>>,
    references: Vec<DirectReference>,
}

#[derive(Debug)]
struct DirectField {
    /// `"name":`, escaped.
    key: Vec<u8>,
    /// The name's length, for the document's size.
    name_len: usize,
    source: Source,
}

#[derive(Debug)]
enum Source {
    LegacyId,
    Column {
        position: Option<usize>,
        conversion: Conversion,
        when_null: WhenNull,
        /// The keys leading to the field's value inside a json column (`FieldPlan::path`).
        path: Vec<String>,
    },
    /// Under `nulls = "null"`, the field of reference `.0` when its key has a NULL column (it
    /// references nothing): null, as the schema says. A found parent goes in `refs` instead.
    NullReference(usize),
}

/// What a SQL NULL becomes.
#[derive(Debug)]
enum WhenNull {
    Omit,
    Null,
    /// The column's default, converted once.
    Default(Value),
    /// The default cannot be converted: the general path says why.
    NotDirect,
}

#[derive(Debug)]
struct DirectReference {
    positions: Vec<Option<usize>>,
    /// `"field":{"table":"parent","legacyId":`, escaped.
    prefix: Vec<u8>,
}

impl DirectPlan {
    /// `None` when the table needs the general path for every row: it has merged tables, or
    /// field names Convex refuses or that repeat.
    /// `columns` are the table's own ([`Columns::new`] of its legacy id and fields).
    pub fn compile(plan: &TablePlan, shape: &RowShape, columns: &Columns) -> Option<DirectPlan> {
        // An auth preset's shape rewrites the document after conversion: the general path only.
        if plan.component.as_ref().is_some_and(|c| c.shape.is_some()) {
            return None;
        }
        // File columns are checked against `storage.objects` by the general path.
        if !plan.merges.is_empty() || !plan.files.is_empty() {
            return None;
        }
        let mut fields = vec![(plan.legacy_id.field.as_str(), Source::LegacyId)];
        for ((field, &position), default) in
            plan.fields.iter().zip(&columns.fields).zip(&columns.defaults)
        {
            let when_null = match (default, plan.nulls) {
                // A default that holds containers is left to the general path, which checks
                // it against Convex's rules with the rest of the document.
                (Some(default), _) => match default {
                    Ok(value) if !matches!(value, Value::Array(_) | Value::Object(_)) => {
                        WhenNull::Default(value.clone())
                    }
                    _ => WhenNull::NotDirect,
                },
                (None, NullPolicy::Null) => WhenNull::Null,
                (None, NullPolicy::Omit) => WhenNull::Omit,
            };
            let conversion = field.conversion.clone();
            let path = field.path.clone();
            let source = Source::Column { position, conversion, when_null, path };
            fields.push((field.field.as_str(), source));
        }
        if plan.nulls == NullPolicy::Null {
            for (index, reference) in plan.references.iter().enumerate() {
                fields.push((reference.field.as_str(), Source::NullReference(index)));
            }
        }
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let repeats = fields.windows(2).any(|pair| pair[0].0 == pair[1].0);
        let refused = fields.iter().any(|(name, _)| check_field_name(name).is_err());
        if repeats || refused || fields.len() > MAX_DOCUMENT_FIELDS {
            return None;
        }
        let fields = fields
            .into_iter()
            .map(|(name, source)| {
                let mut key = Vec::with_capacity(name.len() + 3);
                write_string(&mut key, name);
                key.push(b':');
                DirectField { key, name_len: name.len(), source }
            })
            .collect();
        let references = plan
            .references
            .iter()
            .map(|reference| {
                let mut prefix = Vec::new();
                super::write_reference_head(&mut prefix, reference);
                DirectReference {
                    positions: shape.positions(reference.columns.iter().map(String::as_str)),
                    prefix,
                }
            })
            .collect();
        Some(DirectPlan {
            fields,
            legacy_positions: columns.key.clone(),
            legacy_columns: plan.legacy_id.columns.clone(),
            references,
        })
    }

    /// Appends the row's document line (the format of `write_document_line`) to `out` and
    /// returns its legacy id's [`id_hash`], or returns [`NotDirect`] with `out` as it was. The
    /// row has passed the table's filters.
    pub fn write_line(
        &self,
        row: &Row<'_>,
        lookups: &Lookups<'_>,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> Direct<u64> {
        let start = out.len();
        let written = self.write(row, lookups, scratch, out);
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    fn write(
        &self,
        row: &Row<'_>,
        lookups: &Lookups<'_>,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> Direct<u64> {
        // References first: an orphan sends the row to the general path before anything is
        // written. Found parents' ids wait in `scratch.refs` as JSON strings.
        scratch.refs.clear();
        scratch.ref_ends.clear();
        for (i, (reference, parents)) in self.references.iter().zip(&lookups.parents).enumerate() {
            let texts = reference.positions.iter().map(|&p| row.text_at(p));
            // SQL's MATCH SIMPLE: a key with any NULL column references nothing.
            if texts.clone().any(|t| t == "null") {
                scratch.ref_ends.push(None);
                continue;
            }
            match lookups.forms.get(i).and_then(Option::as_deref) {
                Some(forms) => {
                    write_canonical_key(texts, forms, &mut scratch.key);
                    // The parent's legacy id as its document has it.
                    let parent = parents.find(&scratch.key).ok_or(NotDirect)?;
                    write_string(&mut scratch.refs, parent);
                }
                None => write_parent(texts, parents, &mut scratch.refs)?,
            }
            scratch.ref_ends.push(Some(scratch.refs.len()));
        }

        out.extend_from_slice(b"{\"doc\":{");
        let mut size = 2;
        let mut first = true;
        let mut id_hash = 0;
        for field in &self.fields {
            let value_size = match &field.source {
                Source::LegacyId => {
                    comma(out, &mut first);
                    out.extend_from_slice(&field.key);
                    let (size, hash) = self.write_legacy_id(row, out)?;
                    id_hash = hash;
                    size
                }
                Source::Column { position, conversion, when_null, path } => {
                    let found;
                    let mut text = row.text_at(*position);
                    if !path.is_empty() {
                        found = json_at_path(text, path).map_err(|_| NotDirect)?;
                        text = found.as_deref().unwrap_or("null");
                    }
                    if text == "null" {
                        match when_null {
                            WhenNull::Omit => continue,
                            WhenNull::NotDirect => return Err(NotDirect),
                            WhenNull::Null | WhenNull::Default(_) => {}
                        }
                    }
                    comma(out, &mut first);
                    out.extend_from_slice(&field.key);
                    match (text, when_null) {
                        ("null", WhenNull::Default(value)) => {
                            value.write_json(out);
                            value.size()
                        }
                        ("null", _) => {
                            out.extend_from_slice(b"null");
                            1
                        }
                        (text, _) => write_converted(conversion, text, scratch, out)?,
                    }
                }
                Source::NullReference(index) => {
                    if scratch.ref_ends[*index].is_some() {
                        continue;
                    }
                    comma(out, &mut first);
                    out.extend_from_slice(&field.key);
                    out.extend_from_slice(b"null");
                    1
                }
            };
            size += field.name_len + 1 + value_size;
        }
        if size > MAX_DOCUMENT_SIZE {
            return Err(NotDirect);
        }
        out.push(b'}');
        if scratch.ref_ends.iter().any(Option::is_some) {
            out.extend_from_slice(b",\"refs\":{");
            let mut first = true;
            let mut from = 0;
            for (reference, end) in self.references.iter().zip(&scratch.ref_ends) {
                let Some(end) = *end else { continue };
                comma(out, &mut first);
                out.extend_from_slice(&reference.prefix);
                out.extend_from_slice(&scratch.refs[from..end]);
                out.push(b'}');
                from = end;
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"}\n");
        Ok(id_hash)
    }

    /// Writes the legacy id as a JSON string; returns its Convex size and its [`id_hash`].
    fn write_legacy_id(&self, row: &Row<'_>, out: &mut Vec<u8>) -> Direct<(usize, u64)> {
        if let [position] = self.legacy_positions[..] {
            let text = row.text_at(position);
            if text == "null" {
                return Err(NotDirect);
            }
            if let Some(inner) = plain_string(text) {
                out.extend_from_slice(text.as_bytes());
                return Ok((2 + inner.len(), id_hash(inner)));
            }
        }
        let id =
            legacy_id(row, &self.legacy_columns, &self.legacy_positions).map_err(|_| NotDirect)?;
        write_string(out, &id);
        Ok((2 + id.len(), id_hash(&id)))
    }
}

fn comma(out: &mut Vec<u8>, first: &mut bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
}

/// Finds the parent a reference's (non-null) JSON texts name and appends its legacy id, as
/// a JSON string, to `out`.
fn write_parent<'a>(
    texts: impl Iterator<Item = &'a str> + Clone,
    parents: &ParentKeys,
    out: &mut Vec<u8>,
) -> Direct<()> {
    let single = texts.clone().nth(1).is_none();
    if single && let Some(inner) = texts.clone().next().and_then(plain_string) {
        if !parents.contains(inner) {
            return Err(NotDirect);
        }
        write_string(out, inner);
        return Ok(());
    }
    let texts: Vec<&str> = texts.collect();
    let key = reference_key(&texts);
    if !parents.contains(&key) {
        return Err(NotDirect);
    }
    write_string(out, &key);
    Ok(())
}

/// Reusable buffers for one thread's rows.
#[derive(Default)]
pub struct Scratch {
    refs: Vec<u8>,
    /// A reference's canonical key (`super::keys`).
    key: String,
    ref_ends: Vec<Option<usize>>,
    /// Per nesting depth: an object's members as written, before they are put in order.
    members: Vec<Vec<u8>>,
    /// Per nesting depth: (key range in the input, value range in `members`).
    entries: Vec<Vec<(Range<usize>, Range<usize>)>>,
}

/// Converts a non-null value and writes its tagged JSON; returns its Convex size.
fn write_converted(
    conversion: &Conversion,
    text: &str,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Direct<usize> {
    match conversion {
        Conversion::String => {
            if let Some(inner) = plain_string(text) {
                out.extend_from_slice(text.as_bytes());
                return Ok(2 + inner.len());
            }
        }
        Conversion::StringTrimEnd => {
            if let Some(inner) = plain_string(text) {
                let trimmed = inner.trim_end_matches(' ');
                out.push(b'"');
                out.extend_from_slice(trimmed.as_bytes());
                out.push(b'"');
                return Ok(2 + trimmed.len());
            }
        }
        Conversion::Json { .. } => {
            let mut json = Json { text, input: text.as_bytes(), at: 0, scratch };
            let size = json.value(1, out)?;
            json.end()?;
            return Ok(size);
        }
        Conversion::Array(element) => {
            let mut json = Json { text, input: text.as_bytes(), at: 0, scratch };
            let size = json.array(element, out)?;
            json.end()?;
            return Ok(size);
        }
        _ => {}
    }
    let value = convert_text(conversion, text).map_err(|_| NotDirect)?;
    // A Convex source's object or array: the general path checks it against Convex's rules.
    if matches!(value, Value::Object(_) | Value::Array(_)) {
        return Err(NotDirect);
    }
    value.write_json(out);
    Ok(value.size())
}

/// A JSON text being transcoded into Convex's tagged encoding, checked against Convex's rules
/// on the way: the general path's `convert::json` and `rules::check_document` in one pass.
struct Json<'a, 's> {
    text: &'a str,
    /// `text`'s bytes.
    input: &'a [u8],
    at: usize,
    scratch: &'s mut Scratch,
}

impl Json<'_, '_> {
    fn peek(&mut self) -> Direct<u8> {
        while let Some(&byte) = self.input.get(self.at) {
            if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
                return Ok(byte);
            }
            self.at += 1;
        }
        Err(NotDirect)
    }

    fn end(&mut self) -> Direct<()> {
        match self.peek() {
            Err(NotDirect) => Ok(()),
            Ok(_) => Err(NotDirect),
        }
    }

    fn literal(&mut self, word: &[u8], out: &mut Vec<u8>) -> Direct<usize> {
        if !self.input[self.at..].starts_with(word) {
            return Err(NotDirect);
        }
        self.at += word.len();
        out.extend_from_slice(word);
        Ok(1)
    }

    /// The span of the string literal at `at` (quotes included), and whether it has escapes.
    fn string_span(&mut self) -> Direct<(Range<usize>, bool)> {
        let start = self.at;
        let mut escaped = false;
        let mut i = start + 1;
        loop {
            i = plain_run_end(self.input, i);
            match self.input.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                // A control character: not JSON.
                Some(_) | None => return Err(NotDirect),
            }
        }
        self.at = i + 1;
        Ok((start..i + 1, escaped))
    }

    /// The text of a span that starts and ends at ASCII bytes.
    fn text(&self, span: Range<usize>) -> Direct<&str> {
        self.text.get(span).ok_or(NotDirect)
    }

    /// A JSON value whose container sits at `parent_depth`; returns its Convex size.
    fn value(&mut self, parent_depth: usize, out: &mut Vec<u8>) -> Direct<usize> {
        match self.peek()? {
            b'n' => self.literal(b"null", out),
            b't' => self.literal(b"true", out),
            b'f' => self.literal(b"false", out),
            b'"' => {
                let (span, escaped) = self.string_span()?;
                if escaped {
                    let decoded: String =
                        serde_json::from_str(self.text(span)?).map_err(|_| NotDirect)?;
                    write_string(out, &decoded);
                    Ok(2 + decoded.len())
                } else {
                    out.extend_from_slice(&self.input[span.clone()]);
                    Ok(span.len())
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                while self
                    .input
                    .get(self.at)
                    .is_some_and(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                {
                    self.at += 1;
                }
                let number = exact_f64(self.text(start..self.at)?).map_err(|_| NotDirect)?;
                Value::Float64(number).write_json(out);
                Ok(9)
            }
            b'[' => {
                let depth = parent_depth + 1;
                if depth > MAX_NESTING {
                    return Err(NotDirect);
                }
                self.items(out, |json, out| json.value(depth, out))
            }
            b'{' => self.object(parent_depth + 1, out),
            _ => Err(NotDirect),
        }
    }

    /// The array at `at`, each item written by `item`; returns its Convex size.
    fn items(
        &mut self,
        out: &mut Vec<u8>,
        mut item: impl FnMut(&mut Self, &mut Vec<u8>) -> Direct<usize>,
    ) -> Direct<usize> {
        self.at += 1;
        out.push(b'[');
        let mut size = 2;
        let mut count = 0;
        if self.peek()? == b']' {
            self.at += 1;
        } else {
            loop {
                count += 1;
                if count > MAX_ARRAY_LEN {
                    return Err(NotDirect);
                }
                size += item(self, out)?;
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        out.push(b',');
                    }
                    b']' => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(NotDirect),
                }
            }
        }
        out.push(b']');
        Ok(size)
    }

    /// A Postgres array (conversion `Array(element)`): items converted by `element`, NULL items
    /// as null, one dimension unless the items are json.
    fn array(&mut self, element: &Conversion, out: &mut Vec<u8>) -> Direct<usize> {
        if self.peek()? != b'[' {
            return Err(NotDirect);
        }
        // The array is a top-level field's value, at depth 2.
        self.items(out, |json, out| match (json.peek()?, element) {
            (b'n', _) => json.literal(b"null", out),
            (_, Conversion::Json { .. }) => json.value(2, out),
            (b'[' | b'{', _) | (_, Conversion::Array(_)) => Err(NotDirect),
            (b'"', _) => {
                let (span, escaped) = json.string_span()?;
                if !escaped && *element == Conversion::String {
                    out.extend_from_slice(&json.input[span.clone()]);
                    return Ok(span.len());
                }
                scalar(element, json.text(span)?, out)
            }
            _ => {
                let start = json.at;
                while json
                    .input
                    .get(json.at)
                    .is_some_and(|b| !matches!(b, b',' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                {
                    json.at += 1;
                }
                scalar(element, json.text(start..json.at)?, out)
            }
        })
    }

    /// The object at `at`, at `depth`: members are written to scratch, then copied out in
    /// key order. Keys that Convex refuses, have escapes or repeat send the row to the general
    /// path (which renames or rejects them).
    fn object(&mut self, depth: usize, out: &mut Vec<u8>) -> Direct<usize> {
        if depth > MAX_NESTING {
            return Err(NotDirect);
        }
        if self.scratch.members.len() <= depth {
            self.scratch.members.resize_with(depth + 1, Vec::new);
            self.scratch.entries.resize_with(depth + 1, Vec::new);
        }
        let mut members = std::mem::take(&mut self.scratch.members[depth]);
        let mut entries = std::mem::take(&mut self.scratch.entries[depth]);
        members.clear();
        entries.clear();
        let written = self.members(depth, &mut members, &mut entries);
        let result = written.and_then(|size| {
            entries.sort_unstable_by(|a, b| self.input[a.0.clone()].cmp(&self.input[b.0.clone()]));
            if entries.windows(2).any(|p| self.input[p[0].0.clone()] == self.input[p[1].0.clone()])
            {
                return Err(NotDirect);
            }
            out.push(b'{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                out.extend_from_slice(&self.input[key.clone()]);
                out.extend_from_slice(b"\":");
                out.extend_from_slice(&members[value.clone()]);
            }
            out.push(b'}');
            Ok(size)
        });
        self.scratch.members[depth] = members;
        self.scratch.entries[depth] = entries;
        result
    }

    fn members(
        &mut self,
        depth: usize,
        members: &mut Vec<u8>,
        entries: &mut Vec<(Range<usize>, Range<usize>)>,
    ) -> Direct<usize> {
        self.at += 1;
        let mut size = 2;
        if self.peek()? == b'}' {
            self.at += 1;
            return Ok(size);
        }
        loop {
            if self.peek()? != b'"' {
                return Err(NotDirect);
            }
            let (span, escaped) = self.string_span()?;
            let key = span.start + 1..span.end - 1;
            if escaped || rules::check_object_key(self.text(key.clone())?).is_err() {
                return Err(NotDirect);
            }
            if self.peek()? != b':' {
                return Err(NotDirect);
            }
            self.at += 1;
            let start = members.len();
            size += key.len() + 1 + self.value(depth, members)?;
            entries.push((key, start..members.len()));
            if entries.len() > MAX_OBJECT_FIELDS {
                return Err(NotDirect);
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Ok(size);
                }
                _ => return Err(NotDirect),
            }
        }
    }
}

/// An array item of a scalar conversion, from its JSON text.
fn scalar(element: &Conversion, text: &str, out: &mut Vec<u8>) -> Direct<usize> {
    let value = convert_text(element, text).map_err(|_| NotDirect)?;
    value.write_json(out);
    Ok(value.size())
}
