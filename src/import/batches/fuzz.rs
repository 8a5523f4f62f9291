//! Fuzz target for [`read_batches`], run as a bounded property test in the normal test suite:
//! whatever a transformed file holds (document lines, damaged ones, arbitrary bytes), the reader
//! cuts batches or stops with `BadLine` or `TransformedChanged`, never a panic, and the batches
//! it cuts keep their bounds.

use std::io::Write as _;

use proptest::collection::vec;
use proptest::prelude::*;

use super::{Batch, BatchPlan, read_batches};
use crate::fuzz_support::config;
use crate::import::ImportError;
use crate::import::state::Pass;
use crate::import::transformed::TransformedFile;

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// A document line as transform writes it, with a legacy id of any shape and optional refs.
fn document_line() -> impl Strategy<Value = String> {
    let legacy = prop_oneof![
        4 => "[0-9]{1,4}".prop_map(|s| quoted(&s)),
        1 => any::<String>().prop_map(|s| quoted(&s)),
        1 => prop::sample::select(vec!["null", "1", "[]", "{}", "{\"legacyId\":\"x\"}"])
            .prop_map(str::to_owned),
    ];
    let refs =
        vec((prop::sample::select(vec!["managerId", "teamId", "m\"x", "é"]), "[0-9]{1,3}"), 0..3);
    (legacy, prop::option::of("[a-z]{0,8}"), refs, any::<bool>()).prop_map(
        |(legacy, name, refs, nested_first)| {
            let mut doc = Vec::new();
            if nested_first {
                doc.push(r#""aaa":{"legacyId":"nested"}"#.to_owned());
            }
            doc.push(format!(r#""legacyId":{legacy}"#));
            if let Some(name) = name {
                doc.push(format!(r#""name":{}"#, quoted(&name)));
            }
            let doc = format!("{{{}}}", doc.join(","));
            if refs.is_empty() {
                return format!(r#"{{"doc":{doc}}}"#);
            }
            let refs: Vec<String> = refs
                .iter()
                .map(|(field, id)| {
                    format!(r#"{}:{{"table":"users","legacyId":{}}}"#, quoted(field), quoted(id))
                })
                .collect();
            format!(r#"{{"doc":{doc},"refs":{{{}}}}}"#, refs.join(","))
        },
    )
}

/// A line of a transformed file: a document line, one damaged, or arbitrary bytes.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => document_line().prop_map(String::into_bytes),
        2 => (document_line(), any::<usize>(), any::<u8>()).prop_map(|(line, at, byte)| {
            let mut line = line.into_bytes();
            let at = at % (line.len() + 1);
            if byte % 2 == 0 {
                line.truncate(at);
            } else {
                line.insert(at, byte);
            }
            line
        }),
        1 => vec(any::<u8>(), 0..40),
        1 => prop::sample::select(vec![
            "", "{}", "null", "[]", r#"{"doc":null}"#, r#"{"doc":{},"doc":{}}"#,
            r#"{"doc":{"legacyId":"1"},"refs":null}"#, r#"{"doc":{"legacyId":"1"},"refs":[1]}"#,
            r#"{"doc":{"legacyId":"1"},"extra":1}"#, "\r",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    lines: Vec<Vec<u8>>,
    last_newline: bool,
    pass: Pass,
    deferred: Vec<String>,
    size: usize,
    max_bytes: usize,
    /// Sorted, disjoint `[first, end)` ranges of lines.
    done: Vec<(u64, u64)>,
    /// The manifest's line count and checksum are the file's own.
    manifest_matches: bool,
    /// Batches accepted before `emit` says stop (`None`: all).
    stop_after: Option<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        vec(line(), 0..12),
        any::<bool>(),
        prop_oneof![Just(Pass::Upsert), Just(Pass::PatchRefs)],
        prop::sample::subsequence(vec!["managerId".to_owned(), "teamId".to_owned()], 0..=2),
        1usize..5,
        prop_oneof![1usize..200, Just(1 << 20)],
        vec((1u64..4, 0u64..3), 0..4),
        prop::bool::weighted(0.8),
        prop::option::weighted(0.2, 0usize..4),
    )
        .prop_map(
            |(lines, last_newline, pass, deferred, size, max_bytes, gaps, matches, stop)| {
                // Gaps and lengths into sorted, disjoint ranges starting at line 1 or later.
                let mut done = Vec::new();
                let mut line = 1;
                for (gap, len) in gaps {
                    let first = line + gap - 1;
                    done.push((first, first + len + 1));
                    line = first + len + 2;
                }
                Case {
                    lines,
                    last_newline,
                    pass,
                    deferred,
                    size,
                    max_bytes,
                    done,
                    manifest_matches: matches,
                    stop_after: stop,
                }
            },
        )
}

fn file_bytes(case: &Case) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, line) in case.lines.iter().enumerate() {
        bytes.extend_from_slice(line);
        if i + 1 < case.lines.len() || case.last_newline {
            bytes.push(b'\n');
        }
    }
    bytes
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let bytes = file_bytes(case);
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(&bytes).expect("written");
    // The file's lines as the reader sees them (a generated line may hold a newline).
    let mut file_lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        file_lines.pop();
    }
    let lines = file_lines.len() as u64;
    let text = |line: u64| file_lines[line as usize - 1];
    let checksum = format!("blake3:{}", blake3::hash(&bytes).to_hex());
    let plan = BatchPlan {
        file: TransformedFile {
            path: file.path().to_owned(),
            lines: if case.manifest_matches { lines } else { lines + 1 },
            checksum,
        },
        pass: case.pass,
        legacy_field: "legacyId".into(),
        deferred: case.deferred.clone(),
        size: case.size,
        max_bytes: case.max_bytes,
        done: case.done.clone(),
    };
    let mut batches: Vec<Batch> = Vec::new();
    let result = read_batches(&plan, |batch| {
        batches.push(batch);
        case.stop_after.is_none_or(|n| batches.len() <= n)
    });
    let stopped = case.stop_after.is_some_and(|n| batches.len() > n);
    let read_to_the_end = result.is_ok() && !stopped;
    match result {
        Ok(()) => prop_assert!(case.manifest_matches || stopped, "a changed file is an error"),
        Err(ImportError::BadLine { line, reason, .. }) => {
            prop_assert!(line >= 1 && line <= lines, "line {line} of {lines}");
            prop_assert!(!reason.is_empty());
        }
        Err(ImportError::TransformedChanged { lines: counted, .. }) => {
            prop_assert!(!case.manifest_matches);
            prop_assert_eq!(counted, lines);
        }
        Err(other) => prop_assert!(false, "unexpected error: {other}"),
    }

    let is_done = |line: u64| case.done.iter().any(|&(first, end)| first <= line && line < end);
    let mut previous_end = 1;
    for batch in &batches {
        prop_assert!(batch.first_line >= previous_end, "batches overlap");
        prop_assert!(batch.first_line <= batch.end_line);
        // Import saves `first_line..end_line` as done once Convex acknowledges the batch: every
        // line of the range the pass has something for must be in it. The upsert sends them all.
        let sent: Vec<u64> = batch.entries.iter().map(|e| e.line).collect();
        let due: Vec<u64> =
            (batch.first_line..batch.end_line).filter(|&line| sends(case, text(line))).collect();
        prop_assert_eq!(&sent, &due, "lines {}..{}", batch.first_line, batch.end_line);
        if case.pass == Pass::Upsert {
            prop_assert_eq!(batch.entries.len() as u64, batch.end_line - batch.first_line);
        }
        // An entry alone over `max_bytes` is sent alone, after an empty batch of the lines
        // before it (a call with no documents: harmless, left as it is).
        prop_assert!(batch.entries.len() <= case.size);
        let bytes: usize = batch.entries.iter().map(|e| e.json.len() + 1).sum();
        prop_assert!(batch.entries.len() == 1 || bytes <= case.max_bytes + 1, "{bytes} bytes");
        let mut previous = 0;
        for entry in &batch.entries {
            prop_assert!(entry.line > previous && entry.line >= batch.first_line);
            prop_assert!(entry.line < batch.end_line);
            prop_assert!(!is_done(entry.line), "line {} was done", entry.line);
            let sent = serde_json::from_slice::<serde_json::Value>(&entry.json);
            prop_assert!(sent.is_ok());
            if case.pass == Pass::Upsert {
                // The upsert sets no deferred reference, and names each the line has, so that
                // a late upsert keeps what the second pass wrote.
                let sent = sent.unwrap();
                let line: serde_json::Value = serde_json::from_slice(text(entry.line)).unwrap();
                let deferred_in = |value: &serde_json::Value| -> Vec<String> {
                    let refs = value.get("refs").and_then(|r| r.as_object());
                    let fields = refs.into_iter().flat_map(|r| r.keys());
                    fields.filter(|f| case.deferred.contains(f)).cloned().collect()
                };
                prop_assert!(deferred_in(&sent).is_empty(), "{sent}");
                let named: Vec<String> = sent
                    .get("deferred")
                    .and_then(|d| d.as_array())
                    .map(|d| d.iter().map(|f| f.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default();
                prop_assert_eq!(named, deferred_in(&line));
            }
            previous = entry.line;
        }
        previous_end = batch.end_line;
    }

    // A file read to its end without being stopped leaves no line behind: each is done from
    // before or in a batch, except, in the second pass, a line with no deferred reference.
    if read_to_the_end {
        let in_batch =
            |line: u64| batches.iter().any(|b| b.first_line <= line && line < b.end_line);
        for line in 1..=lines {
            let covered = is_done(line) || in_batch(line);
            match case.pass {
                Pass::Upsert => prop_assert!(covered, "line {line} of {lines} was not sent"),
                Pass::PatchRefs => prop_assert!(
                    covered || !sends(case, text(line)),
                    "line {line} of {lines} has references to patch but was not sent"
                ),
            }
        }
    }
    Ok(())
}

/// Whether the pass sends a line that reads: the upsert every line, the second pass a line with
/// a reference in a deferred field. Independent of the reader: `serde_json::Value`.
fn sends(case: &Case, line: &[u8]) -> bool {
    match case.pass {
        Pass::Upsert => true,
        Pass::PatchRefs => serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|line| line.get("refs")?.as_object().cloned())
            .is_some_and(|refs| refs.keys().any(|field| case.deferred.contains(field))),
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn any_transformed_file_is_batches_or_an_error(case in case()) {
        check(&case)?;
    }
}
