//! Fuzz targets for transform's input side, run as bounded property tests in the normal test
//! suite: the raw-file block reader ([`RawBlocks`]), the raw-line reader ([`Row::parse`]) on
//! arbitrary bytes and on damaged valid lines, and [`transform_row`] on arbitrary raw values
//! for every conversion. None may panic: a line is a row or an error, a row is a document that
//! passes Convex's rules, or a reject with a reason.
//!
//! `fast_path` holds the fast path to the general path on the same rows.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::Write as _;

use base64::Engine as _;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::Value as Raw;

use super::RawBlocks;
use super::direct::{DirectPlan, NotDirect, Scratch};
use super::document::{
    Columns, Lookups, MergedFields, Outcome, ParentKeys, merged_row, passes, transform_row,
};
use super::row::{Row, RowShape};
use crate::catalog::TableName;
use crate::convex::rules::MAX_DOCUMENT_SIZE;
use crate::convex::{Value, check_document, document_size, write_document};
use crate::fuzz_support::config;
use crate::manifest::ExportedTable;
use crate::plan::{
    Condition, Conversion, FieldPlan, JsonKeyPolicy, JsonScalar, LegacyId, NullPolicy,
    OrphanPolicy, ReferencePlan, RowFilter, TablePlan,
};

/// serde_json's default recursion limit (text nested this deep does not parse), which a
/// `RawValue` does not check.
const SERDE_JSON_DEPTH: usize = 128;

// ---- raw JSON text, valid JSON but anything a damaged or hostile raw file could hold ----

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The contents of strings where a conversion expects digits, dates, base64 or labels.
fn string_contents() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<String>(),
        1 => "-?[0-9]{0,40}(\\.[0-9]{0,40})?([eE][+-]?[0-9]{1,22})?",
        1 => prop::sample::select(vec![
            "NaN", "nan", "Infinity", "-Infinity", "+Infinity", "inf", "-inf", "infinity",
            "-infinity", "1e400", "", "-", ".", "-.5", "0x10", " 1", "1 ", "+1",
        ])
        .prop_map(str::to_owned),
        // Dates and timestamps, valid and not: odd years, months, days, times, zones.
        2 => "[+-]?[0-9]{1,20}-[0-9]{1,3}-[0-9]{1,3}(T[0-9]{0,2}:?[0-9]{0,2}:?[0-9]{0,2}(\\.[0-9+-]{0,9})?Z?)?",
        1 => "(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])T([01][0-9]):[0-5][0-9]:[0-5][0-9]\\.[0-9]{6}Z?",
        1 => "[A-Za-z0-9+/=_\\-]{0,24}",
        1 => prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned),
    ]
}

fn key_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z]{1,4}",
        1 => prop::sample::select(vec!["$json", "$integer", "$bytes", "$", "", "_id", "a b", "é"])
            .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// A JSON value as text, nested up to a few levels.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        1 => Just("null".to_owned()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        2 => crate::fuzz_support::number_text(),
        4 => string_contents().prop_map(|s| quoted(&s)),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(|items| format!("[{}]", items.join(","))),
            vec((key_text(), inner), 0..5).prop_map(|fields| {
                let fields: Vec<String> =
                    fields.iter().map(|(k, v)| format!("{}:{v}", quoted(k))).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// `inner` inside `levels` arrays or `{"$json": …}`/`{"k": …}` objects.
fn nest(inner: &str, levels: usize, kind: u8) -> String {
    let (open, close) = match kind % 3 {
        0 => ("[", "]"),
        1 => ("{\"$json\":", "}"),
        _ => ("{\"k\":", "}"),
    };
    format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
}

/// Any raw value: mostly [`json_text`], sometimes nested past Convex's and serde_json's limits.
fn raw_value() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => json_text(),
        1 => (json_text(), 10usize..300, any::<u8>())
            .prop_map(|(inner, levels, kind)| nest(&inner, levels, kind)),
    ]
}

/// A line holding `columns` (absent when `None`), in order.
fn line_of(columns: &[(String, Option<String>)]) -> String {
    let fields: Vec<String> = columns
        .iter()
        .filter_map(|(c, v)| v.as_ref().map(|v| format!("{}:{v}", quoted(c))))
        .collect();
    format!("{{{}}}", fields.join(","))
}

// ---- the raw-line reader ----

