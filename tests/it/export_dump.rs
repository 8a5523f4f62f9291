//! `--from-dump FILE`: dumps made by the installed pg_dump in every format, restored by migrate
//! into a throwaway cluster and exported; the raw files must be byte for byte what a live
//! export of the source database gives. Supabase-like roles, grants and extensions, dumps that
//! cannot give every row, and `migrate run --from-dump` through to verify in convex-test.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::convex_server::ConvexTestServer;
use crate::support::{Run, TestDb, Workdir, utf8};

const FIXTURE: &str = include_str!("../fixtures/all_types.sql");

/// The golden fixture (every raw type, a partitioned table, a foreign-key cycle between
/// authors and books) and a Supabase-like `auth` schema owned by, and granted to, roles that
/// exist only on the source server.
fn source_database() -> (TestDb, Vec<String>) {
    let mut db = TestDb::with(FIXTURE);
    let anon = db.create_role("anon");
    let authenticated = db.create_role("authenticated");
    db.execute(&format!(
        r#"create schema auth;
        create table auth.users (id uuid primary key, email text, raw_app_meta_data jsonb);
        insert into auth.users values
          ('00000000-0000-0000-0000-000000000001', 'a@x', '{{"provider": "email"}}'),
          ('00000000-0000-0000-0000-000000000002', null, null);
        alter table auth.users owner to "{authenticated}";
        grant usage on schema auth to "{anon}", "{authenticated}";
        grant select on public.all_types to "{anon}";
        alter table public.books enable row level security;
        create policy readable on public.books for select to "{anon}" using (true);"#
    ));
    (db, vec![anon, authenticated])
}

/// Runs the installed pg_dump on `url` with `args`, writing to `out`.
fn pg_dump(url: &str, args: &[&str], out: &Path) {
    let status = Command::new("pg_dump")
        .args(args)
        .arg("-f")
        .arg(out)
        .arg(url)
        .status()
        .expect("pg_dump runs (install the PostgreSQL client)");
    assert!(status.success(), "pg_dump {args:?} failed");
}

fn file_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn without_estimates(manifest: &Value) -> Value {
    let mut catalog = manifest["catalog"].clone();
    for table in catalog["tables"].as_array_mut().unwrap() {
        table.as_object_mut().unwrap().remove("estimated_rows");
    }
    catalog
}

fn export_from_dump(work: &Workdir, dump: &Path, extra: &[&str]) -> Run {
    let data_dir = work.data_dir();
    let mut args = vec!["--format", "json", "--data-dir", utf8(&data_dir), "export"];
    args.extend(["--from-dump", utf8(dump)]);
    args.extend_from_slice(extra);
    work.run(&args)
}

