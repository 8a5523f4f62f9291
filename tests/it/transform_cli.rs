//! `migrate transform` end to end: a real export, a plan on disk, the binary, and its files.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::{Run, TestDb, Workdir, file_names, jsonl};

/// Runs `migrate transform` with `plan` as the only plan file.
fn transform(work: &Workdir, plan: &str, extra: &[&str]) -> Run {
    let plan_dir = work.plan_dir();
    std::fs::create_dir_all(&plan_dir).unwrap();
    std::fs::write(plan_dir.join("0001_initial.toml"), plan).unwrap();
    Run::of(work.dirs_command(&[&["transform"], extra].concat()))
}

/// Every file under `dir` with its bytes, to prove a run changed nothing.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

const LOSSY: &str = r#"
create table measurements (
  id int primary key,
  big bigint,
  amount numeric,
  day date,
  at timestamptz,
  doc jsonb,
  list int[]
);
insert into measurements values
  (1, 9007199254740992, 1.5, '2024-01-01', '2024-01-01T00:00:00Z', '{"ok": true}', '{1,2}'),
  (2, 9007199254740993, 1, '2024-01-01', '2024-01-01T00:00:00Z', null, null),
  (3, 1, 123456789012345678901234567890, '2024-01-01', '2024-01-01T00:00:00Z', null, null),
  (4, 1, 1, '0044-03-15 BC', '2024-01-01T00:00:00Z', null, null),
  (5, 1, 1, '2024-01-01', 'infinity', null, null),
  (6, 1, 1, '2024-01-01', '2024-01-01T00:00:00Z', '{"$where": 1}', null),
  (7, 1, 1, '2024-01-01', '2024-01-01T00:00:00Z', null, (select array_agg(g) from generate_series(1, 8193) g)),
  (8, 1, 1, '2024-01-01', '2024-01-01T00:00:00Z',
     (select jsonb_object_agg('k' || g, g) from generate_series(1, 1025) g), null),
  (9, 1, 1, '2024-01-01', '2024-01-01T00:00:00Z',
     '[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]', null),
  (10, 1, 1, '2024-01-01', '2024-01-01T00:00:00Z', jsonb_build_object('s', repeat('x', 1048576)), null);
"#;

const REJECT_JSON_KEYS: &str = r#"
[tables."public.measurements".columns.doc]
json_keys = "reject"
"#;

#[test]
fn rows_that_would_lose_data_or_break_convex_rules_are_rejected_with_their_reason() {
    // GIVEN a table with one good row and one row per way to lose data or break a Convex rule
    let db = TestDb::with(LOSSY);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();

    // WHEN it is transformed with the default policies
    let run = transform(&work, REJECT_JSON_KEYS, &[]);

    // THEN the run finishes, says rows were rejected, and keeps only the good row
    assert_eq!(run.code, Some(5), "{run}");
    let documents = jsonl(&work.data_dir().join("transformed/measurements.jsonl"));
    assert_eq!(documents.len(), 1, "{documents:?}");
    assert_eq!(documents[0]["doc"]["big"], serde_json::json!(9007199254740992.0));

    // AND every other row is in the rejects file with the field and the reason
    let rejects = jsonl(&work.data_dir().join("rejects/public.measurements.jsonl"));
    let reasons: BTreeMap<String, (String, String)> = rejects
        .iter()
        .map(|r| {
            let id = r["key"]["id"].to_string();
            (
                id,
                (r["field"].as_str().unwrap().to_owned(), r["reason"].as_str().unwrap().to_owned()),
            )
        })
        .collect();
    let expect = |id: &str, field: &str, reason: &str| {
        let (got_field, got_reason) = &reasons[id];
        assert!(got_field.starts_with(field), "row {id}: field {got_field}: {got_reason}");
        assert!(got_reason.contains(reason), "row {id}: {got_reason:?} lacks {reason:?}");
    };
    expect("2", "big", "beyond ±2^53");
    expect("3", "amount", "without losing digits");
    expect("4", "day", "outside years 0000-9999");
    expect("5", "at", "infinity is no number of milliseconds; use policy `iso`");
    expect("6", "doc.$where", "$");
    expect("7", "list", "8192");
    expect("8", "doc", "1024");
    expect("9", "doc[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]", "nested 17 levels deep");
    expect("10", "", "MiB");
    assert_eq!(rejects.len(), 9);
    assert!(
        rejects.iter().all(|r| r["table"] == "public.measurements" && r["line"].as_u64().is_some())
    );

    // AND the summary names the first rejects
    assert!(run.stdout.contains("first rejects"), "{run}");
    assert!(run.stdout.contains("9 rejected"), "{run}");
}

#[test]
fn max_rejected_tolerates_up_to_n_and_stops_beyond() {
    let db = TestDb::with(LOSSY);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();

    // Up to 9 rejected rows are tolerated: exit 0 and the good row is kept.
    let tolerated = transform(&work, REJECT_JSON_KEYS, &["--max-rejected", "9"]);
    assert_eq!(tolerated.code, Some(0), "{tolerated}");
    assert!(work.data_dir().join("transformed/manifest.json").exists());

    // More than 2: the run stops early, keeps only the rejects, and no manifest claims success.
    let stopped = transform(&work, REJECT_JSON_KEYS, &["--max-rejected", "2"]);
    assert_eq!(stopped.code, Some(5), "{stopped}");
    assert!(stopped.stdout.contains("stopped early"), "{stopped}");
    assert!(!work.data_dir().join("transformed/manifest.json").exists());
    assert!(!work.data_dir().join("transformed/measurements.jsonl").exists());
    assert_eq!(jsonl(&work.data_dir().join("rejects/public.measurements.jsonl")).len(), 3);
}

