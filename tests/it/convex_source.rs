//! `export --from-convex`: a Convex deployment (convex-test behind `tests/convex/server.ts`) as
//! the source, copied into a second deployment by init, transform, import and verify unchanged.

use std::time::Duration;

use migrate::convex::client::FunctionKind;
use serde_json::{Value, json};

use crate::codegen_support::ConvexApp;
use crate::convex_server::ConvexTestServer;
use crate::import_pipeline::{all_documents, call};
use crate::support::{Run, Workdir, jsonl, utf8, wait_until};

/// The source app: `v.id()` references, int64, bytes, floats and nested values.
const SOURCE_SCHEMA: &str = r#"
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export default defineSchema({
  authors: defineTable({
    name: v.string(),
    karma: v.int64(),
    avatar: v.optional(v.bytes()),
  }).index("by_name", ["name"]),
  posts: defineTable({
    author: v.id("authors"),
    title: v.string(),
    score: v.float64(),
    draft: v.boolean(),
    meta: v.object({ tags: v.array(v.string()), big: v.int64(), blob: v.bytes() }),
  }),
});
"#;

const SOURCE_SEED: &str = r#"
import { internalMutationGeneric } from "convex/server";
import { v } from "convex/values";

export const seed = internalMutationGeneric({
  args: { authors: v.number(), postsEach: v.number() },
  handler: async (ctx, { authors, postsEach }) => {
    for (let a = 0; a < authors; a++) {
      const author = await ctx.db.insert("authors", {
        name: `author ${a}`,
        karma: 9007199254740993n * BigInt(a + 1),
        ...(a % 2 === 0 ? { avatar: new Uint8Array([0, 255, a]).buffer } : {}),
      });
      for (let p = 0; p < postsEach; p++) {
        await ctx.db.insert("posts", {
          author,
          title: `post ${a}.${p}`,
          score: p === 0 ? -0 : 0.1 * p,
          draft: p % 2 === 1,
          meta: { tags: ["a", `t${p}`], big: -9223372036854775808n, blob: new Uint8Array([p]).buffer },
        });
      }
    }
  },
});

export const addAuthor = internalMutationGeneric({
  args: { name: v.string() },
  handler: async (ctx, { name }) => {
    await ctx.db.insert("authors", { name, karma: 1n });
  },
});
"#;

fn source_app() -> ConvexApp {
    let app = ConvexApp::new("convex-source");
    app.write("convex/schema.ts", SOURCE_SCHEMA);
    app.write("convex/seed.ts", SOURCE_SEED);
    app
}

/// `migrate --data-dir … --plan-dir … <args>` in `work`, reading `source` with its key.
fn from(work: &Workdir, source: &ConvexTestServer, args: &[&str]) -> std::process::Command {
    let mut command = work.dirs_command(args);
    command.env("MIGRATE_SOURCE_DEPLOY_KEY", source.admin_key());
    command
}

fn against(work: &Workdir, target: &ConvexTestServer, args: &[&str]) -> Run {
    let mut command = work.dirs_command(args);
    command.env("CONVEX_URL", target.url()).env("CONVEX_DEPLOY_KEY", target.admin_key());
    Run::of(command)
}

/// init, transform, import into a new deployment, verify: the copy must verify exact.
fn copy_and_verify(work: &Workdir) -> ConvexTestServer {
    let convex_dir = work.path().join("convex");
    Run::of(work.dirs_command(&["init", "--convex-dir", utf8(&convex_dir)])).success();
    let target = ConvexTestServer::for_convex_dir(&convex_dir);
    Run::of(work.dirs_command(&["transform", "--convex-dir", utf8(&convex_dir)])).success();
    against(work, &target, &["import"]).success();
    against(work, &target, &["verify"]).success();
    target
}