/// Parses `line`; a row gives every column's text, which is JSON, and its value, which only
/// serde_json's recursion limit may refuse.
fn read_line(line: &[u8], shape: &RowShape, columns: &[&str]) -> Result<(), TestCaseError> {
    let Ok(row) = Row::parse(line, shape) else { return Ok(()) };
    for column in columns {
        let text = row.text(column);
        prop_assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() || deep(text));
        prop_assert_eq!(row.is_null(column), text == "null");
        match row.value(column) {
            Ok(value) => prop_assert_eq!(value.is_null(), text == "null"),
            Err(e) => prop_assert!(deep(text), "`{text}` does not parse: {e}"),
        }
    }
    Ok(())
}

/// Whether `text` nests as deep as serde_json's limit or deeper.
fn deep(text: &str) -> bool {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '[' | '{' if !in_string => {
                depth += 1;
                max = max.max(depth);
            }
            ']' | '}' if !in_string => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max >= SERDE_JSON_DEPTH
}

#[derive(Debug, Clone)]
enum Damage {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    /// Wraps the whole line in this many arrays.
    Wrap(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>()).prop_map(Damage::Truncate),
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Damage::Flip(i, x)),
        (any::<usize>(), prop::sample::select(b"\"\\{}[],:\n\r\t 0-e.".to_vec()))
            .prop_map(|(i, b)| Damage::Insert(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
        any::<usize>().prop_map(Damage::Remove),
        (1usize..300).prop_map(Damage::Wrap),
    ]
}

fn apply(line: &mut Vec<u8>, damage: &Damage) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match *damage {
        Damage::Truncate(i) => line.truncate(at(i, line.len())),
        Damage::Flip(i, x) if !line.is_empty() => {
            let i = i % line.len();
            line[i] ^= x;
        }
        Damage::Flip(..) => {}
        Damage::Insert(i, b) => line.insert(at(i, line.len()), b),
        Damage::Remove(i) if !line.is_empty() => {
            line.remove(i % line.len());
        }
        Damage::Remove(_) => {}
        Damage::Wrap(n) => {
            let wrapped =
                format!("{}{}{}", "[".repeat(n), String::from_utf8_lossy(line), "]".repeat(n));
            *line = wrapped.into_bytes();
        }
    }
}

const LINE_COLUMNS: [&str; 4] = ["id", "a\"b", "doc", "n"];

proptest! {
    #![proptest_config(config(768))]

    #[test]
    fn any_bytes_are_a_row_or_an_error(line in vec(any::<u8>(), 0..200)) {
        let shape = RowShape::new(LINE_COLUMNS);
        read_line(&line, &shape, &LINE_COLUMNS)?;
    }

    #[test]
    fn damaged_lines_are_a_row_or_an_error(
        values in vec(prop::option::of(raw_value()), LINE_COLUMNS.len()),
        damages in vec(damage(), 0..4),
    ) {
        let shape = RowShape::new(LINE_COLUMNS);
        let columns: Vec<(String, Option<String>)> =
            LINE_COLUMNS.iter().map(|c| c.to_string()).zip(values).collect();
        let mut line = line_of(&columns).into_bytes();
        if damages.is_empty() {
            prop_assert!(Row::parse(&line, &shape).is_ok(), "a valid line is a row");
        }
        for damage in &damages {
            apply(&mut line, damage);
        }
        read_line(&line, &shape, &LINE_COLUMNS)?;
    }
}

// ---- the block reader ----

/// Writes `bytes` to a temporary file; reads it with [`RawBlocks`], block by block; checks
/// every non-empty line comes out once, in order, with its number, and that the file verifies
/// against its own line count and checksum and against no other.
fn read_blocks(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(bytes).expect("written");
    let mut blocks = RawBlocks::open(file.path()).expect("opens");
    let mut lines = Vec::new();
    while let Some(block) = blocks.next_block().expect("reads") {
        lines.extend(block.lines().map(|(n, line)| (n, line.to_vec())));
    }
    let expected: Vec<(u64, Vec<u8>)> = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| (i as u64 + 1, line.to_vec()))
        .collect();
    prop_assert!(
        lines == expected,
        "lines differ: {} read, {} expected",
        lines.len(),
        expected.len()
    );

    let rows = bytes.iter().filter(|&&b| b == b'\n').count() as u64
        + u64::from(bytes.last().is_some_and(|&b| b != b'\n'));
    let exported = |rows: u64, checksum: String| ExportedTable {
        table: TableName::new("public", "t"),
        file: "raw/public.t.jsonl".into(),
        rows,
        bytes: bytes.len() as u64,
        checksum,
    };
    let checksum = format!("blake3:{}", blake3::hash(bytes).to_hex());
    prop_assert!(blocks.verify(&exported(rows, checksum.clone())).is_ok());
    prop_assert!(blocks.verify(&exported(rows + 1, checksum)).is_err());
    prop_assert!(blocks.verify(&exported(rows, "blake3:00".into())).is_err());
    Ok(())
}

