//! The whole job against Convex's own semantics: real Postgres → export → init → transform →
//! import into `tests/convex/server.ts` (convex-test running the generated schema.ts and
//! migrate.ts) → verify. A self-reference, a NOT NULL foreign-key cycle, composite keys,
//! orphans under each policy and a consolidation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use migrate::convex::client::{ConvexClient, FunctionKind, RetryPolicy};
use migrate::settings::Secret;
use serde_json::{Value, json};

use crate::convex_server::ConvexTestServer;
use crate::support::{Run, TestDb, Workdir};

const FIXTURE: &str = "
create table teams (id int primary key, name text not null, owner_id int not null);
create table members (
  id int primary key,
  team_id int not null references teams(id) deferrable initially deferred,
  manager_id int references members(id),
  email text not null
);
alter table teams add constraint teams_owner_fk
  foreign key (owner_id) references members(id) deferrable initially deferred;
create table member_profiles (member_id int primary key references members(id), bio text not null);
create table memberships (
  org text not null,
  member_id int not null references members(id),
  role text not null,
  primary key (org, member_id)
);
create table grants (
  id int primary key,
  org text not null,
  member_id int not null,
  scope text not null,
  foreign key (org, member_id) references memberships(org, member_id)
);
create table notes (id int primary key, body text not null,
  keep_member int, null_member int, drop_member int, fail_member int);

begin;
insert into teams values (1, 'red', 1), (2, 'blue', 3);
insert into members values (1, 1, null, 'a@x'), (2, 1, 1, 'b@x'), (3, 2, 1, 'c@x'), (4, 2, 3, 'd@x');
commit;
insert into member_profiles values (1, 'first'), (3, 'third');
insert into memberships values ('acme', 1, 'owner'), ('acme', 2, 'dev'), ('beta', 2, 'owner');
insert into grants values (1, 'acme', 2, 'read'), (2, 'beta', 2, 'write');
insert into notes values
  (1, 'all parents exist', 1, 1, 1, 1),
  (2, 'keep_legacy orphan', 99, 1, 1, 1),
  (3, 'null orphan', 1, 98, 1, 1),
  (4, 'drop orphan', 1, 1, 97, 1),
  (5, 'fail orphan', 1, 1, 1, 96);
alter table notes add constraint notes_keep foreign key (keep_member) references members(id) not valid;
alter table notes add constraint notes_null foreign key (null_member) references members(id) not valid;
alter table notes add constraint notes_drop foreign key (drop_member) references members(id) not valid;
alter table notes add constraint notes_fail foreign key (fail_member) references members(id) not valid;
";

const POLICIES: &str = r#"
[tables."public.member_profiles"]
merge_into = "public.members"
on = ["member_id"]

[tables."public.notes".references.keep_member]
orphans = "keep_legacy"
[tables."public.notes".references.null_member]
orphans = "null"
[tables."public.notes".references.drop_member]
orphans = "drop"
[tables."public.notes".references.fail_member]
orphans = "fail"
"#;

