//! The source's indexes in the Convex app: `init` carries them over into `migrateTables.ts` (an
//! index per reference besides, a comment for each one it cannot carry), the app's queries run
//! through them under convex-test after an import, and verify reports documents that share
//! values on fields unique in the source. Also `init` after an export of several schemas: it
//! plans from that export, with no flag.

use std::process::Command;

use migrate::convex::client::FunctionKind;
use serde_json::{Value, json};

use crate::codegen_support::{ConvexApp, printed};
use crate::convex_app::{GENERATED_DATA_MODEL, GENERATED_SERVER};
use crate::convex_server::ConvexTestServer;
use crate::import_pipeline::{Prepared, call};
use crate::support::{Run, TestDb, Workdir, postgres_bin_dir, utf8};

/// Orgs, users (a reference to the org; email unique; handle unique per org, NULL for two users
/// of one org; an index on the join time; an expression index and a partial one) and posts (a
/// reference to the author without an index of its own; a gin index).
const SOURCE: &str = "
create table orgs (id int primary key, name text not null unique);
create table users (
  id bigint primary key,
  org_id int not null references orgs(id),
  email text not null,
  handle text,
  joined_at timestamptz not null,
  unique (org_id, handle)
);
create unique index users_email_key on users (email);
create index users_joined_at_idx on users (joined_at);
create index users_lower_email_idx on users (lower(email));
create index users_handle_idx on users (handle) where handle is not null;
create table posts (
  id bigint primary key,
  author_id bigint references users(id),
  title text not null,
  tags text[] not null default '{}'
);
create index posts_tags_idx on posts using gin (tags);
insert into orgs values (1, 'acme'), (2, 'globex');
insert into users values
  (1, 1, 'ada@acme.test', 'ada', '2024-01-01T00:00:00Z'),
  (2, 1, 'bob@acme.test', null, '2024-02-01T00:00:00Z'),
  (3, 2, 'cy@globex.test', 'ada', '2024-03-01T00:00:00Z'),
  (4, 1, 'dee@acme.test', null, '2024-04-01T00:00:00Z');
insert into posts values
  (10, 1, 'notes', '{a}'), (11, 3, 'plans', '{}'), (12, 1, 'engines', '{b}'),
  (13, null, 'anonymous', '{}');
";

/// The app's queries, one through each index `init` gives the tables.
const LOOKUPS: &str = r#"import { v } from "convex/values";
import { query } from "./_generated/server";

export const orgByName = query({
  args: { name: v.string() },
  handler: async (ctx, { name }) => {
    const org = await ctx.db
      .query("orgs")
      .withIndex("by_name", (q) => q.eq("name", name))
      .unique();
    return org?.legacyId ?? null;
  },
});

export const userByEmail = query({
  args: { email: v.string() },
  handler: async (ctx, { email }) => {
    const user = await ctx.db
      .query("users")
      .withIndex("by_email", (q) => q.eq("email", email))
      .unique();
    return user?.legacyId ?? null;
  },
});

export const usersOfOrg = query({
  args: { org: v.string() },
  handler: async (ctx, { org }) => {
    const found = await ctx.db
      .query("orgs")
      .withIndex("by_name", (q) => q.eq("name", org))
      .unique();
    if (found === null) return [];
    const users = await ctx.db
      .query("users")
      .withIndex("by_orgId_and_handle", (q) => q.eq("orgId", found._id))
      .collect();
    return users.map((u) => u.legacyId);
  },
});

export const userByHandle = query({
  args: { org: v.string(), handle: v.string() },
  handler: async (ctx, { org, handle }) => {
    const found = await ctx.db
      .query("orgs")
      .withIndex("by_name", (q) => q.eq("name", org))
      .unique();
    if (found === null) return null;
    const user = await ctx.db
      .query("users")
      .withIndex("by_orgId_and_handle", (q) => q.eq("orgId", found._id).eq("handle", handle))
      .unique();
    return user?.legacyId ?? null;
  },
});

export const usersJoinedSince = query({
  args: { since: v.number() },
  handler: async (ctx, { since }) => {
    const users = await ctx.db
      .query("users")
      .withIndex("by_joinedAt", (q) => q.gte("joinedAt", since))
      .collect();
    return users.map((u) => u.legacyId);
  },
});