/// A file of `lines` (length, byte) with or without a last newline: lines up to 400 KiB, so
/// that files cross the 1 MiB block boundary anywhere, long lines inside a block or across.
fn big_file() -> impl Strategy<Value = Vec<u8>> {
    (vec((0usize..400_000, any::<u8>()), 0..12), any::<bool>()).prop_map(|(lines, last_newline)| {
        let mut bytes = Vec::new();
        for (len, byte) in lines {
            let byte = if byte == b'\n' { b'x' } else { byte };
            bytes.resize(bytes.len() + len, byte);
            bytes.push(b'\n');
        }
        if !last_newline && bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        bytes
    })
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn any_small_file_reads_line_by_line(
        bytes in vec(prop_oneof![4 => any::<u8>(), 1 => Just(b'\n')], 0..2000),
    ) {
        read_blocks(&bytes)?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn big_files_read_line_by_line_across_blocks(bytes in big_file()) {
        read_blocks(&bytes)?;
    }
}

// ---- one row against a plan ----

/// One field per conversion, each from a column of its own.
fn conversions() -> Vec<Conversion> {
    let json = |keys| Conversion::Json { keys };
    vec![
        Conversion::Boolean,
        Conversion::Float64,
        Conversion::Int8AsNumber,
        Conversion::Int8AsInt64,
        Conversion::Int8AsString,
        Conversion::NumericAsNumber,
        Conversion::NumericAsString,
        Conversion::NumericAsCents,
        Conversion::NumericAsInt64,
        Conversion::String,
        Conversion::Enum { labels: vec!["a".into(), "b".into()] },
        Conversion::TimestampMs { offset_seconds: 0 },
        Conversion::TimestampMs { offset_seconds: -50_400 },
        Conversion::TimestampIso,
        Conversion::DateString,
        Conversion::DateMs,
        json(JsonKeyPolicy::Rename),
        json(JsonKeyPolicy::Reject),
        Conversion::Bytes,
        Conversion::Array(Box::new(Conversion::Float64)),
        Conversion::Array(Box::new(Conversion::Int8AsInt64)),
        Conversion::Array(Box::new(Conversion::DateMs)),
        Conversion::Array(Box::new(Conversion::String)),
        Conversion::Array(Box::new(json(JsonKeyPolicy::Rename))),
        Conversion::StringTrimEnd,
        Conversion::Array(Box::new(Conversion::StringTrimEnd)),
        Conversion::JsonScalar(JsonScalar::String),
        Conversion::JsonScalar(JsonScalar::Number),
        Conversion::JsonScalar(JsonScalar::Boolean),
        Conversion::Convex(Box::new(serde_json::json!({"type": "any"}))),
        // Fields found inside json columns: `path` gives each its keys.
        json(JsonKeyPolicy::Rename),
        Conversion::JsonScalar(JsonScalar::String),
        Conversion::JsonScalar(JsonScalar::Number),
        Conversion::JsonScalar(JsonScalar::Boolean),
    ]
}

/// The keys inside its json column of the field of `conversions()[i]`; empty for a column's own
/// value. The last fields of the plan are found inside json: at a key that hostile values often
/// hold (`a`, `$json`), deeper, and at a key with an escape.
fn path(i: usize) -> Vec<String> {
    let paths: [&[&str]; 4] = [&["a"], &["a", "b"], &["$json"], &["é", "n"]];
    let first = conversions().len() - paths.len();
    i.checked_sub(first)
        .map_or_else(Vec::new, |j| paths[j].iter().map(|k| (*k).to_owned()).collect())
}

fn column(i: usize) -> String {
    format!("c{i}")
}

fn condition() -> impl Strategy<Value = Condition> {
    let value = || json_text().prop_map(|t| serde_json::from_str::<Raw>(&t).expect("JSON"));
    prop_oneof![
        Just(Condition::IsNull),
        Just(Condition::IsNotNull),
        value().prop_map(Condition::Equals),
        value().prop_map(Condition::NotEquals),
        vec(value(), 0..3).prop_map(Condition::In),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    nulls: NullPolicy,
    orphans: OrphanPolicy,
    /// A filter on a column (by index into the fields, or the legacy id column).
    filter: Option<(usize, Condition)>,
    /// Per field: a default used when the column is null.
    defaults: Vec<Option<Raw>>,
    id: Option<String>,
    parent: Option<String>,
    values: Vec<Option<String>>,
}

fn orphan_policy() -> impl Strategy<Value = OrphanPolicy> {
    prop_oneof![
        Just(OrphanPolicy::Fail),
        Just(OrphanPolicy::Null),
        Just(OrphanPolicy::Drop),
        Just(OrphanPolicy::KeepLegacy),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let fields = conversions().len();
    let default = prop_oneof![
        4 => Just(None),
        1 => json_text().prop_map(|t| Some(serde_json::from_str::<Raw>(&t).expect("JSON"))),
    ];
    (
        prop_oneof![Just(NullPolicy::Omit), Just(NullPolicy::Null)],
        orphan_policy(),
        prop::option::weighted(0.2, (0..=fields, condition())),
        vec(default, fields),
        prop::option::weighted(0.95, raw_value()),
        prop::option::of(prop_oneof![Just("\"7\"".to_owned()), Just("7".to_owned()), raw_value()]),
        // A row stops at its first bad field: most columns are null so that each conversion
        // meets bad values, and one column always has a value.
        vec(prop::option::weighted(0.1, raw_value()), fields),
        (0..fields, raw_value()),
    )
        .prop_map(
            |(nulls, orphans, filter, defaults, id, parent, mut values, (focus, value))| {
                values[focus] = Some(value);
                Case { nulls, orphans, filter, defaults, id, parent, values }
            },
        )
}

fn plan(case: &Case) -> TablePlan {
    let fields: Vec<FieldPlan> = conversions()
        .into_iter()
        .zip(&case.defaults)
        .enumerate()
        .map(|(i, (conversion, default))| FieldPlan {
            column: column(i),
            field: format!("f{i}"),
            conversion,
            default: default.clone(),
            optional: default.is_none() || !path(i).is_empty(),
            path: path(i),
        })
        .collect();
    let filters = case
        .filter
        .iter()
        .map(|(i, condition)| RowFilter {
            column: if *i == fields.len() { "id".into() } else { column(*i) },
            condition: condition.clone(),
        })
        .collect();
    TablePlan {
        source: TableName::new("public", "t"),
        target: "t".into(),
        legacy_id: LegacyId { field: "legacyId".into(), columns: vec!["id".into()] },
        fields,
        references: vec![ReferencePlan {
            constraint: "t_parent_fkey".into(),
            columns: vec!["parent".into()],
            field: "parentId".into(),
            parent: TableName::new("public", "p"),
            parent_target: "p".into(),
            orphans: case.orphans,
            optional: true,
        }],
        files: Vec::new(),
        filters,
        merges: Vec::new(),
        nulls: case.nulls,
        indexes: Default::default(),
        component: None,
    }
}

/// The case's row as a raw line, and the shape of the raw file it comes from.
fn case_line(case: &Case) -> (String, RowShape) {
    let mut columns =
        vec![("id".to_owned(), case.id.clone()), ("parent".to_owned(), case.parent.clone())];
    columns.extend(case.values.iter().enumerate().map(|(i, v)| (column(i), v.clone())));
    (line_of(&columns), RowShape::new(columns.iter().map(|(c, _)| c.as_str())))
}

/// Runs the row through `transform_row` (and `merged_row`): a document passes the rules and
/// encodes to JSON that decodes to itself; a reject has a reason and the row's key.
fn check_row(case: &Case) -> Result<(), TestCaseError> {
    let plan = plan(case);
    let (line, shape) = case_line(case);
    let row = match Row::parse(line.as_bytes(), &shape) {
        Ok(row) => row,
        Err(e) => return Err(TestCaseError::fail(format!("a valid line is a row: {e}\n{line}"))),
    };
    let columns = Columns::new(&shape, &plan.legacy_id.columns, &plan.fields);
    let parents = ParentKeys::from_iter(["7".to_owned()]);
    let merged = MergedFields::new();
    let objects = Default::default();
    let lookups = Lookups {
        parents: vec![&parents],
        forms: Vec::new(),
        merged: &merged,
        merged_forms: None,
        objects: &objects,
    };
    match transform_row(&row, &plan, &columns, &lookups) {
        Outcome::Document(transformed) => {
            prop_assert_eq!(check_document(&transformed.document), Ok(()));
            prop_assert_eq!(
                transformed.document.get("legacyId"),
                Some(&Value::String(transformed.legacy_id.clone()))
            );
            let mut text = Vec::new();
            write_document(&mut text, &transformed.document);
            let json: Raw = serde_json::from_slice(&text).expect("a document is JSON");
            prop_assert_eq!(
                Value::from_json(&json),
                Ok(Value::Object(transformed.document.clone()))
            );
        }
        Outcome::Rejected(rejection) => {
            prop_assert!(!rejection.reason.is_empty());
            prop_assert!(rejection.key.contains_key("id"), "{rejection:?}");
        }
        Outcome::Filtered | Outcome::Dropped(_) => {}
    }
    if let Err(rejection) =
        merged_row(&row, &plan.legacy_id.columns, &plan.fields, &columns, plan.nulls)
    {
        prop_assert!(!rejection.reason.is_empty());
    }
    Ok(())
}

/// A value aimed at the conversions: as often a bare string or number as anything else.
fn focus_value() -> impl Strategy<Value = String> {
    prop_oneof![
        raw_value(),
        string_contents().prop_map(|s| quoted(&s)),
        crate::fuzz_support::number_text(),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_row_is_a_valid_document_or_a_reject(case in case()) {
        check_row(&case)?;
    }

    /// The same value in each conversion's column in turn.
    #[test]
    fn any_value_under_every_conversion_is_a_valid_document_or_a_reject(
        value in focus_value(),
        default in prop::option::weighted(0.2, json_text()),
        nulls in prop_oneof![Just(NullPolicy::Omit), Just(NullPolicy::Null)],
    ) {
        let fields = conversions().len();
        for i in 0..fields {
            let mut case = Case {
                nulls,
                orphans: OrphanPolicy::Fail,
                filter: None,
                defaults: vec![None; fields],
                id: Some("\"1\"".to_owned()),
                parent: None,
                values: vec![None; fields],
            };
            case.values[i] = Some(value.clone());
            // The same value as the plan's default of a null column.
            if let Some(default) = &default {
                case.defaults[(i + 1) % fields] = serde_json::from_str(default).ok();
            }
            check_row(&case)?;
        }
    }
}

// ---- inputs the targets found, kept as plain tests ----

/// Runs one row of `columns` (JSON texts) through a plan of one field per `conversions()`
/// entry, with `case`'s policies.
fn regression(id: &str, values: &[(usize, &str)], filter: Option<(usize, Condition)>) {
    let mut case = Case {
        nulls: NullPolicy::Omit,
        orphans: OrphanPolicy::Fail,
        filter,
        defaults: vec![None; conversions().len()],
        id: Some(id.to_owned()),
        parent: None,
        values: vec![None; conversions().len()],
    };
    for (i, text) in values {
        case.values[*i] = Some((*text).to_owned());
    }
    check_row(&case).unwrap_or_else(|e| panic!("{e}"));
}

fn index_of(conversion: &Conversion) -> usize {
    conversions().iter().position(|c| c == conversion).expect("a conversion of the plan")
}

#[test]
fn a_filter_or_a_key_nested_past_serde_json_s_limit_is_no_panic() {
    let deep = nest("1", 200, 0);
    let json = index_of(&Conversion::Json { keys: JsonKeyPolicy::Rename });
    // A filter on a column nested deeper than serde_json parses.
    for condition in [Condition::IsNotNull, Condition::Equals(Raw::Null), Condition::In(vec![])] {
        regression("\"1\"", &[(json, &deep)], Some((json, condition)));
    }
    // A rejected row whose key is nested that deep.
    regression(&deep, &[(json, &deep)], None);
}

#[test]
fn dates_and_numbers_at_the_ends_of_i64_are_no_panic() {
    let cases: [(Conversion, &[&str]); 4] = [
        (
            Conversion::DateMs,
            &["\"300000000-01-01\"", "\"-9223372036854775807-01-01\"", "\"2020-13-45\""],
        ),
        (Conversion::DateString, &["\"9223372036854775807-01-01\""]),
        (
            Conversion::TimestampMs { offset_seconds: 0 },
            &["\"300000000000-01-01T00:00:00Z\"", "\"9223372036854775807-12-31T23:59:59.999999\""],
        ),
        (
            Conversion::Float64,
            &["1.5e-9223372036854775808", "0.0e9223372036854775807", "1e-9223372036854775809"],
        ),
    ];
    for (conversion, texts) in cases {
        for text in texts {
            regression("\"1\"", &[(index_of(&conversion), text)], None);
        }
    }
}

mod fast_path;
