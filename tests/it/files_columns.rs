//! Columns naming Supabase Storage objects (`policy = "file"`) becoming `v.id("_storage")` fields:
//! real Postgres holding Supabase's storage schema with generated rows, the bytes in a folder,
//! imported into `tests/convex/server.ts`, where an app query turns the field into a URL whose
//! bytes are the object's; a value naming no object under each orphan policy; verify.

use std::path::Path;

use migrate::convex::client::{ConvexClient, FunctionKind, RetryPolicy};
use migrate::settings::Secret;
use serde_json::{Value, json};

use crate::convex_server::ConvexTestServer;
use crate::files::{TABLES, fetch, prepare_with, storage_db, write_folder};
use crate::import_pipeline::{Prepared, call};

type Object = (&'static str, String, &'static str, Vec<u8>);

fn objects() -> Vec<Object> {
    vec![
        ("avatars", "1.png".to_owned(), "image/png", b"\x89PNG\r\n\x1a\n avatar one".to_vec()),
        ("avatars", "2.png".to_owned(), "image/png", b"\x89PNG\r\n\x1a\n avatar two".to_vec()),
        ("docs", "notes with spaces.txt".to_owned(), "text/plain", b"plain text\n".to_vec()),
    ]
}

/// The bytes of the object `bucket/path`.
fn bytes_of<'a>(objects: &'a [Object], key: &str) -> &'a [u8] {
    let found = objects.iter().find(|(bucket, path, ..)| format!("{bucket}/{path}") == key);
    &found.unwrap_or_else(|| panic!("no object {key}")).3
}

/// Supabase's storage schema with a row per object, and `profiles` whose `rows` name them:
/// `(id, avatar_url, cover_url, doc_path)` as SQL literals.
fn fixture(objects: &[Object], rows: &[(i32, &str, &str, &str)]) -> String {
    let mut sql = String::from(
        "create table public.profiles (id int primary key, avatar_url text, cover_url text, \
         doc_path varchar(200));\n\
         insert into storage.buckets (id, name) values ('avatars', 'avatars'), ('docs', 'docs');\n",
    );
    for (bucket, path, mime, bytes) in objects {
        sql.push_str(&format!(
            "insert into storage.objects (bucket_id, name, metadata) values ('{bucket}', '{path}', '{{\"size\": {}, \"mimetype\": \"{mime}\"}}');\n",
            bytes.len()
        ));
    }
    for (id, avatar, cover, doc) in rows {
        sql.push_str(&format!(
            "insert into public.profiles values ({id}, {avatar}, {cover}, {doc});\n"
        ));
    }
    sql
}

/// `[files]` from `source`, and the three columns as files: a plain path in `avatars`, a public
/// URL of any bucket, `bucket/path` in `docs`; then `extra`.
fn plan(source: &str, extra: &str) -> String {
    format!(
        "[files]\nsource = \"{source}\"\n\n\
         [tables.\"public.profiles\".columns.avatar_url]\n\
         policy = \"file\"\nbucket = \"avatars\"\nfield = \"avatar\"\n\n\
         [tables.\"public.profiles\".columns.cover_url]\n\
         policy = \"file\"\nform = \"url\"\nfield = \"cover\"\n\n\
         [tables.\"public.profiles\".columns.doc_path]\n\
         policy = \"file\"\nform = \"bucket/path\"\nbucket = \"docs\"\n\n{extra}"
    )
}

/// An app module reading a profile's files the way an app does: a field's URL, and a
/// mutation giving profile `to` the avatar of profile `from` (to see verify catch it).
const APP_TS: &str = r#"
import { mutationGeneric, queryGeneric } from "convex/server";
import { v } from "convex/values";
import type { GenericId } from "convex/values";

async function profile(ctx: any, legacyId: string) {
  return await ctx.db
    .query("profiles")
    .withIndex("by_legacy_id", (q: any) => q.eq("legacyId", legacyId))
    .unique();
}

export const urlOf = queryGeneric({
  args: { legacyId: v.string(), field: v.string() },
  handler: async (ctx, { legacyId, field }) => {
    const id = (await profile(ctx, legacyId))[field];
    return id === undefined ? null : await ctx.storage.getUrl(id as GenericId<"_storage">);
  },
});

export const giveAvatar = mutationGeneric({
  args: { from: v.string(), to: v.string() },
  handler: async (ctx, { from, to }) => {
    const source = await profile(ctx, from);
    const target = await profile(ctx, to);
    await ctx.db.patch(target._id, { avatar: source.avatar });
  },
});
"#;