export const postsOf = query({
  args: { email: v.string() },
  handler: async (ctx, { email }) => {
    const user = await ctx.db
      .query("users")
      .withIndex("by_email", (q) => q.eq("email", email))
      .unique();
    if (user === null) return [];
    const posts = await ctx.db
      .query("posts")
      .withIndex("by_authorId", (q) => q.eq("authorId", user._id))
      .collect();
    return posts.map((p) => p.title).sort();
  },
});
"#;

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `migrate --data-dir … --plan-dir … <args>` in `work`, aimed at `server`.
fn against(work: &Workdir, server: &ConvexTestServer, args: &[&str]) -> Run {
    let mut command = work.dirs_command(args);
    command.env("CONVEX_URL", server.url()).env("CONVEX_DEPLOY_KEY", server.admin_key());
    Run::of(command)
}

#[test]
fn the_source_indexes_carry_over_and_the_apps_queries_run_through_them_after_an_import() {
    // GIVEN a database with indexes of every kind, exported
    let db = TestDb::with(SOURCE);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();

    // WHEN init writes the Convex app
    let app = ConvexApp::new("indexes-app");
    let convex_dir = app.path("convex");
    Run::of(work.dirs_command(&["init", "--convex-dir", utf8(&convex_dir)])).success();

    // THEN each table has the indexes its columns allow, one per reference no index serves,
    // uniqueness said to be the source's, and a comment for each index that cannot be carried
    let tables = read(&convex_dir.join("migrateTables.ts"));
    for expected in [
        "    .index(\"by_name\", [\"name\"]),\n",
        "    .index(\"by_email\", [\"email\"])\n",
        "    .index(\"by_joinedAt\", [\"joinedAt\"]) // users_joined_at_idx\n",
        "    .index(\"by_orgId_and_handle\", [\"orgId\", \"handle\"]),\n",
        "    .index(\"by_authorId\", [\"authorId\"]), // the reference author_id → public.users",
        "    // unique in the source (users_email_key); Convex does not enforce uniqueness",
        "    // not carried over: `users_lower_email_idx` (lower(email)): an index on an",
        "    // not carried over: `users_handle_idx` (handle) where handle IS NOT NULL: a partial",
        "    // not carried over: `posts_tags_idx` (tags): a gin index; a Convex index orders",
    ] {
        assert!(tables.contains(expected), "no {expected:?} in\n{tables}");
    }
    // … and no index of its own for the org reference, which by_orgId_and_handle serves
    assert!(!tables.contains("\"by_orgId\""), "{tables}");

    // WHEN the app queries through each of them THEN tsc accepts the app as Convex types it
    app.write("convex/lookups.ts", LOOKUPS);
    app.write("convex/_generated/dataModel.ts", GENERATED_DATA_MODEL);
    app.write("convex/_generated/server.ts", GENERATED_SERVER);
    let output = app.typecheck();
    assert!(output.status.success(), "tsc rejected the app:\n{}\n{tables}", printed(&output));

    // WHEN the data is imported into the app running under convex-test
    let server = ConvexTestServer::for_app(app);
    Run::of(work.dirs_command(&["transform", "--convex-dir", utf8(&convex_dir)])).success();
    against(&work, &server, &["import"]).success();
    let verify = against(&work, &server, &["verify"]).success();
    // (two users of org 1 without a handle share no value: NULLs never clash)
    assert!(verify.stdout.contains("verified: Convex holds exactly the 10"), "{verify}");

    // THEN every query finds the right documents through its index
    let query = |path: &str, args: Value| call(&server, FunctionKind::Query, path, args);
    assert_eq!(query("lookups:orgByName", json!({"name": "globex"})), json!("2"));
    assert_eq!(query("lookups:orgByName", json!({"name": "initech"})), Value::Null);
    assert_eq!(query("lookups:userByEmail", json!({"email": "cy@globex.test"})), json!("3"));
    let mut acme: Vec<String> =
        serde_json::from_value(query("lookups:usersOfOrg", json!({"org": "acme"}))).unwrap();
    acme.sort();
    assert_eq!(acme, ["1", "2", "4"]);
    for (org, expected) in [("acme", "1"), ("globex", "3")] {
        let found = query("lookups:userByHandle", json!({"org": org, "handle": "ada"}));
        assert_eq!(found, json!(expected), "{org}");
    }
    let march = 1_709_251_200_000.0; // 2024-03-01T00:00:00Z
    assert_eq!(query("lookups:usersJoinedSince", json!({"since": march})), json!(["3", "4"]));
    assert_eq!(
        query("lookups:postsOf", json!({"email": "ada@acme.test"})),
        json!(["engines", "notes"])
    );
    assert_eq!(query("lookups:postsOf", json!({"email": "bob@acme.test"})), json!([]));
}

