//! `migrate export` as a person or a CI script meets it: exit codes, messages on stderr, no
//! password ever shown, hostile names, files left after failures and interruptions.

use std::time::Duration;

use crate::support::{
    Conn, TestDb, ThrowawayCluster, Workdir, free_port, test_server_url, url_with_database,
    url_with_login, url_with_password, wait_until,
};

const SOURCE_FAILURE: i32 = 3;
const USAGE: i32 = 2;

#[test]
fn an_unreachable_server_is_a_source_failure_naming_the_endpoint() {
    let port = free_port();
    let url = format!("postgres://postgres:unreachable-s3cret@127.0.0.1:{port}/postgres");
    let work = Workdir::new();
    let run = work.export(&url, &[]);
    run.fails_with(
        SOURCE_FAILURE,
        &[
            &format!("error: cannot connect to PostgreSQL at `127.0.0.1:{port}`"),
            "hint: check the host",
        ],
    );
    run.never_shows("unreachable-s3cret");
    assert!(!work.manifest_path().exists());
}

#[test]
fn a_wrong_password_is_a_refused_login_and_the_right_one_works() {
    // GIVEN a server of this test's own that checks passwords
    let cluster = ThrowawayCluster::start_with_password("right-s3cret");
    let work = Workdir::new();

    // WHEN the password is wrong THEN the login is refused, and neither password is shown
    let run = work.export(&cluster.url("wrong-s3cret"), &[]);
    run.fails_with(
        SOURCE_FAILURE,
        &[
            "refused the login of user `postgres`",
            &format!("127.0.0.1:{}", cluster.port),
            "hint: check the user (from --database-url) and the password (from --database-url)",
        ],
    );
    run.never_shows("wrong-s3cret");
    run.never_shows("right-s3cret");

    // WHEN the password is right THEN the same command succeeds: the refusal was the password's
    // (given a table to export: an export that finds none is an error)
    Conn::connect_or_fail(&cluster.url("right-s3cret")).execute("create table t (id int)");
    let run = work.export(&cluster.url("right-s3cret"), &[]).success();
    run.never_shows("right-s3cret");
}

#[test]
fn a_missing_database_is_a_source_failure_naming_it() {
    let database = format!("migrate_test_absent_{}", std::process::id());
    let server = Conn::connect_or_fail(&test_server_url());
    let exists =
        server.count(&format!("select count(*) from pg_database where datname = '{database}'"));
    assert_eq!(exists, 0);
    let url = url_with_password(&url_with_database(&test_server_url(), &database), "db-s3cret");
    let run = Workdir::new().export(&url, &[]);
    run.fails_with(SOURCE_FAILURE, &[&format!("error: database `{database}` does not exist")]);
    run.never_shows("db-s3cret");
}

#[test]
fn a_missing_table_is_a_usage_error_with_a_suggestion() {
    let db = TestDb::with("create table users (id int primary key); create table orders (id int);");
    let url = url_with_password(db.url(), "table-s3cret");
    let work = Workdir::new();
    let run = work.export(&url, &["--tables", "usres"]);
    run.fails_with(
        USAGE,
        &[
            "error: table `usres` does not exist in schema `public`",
            "hint: did you mean `public.users`?",
        ],
    );
    run.never_shows("table-s3cret");
    assert!(work.raw_files().is_empty(), "nothing exported: {:?}", work.raw_files());
}

#[test]
fn a_table_the_user_cannot_select_is_a_source_failure_naming_it() {
    // GIVEN a table owned by the superuser and a role with no privilege on it
    let mut db = TestDb::with("create table secret (id int); insert into secret values (1);");
    let role = db.create_role("reader");

    // WHEN that role exports
    let run = Workdir::new().export(&url_with_login(db.url(), &role, "role-s3cret"), &[]);

    // THEN it fails naming the table and how to fix it
    run.fails_with(
        SOURCE_FAILURE,
        &["error: permission denied to read `public.secret`", "hint: grant SELECT"],
    );
    run.never_shows("role-s3cret");
}

#[test]
fn row_level_security_that_would_hide_rows_is_a_source_failure_naming_the_table() {
    // GIVEN a table with row-level security and a policy, readable by a role that is not its owner
    let mut db = TestDb::with(
        "create table notes (owner text not null, body text);
         insert into notes values ('alice', 'a'), ('bob', 'b');
         alter table notes enable row level security;
         create policy own_notes on notes using (owner = current_user);",
    );
    let role = db.create_role("rls");
    db.execute(&format!("grant select on notes to \"{role}\""));

    // WHEN that role exports
    let work = Workdir::new();
    let run = work.export(&url_with_login(db.url(), &role, "rls-s3cret"), &[]);

    // THEN it fails instead of silently exporting the rows the policy lets through
    run.fails_with(
        SOURCE_FAILURE,
        &[
            "error: row-level security would hide rows of `public.notes` from this user",
            "BYPASSRLS",
        ],
    );
    run.never_shows("rls-s3cret");
    assert!(!work.manifest_path().exists());
    assert!(!work.raw_file("public.notes").exists());
}

