//! `migrate rollback` and the ledger kept in the deployment: against Convex's own semantics
//! (`tests/convex/server.ts`) for what is removed and kept, what `verify` and `status --ledger`
//! say afterwards and when import refuses; against the sink for an import killed half-way and
//! a rollback killed half-way, then run again.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use migrate::convex::client::FunctionKind;
use serde_json::{Value, json};

use crate::convex_server::ConvexTestServer;
use crate::import_faults::{BATCH_SIZE, Rig, TABLES};
use crate::import_pipeline::{Prepared, all_documents, call};
use crate::support::Run;

const FIXTURE: &str = "
create table authors (id int primary key, name text not null);
create table posts (id int primary key, author_id int not null references authors(id), title text not null);
insert into authors values (1, 'Ada'), (2, 'Grace');
insert into posts values (10, 1, 'notes'), (11, 1, 'engines'), (12, 2, 'compilers');
";

/// The application's own functions, deployed beside the generated ones: they write documents
/// the migration did not write, into the migrated tables, and change a migrated one.
const APP_TS: &str = r#"
import { internalMutationGeneric } from "convex/server";
import { v } from "convex/values";

export const addAuthor = internalMutationGeneric({
  args: { legacyId: v.string(), name: v.string() },
  handler: async (ctx, { legacyId, name }) => {
    const authorId = await ctx.db.insert("authors", { legacyId, name });
    return await ctx.db.insert("posts", { legacyId: `${legacyId}-post`, authorId, title: name });
  },
});

export const retitle = internalMutationGeneric({
  args: { legacyId: v.string(), title: v.string() },
  handler: async (ctx, { legacyId, title }) => {
    const doc = await ctx.db
      .query("posts")
      .withIndex("by_legacy_id", (q) => q.eq("legacyId", legacyId))
      .unique();
    await ctx.db.patch(doc!._id, { title });
  },
});
"#;

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{run}"))
}