#[test]
fn a_dump_in_every_format_exports_byte_for_byte_what_the_live_database_gives() {
    // GIVEN a database with every raw type, a partitioned table, a foreign-key cycle and
    // Supabase-like roles and grants, exported live
    let (db, roles) = source_database();
    let live = Workdir::new();
    live.export(db.url(), &["--schemas", "public,auth"]).success();
    let live_manifest = live.manifest();
    let live_raw = file_bytes(&live.raw_dir());
    assert!(live_raw.len() > 10, "{live_raw:?}");

    // AND dumps of it in each of pg_dump's formats
    let dumps = tempfile::tempdir().unwrap();
    let formats: [(&str, &[&str], &str); 5] = [
        ("db.sql", &["-Fp"], "plain"),
        ("db.sql.gz", &["-Fp", "-Z", "6"], "plaingzip"),
        ("db.dump", &["-Fc"], "custom"),
        ("db.dir", &["-Fd"], "directory"),
        ("db.tar", &["-Ft"], "tar"),
    ];
    for (name, args, format) in formats {
        let dump = dumps.path().join(name);
        pg_dump(db.url(), args, &dump);

        // WHEN migrate exports from the dump
        let work = Workdir::new();
        let run = export_from_dump(&work, &dump, &["--schemas", "public,auth"]).success();

        // THEN the raw files are the live export's, byte for byte
        let raw = file_bytes(&work.raw_dir());
        let names: Vec<&String> = raw.iter().map(|(n, _)| n).collect();
        let live_names: Vec<&String> = live_raw.iter().map(|(n, _)| n).collect();
        assert_eq!(names, live_names, "{format}");
        for ((file, bytes), (_, live_bytes)) in raw.iter().zip(&live_raw) {
            assert!(bytes == live_bytes, "{format}: raw/{file} differs from the live export");
        }
        // AND the manifest differs only in its source: the dump, not a server
        let manifest = work.manifest();
        assert_eq!(manifest["tables"], live_manifest["tables"], "{format}");
        // (estimated_rows are the planner's statistics, which a restore does not carry)
        assert_eq!(without_estimates(&manifest), without_estimates(&live_manifest), "{format}");
        assert_eq!(manifest["schemas"], live_manifest["schemas"], "{format}");
        let source = &manifest["source"]["dump"];
        assert_eq!(source["file"], name, "{manifest}");
        assert_eq!(source["format"], format, "{manifest}");
        assert!(source["checksum"].as_str().unwrap().starts_with("blake3:"), "{manifest}");
        assert!(source["bytes"].as_u64().unwrap() > 0, "{manifest}");
        assert!(manifest["source"].get("url").is_none(), "{manifest}");

        // AND the roles that exist only on the source server were created for the restore,
        // so its owners, grants and policy applied: nothing was skipped
        let report: Value = serde_json::from_str(&run.stdout).expect("one JSON report");
        let created: Vec<&str> = report["restore"]["roles_created"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        for role in &roles {
            assert!(created.contains(&role.as_str()), "{format}: {role} not created: {run}");
        }
        assert_eq!(report["restore"]["skipped"], serde_json::json!([]), "{format}: {run}");
        assert_eq!(
            report["rows"],
            live_manifest["tables"]
                .as_array()
                .map(|t| { t.iter().map(|t| t["rows"].as_u64().unwrap()).sum::<u64>() })
                .unwrap(),
            "{format}"
        );
    }
}

/// A plain dump in the shape of a Supabase backup: extensions, schemas and roles that exist
/// only there, around ordinary tables.
const SUPABASE_LIKE: &str = r#"-- PostgreSQL database dump
-- Dumped from database version 15.8
-- Dumped by pg_dump version 15.8
SET statement_timeout = 0;
CREATE SCHEMA auth;
ALTER SCHEMA auth OWNER TO supabase_admin;
CREATE SCHEMA pgsodium;
CREATE EXTENSION IF NOT EXISTS pgsodium WITH SCHEMA pgsodium;
CREATE EXTENSION IF NOT EXISTS pg_graphql WITH SCHEMA graphql;
CREATE TABLE auth.users (
    id uuid NOT NULL,
    email character varying(255)
);
ALTER TABLE auth.users OWNER TO supabase_auth_admin;
CREATE TABLE public.profiles (
    id uuid NOT NULL,
    username text
);
ALTER TABLE public.profiles OWNER TO postgres;
CREATE FUNCTION public.secret() RETURNS text LANGUAGE sql AS $$ SELECT pgsodium.crypto_aead_det_noncegen()::text $$;
COPY auth.users (id, email) FROM stdin;
00000000-0000-0000-0000-000000000001	a@example.com
00000000-0000-0000-0000-000000000002	\N
\.
COPY public.profiles (id, username) FROM stdin;
00000000-0000-0000-0000-000000000001	ada
\.
ALTER TABLE ONLY auth.users ADD CONSTRAINT users_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.profiles ADD CONSTRAINT profiles_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.profiles
    ADD CONSTRAINT profiles_id_fkey FOREIGN KEY (id) REFERENCES auth.users(id) ON DELETE CASCADE;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT ALL ON TABLE public.profiles TO anon;
GRANT ALL ON TABLE public.profiles TO authenticated;
"#;

#[test]
fn a_restore_starts_from_a_cached_template_and_one_that_does_not_start_is_made_again() {
    // GIVEN a dump, and a cache directory of its own
    let dir = tempfile::tempdir().unwrap();
    let dump = write(dir.path(), "backup.sql", SUPABASE_LIKE);
    let cache = tempfile::tempdir().unwrap();
    let work = Workdir::new();
    let data_dir = work.data_dir();
    let export = || {
        let mut command = work.command(&[
            "-v",
            "--data-dir",
            utf8(&data_dir),
            "export",
            "--from-dump",
            utf8(&dump),
            "--schemas",
            "public,auth",
        ]);
        command.env("MIGRATE_CACHE_DIR", cache.path());
        let run = Run::of(command).success();
        let users = std::fs::read_to_string(work.raw_file("auth.users")).unwrap();
        assert_eq!(users.lines().count(), 2, "{run}");
        run
    };
    let template = || {
        let found: Vec<PathBuf> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        assert_eq!(found.len(), 1, "one template and no partial copy: {found:?}");
        found.into_iter().next().unwrap()
    };

    // WHEN it is exported for the first time, the cluster comes from initdb and is kept
    let run = export();
    assert!(run.stderr.contains("from_template=false"), "{run}");
    let template = template();
    assert!(template.join("PG_VERSION").is_file(), "{}", template.display());
    // (as initdb left it: no restore's configuration in it)
    let hba = std::fs::read_to_string(template.join("pg_hba.conf")).unwrap();
    assert_ne!(hba, "local all all trust\n");

    // WHEN exported again, it starts from the template, with the same rows
    let first = std::fs::read(work.raw_file("auth.users")).unwrap();
    let run = export();
    assert!(run.stderr.contains("from_template=true"), "{run}");
    assert_eq!(std::fs::read(work.raw_file("auth.users")).unwrap(), first);

    // WHEN the template is broken so that no server starts from it
    std::fs::write(template.join("postgresql.conf"), "not a setting at all\n").unwrap();
    let run = export();

    // THEN the export still succeeds from a new initdb, which replaced the template
    assert!(run.stderr.contains("did not start a server"), "{run}");
    assert!(run.stderr.contains("from_template=false"), "{run}");
    assert_eq!(std::fs::read(work.raw_file("auth.users")).unwrap(), first);
    let conf = std::fs::read_to_string(template.join("postgresql.conf")).unwrap();
    assert!(!conf.contains("not a setting"), "the broken template was replaced");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_supabase_like_backup_restores_past_what_exists_only_on_supabase_and_keeps_every_row() {
    // GIVEN a Supabase-like plain backup: its roles, and extensions no other server has
    let dir = tempfile::tempdir().unwrap();
    let dump = write(dir.path(), "backup.sql", SUPABASE_LIKE);

    // WHEN it is exported
    let work = Workdir::new();
    let run = export_from_dump(&work, &dump, &["--schemas", "public,auth"]).success();

    // THEN the roles were created, what needs the missing extensions was skipped and said,
    // and every row arrived
    let report: Value = serde_json::from_str(&run.stdout).expect("one JSON report");
    let restore = &report["restore"];
    for role in ["anon", "authenticated", "service_role", "supabase_admin", "supabase_auth_admin"] {
        assert!(
            restore["roles_created"].as_array().unwrap().iter().any(|r| r == role),
            "{role}: {run}"
        );
    }
    let skipped = restore["skipped"].to_string();
    assert!(skipped.contains("pgsodium"), "{run}");
    assert!(skipped.contains("pg_graphql"), "{run}");
    assert!(skipped.contains("CREATE FUNCTION public.secret()"), "{run}");
    assert_eq!(report["rows"], 3, "{run}");
    let users = std::fs::read_to_string(work.raw_file("auth.users")).unwrap();
    assert_eq!(users.lines().count(), 2, "{users}");

    // AND in text, the summary lists them
    let data_dir = work.data_dir();
    let run =
        work.run(&["--data-dir", utf8(&data_dir), "export", "--from-dump", utf8(&dump)]).success();
    assert!(run.stdout.contains("skipped 3 statements that failed"), "{run}");
    assert!(run.stdout.contains("created 5 roles the dump names"), "{run}");
}

#[test]
fn a_table_whose_rows_cannot_load_stops_the_export_and_is_named() {
    // GIVEN a backup whose table needs an extension this machine lacks, and carries rows
    let dir = tempfile::tempdir().unwrap();
    let text = SUPABASE_LIKE.replace(
        "    username text\n",
        "    username text,\n    nonce bytea DEFAULT pgsodium.crypto_aead_det_noncegen()\n",
    );
    let dump = write(dir.path(), "backup.sql", &text);

    // WHEN it is exported
    let work = Workdir::new();
    let run = export_from_dump(&work, &dump, &["--schemas", "public,auth"]);

    // THEN it fails as a source failure naming the table and its lost rows; no manifest
    run.fails_with(3, &["public.profiles", "0 of 1 rows loaded"]);
    assert!(!work.manifest_path().exists());
}

#[test]
fn a_data_only_dump_and_a_dump_from_a_newer_server_say_what_is_needed() {
    let (db, _roles) = source_database();
    let dir = tempfile::tempdir().unwrap();
    let work = Workdir::new();

    // GIVEN a data-only dump: it is refused, saying so
    let data_only = dir.path().join("data.dump");
    pg_dump(db.url(), &["-Fc", "--data-only"], &data_only);
    export_from_dump(&work, &data_only, &[]).fails_with(2, &["data-only", "--data-only"]);

    // GIVEN a dump from a server newer than the binaries here: the version to install is named
    let newer =
        write(dir.path(), "newer.sql", &SUPABASE_LIKE.replace("version 15.8", "version 99.1"));
    export_from_dump(&work, &newer, &[])
        .fails_with(2, &["PostgreSQL 99.1", "apt install postgresql-99"]);

    // GIVEN a dump of only one table that references another: what is missing is said
    let partial = dir.path().join("books.sql");
    pg_dump(db.url(), &["-Fp", "-t", "public.books"], &partial);
    let run = export_from_dump(&work, &partial, &[]).success();
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let missing = report["restore"]["missing"].to_string();
    assert!(missing.contains("public.authors"), "{run}");

    // GIVEN a file that is no dump
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, [0u8, 159, 146, 150, 0, 1]).unwrap();
    export_from_dump(&work, &junk, &[]).fails_with(2, &["is not a pg_dump file"]);
}

const SMALL: &str = "
create table teams (id int primary key, name text not null, owner_id int not null);
create table members (
  id int primary key,
  team_id int not null references teams(id) deferrable initially deferred,
  email text not null
);
alter table teams add constraint teams_owner_fk
  foreign key (owner_id) references members(id) deferrable initially deferred;
begin;
insert into teams values (1, 'red', 1), (2, 'blue', 3);
insert into members values (1, 1, 'a@x'), (2, 1, 'b@x'), (3, 2, 'c@x');
commit;
";

#[test]
fn run_from_a_dump_goes_through_to_verify_in_convex() {
    // GIVEN a custom-format dump of a database with a NOT NULL foreign-key cycle, and a plan
    // and Convex app made from the dump by `init --from-dump`
    let db = TestDb::with(SMALL);
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("app.dump");
    pg_dump(db.url(), &["-Fc"], &dump);
    drop(db);
    let work = Workdir::new();
    let convex_dir = work.path().join("convex");
    Run::of(work.dirs_command(&[
        "init",
        "--from-dump",
        utf8(&dump),
        "--convex-dir",
        utf8(&convex_dir),
    ]))
    .success();
    let server = ConvexTestServer::for_convex_dir(&convex_dir);

    // WHEN `migrate run --from-dump` runs, the source database long gone
    let mut command = work.dirs_command(&[
        "--format",
        "json",
        "run",
        "--from-dump",
        utf8(&dump),
        "--convex-dir",
        utf8(&convex_dir),
    ]);
    command.env("CONVEX_URL", server.url()).env("CONVEX_DEPLOY_KEY", server.admin_key());
    let run = Run::of(command).success();

    // THEN it restored, exported, transformed, imported and verified Convex identical
    let lines: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let stages: Vec<_> = lines.iter().map(|l| l["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["restore", "export", "transform", "import", "verify"], "{run}");
    assert_eq!(lines[3]["report"]["sent"], 5, "{run}");
    assert_eq!(lines[4]["report"]["identical"], true, "{run}");
}