/// Timestamps unique in Postgres that are one millisecond in Convex; a unique code that two
/// events leave NULL.
const EVENTS: &str = "
create table events (id int primary key, at timestamptz not null unique, code text unique,
                     note text);
insert into events values
  (1, '2024-01-01 00:00:00.0001+00', 'a', null),
  (2, '2024-01-01 00:00:00.0002+00', null, null),
  (3, '2024-01-01 00:00:01+00', null, 'x');
";

#[test]
fn verify_reports_documents_sharing_values_on_fields_unique_in_the_source() {
    // GIVEN events whose unique timestamps differ below the millisecond, imported
    let prepared = Prepared::new(EVENTS, "");
    prepared.migrate(&["transform"]).success();
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    prepared.against(server.url(), server.admin_key(), &["import"]).success();
    let verify = |args: &[&str]| {
        let mut all = vec!["verify"];
        all.extend_from_slice(args);
        prepared.against(server.url(), server.admin_key(), &all)
    };

    // WHEN verify runs
    let run = verify(&[]);

    // THEN Convex holds exactly the transformed documents, but two of them share the time that
    // was unique in the source: verify fails, naming the second, the first and the index; the
    // two events without a code share nothing (NULLs never clash)
    assert_eq!(run.code, Some(1), "{run}");
    for expected in [
        "Convex holds exactly the 3 transformed documents\n",
        "NOT verified: 1 document shares values with another on fields unique in the source; \
         the first:\n",
        "  not unique events 2.at: shares at = 1704067200000",
        "with legacy id 1 (document ",
        "unique in the source (`events_at_key`), which Convex does not enforce\n",
    ] {
        assert!(run.stdout.contains(expected), "no {expected:?} in\n{run}");
    }
    let json = verify(&["--format", "json"]);
    let report: Value =
        serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}\n{json}"));
    assert_eq!(
        (&report["verified"], &report["identical"], &report["unique"]),
        (&json!(false), &json!(true), &json!(false)),
        "{json}"
    );
    let events = &report["tables"][0];
    assert_eq!((&events["matching"], &events["not_unique"]), (&json!(3), &json!(1)), "{json}");

    // WHEN a document in Convex is changed to take another's unique code
    let planted = json!({"legacyId": "3", "at": 1_704_067_201_000.0, "code": "a", "note": "x"});
    call(
        &server,
        FunctionKind::Mutation,
        "migrate:upsert",
        json!({"table": "events", "docs": [{"doc": planted}]}),
    );

    // THEN verify reports it as different and as sharing the code
    let run = verify(&["--format", "json"]);
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    let listed: Vec<(&str, &str, &str)> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let field = d["field"].as_str().unwrap_or_default();
            (d["kind"].as_str().unwrap(), d["legacy_id"].as_str().unwrap(), field)
        })
        .collect();
    assert_eq!(
        listed,
        [("different", "3", "code"), ("not unique", "2", "at"), ("not unique", "3", "code")],
        "{run}"
    );
    assert_eq!(report["tables"][0]["not_unique"], 2, "{run}");
    let text = verify(&[]);
    assert!(
        text.stdout.contains(
            "NOT verified: 1 document differs, and 2 documents share values with another on \
             fields unique in the source; the first:\n"
        ),
        "{text}"
    );
}