#[test]
fn a_dry_run_writes_nothing_and_shows_samples_and_rejects() {
    // GIVEN an export and a transform already done
    let db = TestDb::with(LOSSY);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    // (the default policies keep rows 1 and 6, and reject the 8 others)
    let setup = transform(&work, "", &[]);
    assert_eq!(setup.code, Some(5), "{setup}");
    let before = tree(&work.data_dir());
    // AND that transform's output is in the snapshot, or comparing it would prove nothing
    let snapshot = |relative: &str| {
        let path = work.data_dir().join(relative).display().to_string();
        let bytes =
            before.get(&path).unwrap_or_else(|| panic!("no {relative} in {:?}", before.keys()));
        String::from_utf8(bytes.clone()).expect("UTF-8")
    };
    assert!(snapshot("transformed/manifest.json").contains("measurements"));
    let ids: Vec<Value> = snapshot("transformed/measurements.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line")["doc"]["legacyId"].clone())
        .collect();
    assert_eq!(ids, [serde_json::json!("1"), serde_json::json!("6")]);
    assert_eq!(snapshot("rejects/public.measurements.jsonl").lines().count(), 8);

    // WHEN a dry run runs
    let run = transform(&work, REJECT_JSON_KEYS, &["--dry-run", "--sample", "1"]);

    // THEN not one file changed
    assert_eq!(tree(&work.data_dir()), before);
    // AND it shows a sample document, the summary and the first rejects
    assert!(run.stdout.contains("measurements: 1 sample document"), "{run}");
    assert!(run.stdout.contains("\"legacyId\": \"1\""), "{run}");
    assert!(run.stdout.contains("first rejects"), "{run}");
    assert!(run.stdout.contains("dry run: nothing was written"), "{run}");
    assert_eq!(run.code, Some(5), "{run}");
}

#[test]
fn a_changed_export_is_refused() {
    let db = TestDb::with(
        "create table t (id int primary key, v text); insert into t values (1, 'a'), (2, 'b');",
    );
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    let raw = work.raw_file("public.t");
    let text = std::fs::read_to_string(&raw).unwrap().replace("\"a\"", "\"z\"");
    std::fs::write(&raw, text).unwrap();

    let run = transform(&work, "", &[]);
    run.fails_with(
        2,
        &["is not the file the export wrote for `public.t`", "run `migrate export` again"],
    );
    assert!(!work.data_dir().join("transformed/manifest.json").exists());
}

#[test]
fn without_an_export_transform_says_to_run_export() {
    let work = Workdir::new();
    let run = transform(&work, "", &[]);
    run.fails_with(
        2,
        &["no export in", "`manifest.json` is missing", "run `migrate export` first"],
    );
}

/// 150,000 rows of `big` exported and transformed: long enough to interrupt a new transform.
fn large_table_transformed() -> (TestDb, Workdir) {
    let db = TestDb::with(
        "create table big as
           select g as id, repeat('x', 200) || g as filler from generate_series(1, 150000) g;
         alter table big add primary key (id);",
    );
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    transform(&work, "", &[]).success();
    assert!(work.data_dir().join("transformed/manifest.json").exists());
    (db, work)
}

#[test]
fn ctrl_c_stops_transform_without_leaving_output_that_looks_complete() {
    // GIVEN an export of a table large enough to take a moment, and a finished transform of it
    let (_db, work) = large_table_transformed();
    let transformed = work.data_dir().join("transformed");

    // WHEN a new transform is interrupted with SIGINT while it writes
    let child = work
        .dirs_command(&["transform"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("migrate starts");
    let partial = transformed.join(".big.jsonl.partial");
    crate::support::wait_until("the transform writes", std::time::Duration::from_secs(60), || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0)
    });
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let run = Run::from_output(&child.wait_with_output().expect("the transform ends"));

    // THEN it exits 130 saying so, and nothing under transformed/ looks finished
    assert_eq!(run.code, Some(130), "{run}");
    assert!(run.stderr.contains("interrupted"));
    assert!(transformed.is_dir(), "{} is gone", transformed.display());
    let left = file_names(&transformed);
    assert!(left.is_empty(), "files left after an interrupted transform: {left:?}");

    // AND the next transform completes
    transform(&work, "", &[]).success();
    assert_eq!(jsonl(&transformed.join("big.jsonl")).len(), 150_000);
}

#[test]
fn a_transform_killed_mid_table_leaves_nothing_import_would_take_as_complete() {
    // GIVEN a finished transform of a large table
    let (_db, work) = large_table_transformed();
    let transformed = work.data_dir().join("transformed");

    // WHEN a new transform is killed (SIGKILL: no chance to clean up) while it writes
    let mut child = work.dirs_command(&["transform"]).spawn().expect("migrate starts");
    let partial = transformed.join(".big.jsonl.partial");
    crate::support::wait_until("the transform writes", std::time::Duration::from_secs(60), || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0)
    });
    child.kill().expect("SIGKILL is delivered");
    let status = child.wait().expect("the killed transform is reaped");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status}");

    // THEN neither the manifest nor a final document file is there, and import refuses to start
    assert!(!transformed.join("manifest.json").exists());
    assert!(!transformed.join("big.jsonl").exists());
    let import = Run::of(work.dirs_command(&["import", "--dry-run"]));
    import.fails_with(2, &["no transformed data", "run `migrate transform` first"]);

    // AND the next transform completes
    transform(&work, "", &[]).success();
    assert_eq!(jsonl(&transformed.join("big.jsonl")).len(), 150_000);
}
