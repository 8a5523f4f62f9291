//! Two ways an import could lose documents without a word, each against both the generated
//! module under `convex-test` (tests/convex/server.ts) and the sink:
//!
//! - a first-pass `upsert` applied late (its reply lost or timed out, the call retried, the
//!   first attempt applied after the second pass) must not take away the cycle references the
//!   second pass patched in;
//! - a deployment emptied, or replaced by a fresh one at the same URL, must not be taken for
//!   the one the checkpoints describe: import sends everything again.

use std::time::Duration;

use convex_sink::{Plan, Sink, SinkConfig};
use migrate::convex::client::{ConvexClient, FunctionKind, RetryPolicy, request_body};
use migrate::data_dir::DataDir;
use migrate::import::batches::{BatchPlan, read_batches};
use migrate::import::state::Pass;
use migrate::import::transformed::TransformedFile;
use migrate::import::{call_args, read_inputs};
use migrate::plan::migrate_ts::MODULE_VERSION;
use migrate::settings::Secret;
use serde_json::Value;

use crate::convex_server::ConvexTestServer;
use crate::import_faults::{BATCH_SIZE, Rig};
use crate::import_pipeline::Prepared;

/// Rows of the cycle fixture: two teams, four members.
const CYCLE_ROWS: &str = "
begin;
insert into teams values (1, 'red', 1), (2, 'blue', 3);
insert into members values (1, 1, null, 'a@x'), (2, 1, 1, 'b@x'), (3, 2, 1, 'c@x'), (4, 2, 3, 'd@x');
commit;
";

/// The cycle fixture's tables: `teams.owner_id` (NOT NULL) and `members.team_id` make a cycle,
/// `members.manager_id` refers to `members`: import's second pass patches all three in.
pub const CYCLE_TABLES: &str = "
create table teams (id int primary key, name text not null, owner_id int not null);
create table members (
  id int primary key,
  team_id int not null references teams(id) deferrable initially deferred,
  manager_id int references members(id),
  email text not null
);
alter table teams add constraint teams_owner_fk
  foreign key (owner_id) references members(id) deferrable initially deferred;
";

/// The cycle fixture: [`CYCLE_TABLES`] and four members in two teams.
fn cycle() -> String {
    format!("{CYCLE_TABLES}{CYCLE_ROWS}")
}

/// The bodies of every first-pass `migrate:upsert` call import sends, `batch_size` documents
/// each, for the tables with deferred references: read from the transformed files by import's
/// own batch reader.
fn first_pass_upserts(prepared: &Prepared, batch_size: usize) -> Vec<(String, Vec<u8>)> {
    let data_dir = DataDir::new(prepared.work.data_dir());
    let inputs = read_inputs(&data_dir, &prepared.plan_dir()).expect("the inputs read");
    let mut bodies = Vec::new();
    for step in inputs.order.iter().filter(|step| !step.deferred.is_empty()) {
        let report = inputs.manifest.tables.iter().find(|t| t.table == step.table).unwrap();
        let plan = BatchPlan {
            file: TransformedFile::of(&data_dir, report).expect("a transformed file"),
            pass: Pass::Upsert,
            legacy_field: step.legacy_field.clone(),
            deferred: step.deferred.clone(),
            size: batch_size,
            max_bytes: 8 << 20,
            done: Vec::new(),
        };
        read_batches(&plan, |batch| {
            let args = call_args(&step.table, &batch.entries);
            bodies.push((step.table.clone(), request_body("migrate:upsert", &args)));
            true
        })
        .expect("the batches read");
    }
    assert!(!bodies.is_empty(), "the plan has deferred references");
    bodies
}

/// Sends each body to `url` as a mutation, as import does; each must succeed.
fn replay(url: &str, key: &str, bodies: Vec<(String, Vec<u8>)>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let key = Secret::new(key.to_owned());
    let client =
        ConvexClient::new(url, &key, Duration::from_secs(30), RetryPolicy::default()).unwrap();
    for (table, body) in bodies {
        let decode = |raw: &serde_json::value::RawValue| {
            serde_json::from_str::<Value>(raw.get()).map_err(|e| e.to_string())
        };
        let reply = client.call_body(FunctionKind::Mutation, "migrate:upsert", body.into(), decode);
        runtime.block_on(reply).unwrap_or_else(|e| panic!("the replayed upsert of {table}: {e}"));
    }
}

/// `migrate --format json import` against `url`: exit 0, and the report.
fn import_json(prepared: &Prepared, url: &str, key: &str, extra: &[&str]) -> (String, Value) {
    let mut args = vec!["--format", "json", "import"];
    args.extend_from_slice(extra);
    let run = prepared.against(url, key, &args).success();
    let report = serde_json::from_str(&run.stdout).expect("the import report is JSON");
    (run.stderr, report)
}

