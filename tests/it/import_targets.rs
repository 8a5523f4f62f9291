//! Many deployments (`targets.toml`, `--target`, `--all-targets`): real Postgres, the real
//! `migrate` binary, and one in-process `convex-sink` per deployment, each with its own deploy
//! key. A target that fails fails alone; each deployment keeps its own state, so a re-run does
//! again only what is not completed, and switching deployments never restarts one.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use convex_sink::{Plan, Sink, SinkConfig, SinkHandle};
use serde_json::Value;

use crate::convex_server::ConvexTestServer;
use crate::import_faults::{DOCUMENTS, FIXTURE, TABLES};
use crate::import_pipeline::Prepared;
use crate::support::Run;

/// The fixture transformed, and one sink per target name, each with the key `key-<name>`.
struct Targets {
    prepared: Prepared,
    sinks: Vec<(&'static str, SinkHandle)>,
}

impl Targets {
    fn new(names: &[&'static str], latency: Duration) -> Self {
        let prepared = Prepared::new(FIXTURE, "");
        prepared.migrate(&["transform"]).success();
        let plan = Plan::from_module_file(prepared.convex_dir().join("migrate.ts")).unwrap();
        let mut file = String::new();
        let mut sinks = Vec::new();
        for &name in names {
            let config = SinkConfig {
                admin_key: format!("key-{name}"),
                latency,
                ..SinkConfig::new(plan.clone())
            };
            let sink = Sink::start(config).expect("the sink starts");
            file.push_str(&format!(
                "[targets.{name}]\nurl = \"{}\"\ndeploy_key_env = \"{}\"\n\n",
                sink.url(),
                variable(name)
            ));
            sinks.push((name, sink));
        }
        std::fs::write(prepared.plan_dir().join("targets.toml"), file).unwrap();
        Targets { prepared, sinks }
    }

    fn sink(&self, name: &str) -> &SinkHandle {
        &self.sinks.iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// `migrate --format json <args>` with each target's variable set to its key, except those
    /// in `keys` (`None`: unset).
    fn command(&self, args: &[&str], keys: &[(&str, Option<&str>)]) -> Command {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let mut command = self.prepared.command(&all);
        command.env_remove("CONVEX_URL").env_remove("CONVEX_DEPLOY_KEY");
        for (name, _) in &self.sinks {
            match keys.iter().find(|(n, _)| n == name) {
                Some((_, Some(key))) => command.env(variable(name), key),
                Some((_, None)) => command.env_remove(variable(name)),
                None => command.env(variable(name), format!("key-{name}")),
            };
        }
        command
    }

    fn run(&self, args: &[&str], keys: &[(&str, Option<&str>)]) -> (Run, Value) {
        let run = Run::of(self.command(args, keys));
        let report = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("the report is JSON ({e})\n{run}"));
        (run, report)
    }

    /// Every table of the target's sink holds each of its rows once.
    #[track_caller]
    fn holds_everything(&self, name: &str) {
        for (table, rows) in TABLES {
            let documents = self.sink(name).documents(table);
            let legacy: HashSet<&str> =
                documents.iter().map(|d| d["legacyId"].as_str().unwrap()).collect();
            assert_eq!((documents.len(), legacy.len()), (rows, rows), "{name}: {table}");
        }
    }
}

fn variable(name: &str) -> String {
    format!("TEST_DEPLOY_KEY_{}", name.to_ascii_uppercase())
}

/// The row of `name` in a targets report.
fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .expect("one row per target")
        .iter()
        .find(|t| t["target"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {report}"))
}

fn statuses(report: &Value) -> Vec<(String, String, u64)> {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let text = |k: &str| t[k].as_str().unwrap().to_owned();
            (text("target"), text("status"), t["exit_code"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn three_targets_with_one_wrong_key_two_complete_and_a_rerun_completes_only_the_third() {
    // GIVEN three deployments, the third's variable holding a key it refuses
    let targets = Targets::new(&["alpha", "beta", "gamma"], Duration::ZERO);
    let wrong = [("gamma", Some("key-of-another-deployment"))];

    // WHEN importing into all of them
    let (run, report) = targets.run(&["import", "--all-targets"], &wrong);

    // THEN the two others complete, the third fails with Convex's refusal, the exit code is
    // the failed target's (4), and no key is printed
    assert_eq!(run.code, Some(4), "{run}");
    assert_eq!(
        statuses(&report),
        [
            ("alpha".to_owned(), "completed".to_owned(), 0),
            ("beta".to_owned(), "completed".to_owned(), 0),
            ("gamma".to_owned(), "failed".to_owned(), 4),
        ]
    );
    assert_eq!(report["exit_code"], 4);
    let error = row(&report, "gamma")["error"].as_str().unwrap();
    assert!(error.contains("401") || error.contains("BadAdminKey"), "{error}");
    assert!(
        error.contains("hint: TEST_DEPLOY_KEY_GAMMA must be"),
        "the target's variable: {error}"
    );
    assert!(run.stderr.contains("[gamma] error:"), "the failure is named as it happens\n{run}");
    for secret in ["key-alpha", "key-beta", "key-of-another-deployment"] {
        run.never_shows(secret);
    }
    targets.holds_everything("alpha");
    targets.holds_everything("beta");
    assert_eq!(targets.sink("gamma").stats().inserted, 0);
    assert_eq!(row(&report, "alpha")["report"]["sent"], DOCUMENTS);

    // A target whose variable is not set fails alone too, naming the variable.
    let (run, report) = targets.run(&["import", "--target", "gamma"], &[("gamma", None)]);
    assert_eq!(run.code, Some(2), "{run}");
    let error = row(&report, "gamma")["error"].as_str().unwrap();
    assert!(error.contains("TEST_DEPLOY_KEY_GAMMA"), "{error}");

    // `status` tells the three apart from the data directory alone.
    let (run, report) = targets.run(&["status", "--all-targets"], &wrong);
    assert_eq!(run.code, Some(0), "{run}");
    let stages: Vec<String> = statuses(&report).into_iter().map(|(_, s, _)| s).collect();
    assert_eq!(stages, ["completed", "completed", "pending"], "{report}");

    // WHEN the key is fixed and the same command runs again
    let before: Vec<_> = targets.sinks.iter().map(|(_, s)| s.stats()).collect();
    let (run, report) = targets.run(&["import", "--all-targets"], &[]);

    // THEN only the third is imported: the others find their state complete and send nothing
    assert_eq!(run.code, Some(0), "{run}");
    assert!(statuses(&report).iter().all(|(_, s, c)| s == "completed" && *c == 0), "{report}");
    for (index, name) in ["alpha", "beta"].into_iter().enumerate() {
        let imported = &row(&report, name)["report"];
        assert_eq!(imported["sent"], 0, "{name} sent again\n{imported}");
        let after = targets.sinks[index].1.stats();
        assert_eq!(
            after.inserted + after.replaced,
            before[index].inserted + before[index].replaced
        );
    }
    assert_eq!(row(&report, "gamma")["report"]["sent"], DOCUMENTS);
    targets.holds_everything("gamma");

    // AND verify finds each deployment exactly the source
    let (run, report) = targets.run(&["verify", "--all-targets"], &[]);
    assert_eq!(run.code, Some(0), "{run}");
    for (name, _) in &targets.sinks {
        let verified = row(&report, name);
        assert_eq!(verified["status"], "verified", "{verified}");
        assert_eq!(verified["report"]["identical"], true, "{verified}");
    }

    // WHEN two of them are rolled back
    let (run, report) = targets.run(&["rollback", "--target", "alpha", "--target", "beta"], &[]);

    // THEN those two hold none of the migrated documents and say so in their ledgers; the
    // third is untouched, and `status --ledger` reads each deployment's own ledger
    assert_eq!(run.code, Some(0), "{run}");
    let rolled: Vec<String> = statuses(&report).into_iter().map(|(_, s, _)| s).collect();
    assert_eq!(rolled, ["rolled back", "rolled back"], "{report}");
    for name in ["alpha", "beta"] {
        for (table, _) in TABLES {
            assert_eq!(targets.sink(name).count(table), 0, "{name}: {table}");
        }
    }
    targets.holds_everything("gamma");
    let (run, report) = targets.run(&["status", "--ledger", "--all-targets"], &[]);
    assert_eq!(run.code, Some(0), "{run}");
    let ledger = |name: &str| row(&report, name)["report"]["ledger"][0]["status"].clone();
    assert_eq!(
        [ledger("alpha"), ledger("beta"), ledger("gamma")],
        ["rolled_back", "rolled_back", "completed"],
        "{report}"
    );
}

#[test]
fn switching_deployments_a_then_b_then_a_never_restarts_a() {
    // GIVEN two deployments used one after the other through CONVEX_URL/CONVEX_DEPLOY_KEY
    let targets = Targets::new(&["a", "b"], Duration::ZERO);
    let import = |name: &str| {
        let sink = targets.sink(name);
        let run = targets.prepared.against(
            &sink.url(),
            sink.admin_key(),
            &["--format", "json", "import"],
        );
        assert_eq!(run.code, Some(0), "{run}");
        serde_json::from_str::<Value>(&run.stdout).unwrap()
    };
    assert_eq!(import("a")["sent"], DOCUMENTS);
    assert_eq!(import("b")["sent"], DOCUMENTS, "b is imported in full");

    // WHEN going back to the first
    let before = targets.sink("a").stats();
    let report = import("a");

    // THEN its state was kept: nothing is sent again
    assert_eq!(report["sent"], 0, "{report}");
    assert_eq!(targets.sink("a").stats().replaced, before.replaced);
    assert!(targets.prepared.data_path("deployments").is_dir());

    // AND a target of the same deployment takes that state over instead of starting again
    let (run, report) = targets.run(&["import", "--target", "a"], &[]);
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(row(&report, "a")["report"]["sent"], 0, "{report}");
}

#[test]
fn an_import_across_targets_killed_with_sigkill_resumes_each_target_and_loses_nothing() {
    // GIVEN three deployments answering in 20 ms, imported in small batches
    let names = ["one", "two", "three"];
    let targets = Targets::new(&names, Duration::from_millis(20));
    let args = ["import", "--all-targets", "--batch-size", "10", "--concurrency", "4"];

    // WHEN the import is killed once every deployment holds part of the data
    let mut child = targets
        .command(&args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("migrate starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let written: Vec<u64> = targets.sinks.iter().map(|(_, s)| s.stats().inserted).collect();
        if written.iter().all(|&w| w >= 300) {
            assert!(written.iter().all(|&w| w < DOCUMENTS), "one finished first: {written:?}");
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the import ended before the kill");
        assert!(Instant::now() < deadline, "never reached: {written:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    std::thread::sleep(Duration::from_millis(200));
    let at_kill: Vec<u64> = targets.sinks.iter().map(|(_, s)| s.stats().inserted).collect();
    let (run, report) = targets.run(&["status", "--all-targets"], &[]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(statuses(&report).iter().all(|(_, s, _)| s == "running"), "killed mid-run\n{report}");

    // THEN the next run resumes each from its own checkpoints
    let (run, report) = targets.run(&args, &[]);
    assert_eq!(run.code, Some(0), "{run}");
    for (index, name) in names.into_iter().enumerate() {
        let imported = &row(&report, name)["report"];
        let resumed: u64 = imported["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["resumed"].as_u64().unwrap())
            .sum();
        assert!(resumed > 0, "{name} started over\n{imported}");
        let sent = imported["sent"].as_u64().unwrap();
        assert!(sent < DOCUMENTS - at_kill[index] / 2, "{name} sent {sent} again\n{imported}");
        targets.holds_everything(name);
    }

    // AND verify finds every deployment exactly the source
    let (run, report) = targets.run(&["verify", "--all-targets"], &[]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(statuses(&report).iter().all(|(_, s, _)| s == "verified"), "{report}");
}

/// Two tenants in one database: users and their posts belong to an org; a user may have been
/// referred by a user of the other org.
const TENANTS: &str = "
create table orgs (id int primary key, name text not null);
create table users (
  id int primary key,
  org_id int not null references orgs(id),
  referred_by int references users(id),
  email text not null
);
create table posts (id int primary key, user_id int not null references users(id), title text not null);
insert into orgs values (1, 'acme'), (2, 'globex');
insert into users
  select g, g % 2 + 1, case when g > 1 then g - 1 end, 'user' || g || '@example.com'
  from generate_series(1, 12) g;
insert into posts select g, g % 12 + 1, 'post ' || g from generate_series(1, 30) g;
";

/// A post whose user is another tenant's is an orphan dropped (counted by its rule); a user
/// referred by another tenant's user keeps the document, the reference null.
const TENANT_POLICIES: &str = "
[tables.\"public.posts\".references.user_id]
orphans = \"drop\"
[tables.\"public.users\".references.referred_by]
orphans = \"null\"
";

#[test]
fn tenant_filters_give_each_target_exactly_its_rows_and_verify_is_exact_per_target() {
    // GIVEN one database of two orgs, and one Convex test deployment per org in targets.toml,
    // each with the plan's filter syntax picking its org's rows
    let prepared = Prepared::new(TENANTS, TENANT_POLICIES);
    prepared.migrate(&["transform"]).success();
    let servers: Vec<(&str, u32, ConvexTestServer)> = [("acme", 1), ("globex", 2)]
        .into_iter()
        .map(|(name, org)| (name, org, ConvexTestServer::for_convex_dir(&prepared.convex_dir())))
        .collect();
    let mut file = String::new();
    for (name, org, server) in &servers {
        file.push_str(&format!(
            "[targets.{name}]\nurl = \"{}\"\ndeploy_key_env = \"{}\"\n\
             [[targets.{name}.tables.\"public.orgs\".filter]]\ncolumn = \"id\"\nequals = {org}\n\
             [[targets.{name}.tables.\"public.users\".filter]]\ncolumn = \"org_id\"\nequals = {org}\n\n",
            server.url(),
            variable(name)
        ));
    }
    std::fs::write(prepared.plan_dir().join("targets.toml"), file).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let mut command = prepared.command(&all);
        for (name, _, server) in &servers {
            command.env(variable(name), server.admin_key());
        }
        let run = Run::of(command);
        let report: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("the report is JSON ({e})\n{run}"));
        (run, report)
    };

    // WHEN each target's rows are transformed, imported and verified
    let (transformed, report) = run(&["transform", "--all-targets"]);
    assert_eq!(transformed.code, Some(0), "{transformed}");
    assert!(
        !transformed.stderr.contains("ignored"),
        "targets.toml is no stray file\n{transformed}"
    );
    let (imported, report_import) = run(&["import", "--all-targets"]);
    assert_eq!(imported.code, Some(0), "{imported}");
    let (verified, verify) = run(&["verify", "--all-targets"]);

    // THEN each deployment holds exactly its org's rows, and verify finds it exact
    assert_eq!(verified.code, Some(0), "{verified}");
    for (name, org, _) in &servers {
        let users: Vec<u32> = (1..=12).filter(|g| g % 2 + 1 == *org).collect();
        let posts = (1..=30).filter(|g| users.contains(&(g % 12 + 1))).count() as u64;
        let expected = [("orgs", 1, 1), ("users", 6, 6), ("posts", posts, 30 - posts)];
        let tables = row(&verify, name)["report"]["tables"].as_array().unwrap().clone();
        for (table, documents, filtered) in expected {
            let t = tables
                .iter()
                .find(|t| t["table"] == table)
                .unwrap_or_else(|| panic!("{name}: no {table} in {verify}"));
            assert_eq!(t["matching"], documents, "{name} {table}: {t}");
            assert_eq!(t["convex"], documents, "{name} {table}: {t}");
            for zero in ["missing", "extra", "different", "duplicates"] {
                assert_eq!(t[zero], 0, "{name} {table}.{zero}: {t}");
            }
            assert_eq!(t["filtered"], filtered, "{name} {table}: counted as filtered: {t}");
            assert_eq!(t["unaccounted"], 0, "{name} {table}: {t}");
        }
        assert_eq!(row(&verify, name)["status"], "verified");
        let transform = &row(&report, name)["report"];
        assert_eq!(transform["rejected"], 0, "{name}: {transform}");
        assert_eq!(row(&report_import, name)["report"]["documents"], 7 + posts, "{name}");
    }
    // Every row went to some tenant: no warning.
    assert_eq!(report["warnings"], serde_json::json!([]), "{report}");

    // WHEN a tenant's filter takes none of the rows (a typo: org 3 does not exist)
    let toml = std::fs::read_to_string(prepared.plan_dir().join("targets.toml")).unwrap();
    let typo = toml.replace("equals = 2", "equals = 3");
    std::fs::write(prepared.plan_dir().join("targets.toml"), typo).unwrap();
    let (transformed, report) = run(&["transform", "--all-targets"]);

    // THEN each target's transform passes on its own, but the rows no tenant takes are named
    assert_eq!(transformed.code, Some(0), "{transformed}");
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("`orgs`: 1 of its 2 rows are in no target's data"), "{report}");
    assert!(warnings.contains("`users`: 6 of its 12 rows are in no target's data"), "{report}");
}

#[test]
fn sync_across_targets_sends_each_deployment_only_the_difference() {
    // GIVEN two deployments imported
    let targets = Targets::new(&["alpha", "beta"], Duration::ZERO);
    let (run, _) = targets.run(&["import", "--all-targets"], &[]);
    assert_eq!(run.code, Some(0), "{run}");
    // … and the source changed (260 documents to upsert, 50 to delete), exported, transformed
    targets.prepared._db.execute(crate::sync::SINK_CHANGES);
    targets.prepared.work.export(targets.prepared._db.url(), &[]).success();
    targets.prepared.migrate(&["transform"]).success();
    let before: Vec<_> = targets.sinks.iter().map(|(_, s)| s.stats()).collect();

    // WHEN synced, each from its own record of what it received
    let (run, report) = targets.run(&["sync", "--all-targets"], &[]);

    // THEN each deployment got exactly the difference, and verify finds each exact
    assert_eq!(run.code, Some(0), "{run}");
    for (index, (name, sink)) in targets.sinks.iter().enumerate() {
        let synced = &row(&report, name)["report"];
        assert_eq!((synced["sent"].as_u64(), synced["deleted"].as_u64()), (Some(260), Some(50)));
        let after = sink.stats();
        let upserted =
            after.inserted + after.replaced - before[index].inserted - before[index].replaced;
        assert_eq!((upserted, after.deleted - before[index].deleted), (260, 50), "{name}");
    }
    let (run, report) = targets.run(&["verify", "--all-targets"], &[]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(statuses(&report).iter().all(|(_, s, _)| s == "verified"), "{report}");
}
