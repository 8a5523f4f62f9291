//! Fields shaped the way a Convex app uses them, on real Postgres and under Convex's own
//! semantics: a value inside a json column as a field of its own (Supabase's
//! `raw_user_meta_data.full_name`, on Supabase's real auth schema), char(n) without its padding,
//! a primary key that is also a reference named as one, every column of a composite key a field
//! too; and, once an import is complete, the schema with the references in foreign-key cycles
//! required (`migrate init --after-import`), accepted by convex-test for every imported document.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use migrate::convex::client::FunctionKind;
use serde_json::{Value, json};

use crate::codegen_support::{ConvexApp, convex_tool, convex_tools, printed, run};
use crate::convex_server::ConvexTestServer;
use crate::import_pipeline::{Prepared, call};
use crate::support::{TestDb, Workdir, jsonl, utf8};

/// Supabase's auth schema as its auth server creates it (tests/fixtures, a copy of the shared
/// fixture), then an app's tables around it.
const AUTH_SCHEMA: &str = include_str!("../fixtures/supabase-auth-schema.sql");

const APP: &str = "
create table public.profiles (
  id uuid primary key references auth.users(id),
  username text not null
);
create table public.languages (
  language_id int primary key,
  name character(20) not null,
  code character(3)
);
create table public.payments (
  payment_id int not null,
  paid_at timestamptz not null,
  language_id int not null references public.languages,
  amount numeric(6,2) not null,
  primary key (payment_id, paid_at)
);

insert into auth.users (id, email, raw_user_meta_data) values
  ('00000000-0000-0000-0000-00000000000a', 'ada@example.com',
   '{\"full_name\": \"Ada Lovelace\", \"avatar\": {\"url\": \"https://example.com/ada.png\"}}'),
  ('00000000-0000-0000-0000-00000000000b', 'bob@example.com', '{\"email_verified\": true}'),
  ('00000000-0000-0000-0000-00000000000c', 'cy@example.com', null),
  ('00000000-0000-0000-0000-00000000000d', 'di@example.com', '{\"full_name\": null}'),
  ('00000000-0000-0000-0000-00000000000e', 'ed@example.com', '{\"full_name\": 42}');
insert into public.profiles values
  ('00000000-0000-0000-0000-00000000000a', 'ada'),
  ('00000000-0000-0000-0000-00000000000b', 'bob');
insert into public.languages values (1, 'English', 'en'), (2, 'Français', 'fr ');
insert into public.payments values
  (7, '2024-01-01 10:00:00+00', 1, 9.99),
  (7, '2024-02-01 10:00:00+00', 2, 5.00);
";

/// The person's edits: the user's name out of the metadata (which is dropped), the avatar as
/// any JSON value, and one char(n) column keeping its padding.
const SHAPES: &str = r#"
[tables."auth.users"]
drop = ["raw_user_meta_data"]
fields.fullName = { from = "raw_user_meta_data.full_name", type = "string" }
fields.avatar = { from = "raw_user_meta_data.avatar.url" }

[tables."public.languages".columns.code]
trim = false
"#;

const TABLES: &str = "auth.users,public.profiles,public.languages,public.payments";

/// The documents of `transformed/<table>.jsonl`, by legacy id.
fn transformed(work: &Workdir, table: &str) -> BTreeMap<String, Value> {
    jsonl(&work.data_dir().join(format!("transformed/{table}.jsonl")))
        .into_iter()
        .map(|line| (line["doc"]["legacyId"].as_str().unwrap().to_owned(), line))
        .collect()
}

