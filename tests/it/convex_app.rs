//! `migrate init` into a Convex app that already exists, with tables, indexes and functions of
//! its own: its `schema.ts` is never written, the migrated tables go into `migrateTables.ts`
//! for it to spread, a table both define is refused, and the combined app typechecks with
//! `tsc` and runs under convex-test (tests/convex/server.ts) with the data imported into it.
//! Also what a later run shows: the changes since the last run, and the warnings of transform
//! and status while the Convex files lag behind the plan.

use migrate::convex::client::FunctionKind;
use serde_json::{Value, json};

use crate::codegen_support::{ConvexApp, printed};
use crate::convex_server::ConvexTestServer;
use crate::import_pipeline::call;
use crate::support::{Run, TestDb, Workdir, utf8};

const USAGE: i32 = 2;

const SOURCE: &str = "
create table users (id bigint primary key, name text not null, email text not null);
create table posts (id bigint primary key, author_id bigint not null references users(id),
                    title text not null);
insert into users values (1, 'ada', 'ada@example.com'), (2, 'grace', 'grace@example.com');
insert into posts values (10, 1, 'notes'), (11, 2, 'compilers'), (12, 1, 'engines');
";

/// The app's own schema: a `messages` table with an index, and a reference to the users it
/// expects the migration to bring.
const APP_SCHEMA: &str = r#"import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

// The app's own tables, written long before any migration.
export default defineSchema({
  messages: defineTable({
    channel: v.string(),
    body: v.string(),
    author: v.optional(v.id("users")), // a migrated user
  }).index("by_channel", ["channel"]),
});
"#;

/// The app's functions, through `_generated/server` as every Convex app writes them; they use
/// the app's table and index and the migrated `users` with its `by_legacy_id` index.
const APP_MESSAGES: &str = r#"import { v } from "convex/values";
import { mutation, query } from "./_generated/server";

export const send = mutation({
  args: { channel: v.string(), body: v.string(), author: v.optional(v.id("users")) },
  handler: async (ctx, args) => ctx.db.insert("messages", args),
});

export const list = query({
  args: { channel: v.string() },
  handler: async (ctx, { channel }) => {
    const messages = await ctx.db
      .query("messages")
      .withIndex("by_channel", (q) => q.eq("channel", channel))
      .collect();
    return Promise.all(
      messages.map(async (m) => {
        const author = m.author === undefined ? null : await ctx.db.get(m.author);
        const name: string | null = author?.name ?? null;
        return { body: m.body, author: name };
      }),
    );
  },
});

export const userByLegacyId = query({
  args: { legacyId: v.string() },
  handler: async (ctx, { legacyId }) =>
    ctx.db
      .query("users")
      .withIndex("by_legacy_id", (q) => q.eq("legacyId", legacyId))
      .unique(),
});
"#;

/// What `npx convex dev` generates for the app, as TypeScript: the data model from the
/// schema, and the function builders typed by it.
pub const GENERATED_DATA_MODEL: &str = r#"import type {
  DataModelFromSchemaDefinition,
  DocumentByName,
  TableNamesInDataModel,
} from "convex/server";
import type { GenericId } from "convex/values";
import schema from "../schema";

export type DataModel = DataModelFromSchemaDefinition<typeof schema>;
export type TableNames = TableNamesInDataModel<DataModel>;
export type Doc<T extends TableNames> = DocumentByName<DataModel, T>;
export type Id<T extends TableNames> = GenericId<T>;
"#;

pub const GENERATED_SERVER: &str = r#"import { mutationGeneric, queryGeneric } from "convex/server";
import type { MutationBuilder, QueryBuilder } from "convex/server";
import type { DataModel } from "./dataModel";

export const query: QueryBuilder<DataModel, "public"> = queryGeneric;
export const mutation: MutationBuilder<DataModel, "public"> = mutationGeneric;
"#;

