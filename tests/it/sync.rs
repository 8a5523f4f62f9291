//! `migrate sync` against Convex's own semantics: real Postgres, the real binary, the generated
//! module under convex-test (`tests/convex/server.ts`). A full import, then changes in the
//! source (inserts, updates, deletes, a re-parented child, a parent deleted with its children,
//! a parent deleted under each orphan policy, new members of a reference cycle), a new export
//! and transform, and a sync: Convex ends up exactly the source (verify), having received only
//! the changed documents; a sync with nothing changed makes no request at all.

use serde_json::Value;

use crate::convex_server::ConvexTestServer;
use crate::import_pipeline::{Prepared, all_documents};
use crate::support::Run;

const FIXTURE: &str = "
create table teams (id int primary key, name text not null);
create table members (
  id int primary key,
  team_id int not null references teams(id),
  manager_id int references members(id),
  email text not null
);
create table notes (id int primary key, body text not null,
  keep_member int references members(id), null_member int references members(id),
  drop_member int references members(id), fail_member int references members(id));
insert into teams values (1, 'red'), (2, 'blue');
insert into members values (1, 1, null, 'a@x'), (2, 1, 1, 'b@x'), (3, 2, 1, 'c@x'),
  (4, 2, 3, 'd@x'), (5, 1, 2, 'e@x');
insert into notes values
  (1, 'keep', 5, null, null, null), (2, 'null', null, 5, null, null),
  (3, 'drop', null, null, 5, null), (4, 'fail', null, null, null, 5),
  (5, 'untouched', 1, 1, 1, 1);
";

const POLICIES: &str = r#"
[tables."public.notes".references.keep_member]
orphans = "keep_legacy"
[tables."public.notes".references.null_member]
orphans = "null"
[tables."public.notes".references.drop_member]
orphans = "drop"
[tables."public.notes".references.fail_member]
orphans = "fail"
"#;

/// The changes made in the source between the import and the sync. Foreign-key triggers are
/// off for the session (`session_replication_role`), so that parents go while rows still
/// point at them: the orphan policies decide.
const CHANGES: &str = "
set session_replication_role = replica;
-- inserted: a team, a member of it, and two members managing each other (a new cycle)
insert into teams values (3, 'green');
insert into members values (6, 3, 7, 'f@x'), (7, 3, 6, 'g@x'), (8, 3, 1, 'h@x');
-- updated
update members set email = 'changed@x' where id = 1;
-- re-parented: member 2 moves from team 1 to team 3 and loses its manager (a cycle reference
-- set to null), member 8's manager becomes 2
update members set team_id = 3, manager_id = null where id = 2;
update members set manager_id = 2 where id = 8;
-- a parent deleted with its children: team 2 and its members 3 and 4
delete from members where id in (3, 4);
delete from teams where id = 2;
-- a parent deleted under each orphan policy: member 5 (notes 1-4 point at it)
delete from members where id = 5;
-- a plain delete and a plain insert of notes
delete from notes where id = 5;
insert into notes values (6, 'new', 1, 2, 6, 7);
set session_replication_role = origin;
";

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("JSON report ({e})\n{run}"))
}

/// Calls the server has logged so far (one stderr line per call).
fn calls(server: &ConvexTestServer) -> usize {
    server.stderr().lines().filter(|l| l.starts_with("/api/")).count()
}

fn table<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tables"].as_array().unwrap().iter().find(|t| t["table"] == name).unwrap()
}

fn counts(report: &Value, name: &str) -> [u64; 4] {
    let t = table(report, name);
    ["inserted", "updated", "deleted", "unchanged"].map(|k| t[k].as_u64().unwrap())
}

