//! The plan directory in a real project: it may share `migrations/` with the SQL migrations of
//! sqlx, Prisma or Supabase, and a source table may have no key.

use std::path::Path;

use crate::support::{TestDb, Workdir, file_names, jsonl};

const USAGE: i32 = 2;

/// What sqlx, Prisma and Supabase keep in `migrations/`, written into `dir`.
fn sql_migrations(dir: &Path) {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("20240101000000_init.up.sql", "create table users (id bigint primary key);\n");
    write("20240101000000_init.down.sql", "drop table users;\n");
    write("migration_lock.toml", "provider = \"postgresql\"\n");
    write("20240102_add_posts/migration.sql", "create table posts (id bigint primary key);\n");
    write("README.md", "# migrations\n");
    write(".gitkeep", "");
}

#[test]
fn init_and_transform_work_in_a_plan_dir_holding_sql_migrations_and_say_what_they_ignored() {
    // GIVEN a database and a `migrations/` folder already holding sqlx, Prisma and Supabase files
    let db = TestDb::with(
        "create table users (id bigint primary key, name text not null);
         insert into users values (1, 'ada'), (2, 'grace');",
    );
    let work = Workdir::new();
    let migrations = work.path().join("migrations");
    sql_migrations(&migrations);
    let before = file_names(&migrations);

    // WHEN init writes the plan into it, and export and transform read it
    let init = work.run(&["init", "--database-url", db.url()]).success();
    work.export(db.url(), &[]).success();
    let transform = work.run(&["transform"]).success();

    // THEN both warn once, naming the entries that are not plans, and the hidden one not at all
    let warning = "ignored 5 files in `migrations` that are not plans (NNNN_name.toml): \
                   20240101000000_init.down.sql, 20240101000000_init.up.sql, \
                   20240102_add_posts/, README.md, migration_lock.toml";
    for run in [&init, &transform] {
        assert_eq!(run.stderr.matches(warning).count(), 1, "{run}");
        assert!(!run.stderr.contains(".gitkeep"), "{run}");
    }
    // … the SQL migrations are left as they were, beside the new plan
    let mut expected = before.clone();
    expected.push("0001_initial.toml".into());
    expected.sort();
    assert_eq!(file_names(&migrations), expected);
    assert_eq!(
        std::fs::read_to_string(migrations.join("migration_lock.toml")).unwrap(),
        "provider = \"postgresql\"\n"
    );
    // … and every row was transformed
    let users = jsonl(&work.data_dir().join("transformed/users.jsonl"));
    assert_eq!(users.len(), 2, "{users:?}");
}

#[test]
fn a_toml_file_named_almost_like_a_plan_is_an_error_naming_it() {
    // GIVEN a plan directory with a plan and a file meant as one but misnamed
    let db = TestDb::with("create table users (id bigint primary key);");
    let work = Workdir::new();
    work.run(&["init", "--database-url", db.url()]).success();
    std::fs::write(work.path().join("migrations/0002-users.toml"), "").unwrap();

    // WHEN init reads the directory again THEN it refuses, naming the file and the right name
    let run = work.run(&["init", "--database-url", db.url()]);
    run.fails_with(
        USAGE,
        &["0002-users.toml` is not a plan file", "hint: plan files are named `NNNN_<words>.toml`"],
    );
}

#[test]
fn init_on_a_table_without_a_key_says_the_plan_was_written_and_the_ways_forward() {
    // GIVEN a database with a table that has a key and two that have none
    let db = TestDb::with(
        "create table users (id bigint primary key);
         create table audit_log (at timestamptz not null, line text not null);
         create table events (code text, seen_at timestamptz);
         insert into audit_log values (now(), 'a');
         insert into events values ('e1', now()), ('e2', now());",
    );
    let work = Workdir::new();

    // WHEN init runs
    let run = work.run(&["init", "--database-url", db.url()]);

    // THEN it says the plan was written, names both tables, and gives the two ways forward
    run.fails_with(
        USAGE,
        &[
            "error: the plan was written to `migrations/0001_initial.toml`, but these tables have \
             no primary key or unique key to take a legacy id from: `public.audit_log`, \
             `public.events`",
            "hint: in `migrations/0001_initial.toml`, set each table's `legacy_id` to columns \
             whose values are unique (transform rejects rows that share a legacy id), or set \
             `skip = true` to leave the table out; then run `migrate init` again",
        ],
    );
    assert!(!run.stderr.contains("the list is empty"), "{run}");
    let plan_path = work.path().join("migrations/0001_initial.toml");
    let written = std::fs::read_to_string(&plan_path).unwrap();

    // WHEN the person edits the plan file but leaves both tables without a key
    let plan = format!("{written}# edited by hand\n");
    std::fs::write(&plan_path, &plan).unwrap();
    let run = work.run(&["init", "--database-url", db.url()]);
    // THEN init says it kept their file, and still names both tables
    run.fails_with(
        USAGE,
        &["error: the plan was kept as it is in `migrations/0001_initial.toml`, but these tables \
           have no primary key or unique key to take a legacy id from: `public.audit_log`, \
           `public.events`"],
    );
    assert_eq!(std::fs::read_to_string(&plan_path).unwrap(), plan);

    // WHEN the person skips one table and only the other remains THEN init names that one
    std::fs::write(
        work.path().join("migrations/0002_keys.toml"),
        "[tables.\"public.audit_log\"]\nskip = true\n",
    )
    .unwrap();
    let run = work.run(&["init", "--database-url", db.url()]);
    run.fails_with(
        USAGE,
        &["but 1 table has no primary key or unique key to take a legacy id from: \
           `public.events`"],
    );
    // … and with a key chosen for it, init finishes and the plan file was kept as written
    std::fs::write(
        work.path().join("migrations/0002_keys.toml"),
        "[tables.\"public.audit_log\"]\nskip = true\n\n\
         [tables.\"public.events\"]\nlegacy_id = [\"code\"]\n",
    )
    .unwrap();
    work.run(&["init", "--database-url", db.url()]).success();
    assert_eq!(std::fs::read_to_string(&plan_path).unwrap(), plan);
}
