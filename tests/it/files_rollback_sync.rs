//! Files under `migrate rollback` and `migrate sync` (docs/files.md, "Rollback" and "Sync"):
//! real Postgres with Supabase's storage schema, the bytes in a folder, the generated module
//! under convex-test (`tests/convex/server.ts`), or the sink for lost replies. Rollback removes
//! every file the migration recorded and no file the application stored itself, also when run
//! again after being killed half-way, and counts each once when replies are lost; sync uploads
//! new and changed objects, replaces the changed ones' files and removes those whose rows are
//! gone (unless `--no-deletes`).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use migrate::convex::client::FunctionKind;
use serde_json::{Value, json};

use crate::convex_server::ConvexTestServer;
use crate::files::{
    APP_TS, TABLES, files_plan, fixture, objects, prepare_with, records, storage_db, write_folder,
};
use crate::import_pipeline::{Prepared, call};
use crate::support::{Run, wait_until};

/// The application's own use of file storage: it uploads a file itself, and lists what
/// `_storage` holds.
const OWN_TS: &str = r#"
import { mutationGeneric, queryGeneric } from "convex/server";

export const uploadUrl = mutationGeneric({
  args: {},
  handler: async (ctx) => await ctx.storage.generateUploadUrl(),
});

export const stored = queryGeneric({
  args: {},
  handler: async (ctx) =>
    (await ctx.db.system.query("_storage").collect()).map((file) => file._id),
});
"#;

/// Exported with `plan` added to the first plan, transformed, the app deployed with the
/// application's own file functions beside the generated ones.
fn prepare(sql: &str, plan: &str) -> (Prepared, ConvexTestServer) {
    prepare_with(sql, plan, &[("files_app.ts", APP_TS), ("files_own.ts", OWN_TS)])
}

fn source_of(dir: &Path) -> String {
    format!("file://{}", dir.to_str().unwrap())
}

/// Every storage id `_storage` holds.
fn stored(server: &ConvexTestServer) -> BTreeSet<String> {
    let ids = call(server, FunctionKind::Query, "files_own:stored", json!({}));
    ids.as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect()
}

/// The application uploads `bytes` itself, the way apps do; its storage id.
fn upload_own(server: &ConvexTestServer, bytes: &[u8]) -> String {
    let url = call(server, FunctionKind::Mutation, "files_own:uploadUrl", json!({}));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let reply: Value = runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(url.as_str().unwrap())
            .header("content-type", "text/plain")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    });
    reply["storageId"].as_str().unwrap().to_owned()
}

/// `[files]` from the folder `dir`, the `storage.objects` table itself not migrated.
fn skipping_objects(dir: &Path) -> String {
    format!("{}\n[tables.\"storage.objects\"]\nskip = true\n", files_plan(&source_of(dir)))
}

/// `n` small text objects in the bucket `docs`, under `<dir>/`.
fn small_objects(dir: &str, n: usize) -> Vec<(&'static str, String, &'static str, Vec<u8>)> {
    let object = |i| ("docs", format!("{dir}/{i:03}.txt"), "text/plain", format!("{dir} {i}"));
    (0..n).map(object).map(|(b, p, t, bytes)| (b, p, t, bytes.into_bytes())).collect()
}

/// `objects` written into `dir` and listed in `storage.objects`, exported (their table skipped)
/// and transformed; the plan a sink serves.
fn prepare_for_sinks(
    objects: &[(&'static str, String, &'static str, Vec<u8>)],
    dir: &Path,
) -> (Prepared, convex_sink::Plan) {
    write_folder(dir, objects);
    let db = storage_db();
    db.execute(&fixture(objects, &[]));
    let prepared = Prepared::from_db(db, &["--tables", TABLES], &skipping_objects(dir));
    prepared.migrate(&["transform"]).success();
    let plan = convex_sink::Plan::from_module_file(prepared.convex_dir().join("migrate.ts"))
        .expect("the generated migrate.ts carries its plan");
    (prepared, plan)
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{run}"))
}

