//! Secrets and private data: the database password and the Convex deploy key appear in no
//! output of any command (summaries, errors, `--show-settings`, `--help`, and logs at every
//! level, including trace logs of tokio-postgres, reqwest, hyper and rustls); the data directory
//! and the import state are readable by their owner only.
//!
//! That the generated Convex functions are internal (unreachable without the deploy key) is
//! `convex_module::internal_functions_need_the_admin_key`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use convex_sink::{Plan, Sink, SinkConfig, SinkHandle};
use migrate::cli::{Cli, Command as Subcommand, OutputFormat};
use migrate::convex::client::{ConvexClient, RetryPolicy};
use migrate::settings::{DatabaseUrl, ExportSettings, InitSettings, Progress, Secret, Settings};

use crate::support::{Run, TestDb, ThrowawayCluster, Workdir, url_with_password, utf8};

/// Distinctive values, so that any echo of them, whole or in part, is found. Each secret's
/// tail after the last `-` is what the streams are searched for.
const PASSWORD: &str = "pw-Zq8xK3vN7mLt";
const WRONG_PASSWORD: &str = "pw-wrong-Hs4Dr8Nc2Pq";
const KEY: &str = "prod:security-test|ek-Yt5wR2mB9xQv";
const WRONG_KEY: &str = "prod:security-test|ek-wrong-Jf6Lp3Zs8Kd";
const SECRETS: [&str; 4] = [PASSWORD, WRONG_PASSWORD, KEY, WRONG_KEY];

const SOURCE_FAILURE: i32 = 3;
const CONVEX_FAILURE: i32 = 4;

const FIXTURE: &str = "
create table authors (id int primary key, name text not null);
create table posts (id int primary key, author_id int not null references authors(id),
  title text not null, body bytea);
insert into authors select g, 'author ' || g from generate_series(1, 20) g;
insert into posts select g, g % 20 + 1, 'post ' || g, '\\x00ff' from generate_series(1, 50) g;
";

/// The two ways of turning every log on: `-vvv`, and `RUST_LOG=trace`, which overrides `-v`
/// and also reaches every dependency's logs.
#[derive(Debug, Clone, Copy)]
enum Logs {
    Vvv,
    RustLog,
}

const BOTH: [Logs; 2] = [Logs::Vvv, Logs::RustLog];

/// A work directory with its data, plan and Convex directories.
struct Job {
    work: Workdir,
}

impl Job {
    fn new() -> Self {
        Job { work: Workdir::new() }
    }

    fn convex_dir(&self) -> PathBuf {
        self.work.path().join("convex")
    }

    /// `migrate <logs> --data-dir … --plan-dir … <args>` with `env`, not yet started.
    fn command(&self, logs: Option<Logs>, args: &[&str], env: &[(&str, &str)]) -> Command {
        let vvv: &[&str] = if let Some(Logs::Vvv) = logs { &["-vvv"] } else { &[] };
        let mut command = self.work.dirs_command(&[vvv, args].concat());
        if let Some(Logs::RustLog) = logs {
            command.env("RUST_LOG", "trace");
        }
        command.envs(env.iter().copied());
        command
    }

    /// Runs `args` with every log on, checks that no secret shows and that the run exited with
    /// `code`.
    #[track_caller]
    fn run(&self, logs: Logs, args: &[&str], env: &[(&str, &str)], code: i32) -> Run {
        let run = Run::of(self.command(Some(logs), args, env));
        let what = format!("`migrate {}` ({logs:?})", args.join(" "));
        assert_no_secret(&run, &what);
        assert_eq!(run.code, Some(code), "{what}: unexpected exit code\n{}", excerpt(&run));
        // Proof that the logs were on, or this test would prove nothing: every command that
        // talks to Postgres or Convex logs at trace, whether it succeeds or is refused (the HTTP
        // client, reqwest over hyper, logs the connection a wrong deploy key is refused on). The
        // one exception is a login Postgres refuses: tokio-postgres logs nothing until a session
        // is established (its connect and authentication code has no log call), and export
        // logs nothing of its own before it connects. Transform and status contact nothing.
        let talks = matches!(args[0], "export" | "init" | "import" | "verify" | "run");
        let refused_login = code == SOURCE_FAILURE && run.stderr.contains("refused the login");
        if talks && !refused_login {
            assert!(run.stderr.contains("TRACE"), "{what} logged no trace:\n{}", excerpt(&run));
        }
        run
    }
}