#[test]
fn a_deployment_copies_into_another_with_references_int64_and_bytes_exact() {
    let source = ConvexTestServer::for_app(source_app());
    call(&source, FunctionKind::Mutation, "seed:seed", json!({"authors": 3, "postsEach": 2}));
    let work = Workdir::new();
    Run::of(from(&work, &source, &["export", "--from-convex", source.url()])).success();

    // Raw lines keep Convex's encoding: `_id` and `_creationTime` first, int64 and bytes tagged.
    let authors = jsonl(&work.raw_file("public.authors"));
    assert_eq!(authors.len(), 3);
    let first = &authors[0];
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert!(keys.contains(&&"_id".to_owned()) && keys.contains(&&"_creationTime".to_owned()));
    assert!(first["karma"]["$integer"].is_string(), "{first}");
    assert!(first["avatar"]["$bytes"].is_string(), "{first}");
    assert_eq!(authors[1]["avatar"], Value::Null, "a field left out is null");
    let posts = jsonl(&work.raw_file("public.posts"));
    assert_eq!(posts.len(), 6);
    assert!(posts[0]["score"]["$float"].is_string(), "-0 stays a tagged float: {}", posts[0]);
    let manifest = work.manifest();
    assert_eq!(manifest["source"]["convex"], source.url());
    assert!(manifest["snapshot"]["transaction_snapshot"].as_str().unwrap().starts_with("convex:"));

    let target = copy_and_verify(&work);
    let tables = std::fs::read_to_string(work.path().join("convex/migrateTables.ts")).unwrap();
    assert!(tables.contains(r#".index("by_name", ["name"])"#), "the source's index: {tables}");
    let copied_authors = all_documents(&target, "authors");
    let copied_posts = all_documents(&target, "posts");
    assert_eq!((copied_authors.len(), copied_posts.len()), (3, 6));
    for post in &copied_posts {
        let source_post =
            posts.iter().find(|p| p["_id"] == post["legacyId"]).expect("by legacy id");
        let author = copied_authors.iter().find(|a| a["_id"] == post["author"]).expect("a new id");
        assert_eq!(author["legacyId"], source_post["author"], "the reference leads to its author");
        assert_eq!(post["meta"], source_post["meta"], "nested int64 and bytes, exactly");
        assert_eq!(post["score"], source_post["score"]);
        assert_eq!(post["creationTime"], source_post["_creationTime"]);
    }
    for author in &copied_authors {
        let source_author = authors.iter().find(|a| a["_id"] == author["legacyId"]).unwrap();
        assert_eq!(author["karma"], source_author["karma"]);
    }

    // `run --from-convex` chains the same stages from the deployment (not from Postgres).
    call(&source, FunctionKind::Mutation, "seed:addAuthor", json!({"name": "late"}));
    let convex_dir = work.path().join("convex");
    let run = ["--format", "json", "run", "--from-convex", source.url(), "--convex-dir"];
    let mut command = from(&work, &source, &[&run[..], &[utf8(&convex_dir)]].concat());
    command.env("CONVEX_URL", target.url()).env("CONVEX_DEPLOY_KEY", target.admin_key());
    let run = Run::of(command).success();
    assert!(run.stdout.contains(r#""stage":"export""#), "{run}");
    assert_eq!(all_documents(&target, "authors").len(), 4);
}

#[test]
fn an_export_killed_mid_read_leaves_no_manifest_and_a_rerun_reads_one_new_snapshot() {
    // One document a page, 150 ms a page: the export takes seconds, and is killed inside it.
    let source = ConvexTestServer::for_app_paged(source_app(), 1, 150);
    call(&source, FunctionKind::Mutation, "seed:seed", json!({"authors": 4, "postsEach": 2}));
    let work = Workdir::new();
    let mut child = from(&work, &source, &["export", "--from-convex", source.url()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The first table (`authors`) is complete, the second is being read.
    wait_until("the first table's file", Duration::from_secs(60), || {
        work.raw_file("public.authors").exists()
    });
    std::thread::sleep(Duration::from_millis(400));
    // SIGKILL: nothing of migrate runs after it.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!work.manifest_path().exists(), "a killed export leaves no manifest");
    let partial = std::fs::read_dir(work.raw_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".partial"));
    assert!(partial, "the table being read is only a .partial file");
    assert!(!work.raw_file("public.posts").exists());

    // The source changes before the re-run: the new read sees it in every table at once.
    call(&source, FunctionKind::Mutation, "seed:addAuthor", json!({"name": "late"}));
    Run::of(from(&work, &source, &["export", "--from-convex", source.url()])).success();
    let leftovers: Vec<String> = std::fs::read_dir(work.raw_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    assert_eq!(jsonl(&work.raw_file("public.authors")).len(), 5);
    assert_eq!(jsonl(&work.raw_file("public.posts")).len(), 8);
    copy_and_verify(&work);
}

#[test]
fn a_wrong_source_key_is_refused_without_showing_it() {
    let source = ConvexTestServer::for_app(source_app());
    let work = Workdir::new();
    let mut command = work.dirs_command(&["export", "--from-convex", source.url()]);
    command.env("MIGRATE_SOURCE_DEPLOY_KEY", "prod:wrong|c2VjcmV0c2VjcmV0");
    let run = Run::of(command);
    run.fails_with(3, &["cannot read the source deployment's schema", "MIGRATE_SOURCE_DEPLOY_KEY"]);
    run.never_shows("c2VjcmV0c2VjcmV0");
}

/// The Better Auth component installed locally, as `init --preset better-auth` writes it, in an
/// app of its own: the source deployment of a move out of the component.
fn better_auth_app() -> ConvexApp {
    let app = ConvexApp::new("convex-better-auth-source");
    app.write(
        "convex/schema.ts",
        "import { defineSchema } from \"convex/server\";\nexport default defineSchema({});\n",
    );
    let component = [
        ("convex.config.ts", include_str!("../../src/plan/presets/better_auth/convex.config.ts")),
        ("schema.ts", include_str!("../../src/plan/presets/better_auth/schema.ts")),
        ("adapter.ts", include_str!("../../src/plan/presets/better_auth/adapter.ts")),
        ("migrate.ts", include_str!("../../src/plan/presets/better_auth/migrate.ts")),
    ];
    for (file, text) in component {
        app.write(&format!("convex/betterAuth/{file}"), text);
    }
    app
}

/// Creates a document of `model` through the component's adapter, as Better Auth does; its id.
fn create(source: &ConvexTestServer, model: &str, data: Value) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let key = migrate::settings::Secret::new(source.admin_key().to_owned());
    let client = migrate::convex::client::ConvexClient::new(
        source.url(),
        &key,
        Duration::from_secs(30),
        migrate::convex::client::RetryPolicy::default(),
    )
    .unwrap();
    let args = json!({"input": {"model": model, "data": data}});
    let created: Value = runtime
        .block_on(client.call_in_component("betterAuth", "adapter:create", &args))
        .unwrap_or_else(|e| panic!("create {model}: {e}\n{}", source.stderr()));
    created["_id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned()
}

#[test]
fn the_better_auth_component_moves_into_app_tables_with_every_reference_rewritten() {
    let source = ConvexTestServer::for_app(better_auth_app());
    let now = 1_700_000_000_000.0;
    let users: Vec<String> = (0..3)
        .map(|i| {
            let data = json!({"name": format!("User {i}"), "email": format!("u{i}@example.com"),
                "emailVerified": i % 2 == 0, "createdAt": now, "updatedAt": now});
            create(&source, "user", data)
        })
        .collect();
    let orgs: Vec<String> = (0..2)
        .map(|i| {
            let data =
                json!({"name": format!("Org {i}"), "slug": format!("org-{i}"), "createdAt": now});
            create(&source, "organization", data)
        })
        .collect();
    for (org, user, role) in [(0, 0, "owner"), (0, 1, "member"), (1, 2, "owner"), (1, 0, "admin")] {
        let data = json!({"organizationId": orgs[org], "userId": users[user], "role": role,
            "createdAt": now});
        create(&source, "member", data);
    }
    let data = json!({"organizationId": orgs[0], "email": "new@example.com", "status": "pending",
        "expiresAt": now, "createdAt": now, "inviterId": users[0]});
    create(&source, "invitation", data);

    let work = Workdir::new();
    let export = ["export", "--from-convex", source.url(), "--component", "betterAuth"];
    Run::of(from(&work, &source, &export)).success();
    assert_eq!(jsonl(&work.raw_file("betterAuth.member")).len(), 4);
    assert_eq!(work.manifest()["source"]["component"], "betterAuth");

    let convex_dir = work.path().join("convex");
    let init =
        ["init", "--convex-dir", utf8(&convex_dir), "--preset", "better-auth-component-to-app"];
    Run::of(work.dirs_command(&init)).success();
    assert!(!convex_dir.join("betterAuth").exists(), "no component in the target");
    let tables = std::fs::read_to_string(convex_dir.join("migrateTables.ts")).unwrap();
    for index in
        [r#".index("by_slug", ["slug"])"#, r#".index("by_email_and_name", ["email", "name"])"#]
    {
        assert!(tables.contains(index), "natural key {index}: {tables}");
    }
    let target = ConvexTestServer::for_convex_dir(&convex_dir);
    Run::of(work.dirs_command(&["transform", "--convex-dir", utf8(&convex_dir)])).success();
    against(&work, &target, &["import"]).success();
    against(&work, &target, &["verify"]).success();

    let app_users = all_documents(&target, "user");
    let app_orgs = all_documents(&target, "organization");
    let members = all_documents(&target, "member");
    assert_eq!((app_users.len(), app_orgs.len(), members.len()), (3, 2, 4));
    let source_members = jsonl(&work.raw_file("betterAuth.member"));
    for member in &members {
        let old = source_members.iter().find(|m| m["_id"] == member["legacyId"]).unwrap();
        let org =
            app_orgs.iter().find(|o| o["_id"] == member["organizationId"]).expect("an app org");
        let user = app_users.iter().find(|u| u["_id"] == member["userId"]).expect("an app user");
        assert_eq!(org["legacyId"], old["organizationId"], "{member}");
        assert_eq!(user["legacyId"], old["userId"], "{member}");
    }
    let invitation = &all_documents(&target, "invitation")[0];
    let inviter = app_users.iter().find(|u| u["_id"] == invitation["inviterId"]).unwrap();
    assert_eq!(inviter["legacyId"], users[0].as_str());
}

#[test]
fn tables_selects_what_is_read_and_a_table_the_schema_lacks_is_refused() {
    let source = ConvexTestServer::for_app(source_app());
    call(&source, FunctionKind::Mutation, "seed:seed", json!({"authors": 2, "postsEach": 1}));
    let work = Workdir::new();
    let only = ["export", "--from-convex", source.url(), "--tables", "public.authors"];
    Run::of(from(&work, &source, &only)).success();
    assert_eq!(work.raw_files(), ["public.authors.jsonl"]);
    let tables = work.manifest()["catalog"]["tables"].as_array().unwrap().len();
    assert_eq!(tables, 1);

    let missing = ["export", "--from-convex", source.url(), "--tables", "comments"];
    Run::of(from(&work, &source, &missing))
        .fails_with(2, &["no table of the source deployment matches --tables comments"]);
}
