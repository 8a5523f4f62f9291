//! Import against a deployment that misbehaves: real Postgres, the real `migrate` binary, and
//! the in-process `convex-sink` injecting overload (503/429), connections reset before and after
//! the write, stalls past the client's timeout, a deployment that keeps failing, and errors that
//! must never be retried. Every scenario ends with `migrate verify` finding exactly the source:
//! nothing missing, nothing twice.
//!
//! The rig ([`Rig`], [`FIXTURE`]) is shared with `import_crashes`.

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use convex_sink::{Faults, Plan, Sink, SinkConfig, SinkHandle, Stats};
use serde_json::Value;

use crate::import_pipeline::Prepared;
use crate::support::Run;

/// Three tables, 4,000 rows: `posts` → `authors` (parent/child), `authors.mentor_id` and
/// `comments.reply_to` self-references (so import's second pass, patchRefs, runs), and
/// `comments` → `posts` and → `authors`. With `--batch-size 10` that is 400 upserts and 140
/// patchRefs calls. No comment refers to an odd comment above 1,000.
pub const FIXTURE: &str = "
create table authors (
  id int primary key,
  name text not null,
  mentor_id int references authors(id)
);
create table posts (
  id int primary key,
  author_id int not null references authors(id),
  title text not null,
  score float8
);
create table comments (
  id int primary key,
  post_id int not null references posts(id),
  author_id int references authors(id),
  reply_to int references comments(id),
  body text not null
);
insert into authors
  select g, 'author ' || g, case when g % 5 <> 0 then (g * 37) % 500 + 1 end
  from generate_series(1, 500) g;
insert into posts
  select g, (g * 13) % 500 + 1, 'post number ' || g, case when g % 3 = 0 then g / 7.0 end
  from generate_series(1, 1500) g;
insert into comments
  select g, (g * 7) % 1500 + 1, case when g % 4 <> 0 then (g * 11) % 500 + 1 end,
         case when g % 2 = 0 then g / 2 end, 'comment ' || g || repeat('.', g % 40)
  from generate_series(1, 2000) g;
";

/// Documents per table in [`FIXTURE`].
pub const TABLES: [(&str, usize); 3] = [("authors", 500), ("posts", 1500), ("comments", 2000)];
pub const DOCUMENTS: u64 = 4000;
/// Small batches, so that an import is hundreds of calls.
pub const BATCH_SIZE: &str = "10";

/// The fixture exported, planned and transformed, and a sink running its `convex/migrate.ts`.
pub struct Rig {
    pub prepared: Prepared,
    pub sink: SinkHandle,
}

impl Rig {
    /// [`FIXTURE`] prepared and transformed; the sink configured by `config`.
    pub fn new(config: impl FnOnce(SinkConfig) -> SinkConfig) -> Self {
        let prepared = Prepared::new(FIXTURE, "");
        prepared.migrate(&["transform"]).success();
        let plan = Plan::from_module_file(prepared.convex_dir().join("migrate.ts"))
            .expect("the generated migrate.ts carries its plan");
        let sink = Sink::start(config(SinkConfig::new(plan))).expect("the sink starts");
        Rig { prepared, sink }
    }

    /// `migrate <global args> import --batch-size 10 <args>` aimed at the sink, not started.
    pub fn import_command(&self, global: &[&str], args: &[&str]) -> Command {
        let mut all = global.to_vec();
        all.extend_from_slice(&["import", "--batch-size", BATCH_SIZE]);
        all.extend_from_slice(args);
        let mut command = self.prepared.command(&all);
        command.env("CONVEX_URL", self.sink.url()).env("CONVEX_DEPLOY_KEY", self.sink.admin_key());
        command
    }

    pub fn import(&self, args: &[&str]) -> Run {
        Run::of(self.import_command(&[], args))
    }