/// The last part of a secret, searched for on its own so that a partial echo is found too.
fn tail(secret: &str) -> &str {
    secret.rsplit('-').next().expect("rsplit yields at least one part")
}

/// Fails naming the lines that show a secret (never the whole trace output).
#[track_caller]
fn assert_no_secret(run: &Run, what: &str) {
    for secret in SECRETS {
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            let lines: Vec<&str> =
                text.lines().filter(|line| line.contains(tail(secret))).take(5).collect();
            assert!(
                lines.is_empty(),
                "{what}: {stream} shows the secret {secret:?}:\n{}",
                lines.join("\n")
            );
        }
    }
}

/// The start and end of a run's output, for failure messages.
fn excerpt(run: &Run) -> String {
    let cut = |text: &str| {
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() <= 40 {
            return text.to_owned();
        }
        format!(
            "{}\n[… {} lines …]\n{}",
            lines[..20].join("\n"),
            lines.len() - 40,
            lines[lines.len() - 20..].join("\n")
        )
    };
    format!(
        "exit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.code,
        cut(&run.stdout),
        cut(&run.stderr)
    )
}

fn sink_for(job: &Job, key: &str) -> SinkHandle {
    let plan = Plan::from_module_file(job.convex_dir().join("migrate.ts"))
        .expect("the generated migrate.ts carries its plan");
    Sink::start(SinkConfig { admin_key: key.to_owned(), ..SinkConfig::new(plan) })
        .expect("the sink starts")
}

#[test]
fn no_command_shows_the_password_or_the_deploy_key_at_any_log_level() {
    // GIVEN a server that checks passwords (SCRAM), holding the fixture
    let cluster = ThrowawayCluster::start_with_password(PASSWORD);
    let url = cluster.url(PASSWORD);
    let conn = crate::support::Conn::connect_or_fail(&url);
    conn.execute(FIXTURE);
    let wrong_url = cluster.url(WRONG_PASSWORD);
    let key_value = format!(
        "host=127.0.0.1 port={} user=postgres password={PASSWORD} dbname=postgres",
        cluster.port
    );
    let job = Job::new();
    let convex_dir = job.convex_dir();
    // The deploy key is in the environment of every command, even those that do not use it.
    let key = [("CONVEX_DEPLOY_KEY", KEY)];

    for logs in BOTH {
        // WHEN the login is refused THEN it says so, with neither password
        let refused =
            job.run(logs, &["export", "--database-url", &wrong_url], &key, SOURCE_FAILURE);
        assert!(refused.stderr.contains("refused the login"), "{}", excerpt(&refused));
        // … and a URL that does not parse does not echo the password either
        let bad = format!("postgres://postgres:{PASSWORD}@127.0.0.1:notaport/postgres");
        Run::of(job.command(Some(logs), &["export", "--database-url", &bad], &key))
            .fails_with(2, &["database URL is not valid"]);

        // WHEN each stage runs THEN none shows a secret, at any level
        job.run(logs, &["export", "--database-url", &url], &key, 0);
        let with_env = [("DATABASE_URL", key_value.as_str()), key[0]];
        job.run(logs, &["export"], &with_env, 0);
        job.run(
            logs,
            &[
                "init",
                "--database-url",
                &url,
                "--schemas",
                "public",
                "--convex-dir",
                utf8(&convex_dir),
                "--force",
            ],
            &key,
            0,
        );
        job.run(logs, &["transform"], &key, 0);
    }

    let sink = sink_for(&job, KEY);
    let sink_url = sink.url();
    let convex = [("CONVEX_URL", sink_url.as_str()), ("CONVEX_DEPLOY_KEY", KEY)];
    let wrong = [("CONVEX_URL", sink_url.as_str()), ("CONVEX_DEPLOY_KEY", WRONG_KEY)];
    for logs in BOTH {
        let refused = job.run(logs, &["import"], &wrong, CONVEX_FAILURE);
        assert!(refused.stderr.contains("deploy key"), "{}", excerpt(&refused));
        job.run(logs, &["import", "--batch-size", "7"], &convex, 0);
        job.run(logs, &["verify"], &convex, 0);
        let refused = job.run(logs, &["verify"], &wrong, CONVEX_FAILURE);
        assert!(refused.stderr.contains("deploy key"), "{}", excerpt(&refused));
        job.run(logs, &["status"], &convex, 0);
        job.run(logs, &["run", "--database-url", &url, "--batch-size", "7"], &convex, 0);
    }
    assert_eq!(sink.count("posts"), 50);
}

