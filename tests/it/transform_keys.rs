//! References whose values are equal in Postgres but print differently (`1.0` and `1.00`, `0`
//! and `-0`, citext's cases, `1 day` and `24 hours`, char(n)'s padding) still find their parent,
//! and the reference carries the parent's legacy id exactly as the parent's document has it.
//! Where Postgres' equality cannot be reproduced (a nondeterministic collation), the plan is
//! refused rather than a reference dropped.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::convex_server::ConvexTestServer;
use crate::import_pipeline::{Prepared, call};
use crate::support::{Run, TestDb, Workdir, jsonl};
use migrate::convex::client::FunctionKind;

/// Orphans are left out (`null`): the policy under which a wrong orphan was silent.
const NULL_ORPHANS: &str = "[defaults]\norphans = \"null\"\n";

/// Exports `sql` and transforms it under `plan`.
fn transform(sql: &str, plan: &str) -> (TestDb, Workdir, Run) {
    let db = TestDb::with(sql);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    std::fs::create_dir_all(work.plan_dir()).unwrap();
    std::fs::write(work.plan_dir().join("0001_initial.toml"), plan).unwrap();
    let run = Run::of(work.dirs_command(&["transform"]));
    (db, work, run)
}

/// The document lines of a Convex table, by legacy id.
fn lines(work: &Workdir, table: &str) -> BTreeMap<String, Value> {
    jsonl(&work.data_dir().join(format!("transformed/{table}.jsonl")))
        .into_iter()
        .map(|line| (line["doc"]["legacyId"].as_str().unwrap().to_owned(), line))
        .collect()
}

/// Asserts that each child (by legacy id) refers to the parent whose legacy id is given, in
/// the parent's own form, and that each such parent document exists.
fn assert_resolved(work: &Workdir, run: &Run, field: &str, expected: &[(&str, &str)]) {
    assert_eq!(run.code, Some(0), "{run}");
    let parents = lines(work, "parent");
    let children = lines(work, "child");
    for (child, parent) in expected {
        let line = &children[*child];
        assert_eq!(
            line["refs"][field],
            json!({"table": "parent", "legacyId": parent}),
            "child {child} must refer to parent {parent}: {line}\n{run}"
        );
        assert!(parents.contains_key(*parent), "no parent document {parent}: {parents:?}");
    }
}

#[test]
fn numeric_keys_match_whatever_their_scale() {
    // GIVEN a numeric parent key and a numeric(10,2) child column: equal in Postgres, the
    // foreign key holds, but `1.0` prints as `1.00` in the child
    let (_db, work, run) = transform(
        "create table parent (id numeric primary key);
         create table child (id int primary key, parent_id numeric(10,2) references parent(id));
         insert into parent values (1.0), (2.5), (3);
         insert into child values (1, 1), (2, 2.5), (3, 3.000), (4, null);",
        NULL_ORPHANS,
    );
    // THEN every child refers to its parent, in the parent's printed form
    assert_resolved(&work, &run, "parentId", &[("1", "1.0"), ("2", "2.5"), ("3", "3")]);
}

#[test]
fn float_zero_and_negative_zero_are_one_key() {
    // GIVEN a float8 parent key 0 and a child holding -0, which Postgres finds equal
    let (_db, work, run) = transform(
        "create table parent (id float8 primary key);
         create table child (id int primary key, parent_id float8 references parent(id));
         insert into parent values (0), (1.5);
         insert into child values (1, '-0'), (2, 1.5);",
        NULL_ORPHANS,
    );
    assert_resolved(&work, &run, "parentId", &[("1", "0.0"), ("2", "1.5")]);
}

#[test]
fn citext_keys_match_in_any_case() {
    // GIVEN a citext parent key and a child spelling it in other cases
    let (_db, work, run) = transform(
        "create extension if not exists citext;
         create table parent (email citext primary key);
         create table child (id int primary key, email citext references parent(email));
         insert into parent values ('Ann@Example.com'), ('bob@example.com');
         insert into child values (1, 'ann@example.COM'), (2, 'BOB@EXAMPLE.COM');",
        NULL_ORPHANS,
    );
    assert_resolved(&work, &run, "email", &[("1", "Ann@Example.com"), ("2", "bob@example.com")]);
}