fn utf8(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Exported, planned, transformed, and the app deployed.
fn prepare(sql: &str, plan: &str) -> (Prepared, ConvexTestServer) {
    prepare_with(sql, plan, &[("files_app.ts", APP_TS)])
}

/// The lines of `transformed/profiles.jsonl`, by legacy id.
fn transformed(prepared: &Prepared) -> std::collections::BTreeMap<String, Value> {
    let text = std::fs::read_to_string(prepared.data_path("transformed/profiles.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).unwrap();
            (line["doc"]["legacyId"].as_str().unwrap().to_owned(), line)
        })
        .collect()
}

#[test]
fn file_columns_become_storage_ids_an_app_turns_into_urls_and_verify_checks_them() {
    let objects = objects();
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &objects);
    let cover =
        "'https://abcd.supabase.co/storage/v1/object/public/docs/notes%20with%20spaces.txt'";
    let rows = [
        (1, "'1.png'", cover, "'docs/notes with spaces.txt'"),
        (2, "'2.png'", "'/storage/v1/object/sign/avatars/1.png?token=abc'", "null"),
        (3, "null", "null", "null"),
    ];
    let (prepared, server) =
        prepare(&fixture(&objects, &rows), &plan(&format!("file://{}", utf8(dir.path())), ""));
    let key = server.admin_key().to_owned();

    // The schema holds the fields as storage ids; transform wrote them as references to files.
    let tables = std::fs::read_to_string(prepared.convex_dir().join("migrateTables.ts")).unwrap();
    for field in ["avatar", "cover", "docPath"] {
        assert!(
            tables.contains(&format!("    {field}: v.optional(v.id(\"_storage\")),")),
            "{tables}"
        );
    }
    let lines = transformed(&prepared);
    assert_eq!(
        lines["1"]["refs"],
        json!({
            "avatar": {"table": "_storage", "legacyId": "avatars/1.png"},
            "cover": {"table": "_storage", "legacyId": "docs/notes with spaces.txt"},
            "docPath": {"table": "_storage", "legacyId": "docs/notes with spaces.txt"},
        })
    );
    assert_eq!(lines["3"].get("refs"), None, "{}", lines["3"]);
    assert_eq!(lines["3"]["doc"], json!({"legacyId": "3"}));

    prepared.against(server.url(), &key, &["import"]).success();

    // The app's query turns each field into a URL serving the object's bytes.
    let expected = [
        (
            "1",
            [
                Some("avatars/1.png"),
                Some("docs/notes with spaces.txt"),
                Some("docs/notes with spaces.txt"),
            ],
        ),
        ("2", [Some("avatars/2.png"), Some("avatars/1.png"), None]),
        ("3", [None, None, None]),
    ];
    for (legacy_id, keys) in expected {
        for (field, key) in ["avatar", "cover", "docPath"].into_iter().zip(keys) {
            let args = json!({"legacyId": legacy_id, "field": field});
            let url = call(&server, FunctionKind::Query, "files_app:urlOf", args);
            let Some(key) = key else {
                assert_eq!(url, Value::Null, "profile {legacy_id} {field}");
                continue;
            };
            let url = url.as_str().unwrap_or_else(|| panic!("{legacy_id} {field}: {url}"));
            let (status, _, got) = fetch(url);
            assert_eq!(status, 200, "{url}\n{}", server.stderr());
            assert!(
                got == bytes_of(&objects, key),
                "profile {legacy_id} {field}: not {key}'s bytes"
            );
        }
    }

    // Verify resolves each storage id back to its object's key: exact.
    let verify = prepared.against(server.url(), &key, &["verify"]).success();
    assert!(verify.stdout.contains("Convex holds exactly the 8 transformed"), "{}", verify.stdout);

    // The module never writes an id naming nothing: a file no migrated file records is refused.
    let refused = upsert_error(
        &server,
        json!({"table": "profiles", "docs": [{
            "doc": {"legacyId": "9"},
            "refs": {"avatar": {"table": "_storage", "legacyId": "avatars/none.png"}},
        }]}),
    );
    assert!(
        refused.contains(
            "profiles 9: avatar refers to the file avatars/none.png, which is not in Convex file \
             storage (no migrated file records it)"
        ),
        "{refused}"
    );

    // A file field pointing at another file than the source's is a difference verify names.
    call(&server, FunctionKind::Mutation, "files_app:giveAvatar", json!({"from": "2", "to": "1"}));
    let verify = prepared.against(server.url(), &key, &["verify"]);
    assert_eq!(verify.code, Some(1), "{verify}");
    assert!(
        verify
            .stdout
            .contains("Convex has _storage avatars/2.png, the source has _storage avatars/1.png"),
        "{}",
        verify.stdout
    );
}