    /// `migrate --format json import …`: the run and its report.
    pub fn import_json(&self, args: &[&str]) -> (Run, Value) {
        let run = Run::of(self.import_command(&["--format", "json"], args)).success();
        let report = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("the import report is JSON ({e})\n{run}"));
        (run, report)
    }

    /// `migrate verify` exits 0 and reports, per table, every transformed document matching
    /// and none missing, extra, different or duplicated; the sink agrees on its own: each
    /// table holds its rows once each.
    #[track_caller]
    pub fn verify_exact(&self) {
        let url = self.sink.url();
        let run =
            self.prepared.against(&url, self.sink.admin_key(), &["--format", "json", "verify"]);
        assert_eq!(run.code, Some(0), "verify found differences\n{run}");
        let report: Value = serde_json::from_str(&run.stdout).expect("the verify report is JSON");
        assert_eq!(report["identical"], true, "{run}");
        let tables: BTreeMap<&str, &Value> = report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["table"].as_str().unwrap(), t))
            .collect();
        for (table, rows) in TABLES {
            let t = tables.get(table).unwrap_or_else(|| panic!("verify reports {table}\n{run}"));
            for zero in ["missing", "extra", "different", "duplicates", "unresolved_references"] {
                assert_eq!(t[zero], 0, "{table}.{zero}\n{run}");
            }
            assert_eq!(t["matching"], rows, "{table}\n{run}");
            assert_eq!(t["convex"], rows, "{table}\n{run}");

            let documents = self.sink.documents(table);
            assert_eq!(documents.len(), rows, "the sink's {table}");
            let legacy: HashSet<&str> =
                documents.iter().map(|d| d["legacyId"].as_str().expect("a legacy id")).collect();
            assert_eq!(legacy.len(), rows, "{table} has a legacy id twice");
        }
    }

    pub fn stats(&self) -> Stats {
        self.sink.stats()
    }
}

/// Per table of an import report: (documents, resumed).
pub fn resumed_by_table(report: &Value) -> BTreeMap<String, (u64, u64)> {
    report["tables"]
        .as_array()
        .expect("the report lists tables")
        .iter()
        .map(|t| {
            let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{k} in {t}"));
            (t["table"].as_str().unwrap().to_owned(), (n("documents"), n("resumed")))
        })
        .collect()
}

#[test]
fn overload_lost_connections_lost_replies_and_stalls_lose_and_duplicate_nothing() {
    // GIVEN a deployment that answers 10% of calls 503/429, resets 4% of connections before
    // the write and 4% after it (applied, reply lost), and stalls 1% past the client's 1 s
    // timeout (applied, reply late)
    let faults = Faults {
        unavailable: 0.10,
        reset_before: 0.04,
        reset_after: 0.04,
        stall: 0.01,
        stall_for: Duration::from_millis(1500),
    };
    let rig = Rig::new(|c| SinkConfig { faults, seed: 42, ..c });

    // WHEN the whole import runs through it
    let started = Instant::now();
    let (run, report) = rig.import_json(&["--timeout", "1", "--concurrency", "8"]);

    // THEN it completes, having sent every document
    assert_eq!(report["documents"], DOCUMENTS, "{run}");
    assert_eq!(report["rejected"], 0, "{run}");
    // … after each fault actually happened, repeatedly: the test cannot pass vacuously
    let stats = rig.stats();
    assert!(stats.unavailable >= 20, "{stats:?}");
    assert!(stats.reset_before >= 5, "{stats:?}");
    assert!(stats.reset_after >= 5, "{stats:?}");
    assert!(stats.stalled >= 1, "{stats:?}");
    // … lost replies were retried and applied twice: as replacements, never as inserts
    assert!(stats.replaced >= 50, "{stats:?}");
    assert_eq!(stats.inserted, DOCUMENTS, "every document inserted exactly once: {stats:?}");
    assert!(started.elapsed() < Duration::from_secs(40), "{:?}", started.elapsed());

    // AND verify finds exactly the source in Convex
    rig.verify_exact();
}