/// Supabase's own auth schema, as its auth server creates it (tests/fixtures, assembled from the
/// supabase/auth project's migrations), loaded with psql: its role stubs may print errors.
fn load_supabase_auth(db: &TestDb) {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/supabase-auth-schema.sql");
    let output = Command::new(postgres_bin_dir().join("psql"))
        .args(["-X", "-q", "-d", db.url(), "-f", utf8(&fixture)])
        .output()
        .expect("psql runs");
    assert!(output.status.success(), "psql failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(db.conn().count("select count(*) from pg_tables where schemaname = 'auth'"), 23);
}

#[test]
fn init_after_an_export_of_public_and_auth_plans_from_that_export_without_a_flag() {
    // GIVEN Supabase's auth schema and an app table referring to its users, with rows
    let db = TestDb::new();
    load_supabase_auth(&db);
    db.execute(
        "create table public.profiles (
           id uuid primary key references auth.users(id),
           display_name text not null
         );
         insert into auth.users (id, email, aud, role) values
           ('00000000-0000-0000-0000-000000000001', 'ada@example.com', 'authenticated',
            'authenticated');
         insert into public.profiles values ('00000000-0000-0000-0000-000000000001', 'Ada');",
    );
    let work = Workdir::new();
    work.export(db.url(), &["--schemas", "public,auth"]).success();

    // WHEN init runs with the database URL and no other flag
    let app = ConvexApp::new("supabase-auth");
    let convex_dir = app.path("convex");
    let init = Run::of(work.dirs_command(&[
        "init",
        "--database-url",
        db.url(),
        "--convex-dir",
        utf8(&convex_dir),
    ]))
    .success();

    // THEN it plans from the export: auth's tables are migrated, and the profile's user is a
    // reference to them, not a value of a table "not exported"
    assert!(init.stdout.contains("(the export of schemas public, auth: 24 tables)"), "{init}");
    assert!(init.stdout.contains(" authUsers "), "{init}");
    assert!(!init.stdout.contains("not exported"), "{init}");
    assert!(!init.stdout.contains("warning"), "{init}");
    let plan = read(&work.plan_dir().join("0001_initial.toml"));
    assert!(plan.contains("[tables.\"auth.users\"]"), "{plan}");
    // (a primary key that is a reference is named as one: the profile's `id` is its `userId`)
    assert!(plan.contains("references.id = { field = \"userId\""), "{plan}");
    // … its Convex files typecheck, indexes of Supabase's schema included …
    let tables = read(&convex_dir.join("migrateTables.ts"));
    assert!(tables.contains(".index(\"by_userId\", [\"userId\"]) // sessions_user_id_idx"));
    let output = app.typecheck();
    assert!(output.status.success(), "tsc rejected the files:\n{}", printed(&output));
    // … and transform takes the export as planned
    let transform =
        Run::of(work.dirs_command(&["transform", "--convex-dir", utf8(&convex_dir)])).success();
    assert!(!transform.stdout.contains("another plan"), "{transform}");

    // WHEN the command line names the schemas THEN init reads the database with them instead
    let init = Run::of(work.dirs_command(&[
        "init",
        "--database-url",
        db.url(),
        "--schemas",
        "public",
        "--convex-dir",
        utf8(&convex_dir),
    ]))
    .success();
    assert!(!init.stdout.contains("authUsers"), "{init}");
    assert!(init.stdout.contains("`auth.users`, which was not exported"), "{init}");
}

#[test]
fn init_given_another_database_than_the_exported_one_says_so_and_plans_from_the_export() {
    // GIVEN an export of one database, and another database
    let exported = TestDb::with("create table users (id int primary key);");
    let other = TestDb::with("create table accounts (id int primary key);");
    let work = Workdir::new();
    work.export(exported.url(), &[]).success();

    // WHEN init is given the other database's URL
    let init = Run::of(work.dirs_command(&["init", "--database-url", other.url()])).success();

    // THEN it plans from the export, which transform reads, and says what to do for the other
    assert!(init.stdout.contains(" users "), "{init}");
    assert!(!init.stdout.contains("accounts"), "{init}");
    let warning = format!(
        "warning: the export in `{}` is of `{}`, not of `{}`: the plan is written from the \
         export's catalog, which transform reads; export from `{}` first to migrate it, or give \
         --schemas or --tables to plan from its catalog",
        work.data_dir().join("manifest.json").display(),
        exported.url(),
        other.url(),
        other.url()
    );
    assert!(init.stdout.contains(&warning), "no {warning:?} in\n{init}");

    // WHEN the command line names the tables THEN the other database's catalog is read
    let init = Run::of(work.dirs_command(&[
        "init",
        "--database-url",
        other.url(),
        "--tables",
        "accounts",
    ]))
    .success();
    assert!(init.stdout.contains(" accounts "), "{init}");
    assert!(!init.stdout.contains("warning"), "{init}");
}