/// The error message of a `migrate:upsert` call that must fail.
fn upsert_error(server: &ConvexTestServer, args: Value) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let key = Secret::new(server.admin_key().to_owned());
    let client = ConvexClient::new(
        server.url(),
        &key,
        std::time::Duration::from_secs(30),
        RetryPolicy::default(),
    )
    .unwrap();
    match runtime.block_on(client.call::<Value>(FunctionKind::Mutation, "migrate:upsert", &args)) {
        Ok(value) => panic!("upsert succeeded: {value}"),
        Err(error) => format!("{error:#}"),
    }
}

#[test]
fn a_value_naming_no_object_follows_each_orphan_policy() {
    let objects: Vec<Object> = objects().into_iter().take(1).collect();
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &objects);
    // Profile 2's avatar has no object; profile 4's cover is a URL of another site.
    let rows = [
        (1, "'1.png'", "null", "null"),
        (2, "'missing.png'", "null", "null"),
        (3, "null", "null", "null"),
        (4, "null", "'https://lh3.googleusercontent.com/a/photo.jpg'", "null"),
    ];
    let source = format!("file://{}", utf8(dir.path()));
    let orphans = |policy: &str| {
        format!(
            "[tables.\"public.profiles\".columns.avatar_url]\norphans = \"{policy}\"\n\n\
             [tables.\"public.profiles\".columns.cover_url]\norphans = \"{policy}\"\n"
        )
    };
    let db = storage_db();
    db.execute(&fixture(&objects, &rows));
    let prepared = Prepared::from_db(db, &["--tables", TABLES], &plan(&source, ""));
    let with_policy = |policy: &str| {
        std::fs::write(prepared.plan_dir().join("0003_orphans.toml"), orphans(policy)).unwrap();
        prepared.migrate(&["transform"])
    };

    // fail (the default): the rows are rejected, naming the table, row, field and why.
    with_policy("fail").fails_with(5, &[]);
    let rejects =
        std::fs::read_to_string(prepared.data_path("rejects/public.profiles.jsonl")).unwrap();
    let rejects: Vec<Value> = rejects.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    assert_eq!(rejects[0]["table"], "public.profiles");
    assert_eq!(rejects[0]["key"], json!({"id": 2}));
    assert_eq!(rejects[0]["field"], "avatar");
    assert_eq!(
        rejects[0]["reason"],
        "`avatar_url` = \"missing.png\" names the object `avatars/missing.png`, which \
         `storage.objects` does not list (orphan policy `fail`)"
    );
    assert_eq!(rejects[1]["key"], json!({"id": 4}));
    assert_eq!(rejects[1]["field"], "cover");
    assert!(
        rejects[1]["reason"].as_str().unwrap().contains("is not a Supabase Storage URL"),
        "{}",
        rejects[1]
    );

    // drop: the rows are left out, counted by the rule.
    with_policy("drop").success();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(prepared.data_path("transformed/manifest.json")).unwrap(),
    )
    .unwrap();
    let profiles = manifest["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["table"] == "public.profiles")
        .unwrap();
    assert_eq!(
        profiles["filtered"],
        json!({"orphans drop `avatar`": 1, "orphans drop `cover`": 1})
    );
    assert_eq!(transformed(&prepared).keys().collect::<Vec<_>>(), ["1", "3"]);

    // null: the fields are left out, the orphans counted.
    with_policy("null").success();
    let lines = transformed(&prepared);
    assert_eq!(lines["2"], json!({"doc": {"legacyId": "2"}}));
    assert_eq!(lines["4"], json!({"doc": {"legacyId": "4"}}));
    let manifest =
        std::fs::read_to_string(prepared.data_path("transformed/manifest.json")).unwrap();
    assert!(manifest.contains("\"orphan_references\": 2"), "{manifest}");

    // keep_legacy: the fields keep the column's text; Convex takes it (`v.union(v.id, v.string)`)
    // and verify compares it as it is.
    with_policy("keep_legacy").success();
    let lines = transformed(&prepared);
    assert_eq!(lines["2"]["doc"], json!({"legacyId": "2", "avatar": "missing.png"}));
    assert_eq!(
        lines["4"]["doc"],
        json!({"legacyId": "4", "cover": "https://lh3.googleusercontent.com/a/photo.jpg"})
    );
    prepared.migrate(&["init", "--convex-dir", utf8(&prepared.convex_dir())]).success();
    let tables = std::fs::read_to_string(prepared.convex_dir().join("migrateTables.ts")).unwrap();
    assert!(
        tables.contains("    avatar: v.optional(v.union(v.id(\"_storage\"), v.string())),"),
        "{tables}"
    );
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    let key = server.admin_key().to_owned();
    prepared.against(server.url(), &key, &["import"]).success();
    prepared.against(server.url(), &key, &["verify"]).success();
    let found = call(
        &server,
        FunctionKind::Query,
        "migrate:get",
        json!({"table": "profiles", "legacyIds": ["1", "2"]}),
    );
    assert_eq!(found[1]["avatar"], "missing.png");
    let stored = &crate::files::records(&server)["avatars/1.png"]["storageId"];
    assert_eq!(found[0]["avatar"], *stored, "profile 1's avatar is its file's storage id");
}

