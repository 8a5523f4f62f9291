//! `migrate finalize` against Convex's own semantics (`tests/convex/server.ts`): the legacy ids
//! taken out, the schema written without their indexes, verify still exact through the ids
//! finalize recorded, import and rollback refused; and, while the old schema is deployed,
//! finalize stopping with what to do.

use migrate::convex::client::FunctionKind;
use serde_json::json;

use crate::convex_server::ConvexTestServer;
use crate::import_pipeline::{Prepared, all_documents, call};

const FIXTURE: &str = "
create table authors (id int primary key, name text not null);
create table posts (id int primary key, author_id int not null references authors(id), title text not null);
insert into authors values (1, 'Ada'), (2, 'Grace');
insert into posts values (10, 1, 'notes'), (11, 1, 'engines'), (12, 2, 'compilers');
";

/// The app's schema with validation off. convex-test cannot deploy a second schema over the
/// data of the first, so this stands in for deploying the `migrateTables.ts` finalize writes
/// (its legacy id fields optional) before finalize patches them out.
const SCHEMA_WITHOUT_VALIDATION: &str = r#"import { defineSchema } from "convex/server";
import { migrateTables } from "./migrateTables";

export default defineSchema({ ...migrateTables }, { schemaValidation: false });
"#;

fn ledger_status(server: &ConvexTestServer) -> String {
    let entries = call(server, FunctionKind::Query, "migrate:ledgerList", json!({}));
    entries[0]["status"].as_str().unwrap().to_owned()
}

