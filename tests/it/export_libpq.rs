//! The connection as psql makes it (libpq's conventions): the PG* variables alone, without a
//! URL, against the real test server; the variables filling what a URL leaves out; the password
//! from `~/.pgpass` or `PGPASSFILE`, ignored with a warning when others may read the file.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use tokio_postgres::config::Host;

use crate::support::{
    Conn, Run, TestDb, ThrowawayCluster, Workdir, free_port, jsonl, test_server_url,
};

/// The test server as libpq variables: `PGHOST`, `PGPORT`, `PGUSER` (and `PGPASSWORD` when its
/// URL holds one), with `PGDATABASE` naming `database`.
fn pg_variables(database: &str) -> Vec<(&'static str, String)> {
    let server: tokio_postgres::Config =
        test_server_url().parse().expect("MIGRATE_TEST_DATABASE_URL is a connection string");
    let host = match server.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "127.0.0.1".to_owned(),
    };
    let port = server.get_ports().first().copied().unwrap_or(5432);
    let mut vars = vec![
        ("PGHOST", host),
        ("PGPORT", port.to_string()),
        ("PGUSER", server.get_user().unwrap_or("postgres").to_owned()),
        ("PGDATABASE", database.to_owned()),
    ];
    if let Some(password) = server.get_password() {
        vars.push(("PGPASSWORD", String::from_utf8_lossy(password).into_owned()));
    }
    vars
}

fn with_env(mut command: Command, vars: &[(&str, String)]) -> Run {
    command.envs(vars.iter().map(|(name, value)| (name, value.as_str())));
    Run::of(command)
}