#[test]
fn file_fields_typecheck_as_storage_ids_an_app_passes_to_get_url() {
    // GIVEN the generated files of a plan with file columns under every orphan policy and null
    // policy, and an app module passing them to `ctx.storage.getUrl`
    use migrate::plan::model::{FileColumnPlan, NullPolicy, OrphanPolicy, PathForm, Plan};
    let file = |column: &str, orphans, optional| FileColumnPlan {
        column: column.to_owned(),
        field: column.to_owned(),
        bucket: Some("avatars".to_owned()),
        form: PathForm::Path,
        orphans,
        optional,
    };
    let mut profiles = crate::codegen_support::table("profiles", NullPolicy::Omit);
    profiles.files = vec![
        file("avatar", OrphanPolicy::Fail, false),
        file("banner", OrphanPolicy::Null, true),
        file("legacy", OrphanPolicy::KeepLegacy, true),
    ];
    let mut nulled = crate::codegen_support::table("nulled", NullPolicy::Null);
    nulled.files = vec![file("avatar", OrphanPolicy::Drop, true)];
    let plan = Plan {
        tables: vec![profiles, nulled],
        skipped: Vec::new(),
        hash: "blake3:files-columns".into(),
        warnings: Vec::new(),
        files: Some(migrate::plan::model::FilesPlan { source: "s3://".into(), at: "test".into() }),
    };
    let app = crate::codegen_support::ConvexApp::new("tsc-file-columns");
    app.write_generated(&plan);
    app.write(
        "convex/avatars.ts",
        r#"import type { Infer } from "convex/values";
import { migrateTables } from "./migrateTables";

type Profile = Infer<typeof migrateTables.profiles.validator>;
type Nulled = Infer<typeof migrateTables.nulled.validator>;
type Storage = { getUrl(id: Profile["avatar"]): Promise<string | null> };

export async function urls(storage: Storage, profile: Profile, nulled: Nulled) {
  const legacy = profile.legacy;
  return [
    await storage.getUrl(profile.avatar),
    profile.banner === undefined ? null : await storage.getUrl(profile.banner),
    nulled.avatar === null ? null : await storage.getUrl(nulled.avatar),
    // Under keep_legacy the field may hold the column's text instead of an id.
    typeof legacy === "string" ? legacy : null,
  ];
}
"#,
    );
    // WHEN tsc checks the app THEN it finds nothing
    app.assert_typechecks();
}

/// Profiles whose avatars are files (`avatars/1.png`, `avatars/2.png`), imported and verified.
fn avatars_imported() -> (Prepared, ConvexTestServer, tempfile::TempDir, Vec<Object>) {
    let objects = objects();
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &objects);
    let rows = [(1, "'1.png'", "null", "null"), (2, "'2.png'", "null", "null")];
    let (prepared, server) =
        prepare(&fixture(&objects, &rows), &plan(&format!("file://{}", utf8(dir.path())), ""));
    prepared.against(server.url(), server.admin_key(), &["import"]).success();
    prepared.against(server.url(), server.admin_key(), &["verify"]).success();
    (prepared, server, dir, objects)
}

