//! The golden export: `tests/fixtures/all_types.sql` (every type of the raw form, every shape of
//! table) exported, and each raw file and the manifest compared with a reviewed snapshot.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{TestDb, Workdir, jsonl};

const FIXTURE: &str = include_str!("../fixtures/all_types.sql");

/// One file per table of the fixture, partitions and the view excluded, names encoded.
const RAW_FILES: [&str; 10] = [
    "public.CamelCase.jsonl",
    "public.Order%20Items.jsonl",
    "public.all_types.jsonl",
    "public.authors.jsonl",
    "public.books.jsonl",
    "public.employees.jsonl",
    "public.empty_table.jsonl",
    "public.events.jsonl",
    "public.order_lines.jsonl",
    "public.say%20%22hi%22.jsonl",
];

fn snapshot_name(file: &str) -> String {
    file.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn lines(work: &Workdir, file: &str) -> Vec<Value> {
    jsonl(&work.raw_dir().join(file))
}

/// Every table the manifest lists has its file, with as many lines as the manifest says and
/// the checksum of its bytes; and no other raw file exists.
fn assert_manifest_matches_files(work: &Workdir, manifest: &Value) {
    let tables = manifest["tables"].as_array().expect("manifest.tables");
    let mut listed = BTreeSet::new();
    for table in tables {
        let file = table["file"].as_str().expect("tables[].file");
        let bytes = std::fs::read(work.data_dir().join(file)).expect("a listed file exists");
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(table["rows"].as_u64(), Some(lines), "row count of {file}");
        assert_eq!(table["bytes"].as_u64(), Some(bytes.len() as u64), "size of {file}");
        let checksum = format!("blake3:{}", blake3::hash(&bytes).to_hex());
        assert_eq!(table["checksum"].as_str(), Some(checksum.as_str()), "checksum of {file}");
        listed.insert(file.strip_prefix("raw/").expect("files live in raw/").to_owned());
    }
    let on_disk: BTreeSet<String> = work.raw_files().into_iter().collect();
    assert_eq!(listed, on_disk, "the manifest lists exactly the files in data/raw");
}

#[test]
fn every_type_and_table_shape_exports_exactly_as_reviewed() {
    // GIVEN the fixture database
    let db = TestDb::with(FIXTURE);
    let work = Workdir::new();

    // WHEN it is exported with the default settings
    work.export(db.url(), &[]).success();

    // THEN each table has one file, holding exactly the reviewed raw form
    assert_eq!(work.raw_files(), RAW_FILES);
    for file in RAW_FILES {
        let contents = std::fs::read_to_string(work.raw_dir().join(file)).unwrap();
        insta::assert_snapshot!(snapshot_name(file), contents);
    }

    // AND the manifest's counts and checksums describe those files
    let manifest = work.manifest();
    assert_manifest_matches_files(&work, &manifest);

    // AND the partitioned table is one file holding both partitions' rows, with none per partition
    assert!(!work.raw_file("public.events_2023").exists());
    assert!(!work.raw_file("public.events_2024").exists());
    let events = lines(&work, "public.events.jsonl");
    let days: BTreeSet<&str> = events.iter().map(|e| e["happened_on"].as_str().unwrap()).collect();
    assert_eq!(days, BTreeSet::from(["2023-06-01", "2023-12-31", "2024-03-01", "2024-12-31"]));
    let catalog = manifest["catalog"]["tables"].as_array().unwrap();
    let kind_of = |name: &str| {
        catalog.iter().find(|t| t["name"] == name).map(|t| t["kind"].as_str().unwrap().to_owned())
    };
    assert_eq!(kind_of("events").as_deref(), Some("partitioned"));
    assert_eq!(kind_of("events_2023"), None, "a partition is not a table of its own");
    assert_eq!(kind_of("happy_rows"), None, "a view is not exported unless named");

    // AND the manifest names the source without its volatile details, which are checked here
    assert_eq!(manifest["source"]["database"], db.name());
    let url = manifest["source"]["url"].as_str().unwrap();
    assert!(url.starts_with("postgres://") && url.ends_with(&format!("/{}", db.name())), "{url}");
    assert_eq!(manifest["tool"], concat!("migrate ", env!("CARGO_PKG_VERSION")));
    let taken_at = manifest["snapshot"]["taken_at"].as_str().unwrap();
    assert!(
        taken_at.len() == 27 && taken_at.as_bytes()[10] == b'T' && taken_at.ends_with('Z'),
        "{taken_at}"
    );
    let identity = manifest["source"]["identity"].as_str().unwrap();
    assert_eq!(identity.split(':').filter(|n| n.parse::<u64>().is_ok()).count(), 3, "{identity}");
    let text = std::fs::read_to_string(work.manifest_path()).unwrap();
    let mut settings = insta::Settings::clone_current();
    let volatile = [
        "taken_at",
        "transaction_snapshot",
        "url",
        "database",
        "server_version",
        "identity",
        "tool",
    ];
    for key in volatile {
        settings.add_filter(&format!(r#""{key}": "[^"]*""#), format!(r#""{key}": "[{key}]""#));
    }
    settings.bind(|| insta::assert_snapshot!("manifest", text));
}

#[test]
fn a_view_is_exported_when_named_with_the_rows_it_shows() {
    // GIVEN the fixture database, whose view `happy_rows` shows rows 1 and 4 of `all_types`
    let db = TestDb::with(FIXTURE);
    let work = Workdir::new();

    // WHEN the view and a table with a space in its name are named in --tables
    work.export(db.url(), &["--tables", r#"happy_rows,public."Order Items""#]).success();

    // THEN both are exported, and nothing else
    assert_eq!(work.raw_files(), ["public.Order%20Items.jsonl", "public.happy_rows.jsonl"]);
    let manifest = work.manifest();
    assert_manifest_matches_files(&work, &manifest);
    let kinds: Vec<&str> = manifest["catalog"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["table", "view"]);

    // AND the view's rows carry the same raw values as the table they come from
    let full = Workdir::new();
    full.export(db.url(), &["--tables", "all_types"]).success();
    let expected: Vec<Value> = lines(&full, "public.all_types.jsonl")
        .into_iter()
        .filter(|row| row["feeling"] == "happy")
        .map(|row| serde_json::json!({"id": row["id"], "note": row["note"], "feeling": "happy"}))
        .collect();
    assert_eq!(expected.len(), 2);
    assert_eq!(lines(&work, "public.happy_rows.jsonl"), expected);
}