#[test]
fn finalize_takes_the_legacy_ids_out_and_verify_still_matches_every_document() {
    // GIVEN the fixture imported and verified
    let prepared = Prepared::new(FIXTURE, "");
    prepared.migrate(&["transform"]).success();
    std::fs::write(prepared.convex_dir().join("schema.ts"), SCHEMA_WITHOUT_VALIDATION).unwrap();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();
    prepared.against(&url, &key, &["verify"]).success();

    // WHEN it is finalized
    let run = prepared.against(&url, &key, &["finalize", "--batch-size", "2"]).success();
    run.never_shows(&key);

    // THEN no document holds a legacy id any more, references unchanged
    let posts = all_documents(&server, "posts");
    let authors = all_documents(&server, "authors");
    assert_eq!((posts.len(), authors.len()), (3, 2));
    assert!(posts.iter().chain(&authors).all(|d| d.get("legacyId").is_none()), "{posts:?}");
    let ada = authors.iter().find(|a| a["name"] == "Ada").unwrap();
    assert_eq!(posts.iter().filter(|p| p["authorId"] == ada["_id"]).count(), 2);
    // … the ids were recorded first, the ledger says finalized
    let recorded =
        std::fs::read_to_string(recorded_ids(&prepared.data_path("finalize"), "posts")).unwrap();
    assert_eq!(recorded.lines().count(), 3, "{recorded}");
    assert_eq!(ledger_status(&server), "finalized");
    // … and migrateTables.ts has no legacy id index, its legacy id fields optional
    let tables = std::fs::read_to_string(prepared.convex_dir().join("migrateTables.ts")).unwrap();
    assert!(!tables.contains(r#".index("by_legacy_id""#), "{tables}");
    assert!(tables.contains("legacyId: v.optional(v.string())"), "{tables}");
    assert!(tables.contains("// Written by `migrate finalize`"), "{tables}");
    // … a schema Convex loads (the server checks it on start)
    drop(ConvexTestServer::for_convex_dir(&prepared.convex_dir()));

    // AND verify still finds exactly the source, references included, through the recorded ids
    let verify = prepared.against(&url, &key, &["verify"]).success();
    assert!(verify.stdout.contains("verified: Convex holds exactly the 5"), "{verify}");

    // AND running finalize again changes nothing
    let again = prepared.against(&url, &key, &["--format", "json", "finalize"]).success();
    let report: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    let patched: u64 =
        report["tables"].as_array().unwrap().iter().map(|t| t["patched"].as_u64().unwrap()).sum();
    assert_eq!(patched, 0, "{again}");

    // AND import and rollback refuse, --force or not
    for args in [&["import"][..], &["import", "--force"], &["rollback", "--force"]] {
        prepared.against(&url, &key, args).fails_with(2, &["the deployment was finalized"]);
    }
    assert_eq!(all_documents(&server, "posts").len(), 3);
}

#[test]
fn finalize_stops_until_the_schema_it_wrote_is_deployed() {
    // GIVEN the fixture imported under the schema that requires the legacy ids
    let prepared = Prepared::new(FIXTURE, "");
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    // … finalize refused before the import completed
    prepared.against(&url, &key, &["finalize"]).fails_with(2, &["holds no import of this data"]);
    prepared.against(&url, &key, &["import"]).success();

    // WHEN finalize runs before the schema it writes is deployed
    let run = prepared.against(&url, &key, &["finalize"]);

    // THEN Convex refuses the patch, finalize says to deploy and run it again, nothing is lost
    run.fails_with(4, &["refused to take the legacy ids out of `authors`", "npx convex deploy"]);
    assert!(all_documents(&server, "authors").iter().all(|a| a["legacyId"].is_string()));
    assert_eq!(ledger_status(&server), "finalizing");
    // … and import already refuses: some documents may have lost their legacy ids
    prepared.against(&url, &key, &["import"]).fails_with(2, &["the deployment was finalized"]);
}

#[test]
fn a_finalize_killed_half_way_finishes_when_run_again_and_verify_stays_exact() {
    // GIVEN the 4,000 documents of the fault fixture imported into the sink
    let rig = crate::import_faults::Rig::new(|config| config);
    rig.import(&["--concurrency", "8"]).success();
    rig.sink.set_latency(std::time::Duration::from_millis(3));

    // WHEN finalize is killed with SIGKILL after 1,000 legacy ids were taken out
    let before = rig.sink.stats().patched;
    crate::rollback::kill_when(&rig, &["finalize", "--batch-size", "10"], || {
        rig.sink.stats().patched - before >= 1000
    });
    let with_legacy = |table: &str| {
        rig.sink.documents(table).iter().filter(|d| d.get("legacyId").is_some()).count()
    };
    let left: usize = crate::import_faults::TABLES.iter().map(|(t, _)| with_legacy(t)).sum();
    assert!(left > 0 && left <= 3000, "{left} documents still hold a legacy id");
    assert!(rig.sink.ledger().iter().any(|e| e["status"] == "finalizing"));

    // WHEN it runs again
    let mut command = rig.prepared.command(&["finalize", "--batch-size", "10"]);
    command.env("CONVEX_URL", rig.sink.url()).env("CONVEX_DEPLOY_KEY", rig.sink.admin_key());
    crate::support::Run::of(command).success();

    // THEN no document holds a legacy id, each table still holds its documents, every id was
    // recorded before the first was taken out, and the ledger says finalized
    for (table, rows) in crate::import_faults::TABLES {
        assert_eq!((rig.sink.count(table), with_legacy(table)), (rows, 0), "{table}");
        let recorded =
            std::fs::read_to_string(recorded_ids(&rig.prepared.data_path("finalize"), table));
        assert_eq!(recorded.unwrap().lines().count(), rows, "{table}");
    }
    assert_eq!(rig.sink.ledger()[0]["status"], "finalized");
    // AND verify finds exactly the source, references (self-references too) matched by id
    let verify = rig.prepared.against(&rig.sink.url(), rig.sink.admin_key(), &["verify"]);
    assert_eq!(verify.code, Some(0), "{verify}");
    assert!(verify.stdout.contains("verified: Convex holds exactly the 4,000"), "{verify}");
}

/// `data/finalize/<deployment>/<table>.jsonl`: the ids finalize recorded for the one deployment
/// the test finalized.
fn recorded_ids(finalize_dir: &std::path::Path, table: &str) -> std::path::PathBuf {
    let deployments: Vec<_> =
        std::fs::read_dir(finalize_dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(deployments.len(), 1, "one deployment finalized: {deployments:?}");
    deployments[0].join(format!("{table}.jsonl"))
}