fn storage_ids(records: &std::collections::BTreeMap<String, Value>) -> BTreeSet<String> {
    records.values().map(|r| r["storageId"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn rollback_removes_every_migrated_file_and_not_the_apps_own_then_finds_nothing_left() {
    // GIVEN the objects imported, and a file the application uploaded itself
    let objects = objects();
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &objects);
    let (prepared, server) = prepare(&fixture(&objects, &[]), &files_plan(&source_of(dir.path())));
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    let against = |args: &[&str]| prepared.against(&url, &key, args);
    against(&["import"]).success();
    let migrated = storage_ids(&records(&server));
    assert_eq!(migrated.len(), 5);
    let own = upload_own(&server, b"the app's own file");
    assert_eq!(stored(&server).len(), 6);
    let bytes: usize = objects.iter().map(|o| o.3.len()).sum();

    // WHEN rollback runs dry THEN it counts the files and bytes, and removes nothing
    let dry = against(&["rollback", "--dry-run"]).success();
    assert!(
        dry.stdout.contains(&format!(
            "files: 5 of 5 migrated files ({bytes} bytes; avatars 2, docs 3) would be removed"
        )),
        "{dry}"
    );
    assert_eq!(records(&server).len(), 5);
    assert_eq!(stored(&server).len(), 6);

    // WHEN it rolls back
    let rollback = json_of(&against(&["--format", "json", "rollback"]).success());
    // THEN every migrated file is gone with its record, and the app's own file stays
    assert_eq!(rollback["files"]["removed"], 5, "{rollback}");
    assert_eq!(rollback["files"]["removed_bytes"], bytes, "{rollback}");
    assert!(records(&server).is_empty());
    assert_eq!(stored(&server), BTreeSet::from([own.clone()]));
    let (status, _, got) = crate::files::fetch(&crate::files::file_url(&server, &own));
    assert_eq!((status, got.as_slice()), (200, b"the app's own file".as_slice()));

    // WHEN it runs again THEN it finds no file to remove, and says so
    let again = against(&["rollback"]).success();
    assert!(
        again
            .stdout
            .contains("files: no migrated file is recorded in `migrateFiles`: none to remove"),
        "{again}"
    );
    assert_eq!(stored(&server), BTreeSet::from([own]));

    // AND verify finds no migrated document or file left
    let verify = against(&["verify"]).success();
    assert!(verify.stdout.contains("no migrated file is left in Convex file storage"), "{verify}");
    assert!(verify.stdout.contains("verified: no migrated document or file is left"), "{verify}");

    // AND an import after the rollback sends every file again
    let import = against(&["import"]).success();
    assert!(import.stdout.contains("files: 5 of 5 uploaded"), "{import}");
    crate::files::assert_arrived(&server, &objects);
    against(&["verify"]).success();
}

#[test]
fn a_rollback_killed_half_way_removes_the_rest_when_run_again() {
    // GIVEN many small objects imported (their table skipped: only the files matter here), and
    // the application's own file
    let objects = small_objects("many", 120);
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &objects);
    let (prepared, server) = prepare(&fixture(&objects, &[]), &skipping_objects(dir.path()));
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();
    assert_eq!(records(&server).len(), 120);
    let own = upload_own(&server, b"mine");

    // WHEN a rollback removing one file per call is killed once some are gone
    let mut command = prepared.command(&["rollback", "--batch-size", "1"]);
    command.env("CONVEX_URL", &url).env("CONVEX_DEPLOY_KEY", &key);
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = command.spawn().unwrap();
    wait_until("some files removed", Duration::from_secs(120), || records(&server).len() < 115);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = records(&server).len();
    assert!(left > 0, "the rollback finished before the kill");
    // THEN each file went with its record: the stored files are the recorded ones and the app's
    let mut expected = storage_ids(&records(&server));
    expected.insert(own.clone());
    assert_eq!(stored(&server), expected);

    // WHEN it runs again THEN it removes exactly the rest
    let rollback =
        json_of(&prepared.against(&url, &key, &["--format", "json", "rollback"]).success());
    assert_eq!(rollback["files"]["recorded"], left, "{rollback}");
    assert_eq!(rollback["files"]["removed"], left, "{rollback}");
    assert!(records(&server).is_empty());
    assert_eq!(stored(&server), BTreeSet::from([own]));
    prepared.against(&url, &key, &["verify"]).success();
}

#[test]
fn sync_uploads_new_and_changed_objects_and_removes_those_gone_unless_told_not_to() {
    // GIVEN the objects imported and verified (their table skipped: the files are the point)
    let objects = objects();
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &objects);
    let (prepared, server) = prepare(&fixture(&objects, &[]), &skipping_objects(dir.path()));
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    let against = |args: &[&str]| prepared.against(&url, &key, args);
    against(&["import"]).success();
    against(&["verify"]).success();
    let before = records(&server);
    let uploads = || server.stderr().matches("/api/storage/upload → 200").count();
    assert_eq!(uploads(), 5);

    // WHEN in the source an object is added, one replaced with bytes of the same size, one
    // with bytes of another size, and one deleted; then exported and transformed again
    std::fs::write(dir.path().join("docs/new.txt"), b"brand new").unwrap();
    std::fs::write(dir.path().join("avatars/1.png"), b"\x89PNG\r\n\x1a\n avatar ONE").unwrap();
    std::fs::write(dir.path().join("docs/notes with spaces.txt"), b"longer plain text\n").unwrap();
    std::fs::remove_file(dir.path().join("avatars/2.png")).unwrap();
    prepared._db.execute(
        "insert into storage.objects (bucket_id, name, owner, metadata) values ('docs', 'new.txt', \
         '00000000-0000-4000-8000-000000000007', '{\"size\": 9, \"mimetype\": \"text/plain\"}');
         update storage.objects set metadata = '{\"size\": 18, \"mimetype\": \"text/plain\"}'
           where name = 'notes with spaces.txt';
         -- as the Storage API deletes an object (the schema refuses other deletes)
         set storage.allow_delete_query = 'true';
         delete from storage.objects where name = '2.png';",
    );
    prepared.work.export(prepared._db.url(), &["--tables", TABLES]).success();
    prepared.migrate(&["transform"]).success();

    // THEN a dry run counts per bucket what would be uploaded and deleted, and changes nothing
    let dry = json_of(&against(&["--format", "json", "sync", "--dry-run"]).success());
    let files = &dry["files"];
    assert_eq!(
        [&files["new"], &files["changed"], &files["gone"], &files["unchanged"]],
        [1, 2, 1, 2],
        "{dry}"
    );
    assert_eq!(
        files["buckets"],
        json!({
            "avatars": {"upload": 1, "upload_bytes": 19, "delete": 1, "delete_bytes": 19},
            "docs": {"upload": 2, "upload_bytes": 27, "delete": 0, "delete_bytes": 0},
        }),
        "{dry}"
    );
    let text = against(&["sync", "--dry-run"]).success();
    assert!(text.stdout.contains("files, per bucket:"), "{text}");
    assert!(
        text.stdout.contains("files: 3 would be uploaded (1 new, 2 changed), 1 would be deleted"),
        "{text}"
    );
    assert_eq!(storage_ids(&records(&server)), storage_ids(&before));
    assert_eq!(uploads(), 5);

    // WHEN it syncs with --no-deletes
    let kept = json_of(&against(&["--format", "json", "sync", "--no-deletes"]).success());
    // THEN the new and changed objects are uploaded, the changed ones' old files deleted, the
    // gone object's file left
    assert_eq!(kept["files"]["uploaded"], 3, "{kept}");
    assert_eq!(kept["files"]["deleted"], 0, "{kept}");
    assert_eq!(uploads(), 8);
    let after = records(&server);
    assert_eq!(after.len(), 6, "{after:#?}");
    for changed in ["avatars/1.png", "docs/notes with spaces.txt"] {
        assert_ne!(after[changed]["storageId"], before[changed]["storageId"], "{changed}");
    }
    assert_eq!(after["avatars/2.png"]["storageId"], before["avatars/2.png"]["storageId"]);
    assert_eq!(stored(&server), storage_ids(&after), "no file is left without its record");
    let verify = against(&["verify"]);
    assert_eq!(verify.code, Some(1), "{verify}");
    assert!(
        verify.stdout.contains("file `avatars/2.png` is in Convex but not in `storage.objects`"),
        "{verify}"
    );

    // WHEN it syncs with deletes THEN the gone object's file goes with its record, nothing is
    // uploaded, and Convex is exactly the source
    let synced = json_of(&against(&["--format", "json", "sync"]).success());
    assert_eq!(synced["files"]["deleted"], 1, "{synced}");
    assert_eq!(synced["files"]["uploaded"], 0, "{synced}");
    let last = records(&server);
    assert_eq!(last.len(), 5);
    assert!(!last.contains_key("avatars/2.png"));
    assert_eq!(stored(&server), storage_ids(&last));
    against(&["verify"]).success();

    // WHEN nothing changed and it syncs again THEN no file is uploaded or deleted
    let again = against(&["sync"]).success();
    assert!(
        again.stdout.contains(
            "files: 0 uploaded (0 new, 0 changed; 0 bytes), 0 deleted (0 bytes), 5 unchanged"
        ),
        "{again}"
    );
    assert_eq!(uploads(), 8);
    assert_eq!(storage_ids(&records(&server)), storage_ids(&last));
}