#[test]
fn interval_keys_match_by_their_length() {
    // GIVEN interval keys: Postgres compares a month as 30 days and a day as 24 hours
    let (_db, work, run) = transform(
        "create table parent (span interval primary key);
         create table child (id int primary key, span interval references parent(span));
         insert into parent values ('1 day'), ('1 mon'), ('-1 hour');
         insert into child values (1, '24 hours'), (2, '30 days'), (3, '-60 minutes'),
                                  (4, '1 day');",
        NULL_ORPHANS,
    );
    assert_resolved(
        &work,
        &run,
        "span",
        &[("1", "P1D"), ("2", "P1M"), ("3", "PT-1H"), ("4", "P1D")],
    );
}

#[test]
fn char_keys_match_whatever_their_padding() {
    // GIVEN a char(4) parent key and a char(8) child: bpchar ignores trailing spaces
    let (_db, work, run) = transform(
        "create table parent (code char(4) primary key);
         create table child (id int primary key, code char(8) references parent(code));
         insert into parent values ('ab'), ('abcd');
         insert into child values (1, 'ab'), (2, 'abcd');",
        NULL_ORPHANS,
    );
    assert_resolved(&work, &run, "code", &[("1", "ab  "), ("2", "abcd")]);
}

#[test]
fn a_key_under_a_nondeterministic_collation_is_refused_not_dropped() {
    // GIVEN a key under a case-insensitive ICU collation: `Ann` = `ann` in Postgres
    let (_db, work, run) = transform(
        "create collation ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
         create table parent (name text collate ci primary key);
         create table child (id int primary key, name text collate ci references parent(name));
         insert into parent values ('Ann');
         insert into child values (1, 'ann');",
        NULL_ORPHANS,
    );
    // THEN transform stops before any row, naming the reference, the collation and a way out
    assert_eq!(run.code, Some(2), "{run}");
    for part in ["child_name_fkey", "public.child", "collation", "hint:"] {
        assert!(run.stderr.contains(part), "stderr lacks {part:?}\n{run}");
    }
    assert!(!work.data_dir().join("transformed/child.jsonl").exists());
}

#[test]
fn a_child_whose_key_prints_differently_imports_pointing_at_its_parent() {
    // GIVEN numeric keys of different scales, transformed
    let prepared = Prepared::new(
        "create table parent (id numeric primary key, name text not null);
         create table child (id int primary key, parent_id numeric(10,2) not null
                               references parent(id));
         insert into parent values (1.0, 'one'), (2.5, 'two and a half');
         insert into child values (1, 1), (2, 2.5);",
        "",
    );
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());

    // WHEN it is imported into Convex (convex-test running the generated module)
    prepared.against(&url, &key, &["import"]).success();

    // THEN each child's field is its parent's Convex id
    let page = |table: &str| {
        let page = call(
            &server,
            FunctionKind::Query,
            "migrate:page",
            json!({"table": table, "cursor": null, "numItems": 100}),
        );
        page["page"].as_array().unwrap().clone()
    };
    let parents = page("parent");
    let id_of = |legacy: &str| {
        parents.iter().find(|p| p["legacyId"] == legacy).unwrap_or_else(|| panic!("{parents:?}"))
            ["_id"]
            .clone()
    };
    let children = page("child");
    let child = |legacy: &str| children.iter().find(|c| c["legacyId"] == legacy).unwrap().clone();
    assert_eq!(child("1")["parentId"], id_of("1.0"), "{children:?}");
    assert_eq!(child("2")["parentId"], id_of("2.5"), "{children:?}");

    // AND verify proves it
    let verify = prepared.against(&url, &key, &["verify"]).success();
    assert!(verify.stdout.contains("verified: Convex holds exactly"), "{verify}");
}