#[test]
fn show_settings_and_help_redact_both_secrets_for_every_command() {
    let job = Job::new();
    let url = format!("postgres://alice:{PASSWORD}@db.example.com:6543/app");
    let env = [
        ("DATABASE_URL", url.as_str()),
        // The deployment KEY names: another one would be refused as a conflict.
        ("CONVEX_URL", "https://security-test.convex.cloud"),
        ("CONVEX_DEPLOY_KEY", KEY),
    ];
    for command in ["export", "init", "transform", "import", "verify", "run", "status"] {
        let shown = Run::of(job.command(None, &["--show-settings", command], &env));
        let what = format!("`migrate --show-settings {command}`");
        assert_no_secret(&shown, &what);
        assert_eq!(shown.code, Some(0), "{what}\n{}", excerpt(&shown));
        let shown =
            Run::of(job.command(None, &["--format", "json", "--show-settings", command], &env));
        assert_no_secret(&shown, &what);
        let settings: serde_json::Value = serde_json::from_str(&shown.stdout)
            .unwrap_or_else(|e| panic!("{what} prints JSON ({e})\n{}", excerpt(&shown)));
        if matches!(command, "import" | "verify" | "run") {
            assert_eq!(settings["convex"]["key"]["value"], "****", "{what}: {settings}");
            assert_eq!(
                settings["convex"]["url"]["value"], "https://security-test.convex.cloud",
                "{what}: {settings}"
            );
        }
        if matches!(command, "export" | "init" | "run") {
            assert_eq!(
                settings["postgres"]["connection"]["value"],
                "postgres://alice@db.example.com:6543/app",
                "{what}: {settings}"
            );
            assert_eq!(settings["postgres"]["password"]["value"], "set", "{what}: {settings}");
        }

        // Every command's help, `status` included.
        let help = Run::of(job.command(None, &[command, "--help"], &env)).success();
        assert!(help.stdout.contains("Usage:"), "`migrate {command} --help`\n{}", excerpt(&help));
        assert_no_secret(&help, &format!("`migrate {command} --help`"));
    }
    let help = Run::of(job.command(None, &["--help"], &env)).success();
    assert!(help.stdout.contains("Usage:"), "`migrate --help`\n{}", excerpt(&help));
    assert_no_secret(&help, "`migrate --help`");

    // The same secrets from a `.env` file: shown redacted; a broken line is named by number.
    let dotenv = format!("DATABASE_URL={url}\nCONVEX_DEPLOY_KEY={KEY}\n");
    std::fs::write(job.work.path().join(".env"), &dotenv).unwrap();
    let shown = Run::of(job.command(None, &["--show-settings", "run"], &[])).success();
    assert_no_secret(&shown, "`migrate --show-settings run` with a .env");
    assert!(shown.stdout.contains("alice@db.example.com") && shown.stdout.contains("****"));
    std::fs::write(job.work.path().join(".env"), format!("{dotenv}oops {KEY} {PASSWORD}\n"))
        .unwrap();
    let broken = Run::of(job.command(None, &["export"], &[]));
    broken.fails_with(2, &["cannot read `.env`: line 3"]);
    assert_no_secret(&broken, "a broken .env");
}

