//! `migrate init`'s first plan file for real catalogs: reviewed as text, and loading exactly as
//! the defaults do; and the repository's sample plan, which loads against the sample database.

use migrate::catalog::{Catalog, TableName};
use migrate::plan::{self, Conversion, Plan, initial_plan};

use crate::plan_support::{ALL_TYPES, PlanDir, SAMPLE_APP, exported_catalog, repository_plan_dir};

/// `load` of a directory holding only the initial plan gives the plan of an empty directory,
/// but for the hash.
fn assert_initial_plan_loads_as_the_defaults(catalog: &Catalog, text: &str) -> Plan {
    let empty = PlanDir::with(&[]);
    let defaults = plan::load(&empty.path(), catalog).expect("the defaults load");
    let initial = PlanDir::with(&[("0001_initial.toml", text)]);
    let loaded = plan::load(&initial.path(), catalog)
        .unwrap_or_else(|error| panic!("{}\n{text}", initial.relative(&error.to_string())));
    assert_eq!(defaults.hash, format!("blake3:{}", blake3::hash(b"").to_hex()));
    assert_ne!(loaded.hash, defaults.hash, "the file is part of the hash");
    assert_eq!(Plan { hash: defaults.hash.clone(), ..loaded }, defaults);
    defaults
}

#[test]
fn the_golden_fixtures_initial_plan_is_as_reviewed_and_states_the_defaults() {
    // GIVEN the catalog of the golden export fixture
    let catalog = exported_catalog(ALL_TYPES);

    // WHEN `migrate init` writes the first plan file
    let text = initial_plan(&catalog);

    // THEN it is the reviewed text
    insta::assert_snapshot!("initial_plan_all_types", text);

    // AND loading it gives exactly the plan of an empty plan directory
    let plan = assert_initial_plan_loads_as_the_defaults(&catalog, &text);

    // AND that plan has every table, the tsvector and generated columns left out, the
    // self-reference and the cycle as references, and a composite legacy id
    let targets: Vec<&str> = plan.tables.iter().map(|t| t.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "camelCase",
            "orderItems",
            "allTypes",
            "authors",
            "books",
            "employees",
            "emptyTable",
            "events",
            "orderLines",
            "sayHi"
        ]
    );
    let all_types = plan.target("allTypes").unwrap();
    assert!(all_types.fields.iter().all(|f| f.column != "search" && f.column != "note_length"));
    let grid = all_types.fields.iter().find(|f| f.column == "grid").unwrap();
    assert_eq!(grid.conversion, Conversion::Array(Box::new(Conversion::Float64)));
    let employees = plan.target("employees").unwrap();
    assert_eq!(employees.references[0].parent_target, "employees");
    assert_eq!(plan.target("authors").unwrap().references[0].parent_target, "books");
    assert_eq!(plan.target("books").unwrap().references[0].parent_target, "authors");
    assert_eq!(plan.target("orderLines").unwrap().legacy_id.columns, ["order_id", "line_no"]);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn the_sample_databases_initial_plan_is_as_reviewed_and_states_the_defaults() {
    let catalog = exported_catalog(SAMPLE_APP);
    let text = initial_plan(&catalog);
    insta::assert_snapshot!("initial_plan_sample_app", text);
    assert_initial_plan_loads_as_the_defaults(&catalog, &text);
}