#[test]
fn sync_sends_only_the_changes_and_leaves_convex_exactly_the_source() {
    // GIVEN the fixture imported and verified
    let prepared = Prepared::new(FIXTURE, POLICIES);
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    let against = |args: &[&str]| prepared.against(&url, &key, args);
    against(&["import"]).success();
    against(&["verify"]).success();

    // WHEN the source changes and is exported and transformed again (note 4's orphan under
    // `fail` is the one rejected row)
    prepared._db.execute(CHANGES);
    prepared.work.export(prepared._db.url(), &[]).success();
    prepared.migrate(&["transform", "--max-rejected", "1"]).success();

    // THEN a dry run counts per table, and sends nothing
    let before = calls(&server);
    let dry = json_of(&against(&["--format", "json", "sync", "--dry-run"]).success());
    assert_eq!(calls(&server), before, "a dry run contacts nothing");
    assert_eq!(dry["dry_run"], true);
    // teams: 3 inserted, 2 deleted, 1 unchanged
    assert_eq!(counts(&dry, "teams"), [1, 0, 1, 1], "{dry}");
    // members: 6, 7, 8 inserted; 1 (email), 2 (team) updated; 3, 4, 5 deleted
    assert_eq!(counts(&dry, "members"), [3, 2, 3, 0], "{dry}");
    // notes: 6 inserted; 1 (keep_legacy: "5"), 2 (null: field gone) updated; 3 (drop),
    // 4 (fail: rejected at transform), 5 deleted
    assert_eq!(counts(&dry, "notes"), [1, 2, 3, 0], "{dry}");

    let text = against(&["sync", "--dry-run"]).success();
    assert!(
        text.stdout.contains(
            "dry run: 5 documents would be inserted, 4 updated, 7 deleted; 1 unchanged. \
             Nothing was sent."
        ),
        "{text}"
    );

    // WHEN it is synced
    let sync = against(&["--format", "json", "sync"]).success();
    sync.never_shows(&key);
    let report = json_of(&sync);
    // THEN only the changed documents were sent: 9 upserted, 7 deleted
    assert_eq!(report["sent"], 9, "{sync}");
    assert_eq!(report["deleted"], 7, "{sync}");
    // … and Convex is exactly the source
    let verify = against(&["verify", "--accept-rejected", "1"]).success();
    assert!(verify.stdout.contains("verified: Convex holds exactly"), "{verify}");

    // AND the references are right
    let members = all_documents(&server, "members");
    let teams = all_documents(&server, "teams");
    let id = |docs: &[Value], legacy: &str| {
        docs.iter().find(|d| d["legacyId"] == legacy).unwrap_or_else(|| panic!("{legacy}"))["_id"]
            .clone()
    };
    let member = |legacy: &str| members.iter().find(|d| d["legacyId"] == legacy).unwrap().clone();
    assert_eq!(member("2")["teamId"], id(&teams, "3"), "re-parented");
    assert!(member("2").get("managerId").is_none(), "a cycle reference set to null");
    assert_eq!(member("8")["managerId"], id(&members, "2"), "re-parented self-reference");
    assert_eq!(member("6")["managerId"], id(&members, "7"), "new cycle");
    assert_eq!(member("7")["managerId"], id(&members, "6"), "new cycle");
    assert_eq!(member("1")["email"], "changed@x");
    assert_eq!(members.len(), 5);
    assert_eq!(teams.len(), 2);
    let notes = all_documents(&server, "notes");
    let note = |legacy: &str| notes.iter().find(|d| d["legacyId"] == legacy).cloned();
    assert_eq!(note("1").unwrap()["keepMember"], "5", "keep_legacy keeps the gone parent's id");
    assert!(note("2").unwrap().get("nullMember").is_none(), "null takes the reference away");
    assert!(note("3").is_none(), "drop deletes the row's document");
    assert!(note("4").is_none(), "fail rejects the row: its document goes");
    assert_eq!(note("6").unwrap()["dropMember"], id(&members, "6"));

    // AND a later import sends nothing again
    let import = json_of(&against(&["--format", "json", "import"]).success());
    assert_eq!(import["sent"], 0, "{import}");

    // WHEN nothing changed and sync runs again
    let before = calls(&server);
    let again = json_of(&against(&["--format", "json", "sync"]).success());
    // THEN it sends nothing: not one request
    assert_eq!(calls(&server), before, "{again}");
    assert_eq!(again["unchanged"], 10, "{again}");
    assert_eq!(again["sent"], 0);
    against(&["verify", "--accept-rejected", "1"]).success();

    // WHEN the deployment is rolled back, THEN sync refuses instead of finding nothing changed
    against(&["rollback"]).success();
    against(&["sync"]).fails_with(2, &["nothing to sync from", "migrate import"]);
}

