//! Timestamps under policy `ms` become whole milliseconds, the way JavaScript's `Date.now()`
//! counts them; the sub-millisecond digits dropped are counted, instants JavaScript's `Date`
//! cannot hold are rejected, and policy `iso` keeps every microsecond.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{Run, TestDb, Workdir, jsonl};

const EVENTS: &str = "
create table events (id int primary key, at timestamptz, local_at timestamp);
insert into events values
  (1, '3000-01-01 00:00:00.000003+00', '3000-01-01 00:00:00.000003'),
  (2, '1969-12-31 23:59:59.9995+00', '1969-12-31 23:59:59.9995'),
  (3, '2024-01-01 00:00:00.123+00', null),
  (4, '294276-12-31 00:00:00+00', null),
  (5, null, '294276-12-31 00:00:00');
";

fn transform(work: &Workdir, plan: &str) -> Run {
    std::fs::create_dir_all(work.plan_dir()).unwrap();
    std::fs::write(work.plan_dir().join("0001_initial.toml"), plan).unwrap();
    Run::of(work.dirs_command(&["--format", "json", "transform"]))
}

fn documents(work: &Workdir) -> BTreeMap<String, Value> {
    jsonl(&work.data_dir().join("transformed/events.jsonl"))
        .into_iter()
        .map(|line| (line["doc"]["legacyId"].as_str().unwrap().to_owned(), line["doc"].clone()))
        .collect()
}

#[test]
fn policy_ms_keeps_whole_milliseconds_counts_what_it_drops_and_rejects_beyond_date() {
    // GIVEN timestamps far from 1970, just before it, and beyond JavaScript's Date
    let db = TestDb::with(EVENTS);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();

    // WHEN transform runs with the default policy `ms`
    let run = transform(&work, "");

    // THEN each instant is the millisecond that contains it, a whole number
    let docs = documents(&work);
    assert_eq!(docs["1"]["at"], json!(32_503_680_000_000.0_f64), "{run}");
    assert_eq!(docs["1"]["localAt"], json!(32_503_680_000_000.0_f64));
    assert_eq!(docs["2"]["at"], json!(-1.0), "rounded down before 1970 too");
    assert_eq!(docs["2"]["localAt"], json!(-1.0));
    assert_eq!(docs["3"]["at"], json!(1_704_067_200_123.0_f64));
    // AND the rows beyond JavaScript's Date are rejected, naming the column and the exact policy
    assert_eq!(run.code, Some(5), "{run}");
    assert_eq!(docs.keys().collect::<Vec<_>>(), ["1", "2", "3"]);
    let rejects = jsonl(&work.data_dir().join("rejects/public.events.jsonl"));
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    for (reject, column) in rejects.iter().zip(["at", "local_at"]) {
        let reason = reject["reason"].as_str().unwrap();
        for part in [&format!("column `{column}`"), "outside JavaScript's Date range", "`iso`"] {
            assert!(reason.contains(part), "{reason:?} lacks {part:?}");
        }
    }
    // AND the values that lost sub-millisecond digits are counted, in the report and manifest
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    assert_eq!(report["tables"][0]["sub_ms_dropped"], json!(4), "{report}");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(work.data_dir().join("transformed/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["tables"][0]["sub_ms_dropped"], json!(4), "{manifest}");
    // AND the text summary says so
    let text = Run::of(work.dirs_command(&["transform"]));
    assert!(
        text.stdout.contains("`events`: 4 timestamp values lost sub-millisecond digits"),
        "{text}"
    );
}

#[test]
fn policy_iso_keeps_every_microsecond() {
    // GIVEN the same timestamps
    let db = TestDb::with(EVENTS);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();

    // WHEN transform runs with policy `iso` for both timestamp types
    let run = transform(&work, "[defaults.types]\ntimestamptz = \"iso\"\ntimestamp = \"iso\"\n");

    // THEN every row is a document holding the exact instant, microseconds included
    assert_eq!(run.code, Some(0), "{run}");
    let docs = documents(&work);
    assert_eq!(docs["1"]["at"], "3000-01-01T00:00:00.000003Z");
    assert_eq!(docs["1"]["localAt"], "3000-01-01T00:00:00.000003");
    assert_eq!(docs["2"]["at"], "1969-12-31T23:59:59.999500Z");
    assert_eq!(docs["4"]["at"], "+294276-12-31T00:00:00.000000Z");
    assert_eq!(docs["5"]["localAt"], "+294276-12-31T00:00:00.000000");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["tables"][0]["sub_ms_dropped"], json!(0), "{report}");
}

#[test]
fn policy_ms_rejects_dates_beyond_javascript_s_date() {
    // GIVEN dates under policy `ms`: the last day JavaScript's Date holds, the next one, and
    // Postgres' last date (beyond 2^53 ms, where a double does not even hold the day)
    let db = TestDb::with(
        "create table events (id int primary key, day date, days date[]);
         insert into events values (1, '275760-09-13', null), (2, '275760-09-14', null),
           (3, '5874897-12-31', null), (4, null, array['2024-01-01', '275761-01-01']::date[]);",
    );
    let work = Workdir::new();
    work.export(db.url(), &[]).success();

    let run = transform(&work, "[defaults.types]\ndate = \"ms\"\n");

    // THEN only the day Date holds becomes a number; the others are rejected, not written as
    // numbers JavaScript reads as Invalid Date
    let docs = documents(&work);
    assert_eq!(docs.keys().collect::<Vec<_>>(), ["1"], "{run}");
    assert_eq!(docs["1"]["day"], json!(8.64e15));
    assert_eq!(run.code, Some(5), "{run}");
    let rejects = jsonl(&work.data_dir().join("rejects/public.events.jsonl"));
    assert_eq!(rejects.len(), 3, "{rejects:?}");
    for reject in &rejects {
        let reason = reject["reason"].as_str().unwrap();
        assert!(reason.contains("outside JavaScript's Date range"), "{reason:?}");
        assert!(reason.contains("filter"), "{reason:?}");
    }
}