/// An existing Convex app: its schema, its functions and what Convex generated for them.
fn existing_app(label: &str) -> ConvexApp {
    let app = ConvexApp::new(label);
    app.write("convex/schema.ts", APP_SCHEMA);
    app.write("convex/messages.ts", APP_MESSAGES);
    app.write("convex/_generated/dataModel.ts", GENERATED_DATA_MODEL);
    app.write("convex/_generated/server.ts", GENERATED_SERVER);
    app
}

/// `migrate --data-dir … --plan-dir … <args>` in `work`.
fn migrate(work: &Workdir, args: &[&str]) -> Run {
    Run::of(work.dirs_command(args))
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Adds `lines` to the app's schema as init says: the import after the last import, the
/// spread as the last entry of `defineSchema({...})`.
fn add_schema_lines(schema: &str, lines: &[String]) -> String {
    let [import, spread] = lines else { panic!("two lines: {lines:?}") };
    let after_imports = schema.rfind("import ").map(|i| i + schema[i..].find('\n').unwrap() + 1);
    let mut text = schema.to_owned();
    text.insert_str(after_imports.unwrap(), &format!("{import}\n"));
    let end = text.rfind("});").unwrap();
    text.insert_str(end, &format!("  {spread}\n"));
    text
}

#[test]
fn init_into_an_existing_app_leaves_its_files_and_the_app_runs_with_the_migrated_tables() {
    // GIVEN a database, and an existing Convex app with its own table, index and functions
    let db = TestDb::with(SOURCE);
    let work = Workdir::new();
    let app = existing_app("existing-app");
    let convex_dir = app.path("convex");
    let convex = utf8(&convex_dir);

    // WHEN init writes into the app
    let init = migrate(&work, &["init", "--database-url", db.url(), "--convex-dir", convex]);

    // THEN it succeeds, writes its own two files, and leaves every file of the app as it was
    let init = init.success();
    assert_eq!(read(&convex_dir.join("schema.ts")), APP_SCHEMA);
    assert_eq!(read(&convex_dir.join("messages.ts")), APP_MESSAGES);
    assert!(read(&convex_dir.join("migrateTables.ts")).contains("users: defineTable({"));
    assert!(read(&convex_dir.join("migrate.ts")).contains("export const upsert"));
    // … and says the schema is the app's, and the two lines that add the migrated tables to it
    let schema_path = convex_dir.join("schema.ts");
    for expected in [
        format!("created    {}", convex_dir.join("migrateTables.ts").display()),
        format!("kept       {}", schema_path.display()),
        "(the app's own: migrate never writes it)".to_owned(),
        format!("next: add the migrated tables to {}:", schema_path.display()),
        "    import { migrateTables } from \"./migrateTables\";\n    ...migrateTables,\n"
            .to_owned(),
    ] {
        assert!(init.stdout.contains(&expected), "no {expected:?} in\n{init}");
    }

    // GIVEN the app as it is, without the lines
    // WHEN tsc checks it THEN the app's code cannot see the migrated users yet
    let output = app.typecheck();
    assert!(!output.status.success(), "{}", printed(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("\"users\""), "{}", printed(&output));

    // WHEN the person adds the lines init gave (its JSON report holds them too)
    let again = migrate(
        &work,
        &["--format", "json", "init", "--database-url", db.url(), "--convex-dir", convex],
    )
    .success();
    let report: Value = serde_json::from_str(&again.stdout).unwrap();
    let lines: Vec<String> = serde_json::from_value(report["convex"]["schema_lines"].clone())
        .unwrap_or_else(|e| panic!("{e}\n{again}"));
    let combined = add_schema_lines(APP_SCHEMA, &lines);
    std::fs::write(&schema_path, &combined).unwrap();

    // THEN tsc accepts the whole app: its functions, the migrated tables, migrate.ts
    let output = app.typecheck();
    assert!(output.status.success(), "tsc rejected the app:\n{}\n{combined}", printed(&output));
    // … and a later init knows the schema spreads them, and still does not touch it
    let again = migrate(
        &work,
        &["--format", "json", "init", "--database-url", db.url(), "--convex-dir", convex],
    )
    .success();
    let report: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report["convex"]["schema"]["status"], "kept", "{again}");
    assert_eq!(report["convex"]["schema_lines"], Value::Null, "{again}");
    assert_eq!(read(&schema_path), combined);

    // WHEN the app runs on a Convex deployment (convex-test) and the data is imported into it
    let server = ConvexTestServer::for_app(app);
    work.export(db.url(), &[]).success();
    let transform = migrate(&work, &["transform", "--convex-dir", convex]).success();
    assert!(!transform.stdout.contains("another plan"), "{transform}");
    for stage in ["import", "verify"] {
        let mut command = work.dirs_command(&[stage]);
        command.env("CONVEX_URL", server.url()).env("CONVEX_DEPLOY_KEY", server.admin_key());
        Run::of(command).success();
    }

    // THEN the app's own functions work beside the migrated tables: a migrated user found by
    // its legacy id, a message of the app's table that refers to it, read through its index
    let ada =
        call(&server, FunctionKind::Query, "messages:userByLegacyId", json!({"legacyId": "1"}));
    assert_eq!(ada["name"], "ada", "{ada}");
    let message = json!({"channel": "general", "body": "hello", "author": ada["_id"]});
    call(&server, FunctionKind::Mutation, "messages:send", message);
    let listed = call(&server, FunctionKind::Query, "messages:list", json!({"channel": "general"}));
    assert_eq!(listed, json!([{"body": "hello", "author": "ada"}]));
}

#[test]
fn a_table_the_app_already_has_is_refused_until_the_plan_names_it_otherwise() {
    // GIVEN an app whose own schema has a `users` table, and a database with one too
    let db = TestDb::with(SOURCE);
    let work = Workdir::new();
    let app = ConvexApp::new("colliding-app");
    let own = APP_SCHEMA.replace(
        "  messages: defineTable({",
        "  ...authTables,\n  users: defineTable({ handle: v.string() }),\n  messages: defineTable({",
    );
    app.write("convex/schema.ts", &own);
    let convex_dir = app.path("convex");
    let convex = utf8(&convex_dir);

    // WHEN init runs
    let run = migrate(&work, &["init", "--database-url", db.url(), "--convex-dir", convex]);

    // THEN it refuses, naming the schema and the table, and writes nothing into the app
    run.fails_with(
        USAGE,
        &[
            &format!(
                "error: `{}` already defines a table that the plan also migrates into: `users`",
                convex_dir.join("schema.ts").display()
            ),
            "hint: nothing in the Convex dir was changed",
            "`target = \"...\"`",
            "`skip = true`",
        ],
    );
    assert_eq!(read(&convex_dir.join("schema.ts")), own);
    assert!(!convex_dir.join("migrateTables.ts").exists());
    assert!(!convex_dir.join("migrate.ts").exists());

    // WHEN the plan gives the migrated users another name
    std::fs::write(
        work.plan_dir().join("0002_names.toml"),
        "[tables.\"public.users\"]\ntarget = \"legacyUsers\"\n",
    )
    .unwrap();
    let run = migrate(&work, &["init", "--database-url", db.url(), "--convex-dir", convex]);

    // THEN init writes the tables, and the app's schema is still its own
    let run = run.success();
    let tables = read(&convex_dir.join("migrateTables.ts"));
    assert!(tables.contains("legacyUsers: defineTable({"), "{tables}");
    assert!(tables.contains("v.id(\"legacyUsers\")"), "{tables}");
    assert_eq!(read(&convex_dir.join("schema.ts")), own);
    // … and it says which spread it cannot see into, and the names to keep apart
    let note = "takes from `...authTables`: none of them may have the name of a migrated table \
                (posts, legacyUsers)";
    assert!(run.stdout.contains(note), "no {note:?} in\n{run}");
}

#[test]
fn a_file_of_the_app_named_like_migrates_own_is_never_overwritten() {
    // GIVEN an app with its own `convex/migrate.ts`
    let db = TestDb::with(SOURCE);
    let work = Workdir::new();
    let app = existing_app("own-migrate-ts");
    let mine = "// the app's own data migrations\nexport const version = 3;\n";
    app.write("convex/migrate.ts", mine);
    let convex_dir = app.path("convex");

    // WHEN init runs, even with --force
    for extra in [&[][..], &["--force"]] {
        let mut args = vec!["init", "--database-url", db.url(), "--convex-dir", utf8(&convex_dir)];
        args.extend_from_slice(extra);
        let run = migrate(&work, &args);

        // THEN it refuses, saying the file is not migrate's, and leaves it
        run.fails_with(
            USAGE,
            &[
                &format!(
                    "`{}` was not written by migrate, which needs this name",
                    convex_dir.join("migrate.ts").display()
                ),
                "hint: nothing was changed; move your `migrate.ts` to another name",
            ],
        );
        assert_eq!(read(&convex_dir.join("migrate.ts")), mine);
        assert!(!convex_dir.join("migrateTables.ts").exists());
    }
}

#[test]
fn a_later_init_shows_what_changed_and_transform_and_status_warn_until_it_runs() {
    // GIVEN a database, exported, and init's files in `convex/`, where every command looks
    let db = TestDb::with(SOURCE);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    migrate(&work, &["init"]).success();
    let stale = "generated from another plan";
    let transform = migrate(&work, &["transform"]).success();
    assert!(!transform.stdout.contains(stale), "{transform}");

    // WHEN the plan changes and init has not run since
    std::fs::write(
        work.plan_dir().join("0002_names.toml"),
        "[tables.\"public.users\".columns.name]\nfield = \"fullName\"\n",
    )
    .unwrap();
    let transform = migrate(&work, &["transform"]).success();
    let status = migrate(&work, &["status"]).success();

    // THEN transform and status say the Convex files are behind, and what to do
    let warning = "warning: `convex/migrateTables.ts` and `convex/migrate.ts` were generated from another plan";
    for run in [&transform, &status] {
        assert!(run.stdout.contains(warning), "no {warning:?} in\n{run}");
        assert!(
            run.stdout.contains("run `migrate init` again, then deploy the Convex app"),
            "{run}"
        );
    }
    let json = migrate(&work, &["--format", "json", "status"]).success();
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(report["warnings"][0].as_str().unwrap().contains(stale), "{json}");

    // WHEN init runs again
    let init = migrate(&work, &["init"]).success();

    // THEN it shows what changed in the migrated tables, under the table's name
    let changes = "updated    convex/migrateTables.ts\n           @@ users\n";
    assert!(init.stdout.contains(changes), "no {changes:?} in\n{init}");
    for line in ["-    name: v.string(), // name", "+    fullName: v.string(), // name"] {
        assert!(init.stdout.contains(&format!("           {line}\n")), "no {line:?} in\n{init}");
    }
    assert!(init.stdout.contains("unchanged  convex/schema.ts\n"), "{init}");
    // … and transform and status have nothing more to say
    for args in [&["transform"][..], &["status"]] {
        let run = migrate(&work, args).success();
        assert!(!run.stdout.contains(stale), "{run}");
    }

    // WHEN the source gains a column, is exported again, and init plans from that export
    db.execute("alter table users add column bio text");
    work.export(db.url(), &[]).success();
    let init = migrate(&work, &["init", "--database-url", db.url()]).success();

    // THEN the plan it wrote and the tables show the new column
    let plan_changes = format!(
        "updated    {}\n           @@ [tables.\"public.users\"]\n",
        work.plan_dir().join("0001_initial.toml").display()
    );
    assert!(init.stdout.contains(&plan_changes), "no {plan_changes:?} in\n{init}");
    assert!(init.stdout.contains("           +columns.bio = { field = \"bio\" }"), "{init}");
    assert!(
        init.stdout.contains("           +    bio: v.optional(v.string()), // bio\n"),
        "{init}"
    );
}