#[test]
fn a_name_inside_json_a_trimmed_char_a_key_named_as_a_reference_and_composite_key_fields_arrive() {
    // GIVEN Supabase's auth schema with users whose names sit in `raw_user_meta_data`, profiles
    // keyed by the user's id, padded char(n) names and payments keyed by (id, time)
    let db = TestDb::with(&format!("{AUTH_SCHEMA}\n{APP}"));
    let work = Workdir::new();
    work.export(db.url(), &["--schemas", "public,auth", "--tables", TABLES]).success();
    let prepared = Prepared { work, _db: db };
    let convex_dir = prepared.convex_dir();
    prepared.migrate(&["init", "--convex-dir", utf8(&convex_dir)]).success();
    let plan = std::fs::read_to_string(prepared.plan_dir().join("0001_initial.toml")).unwrap();
    // (init names the profile's key as the reference it is, and spells out the key's columns)
    assert!(plan.contains("references.id = { field = \"userId\""), "{plan}");
    assert!(plan.contains("columns.paid_at = { field = \"paidAt\", policy = \"ms\" }"), "{plan}");
    std::fs::write(prepared.plan_dir().join("0002_shapes.toml"), SHAPES).unwrap();
    prepared.migrate(&["init", "--convex-dir", utf8(&convex_dir)]).success();

    // WHEN it is transformed
    let transform = prepared.migrate(&["transform", "--max-rejected", "1"]).success();

    // THEN the user's name is a field, absent where the metadata has none, and the metadata is
    // gone
    let users = transformed(&prepared.work, "authUsers");
    let doc = |id: char| users[&format!("00000000-0000-0000-0000-00000000000{id}")]["doc"].clone();
    assert_eq!(doc('a')["fullName"], "Ada Lovelace");
    assert_eq!(doc('a')["avatar"], "https://example.com/ada.png");
    for id in ['b', 'c', 'd'] {
        assert!(doc(id).get("fullName").is_none(), "{id}: {}", doc(id));
        assert!(doc(id).get("avatar").is_none(), "{id}: {}", doc(id));
    }
    assert!(users.values().all(|u| u["doc"].get("rawUserMetaData").is_none()));
    // … and a name that is no string rejects its row, saying so
    assert_eq!(users.len(), 4);
    let rejects = jsonl(&prepared.work.data_dir().join("rejects/auth.users.jsonl"));
    assert_eq!(rejects.len(), 1, "{transform}");
    assert_eq!(rejects[0]["field"], "fullName");
    let reason = rejects[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("expected a string (the field's `type = \"string\"`), found a number"),
        "{reason}"
    );
    // … char(n) arrives trimmed, unless the plan keeps the padding
    let languages = transformed(&prepared.work, "languages");
    assert_eq!(languages["1"]["doc"]["name"], "English");
    assert_eq!(languages["2"]["doc"]["name"], "Français");
    assert_eq!(languages["1"]["doc"]["code"], "en ");
    // … the profile refers to its user as `userId`
    let profiles = transformed(&prepared.work, "profiles");
    let ada = &profiles["00000000-0000-0000-0000-00000000000a"];
    assert_eq!(ada["refs"]["userId"]["table"], "authUsers");
    assert!(ada["doc"].get("id").is_none(), "{ada}");
    // … and each column of the payments' key is a field beside the legacy id
    let payments = transformed(&prepared.work, "payments");
    let february = &payments[r#"["7","2024-02-01T10:00:00.000000Z"]"#]["doc"];
    assert_eq!(february["paymentId"], 7.0);
    assert_eq!(february["paidAt"], 1_706_781_600_000.0);
    assert_eq!(payments.len(), 2);

    // AND the generated tables typecheck, the fields typed as the plan declares them
    let app = ConvexApp::new("shapes-tsc");
    for file in ["schema.ts", "migrateTables.ts", "migrate.ts"] {
        let text = std::fs::read_to_string(convex_dir.join(file)).unwrap();
        app.write(&format!("convex/{file}"), &text);
    }
    app.write(
        "convex/usage.ts",
        r#"import type { DataModelFromSchemaDefinition } from "convex/server";
import type { GenericId } from "convex/values";
import schema from "./schema";

type Doc<T extends keyof DataModelFromSchemaDefinition<typeof schema>> =
  DataModelFromSchemaDefinition<typeof schema>[T]["document"];

export function check(user: Doc<"authUsers">, profile: Doc<"profiles">, pay: Doc<"payments">) {
  const name: string | undefined = user.fullName;
  const owner: GenericId<"authUsers"> = profile.userId;
  const at: number = pay.paidAt;
  // @ts-expect-error the name is missing when the metadata has none
  const sure: string = user.fullName;
  // @ts-expect-error the metadata column is dropped
  const meta = user.rawUserMetaData;
  return [name, owner, at, sure, meta];
}
"#,
    );
    let output = app.typecheck();
    assert!(output.status.success(), "tsc refused the generated files:\n{}", printed(&output));

    // AND they arrive in Convex as planned, verified
    let server = ConvexTestServer::for_convex_dir(&convex_dir);
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();
    prepared.against(&url, &key, &["verify", "--accept-rejected", "1"]).success();
    let page = |table: &str| {
        let args = json!({"table": table, "cursor": null, "numItems": 100});
        call(&server, FunctionKind::Query, "migrate:page", args)["page"].as_array().unwrap().clone()
    };
    let users = page("authUsers");
    let ada = users.iter().find(|u| u["fullName"] == "Ada Lovelace").unwrap();
    let profile = page("profiles").into_iter().find(|p| p["username"] == "ada").unwrap();
    assert_eq!(profile["userId"], ada["_id"]);
    assert_eq!(page("languages").iter().filter(|l| l["name"] == "English").count(), 1);
}

/// Rows for import's cycle (`import_losses::CYCLE_TABLES`): teams and members refer to each
/// other, NOT NULL both ways; members also refer to their manager (nullable).
const CYCLE_ROWS: &str = "
begin;
insert into teams values (1, 'red', 1), (2, 'blue', 3);
insert into members values (1, 1, null, 'a@x'), (2, 1, 1, 'b@x'), (3, 2, 1, 'c@x');
commit;
";

/// Runs `tests/convex/harness/check-schema.ts` on the app's schema with `steps`.
fn check_schema(app: &ConvexApp, steps: &[Value]) -> std::process::Output {
    let file = app.write("steps.json", &json!({ "steps": steps }).to_string());
    run(Command::new(convex_tool("tsx"))
        .current_dir(convex_tools())
        .arg("harness/check-schema.ts")
        .arg(app.path("convex/schema.ts"))
        .arg(file))
}

/// A scratch app holding the Convex files of `dir`.
fn copy_app(dir: &Path, label: &str) -> ConvexApp {
    let app = ConvexApp::new(label);
    for file in ["schema.ts", "migrateTables.ts", "migrate.ts"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        app.write(&format!("convex/{file}"), &text);
    }
    app
}

#[test]
fn after_a_complete_import_the_cycle_references_become_required() {
    // GIVEN a NOT NULL foreign-key cycle, exported, planned and transformed
    let prepared =
        Prepared::new(&format!("{}{CYCLE_ROWS}", crate::import_losses::CYCLE_TABLES), "");
    prepared.migrate(&["transform"]).success();
    let convex_dir = prepared.convex_dir();
    let init_after =
        || prepared.migrate(&["init", "--convex-dir", utf8(&convex_dir), "--after-import"]);
    let during = std::fs::read_to_string(convex_dir.join("migrateTables.ts")).unwrap();
    assert!(during.contains("ownerId: v.optional(v.id(\"members\"))"), "{during}");

    // WHEN the schema is tightened before any import THEN it is refused, changing nothing
    init_after().fails_with(2, &["the import is not complete", "migrate import"]);
    let unchanged = std::fs::read_to_string(convex_dir.join("migrateTables.ts")).unwrap();
    assert_eq!(unchanged, during);

    // WHEN the import completes (the second pass patching the cycle in) and is verified
    let server = ConvexTestServer::for_convex_dir(&convex_dir);
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();
    prepared.against(&url, &key, &["verify"]).success();

    // … a plan changed since is still refused
    let later = prepared.plan_dir().join("0002_later.toml");
    std::fs::write(&later, "[tables.\"public.members\"]\ntarget = \"people\"\n").unwrap();
    init_after().fails_with(2, &["the import is not complete", "made with plan"]);
    std::fs::remove_file(&later).unwrap();

    // THEN `init --after-import` writes the references every document now has as required
    let tightened = init_after().success();
    assert!(
        tightened.stdout.contains("required now: members.teamId, teams.ownerId"),
        "{tightened}"
    );
    let after = std::fs::read_to_string(convex_dir.join("migrateTables.ts")).unwrap();
    assert!(after.contains("    ownerId: v.id(\"members\"),"), "{after}");
    assert!(after.contains("    teamId: v.id(\"teams\"),"), "{after}");
    // (the nullable self-reference stays optional)
    assert!(after.contains("managerId: v.optional(v.id(\"members\"))"), "{after}");
    // … which transform and status warn about, as importing again would fail under it
    let status = prepared.migrate(&["status"]).success();
    assert!(status.stderr.contains("--after-import") || status.stdout.contains("--after-import"));

    // AND the tightened files typecheck
    let app = copy_app(&convex_dir, "after-import");
    let output = app.typecheck();
    assert!(output.status.success(), "tsc refused the tightened schema:\n{}", printed(&output));

    // AND convex-test accepts every imported document under the tightened schema, as Convex
    // checks the documents a deployment holds when a new schema is pushed, and refuses one
    // without its cycle reference
    let mut steps = Vec::new();
    for table in ["teams", "members"] {
        let args = json!({"table": table, "cursor": null, "numItems": 100});
        let page = call(&server, FunctionKind::Query, "migrate:page", args);
        for (i, doc) in page["page"].as_array().unwrap().iter().enumerate() {
            let mut doc = doc.as_object().unwrap().clone();
            doc.remove("_id");
            doc.remove("_creationTime");
            steps.push(
                json!({"op": "insert", "name": format!("{table}#{i}"), "table": table, "doc": doc}),
            );
        }
    }
    assert_eq!(steps.len(), 5);
    let mut orphaned = steps[0]["doc"].as_object().unwrap().clone();
    orphaned.remove("ownerId");
    let refusal = json!({
        "op": "reject", "table": "teams", "doc": orphaned,
        "error": "Missing required field `ownerId`",
    });
    steps.push(refusal);
    let output = check_schema(&app, &steps);
    assert!(output.status.success(), "{}", printed(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("6 of 6 steps ok"),
        "{}",
        printed(&output)
    );

    // … where the schema for the import takes the team without its owner
    let loose = ConvexApp::new("during-import");
    for file in ["schema.ts", "migrate.ts"] {
        loose.write(
            &format!("convex/{file}"),
            &std::fs::read_to_string(convex_dir.join(file)).unwrap(),
        );
    }
    loose.write("convex/migrateTables.ts", &during);
    let output = check_schema(&loose, &steps);
    assert!(!output.status.success(), "{}", printed(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("5 of 6 steps ok"),
        "{}",
        printed(&output)
    );

    // AND a plain `init` writes the schema for importing again
    prepared.migrate(&["init", "--convex-dir", utf8(&convex_dir)]).success();
    let again = std::fs::read_to_string(convex_dir.join("migrateTables.ts")).unwrap();
    assert_eq!(again, during);
}
