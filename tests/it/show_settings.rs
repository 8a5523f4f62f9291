//! `--show-settings` for every command: each setting the command uses, its value and where it
//! came from (flag, variable, `.env` file, default, libpq's and the Convex CLI's rules), and
//! never a secret.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{Run, Workdir};

const PASSWORD: &str = "shown-pw-Qx81";
const SECRET: &str = "shown-key-Vb27";

const GENERAL: &[&str] = &["data_dir", "format", "log_level"];
const POSTGRES: &[&str] = &[
    "connection",
    "host",
    "port",
    "user",
    "dbname",
    "password",
    "sslmode",
    "sslrootcert",
    "sslcert",
];
const CONVEX: &[&str] = &["url", "key", "timeout", "retries"];

/// `migrate --format json --show-settings <args>` in `work`, with the Convex key and two
/// settings in the environment (the database URL is in `work`'s `.env`).
fn shown(work: &Workdir, args: &[&str]) -> (Run, Value) {
    let mut all = vec!["--format", "json", "--show-settings"];
    all.extend_from_slice(args);
    let mut command = work.command(&all);
    command.envs([
        ("CONVEX_DEPLOY_KEY", format!("prod:happy-animal-123|{SECRET}").as_str()),
        ("PGSSLMODE", "require"),
        ("MIGRATE_CONCURRENCY", "4"),
    ]);
    let run = Run::of(command);
    assert_eq!(run.code, Some(0), "{run}");
    run.never_shows(PASSWORD);
    run.never_shows(SECRET);
    let json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("JSON ({e})\n{run}"));
    (run, json)
}

/// A group's name and the settings it holds beyond the ones every such group has.
type Group<'a> = (&'a str, &'a [&'a str]);