fn utf8(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A work directory with the fixture exported, planned (init + the policies above) and
/// transformed, and its Convex app in `convex/`.
pub struct Prepared {
    pub work: Workdir,
    /// Kept for the test's length: the database is dropped with it.
    pub _db: TestDb,
}

impl Prepared {
    pub fn new(fixture: &str, policies: &str) -> Self {
        Self::with_export(fixture, &[], policies)
    }

    /// As [`Prepared::new`], exporting with `export_args`.
    pub fn with_export(fixture: &str, export_args: &[&str], policies: &str) -> Self {
        Self::from_db(TestDb::with(fixture), export_args, policies)
    }

    /// As [`Prepared::new`], from the database `db`, exporting with `export_args`.
    pub fn from_db(db: TestDb, export_args: &[&str], policies: &str) -> Self {
        let work = Workdir::new();
        work.export(db.url(), export_args).success();
        let prepared = Prepared { work, _db: db };
        prepared.migrate(&["init", "--convex-dir", utf8(&prepared.convex_dir())]).success();
        if !policies.is_empty() {
            std::fs::write(prepared.plan_dir().join("0002_policies.toml"), policies).unwrap();
            // Regenerate schema.ts and migrate.ts from both plan files.
            prepared.migrate(&["init", "--convex-dir", utf8(&prepared.convex_dir())]).success();
        }
        prepared
    }

    pub fn plan_dir(&self) -> PathBuf {
        self.work.path().join("plan")
    }

    pub fn convex_dir(&self) -> PathBuf {
        self.work.path().join("convex")
    }

    /// `migrate --data-dir … --plan-dir … <args>`.
    pub fn migrate(&self, args: &[&str]) -> Run {
        Run::of(self.command(args))
    }

    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let data_dir = self.work.data_dir();
        let plan_dir = self.plan_dir();
        let mut all = vec!["--data-dir", utf8(&data_dir), "--plan-dir", utf8(&plan_dir)];
        all.extend_from_slice(args);
        self.work.command(&all)
    }

    /// `migrate <args>` aimed at `url` with `key`.
    pub fn against(&self, url: &str, key: &str, args: &[&str]) -> Run {
        let mut command = self.command(args);
        command.env("CONVEX_URL", url).env("CONVEX_DEPLOY_KEY", key);
        Run::of(command)
    }

    pub fn data_path(&self, relative: &str) -> PathBuf {
        self.work.data_dir().join(relative)
    }
}

/// Calls a function of the test deployment with migrate's own client; it must succeed.
pub fn call(server: &ConvexTestServer, kind: FunctionKind, path: &str, args: Value) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let key = Secret::new(server.admin_key().to_owned());
    let client =
        ConvexClient::new(server.url(), &key, Duration::from_secs(30), RetryPolicy::default())
            .unwrap();
    runtime
        .block_on(client.call::<Value>(kind, path, &args))
        .unwrap_or_else(|e| panic!("{path}: {e}\n{}", server.stderr()))
}

fn documents(server: &ConvexTestServer, table: &str, legacy_ids: &[&str]) -> Vec<Value> {
    let found = call(
        server,
        FunctionKind::Query,
        "migrate:get",
        json!({"table": table, "legacyIds": legacy_ids}),
    );
    found.as_array().unwrap().clone()
}

/// Every document of `table` in the test deployment (at most 1,000).
pub fn all_documents(server: &ConvexTestServer, table: &str) -> Vec<Value> {
    let page = call(
        server,
        FunctionKind::Query,
        "migrate:page",
        json!({"table": table, "cursor": null, "numItems": 1000}),
    );
    assert_eq!(page["isDone"], true);
    page["page"].as_array().unwrap().clone()
}

/// A Convex module the tests add beside the generated ones, to change data behind migrate's
/// back.
const TAMPER_TS: &str = r#"
import { internalMutationGeneric } from "convex/server";
import { v } from "convex/values";

export const setField = internalMutationGeneric({
  args: { table: v.string(), legacyId: v.string(), field: v.string(), value: v.any() },
  handler: async (ctx, { table, legacyId, field, value }) => {
    const doc = await ctx.db
      .query(table)
      .withIndex("by_legacy_id", (q) => q.eq("legacyId", legacyId))
      .unique();
    await ctx.db.patch(doc!._id, { [field]: value });
  },
});
"#;

