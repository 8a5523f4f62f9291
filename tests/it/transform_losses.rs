//! Rows `migrate transform` must never lose silently: rows that share a legacy id (they would
//! collapse into one Convex document), several rows merged into one document (all but one would
//! be dropped), and `json` objects with a repeated key (all but one value would be dropped).
//! Each is either every row accounted for as a reject with its reason, or a refusal.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::{Run, TestDb, Workdir, jsonl};

fn write_plan(work: &Workdir, text: &str) {
    std::fs::create_dir_all(work.plan_dir()).unwrap();
    std::fs::write(work.plan_dir().join("0001_initial.toml"), text).unwrap();
}

/// Exports `db`, writes `plan` and runs `migrate --format json transform --max-rejected 1000`.
fn transform(db: &TestDb, plan: &str) -> (Workdir, Run) {
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    write_plan(&work, plan);
    let run =
        Run::of(work.dirs_command(&["--format", "json", "transform", "--max-rejected", "1000"]));
    (work, run)
}

fn report(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"))
}

fn table_report<'a>(manifest: &'a Value, table: &str) -> &'a Value {
    manifest["tables"].as_array().unwrap().iter().find(|t| t["table"] == table).unwrap()
}

#[test]
fn rows_sharing_a_legacy_id_are_all_rejected_and_the_unique_ones_written() {
    // GIVEN a table without a key, 50 rows, whose plan takes `code` as the legacy id: codes
    // 3, 7, 11, 20 and 42 are held by several rows (2 to 4 each), the other codes by one row
    let db = TestDb::with(
        "create table events (code int not null, note text);
         insert into events select n, 'unique ' || n from generate_series(1, 39) n;
         insert into events values (3, 'again'), (7, 'again'), (7, 'and again'), (11, 'again'),
           (20, 'again'), (20, 'and again'), (20, 'once more'), (42, 'first'), (42, 'second'),
           (42, 'third'), (42, 'fourth');",
    );
    assert_eq!(db.conn().count("select count(*) from events"), 50);
    let repeated: BTreeMap<&str, u64> =
        BTreeMap::from([("3", 2), ("7", 3), ("11", 2), ("20", 4), ("42", 4)]);

    // WHEN transform runs
    let (work, run) = transform(&db, "[tables.\"public.events\"]\nlegacy_id = [\"code\"]\n");

    // THEN it exits 0 (rejects within --max-rejected) and counts 15 rows rejected
    assert_eq!(run.code, Some(0), "{run}");
    let summary = report(&run);
    assert_eq!(summary["rejected"], 15, "{run}");
    assert_eq!(summary["duplicate_ids"], 15, "{run}");
    // AND every row of each repeated id is in rejects/, the reason naming the id, the count and
    // the table
    let rejects = jsonl(&work.data_dir().join("rejects/public.events.jsonl"));
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    for reject in &rejects {
        let id = reject["key"]["code"].to_string();
        let times = repeated[id.as_str()];
        let reason = reject["reason"].as_str().unwrap();
        let expected = format!("legacy id `{id}` is held by {times} rows of `public.events`");
        assert!(reason.contains(&expected), "{reason:?} lacks {expected:?}");
        assert!(reason.contains("legacy_id"), "{reason:?} gives no hint");
        assert_eq!(reject["field"], "legacyId", "{reject}");
        *rejected.entry(id).or_default() += 1;
    }
    let repeated_owned: BTreeMap<String, u64> =
        repeated.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(rejected, repeated_owned, "{rejects:?}");
    // AND the 35 ids held by one row each are written, once each
    let docs = jsonl(&work.data_dir().join("transformed/events.jsonl"));
    let ids: Vec<String> =
        docs.iter().map(|d| d["doc"]["legacyId"].as_str().unwrap().to_owned()).collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), 35, "{ids:?}");
    assert_eq!(unique.len(), 35, "{ids:?}");
    assert!(unique.iter().all(|id| !repeated.contains_key(id.as_str())), "{ids:?}");
    // AND the manifest counts them as rejected, not as documents, with the file's true checksum
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(work.data_dir().join("transformed/manifest.json")).unwrap(),
    )
    .unwrap();
    let events = table_report(&manifest, "events");
    assert_eq!((&events["rows"], &events["documents"]), (&50.into(), &35.into()), "{events}");
    assert_eq!(events["rejected"], 15, "{events}");
    let bytes = std::fs::read(work.data_dir().join("transformed/events.jsonl")).unwrap();
    assert_eq!(events["bytes"], bytes.len(), "{events}");
    assert_eq!(events["checksum"], format!("blake3:{}", blake3::hash(&bytes).to_hex()));
}

#[test]
fn a_merged_table_with_several_rows_for_one_document_is_refused() {
    // GIVEN users, and addresses merged into them, where user 2 has three addresses
    let db = TestDb::with(
        "create table users (id int primary key, name text not null);
         create table addresses (id int primary key, user_id int not null references users,
                                 city text not null);
         insert into users values (1, 'ada'), (2, 'bob'), (3, 'cy');
         insert into addresses values (10, 1, 'Paris'), (11, 2, 'Oslo'), (12, 2, 'Rome'),
                                      (13, 2, 'Lima'), (14, 3, 'Kyiv');",
    );

    // WHEN transform runs with addresses merged into users
    let (work, run) =
        transform(&db, "[tables.\"public.addresses\"]\nmerge_into = \"public.users\"\n");

    // THEN it refuses, naming the merged table, the target, the id and how many rows share it
    run.fails_with(
        2,
        &[
            "`public.addresses` has 3 rows for legacy id `2` of `public.users`",
            "hint:",
            "merge_into",
        ],
    );
    // AND keeps no transformed manifest, so nothing can be imported from a partial result
    assert!(!work.data_dir().join("transformed/manifest.json").exists(), "{run}");
}

#[test]
fn a_json_object_with_a_repeated_key_rejects_its_row() {
    // GIVEN a `json` column (which keeps repeated keys, unlike `jsonb`) with one row whose
    // object repeats `dup`, one whose nested object repeats `k`, and one without repeats
    let db = TestDb::with(
        r#"create table docs (id int primary key, body json);
           insert into docs values (1, '{"dup": 1, "dup": 2}'),
                                   (2, '{"a": [{"k": 1, "k": 2, "k": 3}]}'),
                                   (3, '{"a": 1, "b": 2}');"#,
    );

    // WHEN transform runs
    let (work, run) = transform(&db, "");

    // THEN rows 1 and 2 are rejected, naming the column, the key and where it is
    assert_eq!(run.code, Some(0), "{run}");
    let rejects = jsonl(&work.data_dir().join("rejects/public.docs.jsonl"));
    let by_id: BTreeMap<String, &Value> =
        rejects.iter().map(|r| (r["key"]["id"].to_string(), r)).collect();
    assert_eq!(by_id.keys().collect::<Vec<_>>(), ["1", "2"], "{rejects:?}");
    for (id, field, key, times) in [("1", "body", "dup", 2), ("2", "body.a[0]", "k", 3)] {
        let reject = by_id[id];
        assert_eq!(reject["field"], field, "{reject}");
        let reason = reject["reason"].as_str().unwrap();
        let expected = format!("json column `body` has key `{key}` {times} times");
        assert!(reason.contains(&expected), "{reason:?} lacks {expected:?}");
    }
    // AND row 3 is written
    let docs = jsonl(&work.data_dir().join("transformed/docs.jsonl"));
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(docs[0]["doc"]["legacyId"], "3");
}