#[test]
fn a_merged_table_whose_key_prints_differently_still_merges() {
    // GIVEN settings merged into their user, on a numeric(10,2) key that prints `1.00` where
    // the user's numeric key prints `1.0`
    let (_db, work, run) = transform(
        "create table users (id numeric primary key, name text not null);
         create table settings (user_id numeric(10,2) primary key references users(id),
                                theme text not null);
         insert into users values (1.0, 'one'), (2.5, 'two');
         insert into settings values (1, 'dark'), (2.5, 'light');",
        "[tables.\"public.settings\"]\nmerge_into = \"public.users\"\n",
    );
    // THEN each user's document carries its settings
    assert_eq!(run.code, Some(0), "{run}");
    let users = lines(&work, "users");
    assert_eq!(users["1.0"]["doc"]["theme"], "dark", "{users:?}");
    assert_eq!(users["2.5"]["doc"]["theme"], "light", "{users:?}");
}

#[test]
fn citext_keys_match_as_postgres_lowers_them() {
    // GIVEN a citext parent `İstanbul`: Postgres lowers `İ` (U+0130) to `i`, one character, so
    // a child `istanbul` references it; a full Unicode lowercase gives `i̇` (two) and misses it
    let (_db, work, run) = transform(
        "create extension if not exists citext;
         create table parent (city citext primary key);
         create table child (id int primary key, city citext references parent(city));
         insert into parent values ('İstanbul'), ('Ankara');
         insert into child values (1, 'istanbul'), (2, 'İSTANBUL'), (3, 'ANKARA');",
        NULL_ORPHANS,
    );
    // THEN no reference is dropped as an orphan
    assert_resolved(&work, &run, "city", &[("1", "İstanbul"), ("2", "İstanbul"), ("3", "Ankara")]);
}

#[test]
fn a_composite_key_mixing_a_canonical_and_a_plain_column_matches() {
    // GIVEN a parent keyed by (numeric, text) and a child holding the numeric at another scale
    let (_db, work, run) = transform(
        "create table parent (n numeric, code text, primary key (n, code));
         create table child (id int primary key, n numeric(8,3), code varchar(10),
                             foreign key (n, code) references parent(n, code));
         insert into parent values (1.5, 'a'), (2, 'b \"q\"');
         insert into child values (1, 1.5, 'a'), (2, 2, 'b \"q\"'), (3, null, 'a');",
        NULL_ORPHANS,
    );
    assert_resolved(
        &work,
        &run,
        "parentId",
        &[("1", r#"["1.5","a"]"#), ("2", r#"["2","b \"q\""]"#)],
    );
}

#[test]
fn citext_keys_in_a_c_locale_database_stay_apart_when_only_non_ascii_case_differs() {
    // GIVEN a database whose LC_CTYPE is `C`: citext lowers ASCII letters only, so `Ä` and `ä`
    // are two users, each with its own settings, merged into the user
    let db = TestDb::with_options(
        "template template0 lc_ctype 'C' lc_collate 'C'",
        "create extension if not exists citext;
         create table users (name citext primary key, age int not null);
         create table settings (user_name citext primary key references users(name),
                                theme text not null);
         create table posts (id int primary key, author citext references users(name));
         insert into users values ('Ä', 1), ('ä', 2), ('Bo', 3);
         insert into settings values ('Ä', 'dark'), ('ä', 'light'), ('bo', 'blue');
         insert into posts values (1, 'Ä'), (2, 'ä'), (3, 'BO');",
    );
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    std::fs::create_dir_all(work.plan_dir()).unwrap();
    std::fs::write(
        work.plan_dir().join("0001_initial.toml"),
        "[tables.\"public.settings\"]\nmerge_into = \"public.users\"\n",
    )
    .unwrap();
    let run = Run::of(work.dirs_command(&["transform"]));

    // THEN each user keeps its own settings, and each post refers to its own author
    assert_eq!(run.code, Some(0), "{run}");
    let users = lines(&work, "users");
    assert_eq!(users["Ä"]["doc"]["theme"], "dark", "{users:?}");
    assert_eq!(users["ä"]["doc"]["theme"], "light", "{users:?}");
    assert_eq!(users["Bo"]["doc"]["theme"], "blue", "{users:?}");
    let posts = lines(&work, "posts");
    for (post, author) in [("1", "Ä"), ("2", "ä"), ("3", "Bo")] {
        assert_eq!(
            posts[post]["refs"]["author"],
            json!({"table": "users", "legacyId": author}),
            "{posts:?}"
        );
    }
}