fn names(group: &Value) -> BTreeSet<String> {
    group.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn set(names: &[&[&str]]) -> BTreeSet<String> {
    names.iter().flat_map(|n| n.iter().map(|s| s.to_string())).collect()
}

#[test]
fn every_command_shows_every_setting_it_uses_and_where_it_came_from() {
    let work = Workdir::new();
    std::fs::write(
        work.path().join(".env"),
        format!("DATABASE_URL=postgres://alice:{PASSWORD}@db.example.com:6432/app\n"),
    )
    .unwrap();

    let cases: &[(&[&str], &[Group])] = &[
        (
            &["export", "--jobs", "2"],
            &[
                ("general", &["progress"]),
                ("postgres", &[]),
                ("export", &["schemas", "tables", "jobs", "from_dump"]),
            ],
        ),
        (
            &["init"],
            &[
                ("general", &["plan_dir"]),
                ("postgres", &[]),
                ("init", &["catalog", "schemas", "tables", "convex_dir", "force", "after_import"]),
            ],
        ),
        (
            &["transform", "--max-rejected", "3"],
            &[
                ("general", &["plan_dir", "progress"]),
                ("transform", &["dry_run", "sample", "max_rejected", "convex_dir"]),
            ],
        ),
        (
            &["import", "--batch-size", "50"],
            &[
                ("general", &["plan_dir", "progress"]),
                ("convex", &[]),
                ("import", &["concurrency", "batch_size", "batch_bytes", "force", "dry_run"]),
            ],
        ),
        (
            &["verify", "--convex-url", "https://happy-animal-123.convex.cloud"],
            &[
                ("general", &["plan_dir", "progress"]),
                ("convex", &[]),
                ("verify", &["show", "accept_rejected"]),
            ],
        ),
        (
            &["run", "--batch-size", "50", "--timeout", "9"],
            &[
                ("general", &["plan_dir", "progress"]),
                ("postgres", &[]),
                ("export", &["schemas", "tables", "jobs", "from_dump"]),
                ("transform", &["max_rejected", "convex_dir"]),
                ("convex", &[]),
                (
                    "import",
                    &["concurrency", "batch_size", "batch_bytes", "force", "dry_run", "sync"],
                ),
                ("verify", &["show", "accept_rejected"]),
            ],
        ),
        (
            &["sync", "--no-deletes"],
            &[
                ("general", &["plan_dir", "progress"]),
                ("convex", &[]),
                ("sync", &["concurrency", "batch_size", "batch_bytes", "no_deletes", "dry_run"]),
            ],
        ),
        (&["status"], &[("general", &["plan_dir"]), ("status", &["convex_dir", "ledger"])]),
        (
            &["status", "--ledger", "--convex-url", "https://happy-animal-123.convex.cloud"],
            &[("general", &["plan_dir"]), ("status", &["convex_dir", "ledger"]), ("convex", &[])],
        ),
        (
            &["rollback", "--dry-run", "--convex-url", "https://happy-animal-123.convex.cloud"],
            &[
                ("general", &["plan_dir", "progress"]),
                ("convex", &[]),
                ("rollback", &["batch_size", "force", "dry_run"]),
            ],
        ),
        (
            &["finalize", "--convex-url", "https://happy-animal-123.convex.cloud"],
            &[
                ("general", &["plan_dir", "progress"]),
                ("convex", &[]),
                ("finalize", &["batch_size", "convex_dir", "force"]),
            ],
        ),
    ];
    for (args, groups) in cases {
        let (run, json) = shown(&work, args);
        let what = format!("`migrate --show-settings {}`", args.join(" "));
        assert_eq!(json["command"], args[0], "{what}\n{run}");
        // Exactly the groups and settings the command uses, each with a source.
        let mut expected_groups: BTreeSet<String> =
            groups.iter().map(|(g, _)| g.to_string()).collect();
        expected_groups.insert("command".into());
        assert_eq!(names(&json), expected_groups, "{what}\n{run}");
        for (group, extra) in *groups {
            let base: &[&str] = match *group {
                "general" => GENERAL,
                "postgres" => POSTGRES,
                "convex" => CONVEX,
                _ => &[],
            };
            assert_eq!(names(&json[group]), set(&[base, extra]), "{what}: {group}\n{run}");
            for (name, setting) in json[group].as_object().unwrap() {
                let from = setting["from"].as_str().unwrap_or_default();
                assert!(!from.is_empty(), "{what}: {group}.{name} has no source\n{run}");
            }
        }
        assert_eq!(json["general"]["format"], json!({"value": "json", "from": "--format"}));
        assert_eq!(json["general"]["data_dir"], json!({"value": "data", "from": "default"}));

        // Where each came from: a .env file, libpq's variables, flags, MIGRATE_* variables.
        if json.get("postgres").is_some() {
            let postgres = &json["postgres"];
            assert_eq!(
                postgres["host"],
                json!({"value": "db.example.com", "from": "DATABASE_URL (from .env)"})
            );
            assert_eq!(
                postgres["password"],
                json!({"value": "set", "from": "DATABASE_URL (from .env)"})
            );
            assert_eq!(postgres["sslmode"], json!({"value": "require", "from": "PGSSLMODE"}));
            assert_eq!(postgres["connection"]["value"], "postgres://alice@db.example.com:6432/app");
        }
        if json.get("convex").is_some() {
            let convex = &json["convex"];
            assert_eq!(convex["url"]["value"], "https://happy-animal-123.convex.cloud", "{what}");
            assert_eq!(convex["key"], json!({"value": "****", "from": "CONVEX_DEPLOY_KEY"}));
            assert_eq!(convex["retries"], json!({"value": "8", "from": "default"}));
        }
        if let Some(import) = json.get("import") {
            assert_eq!(import["concurrency"], json!({"value": "4", "from": "MIGRATE_CONCURRENCY"}));
            assert_eq!(import["batch_size"], json!({"value": "50", "from": "--batch-size"}));
            assert_eq!(import["batch_bytes"]["from"], "default");
        }
    }

    let (_, json) = shown(&work, &["run", "--timeout", "9"]);
    assert_eq!(json["convex"]["timeout"], json!({"value": "9 s", "from": "--timeout"}));
    assert_eq!(json["convex"]["url"]["from"], "derived from CONVEX_DEPLOY_KEY");
    let (_, json) =
        shown(&work, &["verify", "--convex-url", "https://happy-animal-123.convex.cloud"]);
    assert_eq!(json["convex"]["url"]["from"], "--convex-url");
    let (_, json) = shown(&work, &["export", "--jobs", "2"]);
    assert_eq!(json["export"]["jobs"], json!({"value": "2", "from": "--jobs"}));
    assert_eq!(json["export"]["schemas"], json!({"value": "public", "from": "default"}));
    let (_, json) = shown(&work, &["transform", "--max-rejected", "3"]);
    assert_eq!(json["transform"]["max_rejected"], json!({"value": "3", "from": "--max-rejected"}));
}

#[test]
fn without_a_database_init_says_the_catalog_comes_from_the_last_export() {
    let work = Workdir::new();
    let run = Run::of(work.command(&["--format", "json", "--show-settings", "init"])).success();
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(json.get("postgres").is_none(), "{run}");
    let catalog = json["init"]["catalog"]["value"].as_str().unwrap();
    assert!(catalog.contains("last export"), "{run}");
    // A libpq variable naming the server makes it read the database when there is no export…
    let mut command = work.command(&["--format", "json", "--show-settings", "init"]);
    command.env("PGHOST", "db.example.com");
    let run = Run::of(command).success();
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let catalog = json["init"]["catalog"]["value"].as_str().unwrap();
    assert!(catalog.ends_with("else read from the database"), "{run}");
    assert_eq!(json["postgres"]["host"]["from"], "PGHOST", "{run}");
    // … and always when the command line names the schemas to read
    let mut command =
        work.command(&["--format", "json", "--show-settings", "init", "--schemas", "public"]);
    command.env("PGHOST", "db.example.com");
    let run = Run::of(command).success();
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["init"]["catalog"]["value"], "read from the database", "{run}");
}

