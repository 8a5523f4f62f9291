//! Verify reads a table of more than two pages as `_creationTime` ranges at once
//! (src/verify/ranges.rs): every document is compared once, and what differs is found wherever
//! in the table it is, the same way every run.

use convex_sink::{Plan, Sink, SinkConfig};
use serde_json::{Value, json};

use crate::import_pipeline::Prepared;

/// 20,000 rows: pages of 4,000 documents, so five ranges.
const ITEMS: &str = "
create table items (id int primary key, name text not null, meta jsonb);
insert into items
select g, 'item ' || g, jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 7))
from generate_series(1, 20000) g;
";

#[test]
fn a_table_read_in_ranges_at_once_is_compared_document_by_document() {
    // GIVEN 20,000 documents imported, and verify finding them exactly
    let prepared = Prepared::new(ITEMS, "");
    prepared.migrate(&["transform"]).success();
    let plan = Plan::from_module_file(prepared.convex_dir().join("migrate.ts")).unwrap();
    let sink = Sink::start(SinkConfig::new(plan)).unwrap();
    let run = |args: &[&str]| prepared.against(&sink.url(), sink.admin_key(), args);
    run(&["import"]).success();
    let exact = run(&["verify"]).success();
    assert!(exact.stdout.contains("verified: Convex holds exactly the 20,000"), "{exact}");

    // WHEN documents at the start, in the middle and at the end of the table change behind
    // migrate's back: two fields changed, one legacy id changed (one missing, one extra), and
    // a copy of one added after the last (beyond the last creation time verify split at)
    let changed = |legacy: &str| {
        sink.modify("items", legacy, |doc| {
            doc.insert("name".into(), json!("changed"));
        })
    };
    assert!(changed("1") && changed("10000"));
    assert!(sink.modify("items", "20000", |doc| {
        doc.insert("legacyId".into(), json!("gone"));
    }));
    let copy = sink.document("items", "12345").unwrap();
    sink.insert_raw("items", copy);

    // THEN verify finds each of them, and lists them the same way on every run
    let report = |run: crate::support::Run| -> Value { serde_json::from_str(&run.stdout).unwrap() };
    let first = report(run(&["--format", "json", "verify", "--show", "10"]));
    let second = report(run(&["--format", "json", "verify", "--show", "10"]));
    assert_eq!(first["verified"], false, "{first}");
    let items = &first["tables"][0];
    let counts: Vec<&Value> = ["convex", "matching", "missing", "extra", "different", "duplicates"]
        .iter()
        .map(|k| &items[*k])
        .collect();
    assert_eq!(counts, [&json!(20001), &json!(19997), &json!(1), &json!(1), &json!(2), &json!(1)]);
    let listed: Vec<(&str, &str)> = first["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d["legacy_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            ("duplicate", "12345"),
            ("different", "1"),
            ("different", "10000"),
            ("missing", "20000"),
            ("extra", "gone")
        ]
    );
    assert_eq!(first["differences"], second["differences"]);
}
