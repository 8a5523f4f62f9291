//! Import killed and resumed: `migrate import` (the real binary) is killed with SIGKILL at
//! seventeen points of one import (before any request, after N acknowledged batches, with a write
//! applied and its reply still on the way, between tables, between the two passes, inside the
//! second pass) and run again after each; then stopped with Ctrl-C. Whatever the point, the
//! last run completes and `migrate verify` finds exactly the source: nothing missing, nothing
//! twice. And the checkpoints work: a resumed run sends what is left, not everything again.
//!
//! The test thread watches the in-process sink's counters to pick its moment. The sink applies
//! a call and then holds the reply for its latency, which gives the kill points room: a point is
//! hit when the counters show it, well before the next reply can move the import on.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use convex_sink::{SinkConfig, SinkHandle, Stats};

use crate::import_faults::{DOCUMENTS, Rig, resumed_by_table};
use crate::support::Run;

/// Calls in flight at once: few, so that a kill lands close to where it was aimed.
const CONCURRENCY: &str = "4";
/// Enough for the kill points to be hit without slowing the import much.
const SHORT: Duration = Duration::from_millis(3);
/// Long enough that the test thread sees a write applied well before its reply is sent.
const LONG: Duration = Duration::from_millis(400);
const SIGKILL: i32 = 9;

/// Documents written by applied calls: inserted, replaced, patched.
fn writes(s: &Stats) -> u64 {
    s.inserted + s.replaced + s.patched
}

/// Batches acknowledged between `before` and `now`: the calls answered with success but the
/// run's first, `migrate:info`, and its calls of the ledger (`migrate:ledgerRead`,
/// `migrate:ledgerWrite`).
fn acked_batches(now: &Stats, before: &Stats) -> u64 {
    let ledger = now.ledger_calls - before.ledger_calls;
    now.succeeded.saturating_sub(before.succeeded + 1 + ledger)
}

fn spawn_import(rig: &Rig, global: &[&str]) -> Child {
    rig.import_command(global, &["--concurrency", CONCURRENCY])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("migrate starts")
}

fn finish(child: Child) -> (std::process::ExitStatus, Run) {
    let output = child.wait_with_output().expect("migrate runs");
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    (output.status, run)
}