#[test]
fn the_supabase_transaction_pooler_is_refused_before_any_connection() {
    let url =
        "postgres://postgres.abc:pooler-s3cret@aws-0-eu-west-1.pooler.supabase.com:6543/postgres";
    let work = Workdir::new();
    let run = work.export(url, &[]);
    run.fails_with(
        USAGE,
        &[
            "error: `postgres://postgres.abc@aws-0-eu-west-1.pooler.supabase.com:6543/postgres` is a \
             Supabase pooler in transaction mode",
            "session pooler on port 5432",
        ],
    );
    // A connection attempt would have failed (no such network here) with exit 3 and this message.
    assert!(!run.stderr.contains("cannot connect"), "{run}");
    assert!(!work.data_dir().exists(), "nothing was touched");
    run.never_shows("pooler-s3cret");
}

#[test]
fn a_malformed_url_is_a_usage_error_that_does_not_echo_it() {
    let run = Workdir::new().export("postgres://alice:malformed-s3cret@host:notaport/db", &[]);
    run.fails_with(
        USAGE,
        &["error: the database URL is not valid", "postgres://USER:PASSWORD@HOST:PORT/DATABASE"],
    );
    run.never_shows("malformed-s3cret");
}

#[test]
fn later_stages_without_their_input_say_what_to_run_first() {
    let url = "postgres://postgres:stage-s3cret@127.0.0.1:1/postgres";
    let work = Workdir::new();
    for command in ["import", "verify"] {
        let run = work.run(&[command]);
        run.fails_with(USAGE, &["error: no transformed data", "run `migrate transform` first"]);
    }
    // `run` checks its Convex settings before it spends time exporting.
    let run = work.run(&["run", "--database-url", url]);
    run.fails_with(USAGE, &["no Convex deployment URL", "CONVEX_URL"]);
    run.never_shows("stage-s3cret");
    let run = work.run(&["status"]).success();
    assert!(run.stdout.contains("export:    none yet (`migrate export`)"), "{run}");
}

#[test]
fn export_help_explains_the_snapshot_and_jobs() {
    let run = Workdir::new().run(&["export", "--help"]).success();
    assert!(run.stdout.contains("snapshot"), "{run}");
    assert!(run.stdout.contains("--jobs"), "{run}");
}