/// `migrate --format json --show-settings <command>`, parsed.
fn settings(work: &Workdir, command: &str, vars: &[(&str, String)]) -> serde_json::Value {
    let run = with_env(work.command(&["--format", "json", "--show-settings", command]), vars);
    assert_eq!(run.code, Some(0), "{run}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("JSON ({e})\n{run}"))
}

#[test]
fn export_connects_with_the_pg_variables_alone() {
    // GIVEN a database with a table, named by PGHOST, PGPORT, PGUSER and PGDATABASE only: no
    // --database-url, no DATABASE_URL
    let db = TestDb::with(
        "create table notes (id int primary key, body text);
         insert into notes values (1, 'one'), (2, 'two');",
    );
    let work = Workdir::new();
    let vars = pg_variables(db.name());

    // WHEN migrate export runs
    let run = with_env(work.command(&["export"]), &vars).success();

    // THEN it exported that database's table
    assert!(run.stdout.contains("public.notes"), "{run}");
    let rows = jsonl(&work.raw_file("public.notes"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(work.manifest()["tables"][0]["rows"], 2, "{}", work.manifest());

    // AND --show-settings says where each setting came from
    let shown = settings(&work, "export", &vars);
    let postgres = &shown["postgres"];
    assert_eq!(postgres["host"]["from"], "PGHOST", "{shown}");
    assert_eq!(postgres["port"]["from"], "PGPORT", "{shown}");
    assert_eq!(postgres["user"]["from"], "PGUSER", "{shown}");
    assert_eq!(postgres["dbname"], serde_json::json!({"value": db.name(), "from": "PGDATABASE"}));
    assert_eq!(postgres["connection"]["from"], "the PG* variables and libpq's defaults");
    assert_eq!(postgres["sslmode"], serde_json::json!({"value": "prefer", "from": "default"}));
}

#[test]
fn the_variables_fill_what_the_url_leaves_out_and_the_url_wins() {
    // GIVEN a database named by PGDATABASE, and a URL naming the server but no database
    let db = TestDb::with("create table t (id int primary key); insert into t values (1);");
    let work = Workdir::new();
    let vars = pg_variables(db.name());
    let server: tokio_postgres::Config = test_server_url().parse().unwrap();
    let host_port = match (server.get_hosts().first(), server.get_ports().first()) {
        (Some(Host::Tcp(host)), Some(port)) => format!("{host}:{port}"),
        _ => "127.0.0.1:5432".to_owned(),
    };
    let user = server.get_user().unwrap_or("postgres");
    let url = format!("postgres://{user}@{host_port}");

    // WHEN export runs with that URL THEN the database comes from PGDATABASE
    with_env(work.export_command(&url, &[]), &vars).success();
    assert_eq!(jsonl(&work.raw_file("public.t")).len(), 1);

    // AND what the URL names wins over the variables: PGHOST and PGPORT point nowhere
    let port = free_port().to_string();
    let mut nowhere = vars.clone();
    nowhere.retain(|(name, _)| !matches!(*name, "PGHOST" | "PGPORT"));
    nowhere.extend([("PGHOST", "127.0.0.1".to_owned()), ("PGPORT", port.clone())]);
    with_env(work.export_command(&url, &[]), &nowhere).success();

    // AND with no URL those variables are what it tries, and the hint names them
    let run = with_env(work.command(&["export"]), &nowhere);
    run.fails_with(
        3,
        &[
            &format!("cannot connect to PostgreSQL at `127.0.0.1:{port}`"),
            "hint: check the host (from PGHOST) and the port (from PGPORT)",
        ],
    );
}

#[test]
fn the_password_comes_from_pgpass_unless_others_may_read_it() {
    // GIVEN a server that checks passwords, with a password holding `:` and `\`, and a table
    const PASSWORD: &str = r"pgpass:s3cret\pw";
    let cluster = ThrowawayCluster::start_with_password(PASSWORD);
    Conn::connect_or_fail(&cluster.url(PASSWORD)).execute("create table t (id int)");
    let port = cluster.port.to_string();
    let vars = [
        ("PGHOST", "127.0.0.1".to_owned()),
        ("PGPORT", port.clone()),
        ("PGUSER", "postgres".to_owned()),
        ("PGDATABASE", "postgres".to_owned()),
    ];
    // AND a ~/.pgpass whose second line matches, `:` and `\` escaped, readable by its owner only
    let work = Workdir::new();
    let pgpass = work.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "# staging\nother-host:*:*:*:wrong\n127.0.0.1:{port}:*:postgres:pgpass\\:s3cret\\\\pw\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();

    // WHEN export runs with the variables alone THEN it logs in with the file's password
    let run = with_env(work.command(&["export"]), &vars).success();
    run.never_shows("s3cret");
    // AND with a URL that holds no password too
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    with_env(work.export_command(&url, &[]), &[]).success().never_shows("s3cret");
    // AND --show-settings says where the password came from, never what it is
    let shown = settings(&work, "export", &vars);
    assert_eq!(shown["postgres"]["password"]["value"], "from .pgpass", "{shown}");
    let from = shown["postgres"]["password"]["from"].as_str().unwrap();
    assert!(from.ends_with(".pgpass line 3"), "{shown}");
    assert!(!shown.to_string().contains("s3cret"), "{shown}");

    // WHEN others may read the file THEN it is ignored with a warning, as libpq does, and the
    // refused login says why no password was sent
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = with_env(work.command(&["export"]), &vars);
    run.fails_with(
        3,
        &[
            "refused the login of user `postgres`",
            "group or world access",
            "chmod 0600",
            "hint: check the user (from PGUSER) and no password was given",
        ],
    );
    assert!(run.stderr.contains("WARN"), "{run}");
    run.never_shows("s3cret");

    // AND PGPASSFILE names another file, read on the same terms
    let other = work.path().join("passwords");
    std::fs::write(&other, format!("*:{port}:postgres:postgres:pgpass\\:s3cret\\\\pw\n")).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut with_file = vars.to_vec();
    with_file.push(("PGPASSFILE", other.display().to_string()));
    with_env(work.command(&["export"]), &with_file).success().never_shows("s3cret");
}