fn legacy_ids(server: &ConvexTestServer, table: &str) -> Vec<String> {
    let mut ids: Vec<String> = all_documents(server, table)
        .iter()
        .map(|d| d["legacyId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn rollback_after_a_complete_import_removes_what_the_migration_wrote_and_nothing_else() {
    // GIVEN the fixture imported into Convex, then the application's own documents written
    // into the same tables and one migrated post retitled by the application
    let prepared = Prepared::new(FIXTURE, "");
    prepared.migrate(&["transform"]).success();
    std::fs::write(prepared.convex_dir().join("app.ts"), APP_TS).unwrap();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();
    call(
        &server,
        FunctionKind::Mutation,
        "app:addAuthor",
        json!({"legacyId": "app-1", "name": "Own"}),
    );
    call(
        &server,
        FunctionKind::Mutation,
        "app:retitle",
        json!({"legacyId": "11", "title": "mine"}),
    );

    // WHEN the status reads the deployment's ledger
    let status =
        prepared.against(&url, &key, &["--format", "json", "status", "--ledger"]).success();
    // THEN it shows the import completed under plan version 1, with its counts
    let ledger = json_of(&status)["ledger"].clone();
    assert_eq!(ledger.as_array().map(Vec::len), Some(1), "{status}");
    assert_eq!(ledger[0]["status"], "completed");
    assert_eq!(ledger[0]["plan_version"], 1);
    assert_eq!(ledger[0]["plan_files"], json!(["0001_initial.toml"]));
    assert_eq!(ledger[0]["counts"]["inserted"], 5.0, "{status}");
    // … also as text, without the data directory
    let elsewhere = crate::support::Workdir::new();
    let mut bare = elsewhere.command(&["status", "--ledger"]);
    bare.env("CONVEX_URL", &url).env("CONVEX_DEPLOY_KEY", &key);
    let text = Run::of(bare).success();
    assert!(text.stdout.contains("ledger of the deployment"), "{text}");
    assert!(text.stdout.contains("completed"), "{text}");
    text.never_shows(&key);

    // WHEN rollback runs dry
    let dry =
        prepared.against(&url, &key, &["--format", "json", "rollback", "--dry-run"]).success();
    // THEN it says what would go, per table, and removes nothing
    let report = json_of(&dry);
    let tables: Vec<(&str, u64, u64)> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap(),
                t["removed"].as_u64().unwrap(),
                t["kept"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tables, [("posts", 2, 1), ("authors", 2, 0)], "children first\n{dry}");
    assert_eq!(legacy_ids(&server, "posts").len(), 4);

    // WHEN it runs
    let run = prepared.against(&url, &key, &["rollback"]).success();
    run.never_shows(&key);

    // THEN the migrated documents are gone, but the application's and the one it changed
    assert_eq!(legacy_ids(&server, "authors"), ["app-1"], "{run}");
    assert_eq!(legacy_ids(&server, "posts"), ["11", "app-1-post"], "{run}");
    assert!(run.stdout.contains("posts 11"), "the kept document is listed\n{run}");
    let entry = call(&server, FunctionKind::Query, "migrate:ledgerList", json!({}))[0].clone();
    assert_eq!(entry["status"], "rolled_back");
    assert_eq!(entry["counts"]["kept"], 1.0);

    // AND verify says one migrated document is left, and fails
    let verify = prepared.against(&url, &key, &["verify"]);
    verify.fails_with(1, &[]);
    assert!(verify.stdout.contains("1 migrated document still in Convex (posts 1)"), "{verify}");

    // WHEN rollback runs again with --force
    prepared.against(&url, &key, &["rollback", "--force"]).success();
    // THEN the changed document is gone too, the application's still there
    assert_eq!(legacy_ids(&server, "posts"), ["app-1-post"]);
    assert_eq!(legacy_ids(&server, "authors"), ["app-1"]);
    // AND verify passes: no migrated document is left
    let verify = prepared.against(&url, &key, &["verify"]).success();
    assert!(verify.stdout.contains("verified: no migrated document is left"), "{verify}");

    // WHEN the import runs again
    let again = prepared.against(&url, &key, &["--format", "json", "import"]).success();
    // THEN it starts over (the rolled-back checkpoints count for nothing) and sends everything
    let report = json_of(&again);
    assert_eq!(report["sent"], 5, "{again}");
    assert_eq!(legacy_ids(&server, "posts"), ["10", "11", "12", "app-1-post"]);
}

#[test]
fn import_refuses_a_plan_older_than_the_ledger_completed_and_any_finalized_deployment() {
    // GIVEN a deployment whose ledger says another data directory completed plan version 3
    let prepared = Prepared::new(FIXTURE, "");
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    let entry = |id: &str, status: &str| {
        let files = ["0001_initial.toml", "0002_a.toml", "0003_b.toml"];
        let args = json!({ "importId": id, "planHash": "blake3:newer", "planVersion": 3,
                           "planFiles": files, "status": status });
        call(&server, FunctionKind::Mutation, "migrate:ledgerWrite", args);
    };
    entry("elsewhere", "completed");

    // WHEN this data directory (plan version 1) imports
    let refused = prepared.against(&url, &key, &["import"]);
    // THEN it is refused, naming both plans, and nothing is written
    refused.fails_with(
        2,
        &["the plan is older", "version 1 (0001_initial.toml)", "version 3 (0003_b.toml"],
    );
    assert!(refused.stderr.contains("--force"), "{refused}");
    assert!(all_documents(&server, "authors").is_empty());

    // WHEN it imports with --force
    prepared.against(&url, &key, &["import", "--force"]).success();
    // THEN the documents are there
    assert_eq!(legacy_ids(&server, "authors"), ["1", "2"]);

    // WHEN the ledger says the deployment was finalized
    entry("elsewhere", "finalized");
    // THEN import and rollback refuse, --force or not
    for args in [&["import", "--force"][..], &["rollback"], &["rollback", "--force"]] {
        let run = prepared.against(&url, &key, args);
        run.fails_with(2, &["the deployment was finalized"]);
    }
    assert_eq!(legacy_ids(&server, "authors"), ["1", "2"]);
}

/// Documents `migrate import` has written to the sink, in all.
fn documents_in(rig: &Rig) -> usize {
    TABLES.iter().map(|(table, _)| rig.sink.count(table)).sum()
}

/// Runs `migrate <args>` against the sink until `at` says so, then kills it with SIGKILL.
pub fn kill_when(rig: &Rig, args: &[&str], mut at: impl FnMut() -> bool) {
    let mut command = rig.prepared.command(args);
    command.env("CONVEX_URL", rig.sink.url()).env("CONVEX_DEPLOY_KEY", rig.sink.admin_key());
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !at() {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            panic!("{args:?} ended ({status}) before the kill point\n{output:?}");
        }
        assert!(Instant::now() < deadline, "{args:?}: the kill point was never reached");
        std::thread::sleep(Duration::from_micros(300));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{args:?} was not killed");
    // Requests already sent are still applied: wait until the sink is quiet.
    let mut last = rig.sink.stats();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = rig.sink.stats();
        if now == last {
            break;
        }
        last = now;
    }
}

#[test]
fn a_rollback_killed_after_a_killed_import_finishes_when_run_again() {
    // GIVEN an import killed with SIGKILL a quarter of the way, and the application's own
    // documents in the same tables: without a legacy id, and with one of no source row
    let rig = Rig::new(|config| config);
    rig.sink.set_latency(Duration::from_millis(3));
    kill_when(&rig, &["import", "--batch-size", BATCH_SIZE, "--concurrency", "4"], || {
        documents_in(&rig) >= 1000
    });
    let imported = documents_in(&rig);
    assert!((1000..4000).contains(&imported), "{imported} documents imported");
    let own_author = rig.sink.insert_raw("authors", json!({ "name": "the app's own" }));
    let own_post = rig
        .sink
        .insert_raw("posts", json!({ "legacyId": "app-9", "authorId": own_author, "title": "x" }));

    // WHEN rollback is killed with SIGKILL half-way
    let deleted_before = rig.sink.stats().deleted;
    kill_when(&rig, &["rollback", "--batch-size", BATCH_SIZE], || {
        rig.sink.stats().deleted - deleted_before >= imported as u64 / 2
    });
    let left = documents_in(&rig);
    assert!(left > 2 && left < imported, "{left} of {imported} documents left");
    let ledger = rig.sink.ledger();
    assert!(ledger.iter().any(|e| e["status"] == "rolling_back"), "{ledger:?}");
    // … and verify does not yet pass: the ledger does not say rolled back
    let verify = rig.prepared.against(&rig.sink.url(), rig.sink.admin_key(), &["verify"]);
    assert_eq!(verify.code, Some(1), "{verify}");

    // WHEN it runs again
    let mut command =
        rig.prepared.command(&["--format", "json", "rollback", "--batch-size", BATCH_SIZE]);
    command.env("CONVEX_URL", rig.sink.url()).env("CONVEX_DEPLOY_KEY", rig.sink.admin_key());
    let run = Run::of(command).success();

    // THEN every migrated document is gone, each deleted once, and the application's are there
    assert_eq!(documents_in(&rig), 2, "{run}");
    assert_eq!(rig.sink.stats().deleted - deleted_before, imported as u64);
    assert_eq!(rig.sink.documents("authors")[0]["_id"], own_author);
    assert_eq!(rig.sink.documents("posts")[0]["_id"], own_post);
    let ledger = rig.sink.ledger();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0]["status"], "rolled_back");
    // AND verify shows no migrated document left
    let verify = rig.prepared.against(
        &rig.sink.url(),
        rig.sink.admin_key(),
        &["--format", "json", "verify"],
    );
    assert_eq!(verify.code, Some(0), "{verify}");
    let report = json_of(&verify);
    assert_eq!(report["rolled_back"]["remaining"], 0, "{verify}");
}

#[test]
fn rollback_refuses_transformed_data_changed_since_the_import() {
    // GIVEN the fixture imported, then the source changed, exported and transformed again
    let prepared = Prepared::new(FIXTURE, "");
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();
    prepared._db.execute("delete from posts where id = 12; insert into posts values (13, 2, 'x')");
    prepared.work.export(prepared._db.url(), &[]).success();
    prepared.migrate(&["transform"]).success();

    // WHEN rollback runs
    let refused = prepared.against(&url, &key, &["rollback"]);
    // THEN it refuses, naming the table: post 12 is no longer listed and would be left behind
    refused.fails_with(2, &["`transformed/posts.jsonl` changed since it was imported", "--force"]);
    assert_eq!(legacy_ids(&server, "posts"), ["10", "11", "12"]);

    // WHEN it is forced
    prepared.against(&url, &key, &["rollback", "--force"]).success();
    // THEN it removes what the files list now, and post 12 is left, as it said
    assert_eq!(legacy_ids(&server, "posts"), ["12"]);
    assert!(legacy_ids(&server, "authors").is_empty());
}
