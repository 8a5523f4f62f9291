//! How many calls import keeps in flight, against deployments that answer slowly: real
//! Postgres, the real `migrate` binary at its default settings, and the in-process
//! `convex-sink` running calls in a limited number of slots as Convex does (its smallest plan
//! runs 16 mutations at once and queues the rest; a local runtime runs one at a time).

use std::process::Stdio;
use std::time::Duration;

use convex_sink::{Plan, Sink, SinkConfig, Slots};
use serde_json::Value;

use crate::import_faults::{DOCUMENTS, Rig};
use crate::import_pipeline::Prepared;
use crate::support::Run;

#[test]
fn a_one_at_a_time_deployment_at_default_settings_sees_no_timeout_and_no_retry() {
    // GIVEN a deployment that runs one call at a time, 4 s each, queueing the others for as
    // long as it takes, and 1,600 documents: 16 batches of the default 100. Sixteen calls sent
    // at once would leave the last one waiting 64 s, past the default 60 s timeout.
    let prepared = Prepared::new(
        "create table items (id int primary key, name text not null);
         insert into items select g, 'item ' || g from generate_series(1, 1600) g;",
        "",
    );
    prepared.migrate(&["transform"]).success();
    let plan = Plan::from_module_file(prepared.convex_dir().join("migrate.ts")).unwrap();
    let sink = Sink::start(SinkConfig {
        latency: Duration::from_secs(4),
        slots: Some(Slots { calls: 1, queue_for: None }),
        ..SinkConfig::new(plan)
    })
    .unwrap();

    // WHEN import runs with no flag at all
    let run = prepared.against(&sink.url(), sink.admin_key(), &["--format", "json", "import"]);

    // THEN it finishes, every call sent once: migrate:info, the ledger read (ledgerList) and
    // marked running, 16 upserts, the ledger marked completed; no call timed out and none was
    // retried
    assert_eq!(run.code, Some(0), "{run}");
    let stats = sink.stats();
    assert_eq!((stats.requests, stats.succeeded), (20, 20), "{stats:?}\n{run}");
    assert_eq!(stats.inserted, 1600, "{stats:?}");
    run.never_shows("retried");
    // … because the deployment never held more than a few of them
    assert!(stats.peak_in_flight <= 8, "{stats:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["concurrency"]["ceiling"], 64, "{run}");
}

#[test]
fn a_deployment_that_refuses_calls_beyond_its_slots_gets_few_refusals() {
    // GIVEN a deployment with 4 slots that answers 429 TooManyConcurrentRequests at once to a
    // call finding them full, 5 ms per call
    let rig = Rig::new(|c| SinkConfig {
        latency: Duration::from_millis(5),
        slots: Some(Slots { calls: 4, queue_for: Some(Duration::from_millis(1)) }),
        ..c
    });

    // WHEN the whole import runs at the default ceiling of 64 calls in flight
    let (run, report) = rig.import_json(&[]);

    // THEN every document arrives, and the limiter kept near the 4 slots: refusals are a
    // small share of the calls (a fixed 64 in flight would be refused 15 times in 16)
    assert_eq!(report["documents"], DOCUMENTS, "{run}");
    let stats = rig.stats();
    assert!(stats.no_slot * 10 <= stats.succeeded, "{stats:?}\n{run}");
    assert!(stats.no_slot >= 1, "the slots were never full: {stats:?}");
    assert!(report["concurrency"]["backoffs"].as_u64().unwrap() >= 1, "{run}");
    rig.verify_exact();
}

#[test]
fn retry_after_holds_the_next_call_back() {
    // GIVEN a deployment that answers 503 with `Retry-After: 1` until the first call arrived
    let rig = Rig::new(|c| SinkConfig { retry_after: Some(Duration::from_secs(1)), ..c });
    rig.sink.set_fail_all(true);
    let child = rig
        .import_command(&[], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("migrate starts");
    crate::support::wait_until("the first call arrives", Duration::from_secs(20), || {
        rig.stats().requests >= 1
    });
    rig.sink.set_fail_all(false);

    // WHEN the import goes on
    let run = Run::from_output(&child.wait_with_output().expect("migrate runs"));

    // THEN the retry waited the second the deployment asked for (the backoff alone would
    // have waited at most 0.2 s), and the import completed
    assert_eq!(run.code, Some(0), "{run}");
    let arrivals = rig.sink.arrivals();
    assert!(arrivals[1] - arrivals[0] >= Duration::from_secs(1), "{arrivals:?}");
    assert_eq!(rig.stats().failed_all, 1, "{:?}", rig.stats());
    // … and the wait was said, with the retry
    assert!(run.stderr.contains("(Retry-After: 1 s)"), "{run}");
}