/// Every document of `table` through `migrate:page` (fewer than 1,000).
fn documents(url: &str, key: &str, table: &str) -> Vec<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let key = Secret::new(key.to_owned());
    let client =
        ConvexClient::new(url, &key, Duration::from_secs(30), RetryPolicy::default()).unwrap();
    let args = serde_json::json!({"table": table, "cursor": null, "numItems": 1000});
    let page: Value =
        runtime.block_on(client.call(FunctionKind::Query, "migrate:page", &args)).unwrap();
    assert_eq!(page["isDone"], true);
    page["page"].as_array().unwrap().clone()
}

/// The cycle references of [`cycle`] in Convex, by legacy id: (`teams.ownerId`,
/// `members.teamId`, `members.managerId`), each the referred document's legacy id.
fn cycle_references(url: &str, key: &str) -> Vec<(String, Option<String>)> {
    let members = documents(url, key, "members");
    let teams = documents(url, key, "teams");
    let legacy_of = |docs: &[Value], id: &Value| {
        docs.iter().find(|d| &d["_id"] == id).map(|d| d["legacyId"].as_str().unwrap().to_owned())
    };
    let mut found = Vec::new();
    for team in &teams {
        let field = format!("teams {}.ownerId", team["legacyId"].as_str().unwrap());
        found.push((field, legacy_of(&members, &team["ownerId"])));
    }
    for member in &members {
        let legacy = member["legacyId"].as_str().unwrap();
        found.push((format!("members {legacy}.teamId"), legacy_of(&teams, &member["teamId"])));
        found.push((
            format!("members {legacy}.managerId"),
            legacy_of(&members, &member["managerId"]),
        ));
    }
    found.sort();
    found
}

/// What [`cycle`] says the references are.
fn expected_cycle_references() -> Vec<(String, Option<String>)> {
    let some = |s: &str| Some(s.to_owned());
    let mut expected =
        vec![("teams 1.ownerId".to_owned(), some("1")), ("teams 2.ownerId".to_owned(), some("3"))];
    for (member, team, manager) in [("1", "1", None), ("2", "1", some("1")), ("3", "2", some("1"))]
        .into_iter()
        .chain([("4", "2", some("3"))])
    {
        expected.push((format!("members {member}.teamId"), some(team)));
        expected.push((format!("members {member}.managerId"), manager));
    }
    expected.sort();
    expected
}

/// [`cycle`] transformed, deployed under convex-test and imported in full, every cycle
/// reference in place.
fn cycle_imported_under_convex_test() -> (Prepared, ConvexTestServer) {
    let prepared = Prepared::new(&cycle(), "");
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url(), server.admin_key());
    import_json(&prepared, url, key, &[]);
    assert_eq!(cycle_references(url, key), expected_cycle_references());
    (prepared, server)
}

#[test]
fn a_first_pass_upsert_applied_after_the_second_pass_takes_no_reference_away_under_convex_test() {
    // GIVEN a plan with a NOT NULL cycle and a self-reference, imported in full
    let (prepared, server) = cycle_imported_under_convex_test();
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());

    // WHEN the first pass's upserts arrive again, late: the same bodies import sent, applied
    // after the second pass patched the cycle references in
    replay(&url, &key, first_pass_upserts(&prepared, 100));

    // THEN every cycle reference is still set
    assert_eq!(cycle_references(&url, &key), expected_cycle_references());
    // AND a re-run of import (which sends nothing: its checkpoints say done) and verify agree
    let (_, report) = import_json(&prepared, &url, &key, &[]);
    assert_eq!(report["sent"], 0, "{report}");
    prepared.against(&url, &key, &["verify"]).success();
}

#[test]
fn a_first_pass_upsert_applied_after_the_second_pass_takes_no_reference_away_in_the_sink() {
    // GIVEN the volume fixture (two self-references) imported into the sink
    let rig = Rig::new(|c| c);
    rig.import_json(&[]);
    rig.verify_exact();
    let patched =
        rig.sink.documents("comments").iter().filter(|c| c.get("replyTo").is_some()).count();
    assert_eq!(patched, 1000, "every even comment replies to another");

    // WHEN every first-pass upsert is applied again, after the second pass
    let batch_size = BATCH_SIZE.parse().unwrap();
    replay(&rig.sink.url(), rig.sink.admin_key(), first_pass_upserts(&rig.prepared, batch_size));

    // THEN nothing the second pass wrote is gone: verify finds exactly the source
    let stats = rig.stats();
    assert_eq!(stats.replaced, 4000 - 1500, "authors and comments upserted again: {stats:?}");
    rig.verify_exact();
}