#[test]
fn the_repository_sample_plan_consolidates_users_and_keeps_money_in_cents() {
    // GIVEN the sample database's catalog and the repository's migrations/
    let catalog = exported_catalog(SAMPLE_APP);

    // WHEN the plan loads
    let plan = plan::load(repository_plan_dir(), &catalog)
        .unwrap_or_else(|error| panic!("migrations/ does not load: {error}"));

    // THEN users, user_settings and user_preferences are one `userProfiles` table keyed by user id
    let targets: Vec<&str> = plan.tables.iter().map(|t| t.target.as_str()).collect();
    assert_eq!(targets, ["comments", "posts", "userProfiles"]);
    let profiles = plan.target("userProfiles").unwrap();
    assert_eq!(profiles.source, TableName::new("public", "users"));
    assert_eq!(profiles.legacy_id.columns, ["id"]);
    let merged: Vec<(String, &[String])> =
        profiles.merges.iter().map(|m| (m.source.to_string(), m.on.as_slice())).collect();
    assert_eq!(
        merged,
        [
            ("public.user_preferences".to_owned(), &["user_id".to_owned()][..]),
            ("public.user_settings".to_owned(), &["user_id".to_owned()][..]),
        ]
    );
    assert!(profiles.merges.iter().flat_map(|m| &m.fields).all(|f| f.optional));

    // AND the balance travels as integer cents in `balanceCents`
    let balance = profiles.fields.iter().find(|f| f.column == "balance").unwrap();
    assert_eq!(balance.field, "balanceCents");
    assert_eq!(balance.conversion, Conversion::NumericAsCents);

    // AND posts and comments point at the consolidated table; comments also at themselves
    let posts = plan.target("posts").unwrap();
    assert_eq!(posts.references[0].parent_target, "userProfiles");
    let comments = plan.target("comments").unwrap();
    let parents: Vec<(&str, &str)> =
        comments.references.iter().map(|r| (r.field.as_str(), r.parent_target.as_str())).collect();
    assert_eq!(
        parents,
        [("authorId", "userProfiles"), ("parentId", "comments"), ("postId", "posts")]
    );
    assert!(plan.skipped.is_empty());
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn later_files_change_only_what_they_name() {
    // GIVEN the sample's initial plan and two files of edits from tests/fixtures/plans/
    let catalog = exported_catalog(SAMPLE_APP);
    let initial = initial_plan(&catalog);
    let dir = PlanDir::with(&[
        ("0001_initial.toml", &initial),
        ("0002_money_as_cents.toml", include_str!("../fixtures/plans/0002_money_as_cents.toml")),
        ("0003_drafts_stay.toml", include_str!("../fixtures/plans/0003_drafts_stay.toml")),
    ]);

    // WHEN the directory loads
    let plan = plan::load(&dir.path(), &catalog).unwrap_or_else(|e| panic!("{e}"));

    // THEN the balance is in cents, under the field name the first file gave it
    let users = plan.target("users").unwrap();
    let balance = users.fields.iter().find(|f| f.column == "balance").unwrap();
    assert_eq!(
        (balance.field.as_str(), &balance.conversion),
        ("balance", &Conversion::NumericAsCents)
    );

    // AND the third file's filter replaced the second's, and its drop list the second's
    let posts = plan.target("posts").unwrap();
    assert_eq!(posts.filters.len(), 1);
    assert_eq!(posts.filters[0].column, "status");
    assert!(posts.fields.iter().any(|f| f.column == "body"));
    assert!(posts.fields.iter().all(|f| f.column != "metadata"));

    // AND user_preferences is left out, NULL is stored as null everywhere, and the orphans of
    // one reference changed while its field stayed as the first file named it
    assert_eq!(plan.skipped, [TableName::new("public", "user_preferences")]);
    assert!(plan.tables.iter().all(|t| t.nulls == plan::NullPolicy::Null));
    let comments = plan.target("comments").unwrap();
    let orphans: Vec<(&str, plan::OrphanPolicy)> =
        comments.references.iter().map(|r| (r.field.as_str(), r.orphans)).collect();
    assert_eq!(
        orphans,
        [
            ("authorId", plan::OrphanPolicy::Fail),
            ("parentId", plan::OrphanPolicy::Fail),
            ("postId", plan::OrphanPolicy::Drop)
        ]
    );

    // AND the hash is another than that of the initial file alone
    let alone = PlanDir::with(&[("0001_initial.toml", &initial)]);
    assert_ne!(plan::load(&alone.path(), &catalog).unwrap().hash, plan.hash);
}

/// Enum labels, table and column names may hold anything Postgres allows: newlines, quotes,
/// backslashes, tabs and other control characters. The plan `migrate init` writes for them
/// parses, and transform carries every label through exactly.
#[test]
fn init_writes_a_plan_that_parses_whatever_the_labels_and_names_hold() {
    use crate::support::{Run, TestDb, Workdir, jsonl, utf8};

    // GIVEN an enum and names holding every character TOML must escape
    let labels = [
        "plain",
        "two\nlines",
        "say \"hi\"",
        "back\\slash",
        "tab\there",
        "bell\u{7}",
        "del\u{7f}",
        "cr\rlf",
        "a, b",
        "it's",
    ];
    let sql_labels: Vec<String> = labels
        .iter()
        .map(|l| format!("U&'{}'", l.replace('\\', "\\005C").replace('\'', "''")))
        .map(|l| {
            l.replace('\n', "\\000A")
                .replace('\t', "\\0009")
                .replace('\u{7}', "\\0007")
                .replace('\u{7f}', "\\007F")
                .replace('\r', "\\000D")
        })
        .collect();
    let db = TestDb::with(&format!(
        "create type \"mo\nod\" as enum ({});
         create table \"odd\ntable\" (id int primary key, \"fe\"\"el\ning\" \"mo\nod\" not null);
         insert into \"odd\ntable\" select i, (enum_range(null::\"mo\nod\"))[i]
           from generate_series(1, {}) i;",
        sql_labels.join(", "),
        labels.len()
    ));
    let work = Workdir::new();
    let convex_dir = work.path().join("convex");
    Run::of(work.dirs_command(&["export", "--database-url", db.url()])).success();

    // WHEN init writes the plan THEN it parses (init loads it back), and so does transform
    Run::of(work.dirs_command(&["init", "--convex-dir", utf8(&convex_dir)])).success();
    let plan = std::fs::read_to_string(work.plan_dir().join("0001_initial.toml")).unwrap();
    toml::from_str::<toml::Table>(&plan).unwrap_or_else(|e| panic!("{e}\n{plan}"));
    Run::of(work.dirs_command(&["transform"])).success();

    // AND every row carries its label exactly
    let documents = jsonl(&work.data_dir().join("transformed/oddTable.jsonl"));
    let label = |d: &serde_json::Value| {
        d["doc"]["feElIng"].as_str().unwrap_or_else(|| panic!("{d}")).to_owned()
    };
    let mut carried: Vec<String> = documents.iter().map(label).collect();
    let mut expected: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
    carried.sort();
    expected.sort();
    assert_eq!(carried, expected, "\n{plan}");
}

#[test]
fn init_with_no_database_no_dump_and_no_export_says_each_way_to_give_a_catalog() {
    // GIVEN an empty working directory and no PG* variable (the harness clears them)
    let work = crate::support::Workdir::new();

    // WHEN init runs with nothing to read a catalog from
    let run = crate::support::Run::of(work.command(&["init"]));

    // THEN it is a usage error naming every way: a database, a dump, an export
    run.fails_with(
        2,
        &["no catalog to start from", "--database-url", "PGHOST", "--from-dump", "migrate export"],
    );
}