/// Avatar 1 replaced by other bytes (another size) at the same path, the profiles' rows
/// unchanged; exported and transformed again. The new bytes.
/// With `late`, `storage.objects` also lists `docs/late.txt`, which the source does not hold
/// yet ([`LATE`] writes it): the run that uploads avatar 1 stops at the end (exit 5), as a run
/// killed after replacing it would.
fn replace_avatar_one(prepared: &Prepared, dir: &Path, late: bool) -> Vec<u8> {
    let new_bytes = b"\x89PNG\r\n\x1a\n avatar one, drawn again".to_vec();
    std::fs::write(dir.join("avatars/1.png"), &new_bytes).unwrap();
    prepared._db.execute(&format!(
        "update storage.objects set metadata = '{{\"size\": {}, \"mimetype\": \"image/png\"}}' \
         where bucket_id = 'avatars' and name = '1.png';",
        new_bytes.len()
    ));
    if late {
        prepared._db.execute(&format!(
            "insert into storage.objects (bucket_id, name, metadata) values ('docs', 'late.txt', \
             '{{\"size\": {}, \"mimetype\": \"text/plain\"}}');",
            LATE.len()
        ));
    }
    prepared.work.export(prepared._db.url(), &["--tables", TABLES]).success();
    prepared.migrate(&["transform"]).success();
    new_bytes
}

/// The bytes of `docs/late.txt`.
const LATE: &[u8] = b"late";

/// Each profile's avatar URL serves `bytes`.
fn assert_avatars(server: &ConvexTestServer, expected: [(&str, &[u8]); 2]) {
    for (legacy_id, bytes) in expected {
        let args = json!({"legacyId": legacy_id, "field": "avatar"});
        let url = call(server, FunctionKind::Query, "files_app:urlOf", args);
        let url = url.as_str().unwrap_or_else(|| panic!("profile {legacy_id}: no URL: {url}"));
        let (status, _, got) = fetch(url);
        assert_eq!(status, 200, "{url}");
        assert!(got == bytes, "profile {legacy_id}: not the avatar's current bytes");
    }
}

#[test]
fn a_sync_after_an_object_got_new_bytes_points_the_documents_naming_it_at_the_new_file() {
    // GIVEN avatars imported, WHEN avatar 1 gets new bytes at the same path
    let (prepared, server, dir, objects) = avatars_imported();
    let against = |args: &[&str]| prepared.against(server.url(), server.admin_key(), args);
    let new_bytes = replace_avatar_one(&prepared, dir.path(), true);

    // THEN a dry run counts profile 1 among the documents to send, though its line is the same
    let dry: Value =
        serde_json::from_str(&against(&["--format", "json", "sync", "--dry-run"]).success().stdout)
            .unwrap();
    let profiles = dry["tables"].as_array().unwrap().iter().find(|t| t["table"] == "profiles");
    assert_eq!(profiles.unwrap()["updated"], 1, "{dry}");

    // WHEN it syncs, stops after uploading avatar 1 (an object the source lacks), and syncs
    // again once the source has it
    let stopped = against(&["sync"]);
    assert_eq!(stopped.code, Some(5), "{stopped}");
    std::fs::write(dir.path().join("docs/late.txt"), LATE).unwrap();
    against(&["sync"]).success();
    // THEN profile 1's avatar is the new file, whose URL serves the new bytes, profile 2's is
    // untouched, and verify is exact
    assert_avatars(&server, [("1", &new_bytes), ("2", bytes_of(&objects, "avatars/2.png"))]);
    against(&["verify"]).success();
}

#[test]
fn an_import_run_again_after_an_object_got_new_bytes_sends_the_documents_naming_it_again() {
    // GIVEN avatars imported, WHEN avatar 1 gets new bytes and import runs again, stopping
    // after uploading it (an object the source lacks), then once more with the source whole
    let (prepared, server, dir, objects) = avatars_imported();
    let new_bytes = replace_avatar_one(&prepared, dir.path(), true);
    let stopped = prepared.against(server.url(), server.admin_key(), &["import"]);
    assert_eq!(stopped.code, Some(5), "{stopped}");
    assert!(stopped.stderr.contains("`profiles` names files uploaded again"), "{stopped}");
    std::fs::write(dir.path().join("docs/late.txt"), LATE).unwrap();
    prepared.against(server.url(), server.admin_key(), &["import"]).success();

    // THEN the fields name the new file, and verify is exact
    assert_avatars(&server, [("1", &new_bytes), ("2", bytes_of(&objects, "avatars/2.png"))]);
    prepared.against(server.url(), server.admin_key(), &["verify"]).success();
}