#[test]
fn a_table_named_like_sql_injection_is_exported_as_data() {
    // GIVEN a table whose name ends one statement and starts another, and the table it names
    let db = TestDb::with(
        r#"create table "x""; drop table y; --" (id int, "a""b" text);
           insert into "x""; drop table y; --" values (1, 'one');
           create table y (id int);"#,
    );
    let stem = "public.x%22%3B%20drop%20table%20y%3B%20--";
    let expected = "{\"id\":1,\"a\\\"b\":\"one\"}\n";

    for selection in [&[][..], &["--tables", r#""x""; drop table y; --""#][..]] {
        // WHEN everything, or that table by its quoted name, is exported
        let work = Workdir::new();
        work.export(db.url(), selection).success();

        // THEN its rows are in a file with an encoded name, and `y` still exists
        assert_eq!(std::fs::read_to_string(work.raw_file(stem)).unwrap(), expected);
        assert_eq!(db.conn().count("select count(*) from pg_tables where tablename = 'y'"), 1);
        let manifest = work.manifest();
        let names: Vec<&str> = manifest["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&r#"x"; drop table y; --"#), "{names:?}");
    }
}

#[test]
fn a_dropped_table_leaves_no_stale_file_after_the_next_export() {
    // GIVEN an export of two tables
    let db = TestDb::with(
        "create table kept (id int); insert into kept values (1);
         create table dropped (id int); insert into dropped values (2);",
    );
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    assert_eq!(work.raw_files(), ["public.dropped.jsonl", "public.kept.jsonl"]);

    // WHEN one table is dropped and the export runs again
    db.execute("drop table dropped");
    work.export(db.url(), &[]).success();

    // THEN its file is gone and the manifest lists only the other
    assert_eq!(work.raw_files(), ["public.kept.jsonl"]);
    let manifest = work.manifest();
    let files: Vec<&str> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["raw/public.kept.jsonl"]);
}

#[test]
fn a_dotenv_file_in_the_working_directory_supplies_the_database_url() {
    let db = TestDb::with("create table from_dotenv (id int); insert into from_dotenv values (7);");
    let work = Workdir::new();
    std::fs::write(work.path().join(".env"), format!("DATABASE_URL={}\n", db.url())).unwrap();
    let run = work.run(&["export", "--data-dir", "data"]).success();
    assert!(run.stdout.contains("public.from_dotenv"), "{run}");
    assert_eq!(
        std::fs::read_to_string(work.raw_file("public.from_dotenv")).unwrap(),
        "{\"id\":7}\n"
    );
}

#[cfg(unix)]
#[test]
fn an_export_killed_mid_table_leaves_nothing_that_looks_complete() {
    use std::os::unix::process::ExitStatusExt;

    // GIVEN a large table, and a manifest from an earlier export of a small one
    let db = TestDb::with(
        "create table small (id int); insert into small values (1);
         create table big as
           select g as id, repeat('x', 200) || g as filler from generate_series(1, 300000) g;",
    );
    let work = Workdir::new();
    work.export(db.url(), &["--tables", "small"]).success();
    assert!(work.manifest_path().exists());

    // WHEN an export of everything is killed while it writes the large table
    let mut child = work.export_command(db.url(), &[]).spawn().expect("migrate starts");
    let partial = work.raw_dir().join(".public.big.jsonl.partial");
    wait_until("the large table's partial file has data", Duration::from_secs(60), || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0)
    });
    child.kill().expect("SIGKILL is delivered");
    let status = child.wait().expect("the killed export is reaped");
    assert_eq!(status.signal(), Some(9), "the export ended before it was killed: {status}");

    // THEN there is no manifest and no file under the large table's final name
    assert!(!work.manifest_path().exists(), "a manifest survived an unfinished export");
    assert!(!work.raw_file("public.big").exists(), "an unfinished file has its final name");

    // AND the next export succeeds, sweeps the leftover and writes every row
    work.export(db.url(), &[]).success();
    assert_eq!(work.raw_files(), ["public.big.jsonl", "public.small.jsonl"]);
    let manifest = work.manifest();
    let big = manifest["tables"].as_array().unwrap().iter().find(|t| t["name"] == "big").unwrap();
    assert_eq!(big["rows"], 300_000);
}

#[test]
fn the_text_summary_lists_each_table_and_the_manifest() {
    let db = TestDb::with(
        "create table fruits (id int primary key, name text);
         insert into fruits values (1, 'apple'), (2, 'pear'), (3, 'plum');
         create table empty_one (id int);",
    );
    let work = Workdir::new();
    let run = work.run(&["export", "--database-url", db.url(), "--data-dir", "data"]).success();
    assert_eq!(run.stderr, "", "nothing on stderr by default");
    insta::with_settings!({filters => vec![
        (r"\d+\.\d\d s", "[time]"),
        (r"\[time\] +[\d,]+", "[time] [rows/s]"),
        (r"snapshot of \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", "snapshot of [taken_at]"),
        (r" {2,}", " "),
        (r"(?m)^ | $", ""),
    ]}, {
        insta::assert_snapshot!(run.stdout);
    });
}

#[test]
fn an_export_that_finds_no_tables_is_a_usage_error_naming_the_schemas() {
    // GIVEN a database whose tables are all in schema `app`, and an earlier export of it
    let db = TestDb::with(
        "create schema app; create table app.items (id int primary key);
         insert into app.items values (1);",
    );
    let work = Workdir::new();
    work.export(db.url(), &["--schemas", "app"]).success();

    // WHEN export (and init, told to read the database) look in `public` only
    // THEN each fails with exit 2, naming the schema searched and the one to add
    let export = work.export(db.url(), &[]);
    let init = work.run(&["init", "--database-url", db.url(), "--schemas", "public"]);
    for run in [export, init] {
        run.fails_with(
            USAGE,
            &["error: no tables found in schema `public`", "hint: tables are in schema `app`"],
        );
        assert!(run.stderr.contains("--schemas public,app"), "{run}");
    }
    // … and the earlier export is left as it was
    assert_eq!(work.manifest()["tables"].as_array().map(Vec::len), Some(1));

    // WHEN the database holds no table at all THEN the hint points at the database name
    let empty = TestDb::with("select 1;");
    let run = Workdir::new().export(empty.url(), &["--schemas", "public,auth"]);
    run.fails_with(
        USAGE,
        &["error: no tables found in schemas `public`, `auth`", "check the database name"],
    );
}