#[test]
fn sync_without_an_import_says_to_import_first() {
    let prepared = Prepared::new(FIXTURE, POLICIES);
    prepared.migrate(&["transform"]).success();
    let run = prepared.against("http://127.0.0.1:9", "convex-test-server|x", &["sync"]);
    run.fails_with(2, &["no completed import", "migrate import"]);
}

/// `import_faults::FIXTURE` changed: 190 comments updated (200 edited, 10 of them then
/// deleted), 50 deleted (odd ids above 1,000, which no comment replies to), 50 inserted replying
/// to existing ones, 20 posts re-parented.
pub const SINK_CHANGES: &str = "
update comments set body = body || ' (edited)' where id % 10 = 3;
delete from comments where id > 1000 and id % 2 = 1 and id <= 1100;
insert into comments
  select g, (g * 7) % 1500 + 1, (g * 11) % 500 + 1, g - 2000, 'new comment ' || g
  from generate_series(2001, 2050) g;
update posts set author_id = (author_id % 500) + 1 where id <= 20;
";
/// Documents [`SINK_CHANGES`] changes: 190 + 50 + 50 + 20.
const SINK_CHANGED: u64 = 310;

#[test]
fn a_sync_killed_mid_way_resumes_and_ends_exactly_the_source() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};

    use crate::import_faults::Rig;

    // GIVEN the 4,000 documents of the fault rig imported into the sink
    let rig = Rig::new(|c| c);
    rig.import(&[]).success();
    // … and the source changed, exported and transformed again
    rig.prepared._db.execute(SINK_CHANGES);
    rig.prepared.work.export(rig.prepared._db.url(), &[]).success();
    rig.prepared.migrate(&["transform"]).success();
    let sync_command = |global: &[&str]| {
        let mut args = global.to_vec();
        args.extend_from_slice(&["sync", "--batch-size", "10", "--concurrency", "2"]);
        let mut command = rig.prepared.command(&args);
        command.env("CONVEX_URL", rig.sink.url()).env("CONVEX_DEPLOY_KEY", rig.sink.admin_key());
        command
    };

    // WHEN a sync is killed with SIGKILL after some of its upserts were applied
    rig.sink.set_latency(Duration::from_millis(40));
    let before = rig.stats();
    let mut child = sync_command(&[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = rig.stats();
        if now.replaced + now.inserted >= before.replaced + before.inserted + 100 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the sync ended before the kill point");
        assert!(Instant::now() < deadline, "never reached the kill point: {now:?}");
        std::thread::sleep(Duration::from_micros(300));
    }
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    std::thread::sleep(Duration::from_millis(200));
    rig.sink.set_latency(Duration::ZERO);
    let killed = rig.stats();
    assert_eq!(killed.deleted, before.deleted, "deletes come after the upserts");

    // THEN the next sync resumes: it sends what is left, not every change again
    let resumed = Run::of(sync_command(&["--format", "json"])).success();
    let report = json_of(&resumed);
    let sent = report["sent"].as_u64().unwrap();
    // (At the kill, at most two batches of 10 were in flight and one more acknowledged but not
    // yet checkpointed: at least 70 of the 100 applied are in the checkpoints.)
    assert!(sent <= 200, "sent {sent} of 260 upserts again\n{resumed}");
    assert_eq!(report["inserted"].as_u64().unwrap() + report["updated"].as_u64().unwrap(), 260);
    assert_eq!(report["deleted"], 50);
    let after = rig.stats();
    assert_eq!(after.deleted - before.deleted, 50);
    assert!(
        (after.inserted - before.inserted) + (after.replaced - before.replaced) < 2 * SINK_CHANGED,
        "documents written in all: {after:?}"
    );

    // AND Convex holds exactly the source
    let verify = rig.prepared.against(&rig.sink.url(), rig.sink.admin_key(), &["verify"]);
    assert_eq!(verify.code, Some(0), "{verify}");
    assert_eq!(rig.sink.count("comments"), 2000);

    // AND a sync run twice changes nothing the second time, without a request
    let requests = rig.stats().requests;
    let again = json_of(&Run::of(sync_command(&["--format", "json"])).success());
    assert_eq!(again["sent"], 0);
    assert_eq!(rig.stats().requests, requests, "{again}");
}