/// The default panic hook prints the panic's message, and messages are built with `Debug` and
/// `Display`: every type that holds a secret prints it redacted, alone and inside the settings.
#[test]
fn every_type_holding_a_secret_prints_it_redacted() {
    let url = format!("postgres://alice:{PASSWORD}@db.example.com:5432/app");
    let cli = |args: &[&str]| {
        <Cli as clap::Parser>::try_parse_from(args).unwrap_or_else(|e| panic!("{e}"))
    };
    let Subcommand::Export(export_args) =
        cli(&["migrate", "export", "--database-url", &url]).command
    else {
        panic!("an export command")
    };
    let export = ExportSettings::from_args(&export_args).expect("valid export settings");
    let Subcommand::Init(init_args) = cli(&["migrate", "init", "--database-url", &url]).command
    else {
        panic!("an init command")
    };
    let init = InitSettings::from_args(&init_args).expect("valid init settings");
    let settings = Settings {
        data_dir: "data".into(),
        plan_dir: "migrations".into(),
        format: OutputFormat::Text,
        progress: Progress::Off,
        convex: migrate::deployment::Deployment {
            url: Some("https://happy-animal-123.convex.cloud".into()),
            url_from: Some("derived from CONVEX_DEPLOY_KEY".into()),
            key: Some(Secret::new(KEY.to_owned())),
            key_from: Some("CONVEX_DEPLOY_KEY".into()),
        },
    };
    let database_url = DatabaseUrl::parse(&url).expect("a valid URL");
    let key_value =
        DatabaseUrl::parse(&format!("host=db.example.com user=alice password={PASSWORD}"))
            .expect("a valid key=value string");
    let client = ConvexClient::new(
        "https://happy-animal-123.convex.cloud",
        &Secret::new(KEY.to_owned()),
        Duration::from_secs(1),
        RetryPolicy::default(),
    )
    .expect("a client");

    let shown = [
        format!("{settings:?}"),
        format!("{settings:#?}"),
        serde_json::to_string(&settings).unwrap(),
        format!("{export:?}"),
        format!("{export:#?}"),
        serde_json::to_string(&export).unwrap(),
        format!("{init:?}"),
        serde_json::to_string(&init).unwrap(),
        format!("{database_url} {database_url:?} {database_url:#?}"),
        format!("{key_value} {key_value:?}"),
        format!("{:?} {:#?}", Secret::new(KEY.to_owned()), Secret::new(KEY.to_owned())),
        format!("{client:?} {client:#?}"),
    ];
    for text in &shown {
        for secret in [PASSWORD, KEY] {
            assert!(!text.contains(tail(secret)), "{secret:?} shows in {text}");
        }
    }
}

#[test]
fn the_data_directory_and_the_state_file_are_owner_only() {
    let db = TestDb::with(FIXTURE);
    let url = url_with_password(db.url(), PASSWORD);
    let job = Job::new();
    let convex_dir = job.convex_dir();
    Run::of(job.command(None, &["export", "--database-url", &url], &[])).success();
    Run::of(job.command(None, &["init", "--convex-dir", utf8(&convex_dir)], &[])).success();
    Run::of(job.command(None, &["transform"], &[])).success();
    let sink = sink_for(&job, KEY);
    let convex = [("CONVEX_URL", sink.url()), ("CONVEX_DEPLOY_KEY", KEY.to_owned())];
    let convex: Vec<(&str, &str)> = convex.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Run::of(job.command(None, &["import"], &convex)).success();

    let mode = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let data = job.work.data_dir();
    for dir in [data.clone(), data.join("raw"), data.join("transformed")] {
        assert_eq!(mode(&dir), 0o700, "{} is not owner-only", dir.display());
    }
    let state = data.join("state.sqlite");
    assert_eq!(mode(&state), 0o600, "{} is not owner-only", state.display());
    // SQLite's WAL files take the database file's mode, and SQLite removes them when the last
    // connection closes: after a finished import there are none to check.
}

/// A password holding an unencoded `@` is cut at the first `@` by every Postgres URL parser:
/// the rest of it would be read as the host and printed. The URL is refused instead, naming
/// only what follows the last `@` and saying how to write it.
#[test]
fn a_password_with_an_unencoded_at_is_refused_showing_only_the_host() {
    let job = Job::new();
    let password = "p@ss@word-Rk7Wq2Lm";
    let with_at = [
        format!("postgres://postgres:{password}@127.0.0.1:5432/postgres"),
        format!("postgres://postgres:{password}@127.0.0.1:5432/postgres?sslmode=disable"),
    ];
    for url in &with_at {
        for logs in BOTH {
            let runs = [
                Run::of(job.command(Some(logs), &["export", "--database-url", url], &[])),
                Run::of(job.command(Some(logs), &["init", "--database-url", url], &[])),
                Run::of(job.command(Some(logs), &["export"], &[("DATABASE_URL", url)])),
            ];
            for run in runs {
                run.fails_with(
                    2,
                    &[
                        "error: the database URL for `127.0.0.1:5432` holds more than one `@`",
                        "%40",
                    ],
                );
                for part in ["ss@word", "word-", tail(password)] {
                    run.never_shows(part);
                }
            }
        }
    }
}