#[test]
fn the_text_form_lists_each_setting_with_its_value_and_source() {
    let work = Workdir::new();
    let mut command = work.command(&["--show-settings", "status"]);
    command.env("MIGRATE_DATA_DIR", "elsewhere");
    let run = Run::of(command).success();
    assert!(run.stdout.starts_with("settings of `migrate status`"), "{run}");
    // Not the status report: nothing was run.
    assert!(!run.stdout.contains("none yet"), "{run}");
    let line = run.stdout.lines().find(|l| l.trim_start().starts_with("data_dir")).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words, ["data_dir", "elsewhere", "MIGRATE_DATA_DIR"], "{run}");
}

#[test]
fn targets_show_their_url_and_the_variable_their_key_comes_from_never_the_key() {
    // GIVEN two targets, one key set and one not
    let work = Workdir::new();
    let plan = work.path().join("plan");
    std::fs::create_dir_all(&plan).unwrap();
    std::fs::write(
        plan.join("targets.toml"),
        "[targets.acme]\nurl = \"https://happy-animal-123.convex.cloud\"\n\
         deploy_key_env = \"ACME_KEY\"\n\
         [targets.globex]\nurl = \"http://127.0.0.1:3210\"\ndeploy_key_env = \"GLOBEX_KEY\"\n",
    )
    .unwrap();
    let plan = plan.display().to_string();
    for command in ["import", "verify", "status"] {
        let mut run = work.command(&[
            "--format",
            "json",
            "--show-settings",
            "--plan-dir",
            &plan,
            command,
            "--all-targets",
        ]);
        run.env("ACME_KEY", format!("prod:happy-animal-123|{SECRET}")).env_remove("GLOBEX_KEY");
        let run = Run::of(run);
        assert_eq!(run.code, Some(0), "{run}");
        run.never_shows(SECRET);
        let json: Value = serde_json::from_str(&run.stdout).unwrap();
        let targets = &json["targets"];
        assert_eq!(targets["acme"]["value"], "https://happy-animal-123.convex.cloud", "{run}");
        assert!(targets["acme"]["from"].as_str().unwrap().ends_with("key from ACME_KEY (set)"));
        assert!(targets["globex"]["from"].as_str().unwrap().contains("GLOBEX_KEY (not set)"));
        assert_eq!(targets["parallel_targets"]["value"], "4", "{run}");
        assert!(json.get("convex").is_none(), "targets replace CONVEX_URL\n{run}");
    }
}