#[test]
fn the_whole_job_imports_and_verifies_cycles_composite_keys_orphans_and_a_consolidation() {
    // GIVEN the fixture exported, planned and transformed (the `fail` orphan is the one
    // tolerated reject)
    let prepared = Prepared::new(FIXTURE, POLICIES);
    prepared.migrate(&["transform", "--max-rejected", "1"]).success();
    std::fs::write(prepared.convex_dir().join("tamper.ts"), TAMPER_TS).unwrap();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());

    // WHEN it is imported
    let import = prepared.against(&url, &key, &["import"]).success();
    import.never_shows(&key);

    // THEN every reference is a real Convex id of the right document, cycles included
    let members = all_documents(&server, "members");
    let id_of = |legacy: &str| {
        members.iter().find(|m| m["legacyId"] == legacy).unwrap()["_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let teams = documents(&server, "teams", &["1", "2"]);
    assert_eq!(teams[0]["ownerId"], id_of("1"), "NOT NULL cycle teams.owner_id → members");
    assert_eq!(teams[1]["ownerId"], id_of("3"));
    let four = members.iter().find(|m| m["legacyId"] == "4").unwrap();
    assert_eq!(four["managerId"], id_of("3"), "self-reference");
    assert_eq!(four["teamId"], documents(&server, "teams", &["2"])[0]["_id"]);
    assert!(members.iter().find(|m| m["legacyId"] == "1").unwrap().get("managerId").is_none());
    // … the consolidation put the profile into the member's document
    assert_eq!(members.iter().find(|m| m["legacyId"] == "3").unwrap()["bio"], "third");
    // … composite keys are legacy ids and references
    let grants = all_documents(&server, "grants");
    let membership = documents(&server, "memberships", &[r#"["beta","2"]"#]);
    assert_eq!(
        grants.iter().find(|g| g["legacyId"] == "2").unwrap()["membershipsId"],
        membership[0]["_id"]
    );
    // … and each orphan policy shows
    let notes = all_documents(&server, "notes");
    let note = |legacy: &str| notes.iter().find(|n| n["legacyId"] == legacy).cloned();
    assert_eq!(note("2").unwrap()["keepMember"], "99", "keep_legacy keeps the legacy id");
    assert!(note("3").unwrap().get("nullMember").is_none(), "null leaves the field out");
    assert!(note("4").is_none(), "drop drops the row");
    assert!(note("5").is_none(), "fail rejected the row at transform");
    assert_eq!(notes.len(), 3);

    // AND status says so from the data directory alone
    let status = prepared.migrate(&["--format", "json", "status"]).success();
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let members =
        status["tables"].as_array().unwrap().iter().find(|t| t["table"] == "members").unwrap();
    assert_eq!(
        (members["imported"].as_u64(), members["patched"].as_u64()),
        (Some(4), Some(4)),
        "teamId is in the teams cycle"
    );
    assert_eq!(status["runs"][0]["outcome"], "completed");

    // AND verify proves it, the one rejected row accepted by number
    let verify = prepared.against(&url, &key, &["verify", "--accept-rejected", "1"]).success();
    assert!(verify.stdout.contains("verified: Convex holds exactly"), "{verify}");

    // WHEN the state is deleted and the import runs again
    std::fs::remove_file(prepared.data_path("state.sqlite")).unwrap();
    let again = prepared.against(&url, &key, &["--format", "json", "import"]).success();
    let report: Value = serde_json::from_str(&again.stdout).unwrap();
    // THEN every document was replaced in place, none inserted: no duplicates
    let inserted: u64 =
        report["tables"].as_array().unwrap().iter().map(|t| t["inserted"].as_u64().unwrap()).sum();
    assert_eq!(inserted, 0, "{again}");
    assert_eq!(all_documents(&server, "members").len(), 4);
    prepared.against(&url, &key, &["verify", "--accept-rejected", "1"]).success();

    // WHEN one field of one document changes in Convex
    call(
        &server,
        FunctionKind::Mutation,
        "tamper:setField",
        json!({"table": "members", "legacyId": "2", "field": "email", "value": "changed@x"}),
    );
    // THEN verify fails naming the table, the document and the field
    let verify = prepared.against(&url, &key, &["verify", "--accept-rejected", "1"]);
    assert_eq!(verify.code, Some(1), "{verify}");
    assert!(
        verify
            .stdout
            .contains(r#"different members 2.email: Convex has "changed@x", the source has "b@x""#),
        "{verify}"
    );
    let json =
        prepared.against(&url, &key, &["--format", "json", "verify", "--accept-rejected", "1"]);
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["identical"], false);
    let members =
        report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "members").unwrap();
    assert_eq!((members["different"].as_u64(), members["matching"].as_u64()), (Some(1), Some(3)));
}

#[test]
fn a_finished_import_sends_nothing_again_and_a_changed_plan_is_refused() {
    let prepared = Prepared::new(FIXTURE, POLICIES);
    prepared.migrate(&["transform", "--max-rejected", "1"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import", "--batch-size", "1"]).success();

    // A second run finds every batch checkpointed and sends nothing.
    let again = prepared.against(&url, &key, &["--format", "json", "import"]).success();
    let report: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report["sent"], 0, "{again}");

    // The plan changes and the data is transformed again: the deployed module is outdated…
    std::fs::write(
        prepared.plan_dir().join("0003_rename.toml"),
        "[tables.\"public.teams\"]\ntarget = \"squads\"\n",
    )
    .unwrap();
    prepared.migrate(&["transform", "--max-rejected", "1"]).success();
    prepared
        .against(&url, &key, &["import"])
        .fails_with(4, &["generated from plan", "migrate init"]);

    // … and once it is regenerated and deployed, the half-done state is refused unless forced.
    prepared.migrate(&["init", "--convex-dir", utf8(&prepared.convex_dir())]).success();
    let redeployed = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (redeployed.url().to_owned(), redeployed.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).fails_with(2, &["another plan", "--force"]);
    prepared.against(&url, &key, &["import", "--force"]).success();
    assert_eq!(all_documents(&redeployed, "squads").len(), 2);
    prepared.against(&url, &key, &["verify", "--accept-rejected", "1"]).success();
}

/// Transforms `prepared` and deploys its module with migrateTables.ts edited so that Convex
/// refuses an `items` document whose label is not "ok".
fn transformed_and_deployed_refusing_bad_labels(prepared: &Prepared) -> ConvexTestServer {
    prepared.migrate(&["transform"]).success();
    let schema = prepared.convex_dir().join("migrateTables.ts");
    let text = std::fs::read_to_string(&schema).unwrap();
    let narrowed = text.replacen("label: v.string()", "label: v.literal(\"ok\")", 1);
    assert_ne!(text, narrowed, "the schema has a label validator");
    std::fs::write(&schema, narrowed).unwrap();
    ConvexTestServer::for_convex_dir(&prepared.convex_dir())
}

#[test]
fn one_document_convex_refuses_is_rejected_and_the_rest_of_its_batch_arrives() {
    // GIVEN 100 rows in one batch, and a schema.ts edited to refuse one of them
    let prepared = Prepared::new(
        "create table items (id int primary key, label text not null);
         insert into items select g, case when g = 37 then 'bad' else 'ok' end
         from generate_series(1, 100) g;",
        "",
    );
    let server = transformed_and_deployed_refusing_bad_labels(&prepared);

    // WHEN it is imported
    let run = prepared.against(server.url(), server.admin_key(), &["import"]);

    // THEN 99 arrive, the refused one is in rejects with Convex's message, exit code 5
    assert_eq!(run.code, Some(5), "{run}");
    assert!(run.stdout.contains("1 document refused by Convex"), "{run}");
    assert!(run.stdout.contains("items 37 (line 37): Validator error"), "{run}");
    assert_eq!(all_documents(&server, "items").len(), 99);
    let rejects =
        std::fs::read_to_string(prepared.data_path("rejects/import/items.jsonl")).unwrap();
    let reject: Value = serde_json::from_str(rejects.lines().next().unwrap()).unwrap();
    assert_eq!((reject["legacy_id"].as_str(), reject["line"].as_u64()), (Some("37"), Some(37)));
    assert!(reject["message"].as_str().unwrap().contains("ok"), "{reject}");
    assert_eq!(rejects.lines().count(), 1);
}

#[test]
fn a_wrong_key_and_a_missing_module_stop_with_what_to_do() {
    let prepared =
        Prepared::new("create table items (id int primary key); insert into items values (1);", "");
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());

    let wrong_key = "prod:wrong|secret-value-that-must-not-leak";
    let run = prepared.against(server.url(), wrong_key, &["import"]);
    run.fails_with(4, &["deploy key", "CONVEX_DEPLOY_KEY"]);
    run.never_shows("secret-value-that-must-not-leak");

    std::fs::remove_file(prepared.convex_dir().join("migrate.ts")).unwrap();
    let bare = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let run = prepared.against(bare.url(), bare.admin_key(), &["import"]);
    run.fails_with(4, &["not deployed", "npx convex deploy"]);

    let run = prepared.against("not a url", "k", &["import"]);
    run.fails_with(2, &["not a Convex deployment URL"]);
    let mut command = prepared.command(&["import"]);
    command.env("CONVEX_URL", server.url());
    Run::of(command).fails_with(2, &["CONVEX_DEPLOY_KEY"]);
}

#[test]
fn a_dry_run_prints_the_order_and_sends_nothing() {
    let prepared = Prepared::new(FIXTURE, POLICIES);
    prepared.migrate(&["transform", "--max-rejected", "1"]).success();
    let run = prepared.migrate(&["import", "--dry-run"]).success();
    let members = run.stdout.find("members").unwrap();
    let grants = run.stdout.find("grants").unwrap();
    assert!(members < grants, "parents first:\n{run}");
    assert!(run.stdout.contains("Nothing was sent"), "{run}");
    assert!(!prepared.data_path("state.sqlite").exists());
}

#[test]
fn run_chains_every_stage_and_reports_one_json_line_per_stage() {
    // GIVEN a planned database (init ran) and its Convex app deployed
    let prepared = Prepared::new(FIXTURE, POLICIES);
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let url = prepared._db.url().to_owned();

    // WHEN `migrate run` goes from Postgres to a verified Convex, tolerating the `fail` orphan
    let run = prepared.against(
        server.url(),
        server.admin_key(),
        &[
            "--format",
            "json",
            "run",
            "--database-url",
            &url,
            "--max-rejected",
            "1",
            "--accept-rejected",
            "1",
        ],
    );

    // THEN each stage reported in turn, and verify found Convex identical
    let run = run.success();
    let lines: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let stages: Vec<_> = lines.iter().map(|l| l["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["export", "transform", "import", "verify"], "{run}");
    assert_eq!(
        lines[2]["report"]["sent"], 14,
        "2 teams, 4 members, 3 memberships, 2 grants, 3 notes"
    );
    assert_eq!(lines[3]["report"]["identical"], true);
}

#[test]
fn run_dry_run_stages_the_data_and_shows_what_import_would_send_without_convex() {
    // GIVEN a planned database, and no Convex deployment or key anywhere
    let prepared = Prepared::new(FIXTURE, POLICIES);
    let url = prepared._db.url().to_owned();

    // WHEN `migrate run --dry-run` runs
    let mut command = prepared.command(&[
        "--format",
        "json",
        "run",
        "--dry-run",
        "--database-url",
        &url,
        "--max-rejected",
        "1",
    ]);
    command.env_remove("CONVEX_URL").env_remove("CONVEX_DEPLOY_KEY");
    let run = Run::of(command).success();

    // THEN export and transform ran, and import only said what it would send, in order
    let lines: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let stages: Vec<_> = lines.iter().map(|l| l["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["export", "transform", "import"], "{run}");
    let import = &lines[2]["report"];
    assert_eq!(import["dry_run"], true, "{run}");
    assert_eq!(import["documents"], 14, "{run}");
    assert_eq!(import["sent"], 0, "{run}");
    assert!(prepared.data_path("transformed/manifest.json").is_file());
    assert!(!prepared.data_path("state.sqlite").exists(), "nothing was imported");

    // AND in text, it says that nothing was sent
    let mut command =
        prepared.command(&["run", "--dry-run", "--database-url", &url, "--max-rejected", "1"]);
    command.env_remove("CONVEX_URL").env_remove("CONVEX_DEPLOY_KEY");
    let run = Run::of(command).success();
    assert!(run.stdout.contains("Nothing was sent."), "{run}");
}

#[test]
fn a_document_the_second_pass_refuses_after_its_upsert_counts_once_when_resumed() {
    // GIVEN ten items each referring to the one before (a self-reference: the second pass
    // patches it in), and a schema.ts edited to refuse item 5
    let prepared = Prepared::new(
        "create table items (id int primary key, label text not null,
           previous_id int references items(id));
         insert into items select g, case when g = 5 then 'bad' else 'ok' end, nullif(g - 1, 0)
         from generate_series(1, 10) g;",
        "",
    );
    let server = transformed_and_deployed_refusing_bad_labels(&prepared);
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());

    // WHEN it is imported: the upsert refuses item 5, the second pass item 6 (upserted, but its
    // reference is to item 5)
    let first = prepared.against(&url, &key, &["--format", "json", "import"]);
    assert_eq!(first.code, Some(5), "{first}");
    let report: Value = serde_json::from_str(&first.stdout).unwrap();
    assert_eq!(report["rejected"], 2, "{first}");
    assert_eq!(all_documents(&server, "items").len(), 9);

    // AND run again
    let again = prepared.against(&url, &key, &["--format", "json", "import"]);
    assert_eq!(again.code, Some(5), "{again}");
    let report: Value = serde_json::from_str(&again.stdout).unwrap();

    // THEN it sends nothing, and each of the ten items counts once as done by the first run
    assert_eq!(report["sent"], 0, "{again}");
    assert_eq!(report["rejected"], 2, "{again}");
    let items = &report["tables"][0];
    assert_eq!((items["documents"].as_u64(), items["resumed"].as_u64()), (Some(10), Some(10)));
    assert_eq!(items["rejected"], 2, "{again}");
}

#[test]
fn batches_sent_from_a_transformed_file_changed_since_transform_are_forgotten() {
    // GIVEN ten items transformed, then their file cut to its first four lines
    let prepared = Prepared::new(
        "create table items (id int primary key, label text not null);
         insert into items select g, 'item ' || g from generate_series(1, 10) g;",
        "",
    );
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    let items = prepared.data_path("transformed/items.jsonl");
    let text = std::fs::read_to_string(&items).unwrap();
    let kept: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(&items, kept).unwrap();

    // WHEN it is imported one document a batch: some batches are acknowledged before the end
    // of the file shows it is not the one transform wrote
    let run = prepared.against(&url, &key, &["import", "--batch-size", "1"]);
    assert_eq!(run.code, Some(6), "{run}");
    assert!(run.stderr.contains("changed since transform: 4 lines"), "{run}");
    assert!(!all_documents(&server, "items").is_empty(), "batches were sent: {run}");

    // THEN the state forgot the table: status shows nothing imported of it
    let status = prepared.migrate(&["--format", "json", "status"]).success();
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["tables"][0]["imported"], 0, "{status}");

    // AND once transformed again (the same file as before, the same checksum), the import
    // sends the whole table from the real file rather than resuming
    prepared.migrate(&["transform"]).success();
    let again = prepared.against(&url, &key, &["--format", "json", "import"]).success();
    let report: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(
        (report["tables"][0]["resumed"].as_u64(), report["sent"].as_u64()),
        (Some(0), Some(10))
    );
    prepared.against(&url, &key, &["verify"]).success();
}

#[test]
fn under_nulls_null_a_reference_to_nothing_is_stored_as_null_and_convex_accepts_it() {
    // GIVEN `nulls = "null"`, and posts whose author is NULL (a reference to no row) or set
    let prepared = Prepared::new(
        "create table authors (id int primary key, name text not null);
         create table posts (id int primary key, author_id int references authors(id),
                             title text);
         insert into authors values (1, 'Ada');
         insert into posts values (1, 1, 'set'), (2, null, null);",
        "[defaults]\nnulls = \"null\"\n",
    );
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());

    // WHEN they are imported into the Convex runtime, which validates every document against
    // the schema (`authorId: v.union(v.id("authors"), v.null())`, a required field)
    let run = prepared.against(server.url(), server.admin_key(), &["import"]);

    // THEN every post arrives, the authorless one holding null, and verify finds them exact
    assert_eq!(run.code, Some(0), "{run}");
    let post = &documents(&server, "posts", &["2"])[0];
    assert_eq!(post.get("authorId"), Some(&Value::Null), "{post}");
    assert_eq!(post.get("title"), Some(&Value::Null), "{post}");
    prepared.against(server.url(), server.admin_key(), &["verify"]).success();
}