/// Credentials written into `CONVEX_URL` (`https://user:secret@…`) are shown nowhere: not in
/// the error that refuses such a URL, not in `--show-settings`, `--help` or logs.
#[test]
fn credentials_in_the_convex_url_are_never_shown() {
    let job = Job::new();
    let secret = "cx-Hb3Tn8Qd5Vw";
    let url = format!("https://admin:{secret}@happy-animal-123.convex.cloud");
    let env = [("CONVEX_URL", url.as_str()), ("CONVEX_DEPLOY_KEY", KEY)];
    let check = |run: &Run, what: &str| {
        for part in [secret, tail(secret), "admin:"] {
            assert!(
                !run.stdout.contains(part) && !run.stderr.contains(part),
                "{what} shows {part:?}\n{}",
                excerpt(run)
            );
        }
        assert_no_secret(run, what);
    };
    // A transformed job, so that import and verify get as far as reading the URL.
    let db = TestDb::with(FIXTURE);
    Run::of(job.command(None, &["export", "--database-url", db.url()], &[])).success();
    let convex_dir = job.convex_dir();
    Run::of(job.command(None, &["init", "--convex-dir", utf8(&convex_dir)], &[])).success();
    Run::of(job.command(None, &["transform"], &[])).success();

    for command in ["import", "verify"] {
        for logs in BOTH {
            for format in ["text", "json"] {
                let run = Run::of(job.command(Some(logs), &["--format", format, command], &env));
                run.fails_with(
                    2,
                    &[
                        "`https://****@happy-animal-123.convex.cloud` is not a Convex deployment URL",
                        "CONVEX_DEPLOY_KEY",
                    ],
                );
                check(&run, &format!("`migrate {command}` ({logs:?}, {format})"));
            }
        }
        let flag = Run::of(job.command(None, &[command, "--convex-url", &url], &env));
        flag.fails_with(2, &["https://****@happy-animal-123.convex.cloud"]);
        check(&flag, &format!("`migrate {command} --convex-url`"));
        let help = Run::of(job.command(None, &[command, "--help"], &env)).success();
        check(&help, &format!("`migrate {command} --help`"));
        let shown = Run::of(job.command(None, &["--show-settings", command], &env)).success();
        check(&shown, &format!("`migrate --show-settings {command}`"));
        assert!(shown.stdout.contains("happy-animal-123.convex.cloud"), "{}", excerpt(&shown));
    }
    // `status` contacts nothing and shows no URL; `run` refuses the URL before exporting.
    check(&Run::of(job.command(None, &["status"], &env)).success(), "`migrate status`");
    let run = Run::of(job.command(None, &["run", "--database-url", db.url()], &env));
    run.fails_with(2, &["https://****@happy-animal-123.convex.cloud"]);
    check(&run, "`migrate run`");
}

/// An HTTP server that answers every request with `status` and a body echoing the request's
/// headers, the way a misconfigured proxy or a debugging endpoint does: as plain text, or
/// inside Convex's error shape (`json`). Returns its URL.
fn echoing_server(status: u16, json: bool) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            let (mut headers, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                headers.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let echo = format!("bad request; you sent:\n{headers}");
            let reply = if json {
                serde_json::json!({"code": "BadHeader", "message": echo}).to_string()
            } else {
                echo
            };
            let _ = reader.get_mut().write_all(
                format!(
                    "HTTP/1.1 {status} Nope\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                )
                .as_bytes(),
            );
        }
    });
    url
}

/// A server that echoes the request's `Authorization` header in its error body (a 401 page, a
/// proxy's 400, a gateway's 502) does not make migrate print the deploy key.
#[test]
fn an_error_body_echoing_the_deploy_key_is_shown_without_it() {
    let job = Job::new();
    let db = TestDb::with(FIXTURE);
    Run::of(job.command(None, &["export", "--database-url", db.url()], &[])).success();
    let convex_dir = job.convex_dir();
    Run::of(job.command(None, &["init", "--convex-dir", utf8(&convex_dir)], &[])).success();
    Run::of(job.command(None, &["transform"], &[])).success();

    for (status, json) in [(401, false), (403, true), (400, false), (400, true), (502, false)] {
        let url = echoing_server(status, json);
        let env =
            [("CONVEX_URL", url.as_str()), ("CONVEX_DEPLOY_KEY", KEY), ("MIGRATE_RETRIES", "0")];
        for command in ["import", "verify"] {
            let run = job.run(Logs::RustLog, &[command], &env, CONVEX_FAILURE);
            assert!(run.stderr.contains("you sent"), "{status}: {}", excerpt(&run));
        }
    }
}