#[test]
fn a_deployment_emptied_at_the_same_url_gets_every_document_again_under_convex_test() {
    // GIVEN an import done into a deployment
    let prepared = Prepared::new(&cycle(), "");
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    let (_, first) = import_json(&prepared, &url, &key, &[]);
    assert_eq!(first["sent"], 6, "{first}");

    // WHEN the deployment is replaced by an empty one at the same URL, and import runs again
    let server = server.restart_empty();
    assert!(documents(&url, &key, "members").is_empty());
    let (stderr, again) = import_json(&prepared, &url, &key, &[]);

    // THEN it notices, says so, and sends every document again
    assert!(
        stderr.contains(
            "the deployment holds no marker of the earlier import: sending every table again"
        ),
        "{stderr}"
    );
    assert_eq!(again["sent"], 6, "{again}");
    let resumed: u64 =
        again["tables"].as_array().unwrap().iter().map(|t| t["resumed"].as_u64().unwrap()).sum();
    assert_eq!(resumed, 0, "{again}");
    assert_eq!(cycle_references(&url, &key), expected_cycle_references());
    // AND verify proves it, status agrees, and a third run trusts the checkpoints again
    prepared.against(&url, &key, &["verify"]).success();
    let status = prepared.migrate(&["--format", "json", "status"]).success();
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let imported: Vec<u64> = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["imported"].as_u64().unwrap())
        .collect();
    assert_eq!(imported.iter().sum::<u64>(), 6, "{status}");
    let (stderr, third) = import_json(&prepared, &url, &key, &[]);
    assert_eq!(third["sent"], 0, "{third}");
    assert!(!stderr.contains("no marker"), "{stderr}");
    drop(server);
}

#[test]
fn a_deployment_emptied_at_the_same_url_gets_every_document_again_in_the_sink() {
    // GIVEN the volume fixture imported into the sink, the ledger saying so
    let rig = Rig::new(|c| c);
    rig.import_json(&[]);
    let ledger = rig.sink.ledger();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0]["status"], "completed");

    // WHEN the deployment is emptied and import runs again
    rig.sink.clear();
    let before = rig.stats();
    let (run, report) = rig.import_json(&[]);

    // THEN every document is sent again, and verify finds exactly the source
    assert!(run.stderr.contains("holds no marker of the earlier import"), "{run}");
    assert_eq!(report["sent"], 4000, "{run}");
    assert_eq!(rig.stats().inserted - before.inserted, 4000);
    rig.verify_exact();
    // … under a new marker, recorded completed
    let ledger = rig.sink.ledger();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0]["status"], "completed");

    // AND a dry run still sends nothing and shows every table
    let dry = rig.prepared.migrate(&["--format", "json", "import", "--dry-run"]).success();
    let dry: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!((dry["dry_run"].as_bool(), dry["documents"].as_u64()), (Some(true), Some(4000)));
}

#[test]
fn a_module_of_an_older_version_is_refused_with_what_to_do() {
    // GIVEN a deployment running the module as an older migrate generated it (version 1: no
    // `deferred` in `upsert`, which it would refuse as an unknown argument)
    let prepared = Prepared::new(&cycle(), "");
    prepared.migrate(&["transform"]).success();
    let module = std::fs::read_to_string(prepared.convex_dir().join("migrate.ts")).unwrap();
    let current = format!("const PLAN = {{\"version\":{MODULE_VERSION},");
    let old = module.replacen(&current, "const PLAN = {\"version\":1,", 1);
    assert_ne!(old, module);
    let sink = Sink::start(SinkConfig::new(Plan::from_module(&old).unwrap())).unwrap();

    // WHEN import runs against it
    let run = prepared.against(&sink.url(), sink.admin_key(), &["import"]);

    // THEN it stops before sending anything, saying to regenerate and deploy the module
    let needs = format!("needs version {MODULE_VERSION}");
    run.fails_with(4, &["version 1 of the module", &needs, "migrate init"]);
    assert_eq!(sink.stats().succeeded, 1, "only migrate:info: {:?}", sink.stats());
}

#[test]
fn a_cycle_reference_set_to_null_in_the_source_is_cleared_on_re_import() {
    // GIVEN the cycle imported in full under convex-test
    let (prepared, server) = cycle_imported_under_convex_test();
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());

    // WHEN the source drops member 4's manager and gives member 1 one, and the job runs again
    crate::support::Conn::connect_or_fail(prepared._db.url()).execute(
        "update members set manager_id = null where id = 4;
         update members set manager_id = 2 where id = 1;",
    );
    prepared.work.export(prepared._db.url(), &[]).success();
    prepared.migrate(&["transform"]).success();
    import_json(&prepared, &url, &key, &[]);

    // THEN Convex holds the new references: the old one is gone, not kept by the first pass
    let mut expected = expected_cycle_references();
    for (field, manager) in &mut expected {
        match field.as_str() {
            "members 4.managerId" => *manager = None,
            "members 1.managerId" => *manager = Some("2".to_owned()),
            _ => {}
        }
    }
    assert_eq!(cycle_references(&url, &key), expected);
    prepared.against(&url, &key, &["verify"]).success();
}