#[test]
fn a_rollback_whose_replies_are_lost_removes_each_migrated_file_once_and_counts_it_once() {
    // GIVEN small objects imported into the sink, and a file the application stored itself
    let objects = small_objects("lost", 40);
    let dir = tempfile::tempdir().unwrap();
    let (prepared, plan) = prepare_for_sinks(&objects, dir.path());
    let sink = convex_sink::Sink::start(convex_sink::SinkConfig {
        seed: 17,
        ..convex_sink::SinkConfig::new(plan)
    })
    .expect("the sink starts");
    let (url, key) = (sink.url(), sink.admin_key().to_owned());
    prepared.against(&url, &key, &["import"]).success();
    assert_eq!(sink.file_records().len(), 40);
    let own = sink.store_file(4, "the app's own");

    // WHEN rollback runs while a third of the replies are lost after the call was applied
    sink.set_faults(convex_sink::Faults { reset_after: 0.3, ..convex_sink::Faults::none() })
        .unwrap();
    let rollback = json_of(
        &prepared
            .against(&url, &key, &["--format", "json", "rollback", "--batch-size", "4"])
            .success(),
    );

    // THEN calls were applied twice, yet every migrated file was removed and counted once, and
    // the application's file stays
    assert!(sink.stats().reset_after > 0, "{:?}", sink.stats());
    assert_eq!(rollback["files"]["recorded"], 40, "{rollback}");
    assert_eq!(rollback["files"]["removed"], 40, "{rollback}");
    let bytes: usize = objects.iter().map(|o| o.3.len()).sum();
    assert_eq!(rollback["files"]["removed_bytes"], bytes, "{rollback}");
    assert!(sink.file_records().is_empty());
    assert_eq!(sink.stored_files(), BTreeSet::from([own]));
    // and the documents too: each found one counted as removed once, whichever attempt did it
    let tables = rollback["tables"].as_array().expect("rows per table");
    let found: u64 = tables.iter().map(|t| t["found"].as_u64().unwrap()).sum();
    assert!(found > 0, "{rollback}");
    assert_eq!(rollback["removed"], found, "{rollback}");
}