#[test]
fn a_plan_change_is_a_sync_of_the_documents_it_changes() {
    // GIVEN the fixture imported into convex-test
    let prepared = Prepared::new(FIXTURE, POLICIES);
    prepared.migrate(&["transform"]).success();
    let mut server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    let against = |args: &[&str]| prepared.against(&url, &key, args);
    against(&["import"]).success();

    // WHEN a new plan file leaves a note out, the module is generated again and deployed (the
    // data stays), and the same export is transformed under the new plan
    std::fs::write(
        prepared.plan_dir().join("0003_filter.toml"),
        "[[tables.\"public.notes\".filter]]\ncolumn = \"body\"\nnot_equals = \"untouched\"\n",
    )
    .unwrap();
    prepared
        .migrate(&["init", "--convex-dir", crate::support::utf8(&prepared.convex_dir())])
        .success();
    prepared.migrate(&["transform"]).success();
    server.redeploy(&prepared.convex_dir());

    // THEN import refuses the half-done state of the old plan, while sync takes it
    against(&["import"]).fails_with(2, &["another plan"]);
    let dry = json_of(&against(&["--format", "json", "sync", "--dry-run"]).success());
    assert_eq!(counts(&dry, "notes"), [0, 0, 1, 4], "{dry}");
    assert_eq!(counts(&dry, "members"), [0, 0, 0, 5], "{dry}");
    let report = json_of(&against(&["--format", "json", "sync"]).success());
    assert_eq!((report["sent"].as_u64(), report["deleted"].as_u64()), (Some(0), Some(1)));
    assert!(all_documents(&server, "notes").iter().all(|n| n["legacyId"] != "5"));
    against(&["verify"]).success();
    let import = json_of(&against(&["--format", "json", "import"]).success());
    assert_eq!(import["sent"], 0, "{import}");
}

#[test]
fn run_sync_chains_export_transform_sync_and_verify() {
    // GIVEN the fixture imported by `migrate run`
    let prepared = Prepared::new(FIXTURE, POLICIES);
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let db_url = prepared._db.url().to_owned();
    let run = |extra: &[&str]| {
        let mut args = vec!["--format", "json", "run", "--database-url", &db_url];
        args.extend_from_slice(extra);
        prepared.against(server.url(), server.admin_key(), &args).success()
    };
    run(&[]);

    // WHEN the source changes and `migrate run --sync` runs
    prepared._db.execute(CHANGES);
    let synced = run(&["--sync", "--max-rejected", "1", "--accept-rejected", "1"]);

    // THEN the third stage is a sync sending only the changes, and verify finds Convex exact
    let lines: Vec<Value> =
        synced.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let stages: Vec<_> = lines.iter().map(|l| l["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["export", "transform", "sync", "verify"], "{synced}");
    assert_eq!(
        (lines[2]["report"]["sent"].as_u64(), lines[2]["report"]["deleted"].as_u64()),
        (Some(9), Some(7))
    );
    assert_eq!(lines[3]["report"]["identical"], true);
}