#[test]
fn a_deployment_that_keeps_failing_stops_the_import_and_a_second_run_finishes_it() {
    // GIVEN an import under way (some batches acknowledged) when the deployment starts
    // answering every call 503
    let rig = Rig::new(|c| SinkConfig { latency: Duration::from_millis(2), ..c });
    let child = rig
        .import_command(&[], &["--retries", "2", "--concurrency", "4"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("migrate starts");
    crate::support::wait_until("50 batches are acknowledged", Duration::from_secs(20), || {
        rig.stats().succeeded >= 50
    });
    rig.sink.set_fail_all(true);
    let failing_since = Instant::now();

    // WHEN it keeps failing
    let run = Run::from_output(&child.wait_with_output().expect("migrate runs"));

    // THEN the import stops after its bounded retries with exit code 4, saying to run again
    run.fails_with(
        4,
        &[
            "Convex at `http://127.0.0.1:",
            "kept failing",
            "3 attempts",
            "run `migrate import` again",
        ],
    );
    assert!(failing_since.elapsed() < Duration::from_secs(10), "{:?}", failing_since.elapsed());
    let stopped = rig.stats();
    assert!(stopped.failed_all >= 3, "{stopped:?}");
    let written_before = stopped.inserted;
    assert!((100..DOCUMENTS).contains(&written_before), "{stopped:?}");

    // WHEN the deployment recovers and the import runs again
    rig.sink.set_fail_all(false);
    let (run, report) = rig.import_json(&["--retries", "2"]);

    // THEN it resumes from the checkpoints instead of starting over
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent < DOCUMENTS, "the resumed import sent {sent}\n{run}");
    let resumed: u64 = resumed_by_table(&report).values().map(|(_, r)| r).sum();
    assert!(resumed >= 100, "{run}");
    assert_eq!(sent + resumed, DOCUMENTS, "{run}");
    assert_eq!(rig.stats().inserted, DOCUMENTS, "{:?}", rig.stats());
    // AND verify finds exactly the source
    rig.verify_exact();
}

#[test]
fn a_wrong_key_and_a_refused_document_are_never_retried() {
    let rig = Rig::new(|c| c);

    // WHEN the deploy key is wrong
    let started = Instant::now();
    let mut command = rig.import_command(&[], &["--retries", "8"]);
    command.env("CONVEX_DEPLOY_KEY", "prod:wrong|not-the-key");
    let run = Run::of(command);

    // THEN it stops at once with exit code 4, after exactly one request (`migrate:info`)
    run.fails_with(4, &["deploy key", "CONVEX_DEPLOY_KEY"]);
    run.never_shows("not-the-key");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let stats = rig.stats();
    assert_eq!((stats.requests, stats.wire_errors), (1, 1), "{stats:?}");

    // GIVEN Convex throws for one comment (one nothing refers to): two documents already
    // hold its legacy id
    for _ in 0..2 {
        rig.sink.insert_raw("comments", serde_json::json!({"legacyId": "1999", "body": "dup"}));
    }

    // WHEN the import runs
    let before = rig.stats();
    let run = rig.import(&["--retries", "8"]);

    // THEN that document is rejected with Convex's message, the rest arrive, exit code 5
    assert_eq!(run.code, Some(5), "{run}");
    assert!(run.stdout.contains("2 documents have this legacy id"), "{run}");
    let stats = rig.stats();
    // … and each function error was answered once and never sent again: its batch of 10 was
    // halved down to the one document (at most 1 + 4 calls throw), no retries on top
    let thrown = stats.function_errors - before.function_errors;
    assert!((1..=5).contains(&thrown), "{stats:?}");
    assert_eq!(stats.requests - before.requests, stats.succeeded - before.succeeded + thrown);
    assert_eq!(rig.sink.count("comments"), 1999 + 2, "1,999 comments and the two planted ones");
    assert_eq!((rig.sink.count("authors"), rig.sink.count("posts")), (500, 1500));
}
