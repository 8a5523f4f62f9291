//! Bad input the other suites do not already cover, each through the real binary: the exit code,
//! the `error:` line, the `hint:`, no panic or stack trace, and nothing half-written that looks
//! complete. docs/errors.md is the whole catalog and names the test of every case, these and the
//! ones in export_cli, plan_errors, transform_cli, transform_pipeline, import_pipeline and
//! import_faults.
//!
//! Permissions and full disks are simulated honestly: a read-only data directory is `chmod -R
//! a-w` for an ordinary user and `chattr -R +i` (immutable) for root, whom permissions do not
//! stop; a full disk is `/dev/full` (every write fails with ENOSPC) in the place of the file
//! being written, and, where the test may mount, a tmpfs too small for the output.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use convex_sink::{Plan, Sink, SinkConfig, SinkHandle};
use migrate::convex::client::{ConvexClient, FunctionKind, RetryPolicy};
use migrate::settings::Secret;
use serde_json::{Value, json};

use crate::import_pipeline::Prepared;
use crate::support::{Run, TestDb, Workdir, file_names, free_port, running_as_root, utf8};

const USAGE: i32 = 2;
const CONVEX_FAILURE: i32 = 4;
const REJECTED: i32 = 5;
const LOCAL_IO: i32 = 6;

/// Two tables, a reference between them: small enough to be quick, enough for batches, order
/// and references.
const SMALL: &str = "
create table teams (id int primary key, name text not null);
create table members (
  id int primary key,
  team_id int not null references teams(id),
  email text not null
);
insert into teams values (1, 'red'), (2, 'blue');
insert into members select g, 1 + g % 2, 'm' || g || '@x' from generate_series(1, 30) g;
";

/// What must never reach a person: a panic, a backtrace, the internal-error hint.
#[track_caller]
fn no_panic(run: &Run) {
    for text in ["panicked", "RUST_BACKTRACE", "stack backtrace", "this is a bug"] {
        assert!(!run.stderr.contains(text), "stderr shows {text:?}\n{run}");
        assert!(!run.stdout.contains(text), "stdout shows {text:?}\n{run}");
    }
}

/// The exit code, every expected text on stderr, an `error:` line, and no panic.
#[track_caller]
fn fails_cleanly(run: &Run, code: i32, expected: &[&str]) {
    run.fails_with(code, expected);
    assert!(run.stderr.lines().any(|l| l.starts_with("error: ")), "no `error:` line\n{run}");
    no_panic(run);
}

/// Keeps the first `keep` bytes of `path`.
fn truncate(path: &Path, keep: usize) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > keep, "{} is only {} bytes", path.display(), bytes.len());
    std::fs::write(path, &bytes[..keep]).unwrap();
}

