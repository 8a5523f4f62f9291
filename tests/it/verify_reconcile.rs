//! `migrate verify` proves the result against the source: every exported row is a document,
//! merged, filtered by a plan rule, skipped or rejected, and the counts add up to the export's
//! manifest. Real Postgres, the generated module under convex-test (tests/convex/server.ts).

use serde_json::Value;

use crate::convex_server::ConvexTestServer;
use crate::import_pipeline::Prepared;
use crate::support::Run;

/// Four accounts; under policy `cents` the NaN balance of account 3 has no value.
const ACCOUNTS: &str = "
create table accounts (id int primary key, status text not null, balance numeric not null);
insert into accounts values (1, 'active', 1.25), (2, 'closed', 2.5), (3, 'active', 'NaN'),
  (4, 'active', 4);
";

const CENTS: &str = "[tables.\"public.accounts\".columns.balance]\npolicy = \"cents\"\n";

/// Transformed with `transform_args`, deployed under convex-test and imported.
fn imported(policies: &str, transform_args: &[&str]) -> (Prepared, ConvexTestServer) {
    let prepared = Prepared::new(ACCOUNTS, policies);
    let mut args = vec!["transform"];
    args.extend_from_slice(transform_args);
    prepared.migrate(&args).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    prepared.against(server.url(), server.admin_key(), &["import"]).success();
    (prepared, server)
}

fn verify(prepared: &Prepared, server: &ConvexTestServer, args: &[&str]) -> Run {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    prepared.against(server.url(), server.admin_key(), &all)
}

/// The JSON report's row of source table `public.accounts`.
fn accounts_row(run: &Run) -> Value {
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    let tables = report["tables"].as_array().unwrap();
    tables.iter().find(|t| t["source"] == "public.accounts").cloned().unwrap()
}

#[test]
fn rejected_rows_fail_verify_unless_accepted_by_their_exact_number() {
    // GIVEN account 3 rejected by transform (tolerated there), the other three imported
    let (prepared, server) = imported(CENTS, &["--max-rejected", "1"]);

    // WHEN verify runs THEN Convex matches, but the rejected row fails it, exit 1, with the
    // reconciliation showing where the row went and what to do
    let run = verify(&prepared, &server, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stdout.contains(
            "1 row was rejected by transform (listed in rejects/): fix them and run transform \
             again, or accept them with `--accept-rejected 1`"
        ),
        "{run}"
    );
    assert!(run.stdout.contains("NOT verified:\n"), "{run}");
    assert!(!run.stdout.lines().any(|l| l.starts_with("verified")), "{run}");
    let json = verify(&prepared, &server, &["--format", "json"]);
    assert_eq!(json.code, Some(1), "{json}");
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        (&report["verified"], &report["identical"]),
        (&Value::Bool(false), &Value::Bool(true))
    );
    let row = accounts_row(&json);
    for (column, expected) in [
        ("source_rows", 4),
        ("documents", 3),
        ("rejected", 1),
        ("unaccounted", 0),
        ("convex", 3),
        ("matching", 3),
    ] {
        assert_eq!(row[column], expected, "{column}: {row}");
    }

    // WHEN the one rejected row is accepted THEN verify passes
    let run = verify(&prepared, &server, &["--accept-rejected", "1"]).success();
    assert!(run.stdout.contains("accounted for: every one of the 4 exported rows"), "{run}");
    assert!(run.stdout.contains("1 rejected, accepted)"), "{run}");
    assert!(run.stdout.contains("verified: Convex holds exactly the 3 transformed"), "{run}");

    // WHEN another number is accepted THEN it fails saying both numbers
    for wrong in ["0", "2"] {
        let run = verify(&prepared, &server, &["--accept-rejected", wrong]);
        assert_eq!(run.code, Some(1), "{run}");
        assert!(
            run.stdout
                .contains(&format!("`--accept-rejected {wrong}` accepts {wrong} rejected row")),
            "{run}"
        );
        assert!(run.stdout.contains("but transform rejected 1"), "{run}");
    }
}

