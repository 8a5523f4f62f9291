//! Output where no one watches a terminal (CI, pipes, log files): progress as plain lines at a
//! steady interval, no ANSI escape codes (and none with `NO_COLOR` on a terminal either), and
//! retries told at the default level once per burst. Real Postgres, the real binary, the
//! in-process `convex-sink`; the tests capture stderr, so every run here is non-terminal.

use std::process::Command;
use std::time::{Duration, Instant};

use convex_sink::{Faults, SinkConfig};

use crate::import_faults::Rig;
use crate::support::Run;

const ESCAPE: &str = "\x1b[";

#[test]
fn a_slow_import_without_a_terminal_prints_progress_lines_at_the_interval() {
    // GIVEN a deployment answering each call after 10 ms, one call at a time: `comments`
    // (200 calls) takes over 2 s
    let rig = Rig::new(|c| SinkConfig { latency: Duration::from_millis(10), ..c });

    // WHEN it is imported with stderr captured and a 0.3 s progress interval
    let mut command = rig.import_command(&[], &["--concurrency", "1"]);
    command.env("MIGRATE_PROGRESS_INTERVAL", "0.3");
    let started = Instant::now();
    let run = Run::of(command).success();
    let elapsed = started.elapsed();

    // THEN `comments` has progress lines with done/total, rate and ETA …
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("comments: ") && l.contains("/2,000 docs ("))
        .collect();
    assert!(lines.len() >= 2, "progress lines for comments\n{run}");
    for line in &lines {
        assert!(line.contains("/s, eta "), "{line}\n{run}");
    }
    // … a line when it finishes …
    assert!(run.stderr.contains("comments: done, 2,000 docs in "), "{run}");
    // … never more often than the interval …
    let per_table = elapsed.as_secs_f64() / 0.3 + 1.0;
    assert!((lines.len() as f64) <= per_table, "{} lines in {elapsed:?}\n{run}", lines.len());
    // … and no escape codes
    assert!(!run.stderr.contains(ESCAPE), "{run}");
}

#[test]
fn stages_faster_than_the_interval_print_no_progress_and_piped_logs_have_no_colour() {
    let rig = Rig::new(|c| c);
    // WHEN transform runs again at every verbosity with stderr piped and the default interval
    for verbosity in ["-q", "-v", "-vv", "-vvv"] {
        let run = rig.prepared.migrate(&[verbosity, "transform"]);
        assert_eq!(run.code, Some(0), "{run}");
        // THEN no escape code, and no progress line for a stage that took under 5 s
        assert!(!run.stderr.contains(ESCAPE), "{verbosity}\n{run}");
        assert!(!run.stderr.contains("/s, eta"), "{verbosity}\n{run}");
    }
    // AND the import at -vv logs plainly too
    let run = Run::of(rig.import_command(&["-vv"], &[])).success();
    assert!(run.stderr.lines().count() > 3, "debug logs are written\n{run}");
    assert!(!run.stderr.contains(ESCAPE), "{run}");
}

/// `script` gives the command a pseudo-terminal: the one way to see what a terminal would.
fn on_a_terminal(command: &Command, no_color: Option<&str>) -> String {
    let mut line = String::new();
    if let Some(value) = no_color {
        line.push_str(&format!("NO_COLOR='{value}' "));
    }
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            line.push_str(&format!("{}='{}' ", key.to_string_lossy(), value.to_string_lossy()));
        }
    }
    line.push_str(&format!("'{}'", command.get_program().to_string_lossy()));
    for arg in command.get_args() {
        line.push_str(&format!(" '{}'", arg.to_string_lossy()));
    }
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]).env_remove("NO_COLOR");
    if let Some(dir) = command.get_current_dir() {
        script.current_dir(dir);
    }
    let run = Run::of(script);
    assert_eq!(run.code, Some(0), "{run}");
    run.stdout
}

#[test]
fn no_color_turns_colour_off_even_on_a_terminal() {
    let rig = Rig::new(|c| c);
    let mut command = rig.import_command(&["-vvv", "--no-progress"], &[]);
    command.env_remove("NO_COLOR");
    // GIVEN a terminal colours the logs (so that this test can fail) …
    let coloured = on_a_terminal(&command, None);
    assert!(coloured.contains(ESCAPE), "a terminal gets colour\n{coloured}");
    // WHEN NO_COLOR is set THEN none; an empty NO_COLOR does not count
    let plain = on_a_terminal(&command, Some("1"));
    assert!(plain.lines().count() > 3, "{plain}");
    assert!(!plain.contains(ESCAPE), "NO_COLOR=1\n{plain}");
    assert!(on_a_terminal(&command, Some("")).contains(ESCAPE));
}

#[test]
fn retries_are_told_at_the_default_level_once_per_burst() {
    // GIVEN a deployment that answers 20% of calls 503 or 429
    let faults = Faults { unavailable: 0.20, ..Faults::none() };
    let rig = Rig::new(|c| SinkConfig { faults, seed: 7, ..c });

    // WHEN the import runs at the default log level
    let started = Instant::now();
    let run = rig.import(&["--concurrency", "4"]).success();
    let elapsed = started.elapsed();
    assert!(rig.stats().unavailable >= 20, "{:?}", rig.stats());

    // THEN a warning names the host (no userinfo) and the reason …
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains("retr")).collect();
    let first = warnings.first().unwrap_or_else(|| panic!("a retry warning\n{run}"));
    assert!(first.contains("WARN"), "{first}");
    let host = rig.sink.url().trim_start_matches("http://").trim_end_matches('/').to_owned();
    assert!(first.contains(&host), "{first} names {host}");
    assert!(first.contains("HTTP 503") || first.contains("HTTP 429"), "{first}");
    // … once per burst: the first, then at most one summary per 5 s, not one per retry
    let most = 1 + (elapsed.as_secs_f64() / 5.0) as usize;
    assert!(warnings.len() <= most, "{} warnings in {elapsed:?}\n{run}", warnings.len());
}