/// The sink's counters once it has finished with what a killed run left behind: requests
/// still in its socket buffers are read and applied after the client is gone (their writes are
/// as real as any), and held replies are counted when their latency ends. Without waiting for
/// them, the next run could take a write of the last one for its own.
fn settled(sink: &SinkHandle, latency: Duration) -> Stats {
    std::thread::sleep(latency + Duration::from_millis(10));
    let mut last = sink.stats();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = sink.stats();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Runs `migrate import` until `at` says the point is reached, kills it with SIGKILL and
/// checks the signal, not the end of the import, is what stopped it. `at` sees the sink, its
/// counters now and when the run started; `check` sees the sink and its counters when the run
/// started, when the point was reached, and once the process is gone.
struct Harness {
    rig: Rig,
    kills: u32,
}

impl Harness {
    fn kill_at(
        &mut self,
        point: &str,
        latency: Duration,
        mut at: impl FnMut(&SinkHandle, &Stats, &Stats) -> bool,
        check: impl FnOnce(&SinkHandle, &Stats, &Stats, &Stats),
    ) {
        let sink = &self.rig.sink;
        sink.set_fail_all(false);
        sink.set_latency(latency);
        let before = sink.stats();
        let mut child = spawn_import(&self.rig, &[]);
        let deadline = Instant::now() + Duration::from_secs(20);
        let reached = loop {
            let now = sink.stats();
            if at(sink, &now, &before) {
                break now;
            }
            if let Some(status) = child.try_wait().expect("the child can be waited on") {
                let (_, run) = finish(child);
                panic!("`{point}`: the import ended ({status}) before the kill point\n{run}");
            }
            assert!(Instant::now() < deadline, "`{point}`: never reached; {:?}", sink.stats());
            std::thread::sleep(Duration::from_micros(300));
        };
        child.kill().expect("SIGKILL is sent");
        let (status, run) = finish(child);
        assert_eq!(status.signal(), Some(SIGKILL), "`{point}`: not killed\n{run}");
        self.kills += 1;
        let after = settled(sink, latency);
        // A resumed run sends again only what the run before it had in flight or had not yet
        // recorded (a few batches), not everything the runs before it wrote.
        let resent = after.replaced - before.replaced;
        if before.inserted >= 500 {
            assert!(resent <= before.inserted / 4, "`{point}`: {resent} sent again\n{after:?}");
        }
        check(sink, &before, &reached, &after);
    }

    /// Kills when `acked` more batches were acknowledged than when the run started.
    fn kill_after_batches(&mut self, acked: u64) {
        let point = format!("after {acked} acknowledged batches");
        self.kill_at(
            &point,
            SHORT,
            |_, now, before| acked_batches(now, before) >= acked,
            |_, _, _, _| {},
        );
    }

    /// Kills with writes applied whose replies are still on their way: the writes happen as
    /// the calls arrive, the replies are held for [`LONG`]. Normally no batch of the run is
    /// acknowledged yet; in any case more documents were written than acknowledged (a call
    /// carries 10).
    fn kill_mid_request(&mut self, point: &str) {
        self.kill_at(
            point,
            LONG,
            |_, now, before| writes(now) > writes(before),
            |_, before, reached, _| {
                let acked = acked_batches(reached, before);
                let written = writes(reached) - writes(before);
                assert!(written > 10 * acked, "`{point}`: nothing in flight: {reached:?}");
            },
        );
    }

    /// Kills once every document of `done` is in the sink and the import has moved on to the
    /// next step, which finds the deployment failing (503) and retries: the next step has
    /// written nothing. The replies are slowed to 50 ms so that the test thread turns the
    /// failures on before the last reply of `done` arrives.
    fn kill_after_step(
        &mut self,
        point: &str,
        done: &'static str,
        rows: usize,
        check: impl FnOnce(&SinkHandle, &Stats),
    ) {
        let mut failing = false;
        self.kill_at(
            point,
            Duration::from_millis(50),
            |sink, now, before| {
                if !failing && sink.count(done) == rows {
                    sink.set_fail_all(true);
                    failing = true;
                }
                failing && now.failed_all > before.failed_all
            },
            |sink, before, _, after| {
                // The step was reached by this run, not found done at its start.
                assert!(after.succeeded >= before.succeeded + 2, "`{point}`: {after:?}");
                check(sink, after);
            },
        );
        self.rig.sink.set_fail_all(false);
    }
}

#[test]
fn an_import_killed_at_seventeen_points_resumes_each_time_and_loses_nothing() {
    let mut harness = Harness { rig: Rig::new(|c| SinkConfig { seed: 3, ..c }), kills: 0 };

    // Killed at once (likely before migrate has started: a smoke kill that proves a run killed
    // that early leaves nothing to trip the next one), and while it reads its inputs.
    for (point, wait) in [("right after start", 0), ("while it reads its inputs", 40)] {
        let wait = Duration::from_millis(wait);
        let mut started = None;
        harness.kill_at(
            point,
            LONG,
            |_, _, _| *started.get_or_insert_with(Instant::now) + wait <= Instant::now(),
            |_, before, _, after| assert_eq!(writes(after), writes(before), "{after:?}"),
        );
    }
    // Authors: 50 batches.
    harness.kill_after_batches(1);
    harness.kill_mid_request("mid-request in authors");
    harness.kill_after_batches(10);
    harness.kill_after_batches(15);
    harness.kill_after_step("between authors and posts", "authors", 500, |sink, _| {
        assert_eq!(sink.count("posts"), 0);
    });
    // Posts: 150 batches.
    harness.kill_mid_request("mid-request in posts");
    harness.kill_after_batches(40);
    harness.kill_after_batches(60);
    harness.kill_after_step("between posts and comments", "posts", 1500, |sink, _| {
        assert_eq!(sink.count("comments"), 0);
    });
    // Comments: 200 batches.
    harness.kill_after_batches(50);
    harness.kill_after_batches(90);
    harness.kill_after_step("between the passes", "comments", 2000, |_, after| {
        assert_eq!(after.patched, 0, "no reference patched yet: {after:?}");
    });
    // The second pass, patchRefs: 40 batches of authors, 100 of comments.
    harness.kill_at(
        "in the second pass",
        SHORT,
        |_, now, before| now.patched >= before.patched + 100,
        |_, _, _, after| assert!(after.patched < 1400, "{after:?}"),
    );
    harness.kill_mid_request("mid-request in the second pass");
    harness.kill_at(
        "later in the second pass",
        SHORT,
        |_, now, before| now.patched >= before.patched + 400,
        |_, _, _, after| assert!(after.patched < 1400, "{after:?}"),
    );
    assert_eq!(harness.kills, 17);

    // WHEN the import runs once more, undisturbed
    let rig = &harness.rig;
    rig.sink.set_fail_all(false);
    rig.sink.set_latency(Duration::ZERO);
    let before_last = rig.stats();
    let (run, report) = rig.import_json(&[]);

    // THEN it completes, every upsert done by the killed runs: it only patches what is left
    for (table, (documents, resumed)) in resumed_by_table(&report) {
        assert_eq!(resumed, documents, "{table}\n{run}");
    }
    assert_eq!(report["sent"], 0, "{run}");
    let last = rig.stats();
    assert_eq!(last.inserted + last.replaced, before_last.inserted + before_last.replaced);
    assert!(last.patched > before_last.patched, "{last:?}");
    assert!(last.patched - before_last.patched < 1400, "{last:?}");
    // … every document was inserted exactly once over all the runs, and the resumed runs
    // sent again only what was in flight or not yet recorded when their predecessor died (a
    // few batches each, a few hundred documents in all; without checkpoints the last three
    // runs alone would have sent 12,000 again): the checkpoints were kept
    assert_eq!(last.inserted, DOCUMENTS, "{last:?}");
    assert!(last.replaced <= DOCUMENTS / 2, "{} kills: {last:?}", harness.kills);
    assert!(last.patched <= 1400 + 1000, "{last:?}");

    // AND verify finds exactly the source
    rig.verify_exact();
}

/// Sends SIGINT (what Ctrl-C sends) and waits for the process: how long it took, and how it
/// ended.
fn interrupt(child: Child) -> (Duration, std::process::ExitStatus, Run) {
    let sent = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let (status, run) = finish(child);
    (sent.elapsed(), status, run)
}

#[test]
fn ctrl_c_stops_the_import_within_two_seconds_and_a_second_run_resumes_it() {
    // GIVEN a deployment that answers every call 503: the import is retrying `migrate:info`
    let rig = Rig::new(|c| SinkConfig { latency: SHORT, ..c });
    rig.sink.set_fail_all(true);
    let child = spawn_import(&rig, &[]);
    crate::support::wait_until("migrate:info fails", Duration::from_secs(20), || {
        rig.stats().failed_all >= 1
    });

    // WHEN it gets SIGINT
    let (took, status, run) = interrupt(child);

    // THEN it stops at once with exit code 130, saying how to resume
    assert!(took < Duration::from_secs(2), "{took:?}\n{run}");
    assert_eq!(status.code(), Some(130), "{status}\n{run}");
    assert!(run.stderr.contains("run `migrate import` again"), "{run}");

    // GIVEN the deployment answers again, an import under way, its next calls slow (5 s)
    rig.sink.set_fail_all(false);
    let child = spawn_import(&rig, &[]);
    crate::support::wait_until("30 batches are acknowledged", Duration::from_secs(20), || {
        acked_batches(&rig.stats(), &Stats::default()) >= 30
    });
    rig.sink.set_latency(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(50));

    // WHEN it gets SIGINT
    let (took, status, run) = interrupt(child);

    // THEN it stops within 2 s, without waiting for the calls in flight, with exit code 130,
    // saying how to resume
    assert!(took < Duration::from_secs(2), "{took:?}\n{run}");
    assert_eq!(status.code(), Some(130), "{status}\n{run}");
    assert!(run.stderr.contains("run `migrate import` again"), "{run}");
    let stopped = rig.stats();
    assert!((300..DOCUMENTS).contains(&stopped.inserted), "{stopped:?}");

    // WHEN it runs again
    rig.sink.set_latency(Duration::ZERO);
    let (run, report) = rig.import_json(&["--concurrency", CONCURRENCY]);

    // THEN it resumes: it sends only what the first run left, not everything
    let sent = report["sent"].as_u64().unwrap();
    let resumed: u64 = resumed_by_table(&report).values().map(|(_, r)| r).sum();
    assert!(resumed >= 300, "{run}");
    assert!(sent < DOCUMENTS, "{run}");
    assert_eq!(sent + resumed, DOCUMENTS, "{run}");
    assert_eq!(rig.stats().inserted, DOCUMENTS, "{:?}", rig.stats());
    // AND verify finds exactly the source
    rig.verify_exact();
}