#[test]
fn sync_knows_objects_unchanged_by_their_version_without_reading_their_bytes() {
    // GIVEN objects with Supabase's versions, imported: each record keeps its object's version
    let objects = objects();
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &objects);
    let versioned =
        format!("{}\nupdate storage.objects set version = 'v1-' || name;", fixture(&objects, &[]));
    let (prepared, server) = prepare(&versioned, &skipping_objects(dir.path()));
    let (url, key) = (server.url().to_owned(), server.admin_key().to_owned());
    let against = |args: &[&str]| prepared.against(&url, &key, args);
    against(&["import"]).success();
    let before = records(&server);
    assert!(
        before
            .values()
            .all(|r| r["version"].as_str().is_some_and(|v| v.starts_with("version:v1-"))),
        "{before:#?}"
    );

    // WHEN one object's bytes leave the source (its row unchanged), and another gets new bytes
    // of the same size under a new version, as Supabase's Storage API writes them
    let (unread, _, _, _) = &objects[0];
    let unread_path = objects[0].1.clone();
    std::fs::remove_file(dir.path().join(unread).join(&unread_path)).unwrap();
    let (bucket, path, _, old_bytes) = &objects[1];
    let mut new_bytes = old_bytes.clone();
    new_bytes.reverse();
    assert_eq!(new_bytes.len(), old_bytes.len());
    std::fs::write(dir.path().join(bucket).join(path), &new_bytes).unwrap();
    prepared._db.execute(&format!(
        "update storage.objects set version = 'v2' where bucket_id = '{bucket}' and name = '{path}';"
    ));
    prepared.work.export(prepared._db.url(), &["--tables", TABLES]).success();
    prepared.migrate(&["transform"]).success();
    let synced = against(&["sync"]).success();

    // THEN the object of the same version is unchanged without a read (the source lacks it and
    // nothing says so), the new version is uploaded, and the records carry the versions
    let unchanged = objects.len() - 1;
    assert!(
        synced.stdout.contains(&format!(
            "(0 new, 1 changed; {} bytes), 0 deleted (0 bytes), {unchanged} unchanged",
            new_bytes.len()
        )),
        "{synced}"
    );
    assert!(!synced.stderr.contains("not in the files source"), "{synced}");
    let after = records(&server);
    let changed = format!("{bucket}/{path}");
    assert_eq!(after[&changed]["version"], "version:v2");
    assert_ne!(after[&changed]["storageId"], before[&changed]["storageId"]);
    let kept = format!("{unread}/{unread_path}");
    assert_eq!(after[&kept]["storageId"], before[&kept]["storageId"]);
}