/// Replaces line `number` (1-based) of `path` with `text`.
fn replace_line(path: &Path, number: usize, text: &str) {
    let content = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<&str> = content.lines().collect();
    lines[number - 1] = text;
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// [`SMALL`] exported, planned and transformed, and a convex-sink running its migrate.ts.
struct Deployed {
    prepared: Prepared,
    sink: SinkHandle,
}

impl Deployed {
    fn new() -> Self {
        let prepared = Prepared::new(SMALL, "");
        prepared.migrate(&["transform"]).success();
        let plan = Plan::from_module_file(prepared.convex_dir().join("migrate.ts"))
            .expect("the generated migrate.ts carries its plan");
        let sink = Sink::start(SinkConfig::new(plan)).expect("the sink starts");
        Deployed { prepared, sink }
    }

    /// `migrate <args>` aimed at the sink with its key.
    fn run(&self, args: &[&str]) -> Run {
        self.prepared.against(&self.sink.url(), self.sink.admin_key(), args)
    }

    fn transformed(&self, table: &str) -> PathBuf {
        self.prepared.data_path(&format!("transformed/{table}.jsonl"))
    }

    /// `migrate verify` finds Convex holding exactly the source.
    #[track_caller]
    fn verify_exact(&self) {
        let run = self.run(&["verify"]).success();
        assert!(run.stdout.contains("verified: Convex holds exactly the 32"), "{run}");
    }

    /// Calls a function of the sink with migrate's own client.
    fn call(&self, kind: FunctionKind, path: &str, args: Value) -> Value {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let key = Secret::new(self.sink.admin_key().to_owned());
        let client = ConvexClient::new(
            &self.sink.url(),
            &key,
            Duration::from_secs(10),
            RetryPolicy::default(),
        )
        .unwrap();
        runtime.block_on(client.call::<Value>(kind, path, &args)).unwrap()
    }
}

// ── Inputs on disk ─────────────────────────────────────────────────────────────────────────

#[test]
fn a_truncated_export_manifest_stops_transform_and_init_naming_the_file() {
    // GIVEN an export whose manifest.json was cut short (a copy interrupted, a full disk)
    let prepared = Prepared::new(SMALL, "");
    let manifest = prepared.data_path("manifest.json");
    truncate(&manifest, 200);

    // WHEN transform runs THEN it refuses the export, naming the file, and writes nothing
    let run = prepared.migrate(&["transform"]);
    fails_cleanly(
        &run,
        USAGE,
        &[
            &format!("error: `{}` cannot be read: EOF while parsing", manifest.display()),
            "hint: the export was changed or cut short: run `migrate export` again",
        ],
    );
    assert!(file_names(&prepared.data_path("transformed")).is_empty());

    // WHEN init takes its catalog from that export THEN the same, not an internal error
    let convex_dir = prepared.convex_dir();
    let run = prepared.migrate(&["init", "--convex-dir", utf8(&convex_dir)]);
    fails_cleanly(
        &run,
        USAGE,
        &[
            &format!("`{}` cannot be read", manifest.display()),
            "hint: the export was changed or cut short: run `migrate export` again",
        ],
    );
}

#[test]
fn a_corrupted_raw_line_stops_transform_naming_the_file_and_line() {
    // GIVEN an export whose raw file has a line cut in the middle
    let prepared = Prepared::new(SMALL, "");
    let raw = prepared.data_path("raw/public.members.jsonl");
    replace_line(&raw, 7, r#"{"id":7,"team_id":2,"em"#);

    // WHEN transform runs
    let run = prepared.migrate(&["transform"]);

    // THEN it stops naming the file and the line, and nothing looks transformed
    fails_cleanly(
        &run,
        USAGE,
        &[
            &format!("error: `{}` line 7 is not a raw row", raw.display()),
            "hint: the export was changed or cut short: run `migrate export` again",
        ],
    );
    let transformed = prepared.data_path("transformed");
    assert!(!transformed.join("manifest.json").exists());
    assert!(!transformed.join("members.jsonl").exists(), "{:?}", file_names(&transformed));
    assert!(file_names(&transformed).iter().all(|n| !n.ends_with(".partial")));
}

#[test]
fn a_plan_with_invalid_toml_or_a_missing_column_stops_transform_before_it_writes() {
    let prepared = Prepared::new(SMALL, "");
    let plan_file = prepared.plan_dir().join("0002_edits.toml");
    let transformed = prepared.data_path("transformed");

    // Invalid TOML: the file, the line and the parser's message.
    std::fs::write(&plan_file, "[tables.\"public.members\"]\n\ntarget = members\n").unwrap();
    let run = prepared.migrate(&["transform"]);
    fails_cleanly(
        &run,
        USAGE,
        &["0002_edits.toml:3: invalid TOML", "string values must be quoted"],
    );
    assert!(file_names(&transformed).is_empty(), "{:?}", file_names(&transformed));

    // A column the table does not have: the file, the line, the key and a suggestion.
    std::fs::write(&plan_file, "[tables.\"public.members\"]\ndrop = [\"emial\"]\n").unwrap();
    let run = prepared.migrate(&["transform"]);
    fails_cleanly(
        &run,
        USAGE,
        &[
            "0002_edits.toml:2: `tables.\"public.members\".drop[0]` names column `emial`, which \
             table `public.members` does not have",
            "hint: did you mean `email`?",
        ],
    );
    assert!(file_names(&transformed).is_empty(), "{:?}", file_names(&transformed));
}

#[test]
fn numeric_nan_is_a_float_under_number_and_a_reject_under_cents() {
    const PRICES: &str = "create table prices (id int primary key, amount numeric, ratio float8);
         insert into prices values (1, 'NaN', 'NaN'), (2, 1.25, 0.5);";

    // Under the default policy `number`, NaN is Convex's float NaN, nothing rejected.
    let prepared = Prepared::new(PRICES, "");
    prepared.migrate(&["transform"]).success();
    let text = std::fs::read_to_string(prepared.data_path("transformed/prices.jsonl")).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(first["doc"]["amount"]["$float"].is_string(), "{first}");
    assert!(first["doc"]["ratio"]["$float"].is_string(), "{first}");

    // Under `cents` it has no value: the row is rejected naming the field and why, exit 5.
    let prepared =
        Prepared::new(PRICES, "[tables.\"public.prices\".columns.amount]\npolicy = \"cents\"\n");
    let run = prepared.migrate(&["transform"]);
    assert_eq!(run.code, Some(REJECTED), "{run}");
    no_panic(&run);
    assert!(run.stdout.contains("numeric NaN has no value in cents"), "{run}");
    let rejects =
        std::fs::read_to_string(prepared.data_path("rejects/public.prices.jsonl")).unwrap();
    let reject: Value = serde_json::from_str(rejects.trim()).unwrap();
    assert_eq!((reject["field"].as_str(), reject["line"].as_u64()), (Some("amount"), Some(1)));
    let documents =
        std::fs::read_to_string(prepared.data_path("transformed/prices.jsonl")).unwrap();
    assert_eq!(documents.lines().count(), 1, "only the good row is a document");
}

#[test]
fn a_plan_changed_after_transform_is_refused_by_import_and_verify() {
    // GIVEN transformed data, then a plan file added
    let prepared = Prepared::new(SMALL, "");
    prepared.migrate(&["transform"]).success();
    std::fs::write(
        prepared.plan_dir().join("0002_rename.toml"),
        "[tables.\"public.teams\"]\ntarget = \"squads\"\n",
    )
    .unwrap();

    // WHEN import (even a dry run) or verify runs THEN it refuses before any call, saying what
    // to run
    for args in [&["import", "--dry-run"][..], &["import"], &["verify"]] {
        let run = prepared.against("http://127.0.0.1:1", "k", args);
        fails_cleanly(
            &run,
            USAGE,
            &[
                "error: the plan changed since transform: the plan files hash to blake3:",
                "hint: run `migrate transform` again (and `migrate init`",
            ],
        );
    }
    assert!(!prepared.data_path("state.sqlite").exists());
}

#[test]
fn a_transformed_manifest_of_another_format_version_stops_import_and_verify() {
    let prepared = Prepared::new(SMALL, "");
    prepared.migrate(&["transform"]).success();
    let manifest = prepared.data_path("transformed/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let changed = text.replacen("\"format_version\": 2,", "\"format_version\": 99,", 1);
    assert_ne!(changed, text, "the manifest names its format version");
    std::fs::write(&manifest, changed).unwrap();

    for args in [&["import"][..], &["verify"]] {
        let run = prepared.against("http://127.0.0.1:1", "k", args);
        fails_cleanly(
            &run,
            LOCAL_IO,
            &[
                &format!("error: `{}` cannot be read", manifest.display()),
                "caused by: format version 99 is not 2: another version of migrate wrote it",
                "hint: the transformed data is damaged or was changed by hand: run `migrate \
                 transform` again",
            ],
        );
    }
}

#[test]
fn a_truncated_transformed_manifest_stops_import_and_verify() {
    let prepared = Prepared::new(SMALL, "");
    prepared.migrate(&["transform"]).success();
    let manifest = prepared.data_path("transformed/manifest.json");
    truncate(&manifest, 120);

    for args in [&["import"][..], &["import", "--dry-run"], &["verify"]] {
        let run = prepared.against("http://127.0.0.1:1", "k", args);
        fails_cleanly(
            &run,
            LOCAL_IO,
            &[
                &format!("error: `{}` cannot be read", manifest.display()),
                "caused by: EOF while parsing",
                "hint: the transformed data is damaged or was changed by hand: run `migrate \
                 transform` again",
            ],
        );
    }
    assert!(!prepared.data_path("state.sqlite").exists());

    // AND transforming again repairs it
    prepared.migrate(&["transform"]).success();
    prepared.migrate(&["import", "--dry-run"]).success();
}

#[test]
fn a_corrupted_transformed_line_stops_import_naming_the_file_and_line() {
    // GIVEN a transformed file with a line cut in the middle
    let deployed = Deployed::new();
    let members = deployed.transformed("members");
    replace_line(&members, 5, r#"{"doc":{"legacyId":"5","email":"#);

    // WHEN it is imported THEN it stops at that line with exit 6
    let run = deployed.run(&["import"]);
    fails_cleanly(
        &run,
        LOCAL_IO,
        &[
            &format!("error: `{}` line 5 is not a document line", members.display()),
            "hint: the transformed data is damaged or was changed by hand: run `migrate \
             transform` again",
        ],
    );
    run.never_shows(deployed.sink.admin_key());
    assert_eq!(deployed.sink.count("members"), 0, "no batch of the damaged file was sent");

    // AND transforming again, then importing, finishes the job
    deployed.prepared.migrate(&["transform"]).success();
    deployed.run(&["import"]).success();
    deployed.verify_exact();
}

#[test]
fn a_transformed_file_cut_short_after_transform_is_refused_by_import() {
    // GIVEN a transformed file that lost its last 20 lines (whole lines: it still parses)
    let deployed = Deployed::new();
    let members = deployed.transformed("members");
    let text = std::fs::read_to_string(&members).unwrap();
    let kept: String = text.lines().take(10).map(|l| format!("{l}\n")).collect();
    std::fs::write(&members, kept).unwrap();

    // WHEN it is imported THEN the line count and checksum against the manifest stop it
    let run = deployed.run(&["import"]);
    fails_cleanly(
        &run,
        LOCAL_IO,
        &[
            &format!(
                "error: `{}` changed since transform: 10 lines, the manifest says 30",
                members.display()
            ),
            "hint: the transformed data is damaged or was changed by hand: run `migrate \
             transform` again",
        ],
    );
    // … and verify, which compares Convex with that file, refuses it too rather than finding
    // the 10 documents it holds all in Convex
    let verify = deployed.run(&["verify"]);
    fails_cleanly(
        &verify,
        LOCAL_IO,
        &[&format!(
            "`{}` changed since transform: 10 lines, the manifest says 30",
            members.display()
        )],
    );
    assert!(!verify.stdout.contains("verified"), "{verify}");
    // … and the batches sent from the short file are not counted as done
    let status = deployed.prepared.migrate(&["--format", "json", "status"]).success();
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let entry = status["tables"].as_array().unwrap().iter().find(|t| t["table"] == "members");
    assert_eq!(entry.unwrap()["imported"], 0, "{status}");

    // AND transforming again, then importing, sends the whole table and finishes the job
    deployed.prepared.migrate(&["transform"]).success();
    let again = deployed.run(&["--format", "json", "import"]).success();
    let report: Value = serde_json::from_str(&again.stdout).unwrap();
    let entry = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "members");
    assert_eq!(entry.unwrap()["resumed"], 0, "{again}");
    deployed.verify_exact();
}

#[test]
fn a_damaged_state_file_is_refused_and_deleting_it_is_enough() {
    let deployed = Deployed::new();
    let state = deployed.prepared.data_path("state.sqlite");
    std::fs::write(&state, "this is not an SQLite database, it was overwritten\n".repeat(100))
        .unwrap();

    let run = deployed.run(&["import"]);
    fails_cleanly(
        &run,
        LOCAL_IO,
        &[
            &format!("error: the import state `{}` cannot be used", state.display()),
            "file is not a database",
            "hint: the state file only speeds a resumed import up: delete data/state.sqlite",
        ],
    );

    std::fs::remove_file(&state).unwrap();
    deployed.run(&["import"]).success();
    deployed.verify_exact();
}

// ── Convex ─────────────────────────────────────────────────────────────────────────────────

/// A web server on 127.0.0.1 that answers every request with one fixed reply, counting them:
/// what a deployment refusing the key with 403, or a URL that is not a deployment, looks like.
struct FixedReply {
    url: String,
    requests: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FixedReply {
    fn start(status: &str, content_type: &str, body: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let requests = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                if read_request(&mut stream) {
                    counted.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.write_all(reply.as_bytes());
                }
            }
        });
        FixedReply { url, requests, stop, thread: Some(thread) }
    }

    fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Reads one HTTP request (headers and a Content-Length body); false if the peer went away.
fn read_request(stream: &mut TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return true;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

impl Drop for FixedReply {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_403_is_a_refused_deploy_key_and_is_never_retried() {
    // GIVEN a deployment that answers 403, as Convex does for a key of another deployment
    let prepared = Prepared::new(SMALL, "");
    prepared.migrate(&["transform"]).success();
    let deployment = FixedReply::start(
        "403 Forbidden",
        "application/json",
        r#"{"code":"BadDeployKey","message":"The provided deploy key was invalid for deployment 'happy-animal-123'"}"#,
    );

    // WHEN the import runs with retries allowed
    let key = "prod:other-deployment|403-secret-that-must-not-leak";
    let run = prepared.against(&deployment.url, key, &["import", "--retries", "8"]);

    // THEN it stops at once, after one request, exit 4, saying which key to use
    fails_cleanly(
        &run,
        CONVEX_FAILURE,
        &[
            "error: Convex failed",
            "caused by: Convex refused the deploy key: HTTP 403 BadDeployKey",
            "hint: CONVEX_DEPLOY_KEY must be a deploy key of the deployment CONVEX_URL names",
        ],
    );
    run.never_shows("403-secret-that-must-not-leak");
    assert_eq!(deployment.requests(), 1, "a refused key is never retried");
    assert!(!prepared.data_path("state.sqlite").exists(), "nothing recorded as begun");
}

#[test]
fn a_url_that_is_not_a_deployment_says_to_check_convex_url() {
    let prepared = Prepared::new(SMALL, "");
    prepared.migrate(&["transform"]).success();

    // A web server that does not know Convex's routes: 404.
    let web = FixedReply::start("404 Not Found", "text/html", "<html><h1>Not Found</h1></html>");
    let run = prepared.against(&web.url, "k", &["import"]);
    fails_cleanly(
        &run,
        CONVEX_FAILURE,
        &["Convex refused the call to migrate:info: HTTP 404", "hint: check CONVEX_URL"],
    );
    assert_eq!(web.requests(), 1, "a 404 is never retried");

    // A web server that answers 200 with a page, not Convex's reply.
    let page = FixedReply::start("200 OK", "text/html", "<html>welcome</html>");
    let run = prepared.against(&page.url, "k", &["verify"]);
    fails_cleanly(
        &run,
        CONVEX_FAILURE,
        &["the reply to migrate:info is not from Convex", "hint: check CONVEX_URL"],
    );
    assert!(!prepared.data_path("state.sqlite").exists());
}

#[test]
fn an_unreachable_deployment_fails_after_its_retries() {
    let prepared = Prepared::new(SMALL, "");
    prepared.migrate(&["transform"]).success();
    let url = format!("http://127.0.0.1:{}", free_port());

    // WHEN import, then verify, call a deployment nothing answers for
    // THEN each names the deployment it could not reach, and says what to check
    for command in ["import", "verify"] {
        let started = Instant::now();
        let run = prepared.against(&url, "k", &[command, "--retries", "2"]);
        fails_cleanly(
            &run,
            CONVEX_FAILURE,
            &[
                &format!("caused by: cannot reach Convex at `{url}`: cannot connect"),
                "(3 attempts)",
                "hint: check that CONVEX_URL is your deployment's URL",
            ],
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    }
    assert!(!prepared.data_path("state.sqlite").exists());
}

#[test]
fn duplicate_legacy_ids_in_convex_are_reported_by_verify_and_refused_by_import() {
    // GIVEN an import done, then a second document with member 3's legacy id written behind
    // migrate's back (another script, an import from a second copy of the data)
    let deployed = Deployed::new();
    deployed.run(&["import"]).success();
    let copy = deployed.sink.document("members", "3").expect("member 3 was imported");
    deployed.sink.insert_raw("members", copy);

    // WHEN verify runs THEN it reports the duplicate, exit 1
    let run = deployed.run(&["verify"]);
    assert_eq!(run.code, Some(1), "{run}");
    no_panic(&run);
    assert!(run.stdout.contains("NOT verified: 1 document differs"), "{run}");
    assert!(run.stdout.contains("duplicate members 3: a second document"), "{run}");
    let json = deployed.run(&["--format", "json", "verify"]);
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    let members =
        report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "members").unwrap();
    assert_eq!(members["duplicates"], 1, "{report}");

    // WHEN the import is sent again from the start THEN Convex refuses that document (its
    // upsert cannot choose between two), the rest is imported, exit 5
    let state = deployed.prepared.data_path("state.sqlite");
    std::fs::remove_file(&state).unwrap();
    let run = deployed.run(&["import"]);
    assert_eq!(run.code, Some(REJECTED), "{run}");
    no_panic(&run);
    assert!(run.stdout.contains("members 3 (line 3): members 3: 2 documents have this legacy id"));
    let rejects =
        std::fs::read_to_string(deployed.prepared.data_path("rejects/import/members.jsonl"))
            .unwrap();
    assert_eq!(rejects.lines().count(), 1, "{rejects}");

    // AND what docs/errors.md says to do works: remove both, forget the checkpoints, import
    let removed = deployed.call(
        FunctionKind::Mutation,
        "migrate:remove",
        json!({"table": "members", "legacyIds": ["3"]}),
    );
    assert_eq!(removed["deleted"], 2, "{removed}");
    std::fs::remove_file(&state).unwrap();
    deployed.run(&["import"]).success();
    assert!(!deployed.prepared.data_path("rejects/import/members.jsonl").exists());
    deployed.verify_exact();
}

// ── The data directory ─────────────────────────────────────────────────────────────────────

/// Makes a directory tree read-only until dropped: `chmod -R a-w` for an ordinary user; for
/// root, whom modes do not stop, `chattr -R +i` (immutable: not even root may create, change
/// or remove an entry).
struct ReadOnly {
    dir: PathBuf,
    as_root: bool,
}

impl ReadOnly {
    fn make(dir: &Path) -> Self {
        let as_root = running_as_root();
        let status = if as_root {
            Command::new("chattr").args(["-R", "+i"]).arg(dir).status()
        } else {
            Command::new("chmod").args(["-R", "a-w"]).arg(dir).status()
        };
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot make {} read-only (as root this needs chattr and a file system with the \
             immutable attribute)",
            dir.display()
        );
        ReadOnly { dir: dir.to_owned(), as_root }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = if self.as_root {
            Command::new("chattr").args(["-R", "-i"]).arg(&self.dir).status()
        } else {
            Command::new("chmod").args(["-R", "u+w"]).arg(&self.dir).status()
        };
    }
}

#[test]
fn a_read_only_data_directory_stops_transform_and_import_naming_the_path() {
    // GIVEN an export in a data directory nobody may write to
    let prepared = Prepared::new(SMALL, "");
    let data_dir = prepared.work.data_dir();
    let before = file_names(&data_dir);
    let read_only = ReadOnly::make(&data_dir);

    // WHEN transform runs THEN it names the directory it cannot create and says what to check
    let run = prepared.migrate(&["transform"]);
    fails_cleanly(
        &run,
        LOCAL_IO,
        &[
            &format!("error: cannot create `{}`", data_dir.join("transformed").display()),
            "hint: check the permissions of the data directory, or choose another with --data-dir",
        ],
    );
    assert_eq!(file_names(&data_dir), before, "nothing was written");
    drop(read_only);

    // GIVEN the data transformed, and the directory read-only again
    prepared.migrate(&["transform"]).success();
    let plan = Plan::from_module_file(prepared.convex_dir().join("migrate.ts")).unwrap();
    let sink = Sink::start(SinkConfig::new(plan)).unwrap();
    let before = file_names(&data_dir);
    let read_only = ReadOnly::make(&data_dir);

    // WHEN import runs THEN it cannot create its state file, and says the same, exit 6
    let run = prepared.against(&sink.url(), sink.admin_key(), &["import"]);
    fails_cleanly(
        &run,
        LOCAL_IO,
        &[
            &format!(
                "error: the import state `{}` cannot be used",
                data_dir.join("state.sqlite").display()
            ),
            "hint: check the permissions of the data directory, or choose another with --data-dir",
        ],
    );
    assert!(!run.stderr.contains("delete data/state.sqlite"), "there is none to delete\n{run}");
    assert_eq!(file_names(&data_dir), before, "nothing was written");
    drop(read_only);
}

#[test]
fn a_data_directory_that_is_a_file_is_a_local_error_saying_so() {
    let prepared = Prepared::new(SMALL, "");
    let not_a_dir = prepared.work.path().join("data.json");
    std::fs::write(&not_a_dir, "{}").unwrap();

    let plan_dir = prepared.plan_dir();
    let run = prepared.work.run(&[
        "--data-dir",
        utf8(&not_a_dir),
        "--plan-dir",
        utf8(&plan_dir),
        "transform",
    ]);
    fails_cleanly(
        &run,
        LOCAL_IO,
        &[
            &format!("error: cannot read `{}`", not_a_dir.join("manifest.json").display()),
            "Not a directory",
            "hint: a path in the data directory is a file where a directory is expected",
        ],
    );
    assert_eq!(std::fs::read_to_string(&not_a_dir).unwrap(), "{}", "the file is untouched");
}

#[cfg(unix)]
#[test]
fn a_full_disk_while_the_export_manifest_is_written_leaves_no_manifest() {
    // GIVEN a disk that is full when the manifest, written last, is written: its partial file
    // is /dev/full, where every write fails with ENOSPC
    let db = TestDb::with(
        "create table t (id int primary key, v text);
         insert into t select g, 'row ' || g from generate_series(1, 100) g;",
    );
    let work = Workdir::new();
    std::fs::create_dir_all(work.data_dir()).unwrap();
    let partial = work.data_dir().join(".manifest.json.partial");
    std::os::unix::fs::symlink("/dev/full", &partial).unwrap();

    // WHEN the export runs
    let run = work.export(db.url(), &[]);

    // THEN it fails with exit 6 naming the file and the disk, and there is no manifest: later
    // stages see no export rather than a partial one
    fails_cleanly(
        &run,
        LOCAL_IO,
        &[
            &format!("error: cannot write `{}`", partial.display()),
            "No space left on device",
            "hint: free some disk space and run the command again",
        ],
    );
    assert!(!work.manifest_path().exists());
    let transform = Run::of(work.dirs_command(&["transform"]));
    fails_cleanly(&transform, USAGE, &["`manifest.json` is missing", "run `migrate export` first"]);

    // AND with space again the same export succeeds
    std::fs::remove_file(&partial).unwrap();
    work.export(db.url(), &[]).success();
    assert!(work.manifest_path().exists());
}

/// A tmpfs of `size` mounted on `dir` until dropped.
struct TinyDisk {
    dir: PathBuf,
}

impl TinyDisk {
    /// Mounting needs root (CAP_SYS_ADMIN), which this machine and CI have; elsewhere the test
    /// fails saying so rather than passing without having run.
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "this test simulates a full disk with a tmpfs and needs root to mount it: {status:?}"
        );
        TinyDisk { dir: dir.to_owned() }
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

#[test]
fn a_full_disk_while_transform_writes_leaves_nothing_that_looks_transformed() {
    // GIVEN an export whose documents (about 2.5 MiB) do not fit in `transformed/`, a 256 KiB
    // file system (transform clears stale partial files first, so the /dev/full trick of the
    // export test cannot stand in here)
    let prepared = Prepared::new(
        "create table big as
           select g as id, repeat('x', 100) || g as filler from generate_series(1, 20000) g;
         alter table big add primary key (id);",
        "",
    );
    let transformed = prepared.data_path("transformed");
    let _disk = TinyDisk::mount(&transformed, "256k");

    // WHEN transform runs
    let run = prepared.migrate(&["transform"]);

    // THEN it stops with exit 6 naming the file and the disk, and leaves nothing behind
    fails_cleanly(
        &run,
        LOCAL_IO,
        &[
            &format!("error: cannot write `{}`", transformed.join(".big.jsonl.partial").display()),
            "No space left on device",
            "hint: free some disk space and run the command again",
        ],
    );
    assert_eq!(file_names(&transformed), Vec::<String>::new(), "no partial file, no manifest");
}

// ── Status reads, never writes ─────────────────────────────────────────────────────────────

/// The rows of a table, each value as its Debug text, sorted.
type Rows = Vec<Vec<String>>;

/// The names of the tables of an SQLite database, sorted.
fn sqlite_tables(conn: &rusqlite::Connection) -> Vec<String> {
    let sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name";
    let mut statement = conn.prepare(sql).unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

/// The rows of `table`, each value as its Debug text, sorted.
fn sqlite_rows(conn: &rusqlite::Connection, table: &str) -> Rows {
    let mut statement = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
    let columns = statement.column_count();
    let mut rows: Rows = statement
        .query_map([], |row| {
            (0..columns)
                .map(|i| row.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                .collect()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.sort();
    rows
}

/// Each table of an SQLite file with its rows, and its `user_version`, read without migrate.
fn sqlite_contents(path: &Path) -> (Vec<(String, Rows)>, i64) {
    use rusqlite::{Connection, OpenFlags};
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let tables = sqlite_tables(&conn)
        .into_iter()
        .map(|name| {
            let rows = sqlite_rows(&conn, &name);
            (name, rows)
        })
        .collect();
    let version = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    (tables, version)
}

/// `migrate status --format json`: (imported documents of `members`, runs listed).
fn members_imported_and_runs(prepared: &Prepared) -> (Value, usize) {
    let run = prepared.migrate(&["--format", "json", "status"]).success();
    no_panic(&run);
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    let members = status["tables"].as_array().unwrap().iter().find(|t| t["table"] == "members");
    (members.unwrap()["imported"].clone(), status["runs"].as_array().unwrap().len())
}

#[test]
fn status_changes_nothing_in_the_import_state_even_one_of_another_schema_version() {
    // GIVEN a finished import (its state holds checkpoints and a run), the state then
    // marked as written by another version of migrate (another schema version)
    let deployed = Deployed::new();
    deployed.run(&["import"]).success();
    let state = deployed.prepared.data_path("state.sqlite");
    let set_version = |version: i64| {
        let conn = rusqlite::Connection::open(&state).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {version}")).unwrap();
    };
    set_version(99);
    let before = sqlite_contents(&state);
    let batches = before.0.iter().find(|(name, _)| name == "batches").expect("a batches table");
    assert!(!batches.1.is_empty() && before.1 == 99, "{before:?}");
    let bytes = std::fs::read(&state).unwrap();

    // WHEN status runs THEN it shows nothing imported (no usable state), and the file keeps its
    // tables, their rows and its version: another version's checkpoints are not wiped
    assert_eq!(members_imported_and_runs(&deployed.prepared), (json!(0), 0));
    assert_eq!(sqlite_contents(&state), before);
    assert!(std::fs::read(&state).unwrap() == bytes, "status wrote to the state");

    // AND under this version's schema it reports the import, still writing nothing
    set_version(2);
    let bytes = std::fs::read(&state).unwrap();
    assert_eq!(members_imported_and_runs(&deployed.prepared), (json!(30), 1));
    assert!(std::fs::read(&state).unwrap() == bytes, "status wrote to the state");
}

#[test]
fn an_export_manifest_of_another_format_version_stops_every_stage_that_reads_it() {
    // GIVEN transformed data, then the export's manifest as another version of migrate wrote it
    let prepared = Prepared::new(SMALL, "");
    prepared.migrate(&["transform"]).success();
    let manifest = prepared.data_path("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let changed = text.replacen("\"format_version\": 1,", "\"format_version\": 99,", 1);
    assert_ne!(changed, text, "the manifest names its format version");
    std::fs::write(&manifest, changed).unwrap();
    let reason = "format version 99 is not 1: another version of migrate wrote it";

    // WHEN import (which takes the catalog from it) runs THEN it refuses it, saying why
    let run = prepared.against("http://127.0.0.1:1", "k", &["import", "--dry-run"]);
    fails_cleanly(
        &run,
        LOCAL_IO,
        &[
            &format!("error: `{}` cannot be read", manifest.display()),
            &format!("caused by: {reason}"),
        ],
    );

    // WHEN transform, init or status runs THEN each refuses it the same way, exit 2
    let convex_dir = prepared.convex_dir();
    for args in [&["transform"][..], &["init", "--convex-dir", utf8(&convex_dir)], &["status"]] {
        let run = prepared.migrate(args);
        fails_cleanly(
            &run,
            USAGE,
            &[
                &format!("error: `{}` cannot be read: {reason}", manifest.display()),
                "hint: the export was changed or cut short: run `migrate export` again",
            ],
        );
    }
}

#[test]
fn status_on_a_damaged_manifest_or_state_says_what_to_run_not_that_it_is_a_bug() {
    let prepared = Prepared::new(SMALL, "");
    prepared.migrate(&["transform"]).success();

    // A transformed manifest cut short: as import says it, exit 6
    let transformed = prepared.data_path("transformed/manifest.json");
    let kept = std::fs::read(&transformed).unwrap();
    truncate(&transformed, 120);
    fails_cleanly(
        &prepared.migrate(&["status"]),
        LOCAL_IO,
        &[
            &format!("error: `{}` cannot be read", transformed.display()),
            "caused by: EOF while parsing",
            "hint: the transformed data is damaged or was changed by hand: run `migrate \
             transform` again",
        ],
    );
    std::fs::write(&transformed, kept).unwrap();

    // A state file that is not a database: as import says it, exit 6, and it is left as it is
    let state = prepared.data_path("state.sqlite");
    let garbage = "this is not an SQLite database, it was overwritten\n".repeat(100);
    std::fs::write(&state, &garbage).unwrap();
    fails_cleanly(
        &prepared.migrate(&["status"]),
        LOCAL_IO,
        &[
            &format!("error: the import state `{}` cannot be used", state.display()),
            "hint: the state file only speeds a resumed import up: delete data/state.sqlite",
        ],
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), garbage);
    std::fs::remove_file(&state).unwrap();

    // An export manifest cut short: as transform says it, exit 2
    let export = prepared.data_path("manifest.json");
    truncate(&export, 200);
    fails_cleanly(
        &prepared.migrate(&["status"]),
        USAGE,
        &[
            &format!("error: `{}` cannot be read: EOF while parsing", export.display()),
            "hint: the export was changed or cut short: run `migrate export` again",
        ],
    );
}

#[test]
fn import_and_verify_after_an_interrupted_export_say_to_export_again() {
    // GIVEN a transformed job whose export manifest is gone, as an export interrupted after it
    // removed the manifest leaves it
    let prepared = Prepared::new(SMALL, "");
    prepared.migrate(&["transform"]).success();
    let manifest = prepared.data_path("manifest.json");
    std::fs::remove_file(&manifest).unwrap();

    // WHEN import, its dry run, or verify starts THEN each says what is missing and what to run
    let expected = [
        &format!("error: no finished export: `{}` is missing", manifest.display())[..],
        "hint: run `migrate export` again",
        "then `migrate transform`",
    ];
    for args in [&["import"][..], &["import", "--dry-run"], &["verify"]] {
        let run = prepared.against("http://127.0.0.1:1", "k", args);
        fails_cleanly(&run, USAGE, &expected);
        assert!(!run.stderr.contains("entity not found"), "{run}");
    }

    // GIVEN only raw files left by an interrupted export: no manifest, nothing transformed
    std::fs::remove_dir_all(prepared.data_path("transformed")).unwrap();
    for args in [&["import"][..], &["verify"]] {
        let run = prepared.against("http://127.0.0.1:1", "k", args);
        fails_cleanly(&run, USAGE, &expected);
    }
    assert!(!prepared.data_path("state.sqlite").exists());
}

/// Transform with `plan` as the only plan file.
fn transform_with_plan(work: &Workdir, plan: &str) -> Run {
    let plan_dir = work.plan_dir();
    std::fs::create_dir_all(&plan_dir).unwrap();
    std::fs::write(plan_dir.join("0001_initial.toml"), plan).unwrap();
    Run::of(work.dirs_command(&["transform"]))
}

/// The reasons of `data/rejects/<table>.jsonl`, by the row's `id`.
fn reject_reasons(work: &Workdir, table: &str) -> Vec<(String, String, String)> {
    let path = work.data_dir().join(format!("rejects/{table}.jsonl"));
    crate::support::jsonl(&path)
        .iter()
        .map(|r| {
            let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (text(&r["key"]["id"]), text(&r["field"]), text(&r["reason"]))
        })
        .collect()
}

#[test]
fn an_infinite_date_is_rejected_with_a_way_out_that_exists_for_dates() {
    // GIVEN dates and a timestamp Postgres holds as ±infinity
    let db = TestDb::with(
        "create table spans (id int primary key, starts date, ends date, at timestamptz);
         insert into spans values (1, '2024-01-01', '2024-12-31', '2024-01-01T00:00:00Z'),
           (2, '-infinity', '2024-12-31', '2024-01-01T00:00:00Z'),
           (3, '2024-01-01', 'infinity', '2024-01-01T00:00:00Z'),
           (4, '2024-01-01', '2024-12-31', 'infinity');",
    );
    let work = Workdir::new();
    work.export(db.url(), &[]).success();

    // WHEN it is transformed under every date policy
    for policy in ["string", "ms"] {
        let plan = format!("[defaults.types]\ndate = \"{policy}\"\n");
        let run = transform_with_plan(&work, &plan);
        assert_eq!(run.code, Some(REJECTED), "{run}");

        // THEN each infinite date's reason names no policy dates do not have, but a filter
        // that works; the timestamp's names `iso`, which timestamps have
        let reasons = reject_reasons(&work, "public.spans");
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        for (id, field, reason) in &reasons {
            match id.as_str() {
                "2" | "3" => {
                    let value = if id == "2" { "-infinity" } else { "infinity" };
                    assert!(
                        reason.contains(&format!("(`not_equals = \"{value}\"`)")),
                        "{field}: {reason}"
                    );
                    assert!(!reason.contains("`iso`"), "{field}: {reason}");
                }
                _ => {
                    assert_eq!(field, "at");
                    assert!(reason.contains("use policy `iso`"), "{reason}");
                    assert!(!reason.contains("`string`"), "{reason}");
                }
            }
        }
    }

    // WHEN the plan follows the hints
    let plan = r#"
[[tables."public.spans".filter]]
column = "starts"
not_equals = "-infinity"

[[tables."public.spans".filter]]
column = "ends"
not_equals = "infinity"

[tables."public.spans".columns.at]
policy = "iso"
"#;
    // THEN nothing is rejected: the infinite dates' rows are filtered out, counted, and the
    // infinite timestamp is kept as a string
    let run = transform_with_plan(&work, plan);
    assert_eq!(run.code, Some(0), "{run}");
    let documents = crate::support::jsonl(&work.data_dir().join("transformed/spans.jsonl"));
    let ids: Vec<&str> = documents.iter().map(|d| d["doc"]["legacyId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1", "4"]);
    assert_eq!(documents[1]["doc"]["at"], "infinity");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(work.data_dir().join("transformed/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["tables"][0]["filtered"], 2, "{manifest}");
}

#[test]
fn a_jsonb_number_beyond_a_double_migrates_under_policy_string() {
    use crate::convex_server::ConvexTestServer;

    // GIVEN jsonb values holding numbers no double can carry, and one that any can
    let prepared = Prepared::new(
        r#"create table readings (id int primary key, payload jsonb not null);
           insert into readings values
             (1, '{"ok": [1, 2.5], "n": 123456789012345678901234567890}'),
             (2, '1e400'),
             (3, '{"small": 1}');"#,
        "",
    );

    // WHEN it is transformed with the defaults
    // THEN those rows are rejected, and the reason names a policy jsonb accepts
    let run = prepared.migrate(&["transform"]);
    assert_eq!(run.code, Some(REJECTED), "{run}");
    let reasons = reject_reasons(&prepared.work, "public.readings");
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    for (_, _, reason) in &reasons {
        assert!(reason.contains(r#"set `policy = "string"` on this column"#), "{reason}");
    }

    // WHEN the plan follows the hint (init regenerates migrateTables.ts from it)
    let policy = "[tables.\"public.readings\".columns.payload]\npolicy = \"string\"\n";
    std::fs::write(prepared.plan_dir().join("0002_json_text.toml"), policy).unwrap();
    prepared.migrate(&["init", "--convex-dir", utf8(&prepared.convex_dir())]).success();
    let schema = std::fs::read_to_string(prepared.convex_dir().join("migrateTables.ts")).unwrap();
    assert!(schema.contains("payload: v.string()"), "{schema}");

    // THEN every row becomes a document holding the value's JSON text, every digit kept
    prepared.migrate(&["transform"]).success();
    let documents = crate::support::jsonl(&prepared.data_path("transformed/readings.jsonl"));
    let payloads: Vec<&str> =
        documents.iter().map(|d| d["doc"]["payload"].as_str().unwrap()).collect();
    assert_eq!(payloads[0], r#"{"n":123456789012345678901234567890,"ok":[1,2.5]}"#);
    assert_eq!(payloads[1], format!("1{}", "0".repeat(400)));
    assert_eq!(payloads[2], r#"{"small":1}"#);

    // AND Convex's own validators (convex-test, the generated schema) accept them, and verify
    // proves every row arrived
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();
    prepared.against(&url, &key, &["verify"]).success();
}