#[test]
fn a_row_filtered_by_a_plan_rule_is_counted_under_its_rule_and_verify_passes() {
    // GIVEN a plan that migrates active accounts only: account 2 is left out by that rule
    let filter = "[[tables.\"public.accounts\".filter]]\ncolumn = \"status\"\nin = [\"active\"]\n";
    let (prepared, server) = imported(filter, &[]);

    // WHEN verify runs THEN every row is accounted for, the filtered one under its rule
    let run = verify(&prepared, &server, &[]).success();
    assert!(run.stdout.contains("filtered by plan rules:"), "{run}");
    assert!(run.stdout.contains(r#"public.accounts filter `status` in ["active"]: 1"#), "{run}");
    assert!(run.stdout.contains("4 exported rows (3 documents, 0 merged, 1 filtered"), "{run}");
    let json = verify(&prepared, &server, &["--format", "json"]).success();
    let row = accounts_row(&json);
    assert_eq!((row["filtered"].as_u64(), row["documents"].as_u64()), (Some(1), Some(3)), "{row}");
    assert_eq!(row["filtered_by_rule"][r#"filter `status` in ["active"]"#], 1, "{row}");
    assert_eq!(row["unaccounted"], 0, "{row}");
}

#[test]
fn a_row_lost_between_raw_and_transformed_is_caught_by_the_reconciliation() {
    // GIVEN a transform bug: account 2 never reached transformed/, and transform's manifest
    // agrees with its file (3 rows read, 3 documents, the file's size and checksum), so the
    // import finds nothing wrong
    let prepared = Prepared::new(ACCOUNTS, "");
    prepared.migrate(&["transform"]).success();
    let file = prepared.data_path("transformed/accounts.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.contains(r#""legacyId":"2""#))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(kept.lines().count(), 3);
    std::fs::write(&file, &kept).unwrap();
    let manifest_path = prepared.data_path("transformed/manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let table = &mut manifest["tables"][0];
    table["rows"] = 3.into();
    table["documents"] = 3.into();
    table["bytes"] = kept.len().into();
    table["checksum"] = format!("blake3:{}", blake3::hash(kept.as_bytes()).to_hex()).into();
    let source = &mut manifest["sources"][0];
    assert_eq!(source["table"], "public.accounts");
    source["rows"] = 3.into();
    source["documents"] = 3.into();
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    prepared.against(server.url(), server.admin_key(), &["import"]).success();

    // WHEN verify runs THEN Convex matches the transformed file, but the export had 4 rows:
    // the gap is named, exit 1
    let run = verify(&prepared, &server, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stdout.contains(
            "`public.accounts`: 4 rows exported, 3 accounted for (3 documents, 0 merged, 0 \
             filtered, 0 skipped, 0 rejected): a gap of 1"
        ),
        "{run}"
    );
    assert!(run.stdout.contains("Convex holds exactly the 3 transformed documents"), "{run}");
    let json = verify(&prepared, &server, &["--format", "json"]);
    let row = accounts_row(&json);
    assert_eq!((row["source_rows"].as_u64(), row["unaccounted"].as_i64()), (Some(4), Some(1)));

    // AND a raw file changed since the export is noticed too
    let raw = prepared.data_path("raw/public.accounts.jsonl");
    let text = std::fs::read_to_string(&raw).unwrap();
    std::fs::write(&raw, text.replacen("closed", "CLOSED", 1)).unwrap();
    let run = verify(&prepared, &server, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stdout.contains(
            "`raw/public.accounts.jsonl` changed since export (4 lines, the \
             manifest says 4)"
        ),
        "{run}"
    );
}

#[test]
fn a_merged_row_whose_document_was_filtered_out_is_rejected_not_counted_as_merged() {
    // GIVEN user 2 left out by a filter, and a settings row merged into each user: user 2's
    // settings have no document to go into
    let fixture = "
create table users (id int primary key, status text not null);
create table user_settings (user_id int primary key references users (id), theme text);
insert into users values (1, 'active'), (2, 'closed'), (3, 'active');
insert into user_settings values (1, 'dark'), (2, 'light'), (3, 'dark');
";
    let plan = "[[tables.\"public.users\".filter]]\ncolumn = \"status\"\nin = [\"active\"]\n\n\
                [tables.\"public.user_settings\"]\nmerge_into = \"public.users\"\n\
                on = [\"user_id\"]\n";
    let prepared = Prepared::new(fixture, plan);

    // WHEN transform runs THEN the orphaned settings row is rejected, naming the id
    let run = prepared.migrate(&["transform"]);
    assert_eq!(run.code, Some(5), "{run}");
    let rejects = std::fs::read_to_string(
        prepared.work.data_dir().join("rejects/public.user_settings.jsonl"),
    )
    .unwrap();
    assert_eq!(rejects.lines().count(), 1, "{rejects}");
    assert!(rejects.contains("no document of `users` has legacy id `2`"), "{rejects}");

    // AND after import, verify counts it as rejected, not merged, and fails until it is accepted
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    prepared.against(server.url(), server.admin_key(), &["import"]).success();
    let json = verify(&prepared, &server, &["--format", "json"]);
    assert_eq!(json.code, Some(1), "{json}");
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    let settings = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source"] == "public.user_settings")
        .cloned()
        .unwrap();
    for (column, expected) in
        [("source_rows", 3), ("merged", 2), ("rejected", 1), ("unaccounted", 0)]
    {
        assert_eq!(settings[column], expected, "{column}: {settings}");
    }
    verify(&prepared, &server, &["--accept-rejected", "1"]).success();
}

#[test]
fn rows_sharing_a_legacy_id_never_collapse_into_one_convex_document() {
    // GIVEN a plan that takes `code`, not the key, as the legacy id: codes 3 and 7 are held by
    // two and three rows
    let fixture = "
create table events (id serial primary key, code int not null, note text);
insert into events (code, note) select n, 'unique ' || n from generate_series(1, 10) n;
insert into events (code, note) values (3, 'again'), (7, 'again'), (7, 'and again');
";
    let prepared = Prepared::new(fixture, "[tables.\"public.events\"]\nlegacy_id = [\"code\"]\n");

    // WHEN the whole job runs into the convex-test runtime
    let run = prepared.migrate(&["transform", "--max-rejected", "10"]).success();
    assert!(run.stdout.contains("5 rejected"), "{run}");
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let import =
        prepared.against(server.url(), server.admin_key(), &["--format", "json", "import"]);
    let import = import.success();

    // THEN each of the 8 unique codes is inserted once and nothing is replaced: no row took
    // another's document
    let report: Value = serde_json::from_str(&import.stdout).unwrap_or_else(|e| panic!("{e}"));
    let events = &report["tables"][0];
    assert_eq!((events["inserted"].as_u64(), events["replaced"].as_u64()), (Some(8), Some(0)));
    // AND verify accounts for all 13 rows, failing until the 5 rejects are accepted
    let run = verify(&prepared, &server, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    let run = verify(&prepared, &server, &["--accept-rejected", "5"]).success();
    assert!(run.stdout.contains("every one of the 13 exported rows"), "{run}");
}

#[test]
fn a_merged_row_whose_document_was_rejected_as_a_duplicate_is_rejected_too() {
    // GIVEN users keyed in the plan by `code`, which two users share, and a settings row merged
    // into each code
    let fixture = "
create table users (id int primary key, code int not null);
create table user_settings (code int primary key, theme text);
insert into users values (1, 10), (2, 10), (3, 20);
insert into user_settings values (10, 'dark'), (20, 'light');
";
    let plan = "[tables.\"public.users\"]\nlegacy_id = [\"code\"]\n\n\
                [tables.\"public.user_settings\"]\nmerge_into = \"public.users\"\non = [\"code\"]\n";
    let prepared = Prepared::new(fixture, plan);

    // WHEN transform runs THEN both users of code 10 are rejected, and so is the settings row
    // that would have gone into their document
    let run = prepared.migrate(&["transform"]);
    assert_eq!(run.code, Some(5), "{run}");
    let rejects = std::fs::read_to_string(
        prepared.work.data_dir().join("rejects/public.user_settings.jsonl"),
    )
    .unwrap_or_default();
    assert_eq!(rejects.lines().count(), 1, "{run}\n{rejects}");
    assert!(rejects.contains("no document of `users` has legacy id `10`"), "{rejects}");

    // AND verify accounts for the 5 rows: 1 document, 1 merged, 3 rejected
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    prepared.against(server.url(), server.admin_key(), &["import"]).success();
    let run = verify(&prepared, &server, &["--accept-rejected", "3"]).success();
    assert!(run.stdout.contains("5 exported rows (1 document, 1 merged, 0 filtered"), "{run}");
}