#[test]
fn files_move_into_every_target_and_a_tenant_target_is_refused_rather_than_given_all() {
    // GIVEN the objects in a folder, and targets.toml naming two sinks, then one more with a
    // tenant filter
    let objects = objects();
    let dir = tempfile::tempdir().unwrap();
    let (prepared, plan) = prepare_for_sinks(&objects, dir.path());
    let sinks: Vec<_> = ["a", "b", "tenant"]
        .into_iter()
        .map(|name| {
            let config = convex_sink::SinkConfig {
                admin_key: format!("key-{name}"),
                ..convex_sink::SinkConfig::new(plan.clone())
            };
            (name, convex_sink::Sink::start(config).expect("the sink starts"))
        })
        .collect();
    let mut file = String::new();
    for (name, sink) in &sinks {
        file.push_str(&format!(
            "[targets.{name}]\nurl = \"{}\"\ndeploy_key_env = \"KEY_{name}\"\n",
            sink.url()
        ));
        if *name == "tenant" {
            file.push_str(&format!(
                "[[targets.{name}.tables.\"public.profiles\".filter]]\ncolumn = \"id\"\nequals = 1\n"
            ));
        }
        file.push('\n');
    }
    std::fs::write(prepared.plan_dir().join("targets.toml"), file).unwrap();
    let run = |args: &[&str]| {
        let mut command = prepared.command(args);
        command.env_remove("CONVEX_URL").env_remove("CONVEX_DEPLOY_KEY");
        for (name, _) in &sinks {
            command.env(format!("KEY_{name}"), format!("key-{name}"));
        }
        Run::of(command)
    };

    // WHEN the two plain targets import THEN each holds every file, and verify checks them
    let imported = run(&["--format", "json", "import", "--target", "a", "--target", "b"]);
    assert_eq!(imported.code, Some(0), "{imported}");
    for (name, sink) in &sinks[..2] {
        assert_eq!(sink.file_records().len(), objects.len(), "target {name}");
    }
    let verified = run(&["verify", "--target", "a", "--target", "b"]);
    assert_eq!(verified.code, Some(0), "{verified}");
    // and verify reads the files per target: bytes changed in the source are named in each
    std::fs::write(dir.path().join("avatars/2.png"), b"other bytes").unwrap();
    let differs = run(&["verify", "--target", "a", "--target", "b"]);
    assert_eq!(differs.code, Some(1), "{differs}");
    assert_eq!(differs.stdout.matches("avatars/2.png").count(), 2, "{differs}");

    // WHEN the tenant target imports THEN it is refused, naming why, and receives no file
    run(&["transform", "--target", "tenant"]).success();
    let tenant = run(&["import", "--target", "tenant"]);
    assert_eq!(tenant.code, Some(2), "{tenant}");
    assert!(
        tenant.stderr.contains("tenant filters") || tenant.stdout.contains("tenant filters"),
        "{tenant}"
    );
    assert!(sinks[2].1.file_records().is_empty());
    let synced = run(&["sync", "--target", "tenant"]);
    assert_eq!(synced.code, Some(2), "{synced}");
    assert!(
        format!("{}{}", synced.stdout, synced.stderr).contains("has tenant filters"),
        "{synced}"
    );
    assert!(sinks[2].1.file_records().is_empty());
}
