//! Supabase Storage objects into Convex file storage: real Postgres holding Supabase's own
//! storage schema (tests/fixtures/supabase-storage-schema.sql) with generated rows, the bytes in
//! a folder or behind a local S3 server (moto's, from PyPI), uploaded into
//! `tests/convex/server.ts` the way Convex apps upload (an upload URL, then a POST), and
//! verified against the source.

use std::path::Path;
use std::time::Duration;

use migrate::convex::client::FunctionKind;
use serde_json::{Value, json};

use crate::convex_server::ConvexTestServer;
use crate::import_pipeline::{Prepared, call};
use crate::support::{Run, S3Server, TestDb, postgres_bin_dir, wait_until};

/// Supabase's storage schema as its storage server creates it, loaded with psql (its
/// statements include `create index concurrently`, which needs no transaction around it).
pub fn storage_db() -> TestDb {
    let db = TestDb::new();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/supabase-storage-schema.sql");
    let output = std::process::Command::new(postgres_bin_dir().join("psql"))
        .args(["-X", "-q", "-d", db.url(), "-f", utf8(&fixture)])
        .output()
        .expect("psql runs");
    assert!(output.status.success(), "psql failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(db.conn().count("select count(*) from pg_tables where schemaname = 'storage' and tablename in ('objects', 'buckets')"), 2);
    db
}

/// The objects: bucket, path, content type, bytes.
pub fn objects() -> Vec<(&'static str, String, &'static str, Vec<u8>)> {
    let mut objects = vec![
        ("avatars", "1.png".to_owned(), "image/png", b"\x89PNG\r\n\x1a\n avatar one".to_vec()),
        ("avatars", "2.png".to_owned(), "image/png", b"\x89PNG\r\n\x1a\n avatar two".to_vec()),
        ("docs", "reports/2024/q1.pdf".to_owned(), "application/pdf", b"%PDF-1.7 report".to_vec()),
        ("docs", "notes with spaces.txt".to_owned(), "text/plain", b"plain text\n".to_vec()),
    ];
    // One larger than any read buffer, bytes of every value.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    objects.push(("docs", "big.bin".to_owned(), "application/octet-stream", big));
    objects
}

/// Supabase's storage schema, `profiles` pointing at avatars, and a `storage.objects` row per
/// object (plus `extra` rows whose bytes nowhere exist).
pub fn fixture(objects: &[(&str, String, &str, Vec<u8>)], extra: &[(&str, &str)]) -> String {
    let mut sql = String::new();
    sql.push_str(
        "\ncreate table public.profiles (id int primary key, avatar_url text);\n\
         insert into storage.buckets (id, name) values ('avatars', 'avatars'), ('docs', 'docs');\n",
    );
    let owner = "00000000-0000-4000-8000-000000000007";
    for (bucket, path, mime, bytes) in objects {
        sql.push_str(&format!(
            "insert into storage.objects (bucket_id, name, owner, metadata) values ('{bucket}', '{path}', '{owner}', '{{\"size\": {}, \"mimetype\": \"{mime}\"}}');\n",
            bytes.len()
        ));
    }
    for (bucket, path) in extra {
        sql.push_str(&format!(
            "insert into storage.objects (bucket_id, name, metadata) values ('{bucket}', '{path}', '{{\"size\": 5, \"mimetype\": \"text/plain\"}}');\n"
        ));
    }
    sql.push_str("insert into public.profiles values (1, '1.png'), (2, '2.png'), (3, null);\n");
    sql
}

/// The bytes as a downloaded copy: `<dir>/<bucket>/<path>`.
pub fn write_folder(dir: &Path, objects: &[(&str, String, &str, Vec<u8>)]) {
    for (bucket, path, _, bytes) in objects {
        let file = dir.join(bucket).join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
}

/// The tables the files tests export.
pub const TABLES: &str = "storage.buckets,storage.objects,public.profiles";

/// Exported, planned with `[files] source = <source>`, transformed, and the app deployed.
pub fn prepare(sql: &str, source: &str) -> (Prepared, ConvexTestServer) {
    prepare_with(sql, &files_plan(source), &[("files_app.ts", APP_TS)])
}

/// `sql` loaded into a database with Supabase's storage schema, [`TABLES`] exported with
/// `plan` added to the first plan, transformed, and the app deployed with `app`'s modules
/// (file name, TypeScript) beside the generated ones.
pub fn prepare_with(sql: &str, plan: &str, app: &[(&str, &str)]) -> (Prepared, ConvexTestServer) {
    let db = storage_db();
    db.execute(sql);
    let prepared = Prepared::from_db(db, &["--tables", TABLES], plan);
    prepared.migrate(&["transform"]).success();
    for (file, source) in app {
        std::fs::write(prepared.convex_dir().join(file), source).unwrap();
    }
    let server = ConvexTestServer::for_convex_dir(&prepared.convex_dir());
    (prepared, server)
}

pub fn files_plan(source: &str) -> String {
    format!("[files]\nsource = \"{source}\"\n")
}

/// Every `migrateFiles` record, by `bucket/path`.
pub fn records(server: &ConvexTestServer) -> std::collections::BTreeMap<String, Value> {
    let page = call(
        server,
        FunctionKind::Query,
        "migrate:filesPage",
        json!({"cursor": null, "numItems": 1000}),
    );
    assert_eq!(page["isDone"], true);
    page["page"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!("{}/{}", r["bucket"].as_str().unwrap(), r["path"].as_str().unwrap()),
                r.clone(),
            )
        })
        .collect()
}

/// GET of a URL the test deployment gave: status, content type, bytes.
pub fn fetch(url: &str) -> (u16, String, Vec<u8>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = reqwest::get(url).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, response.bytes().await.unwrap().to_vec())
    })
}

/// The URL `ctx.storage.getUrl` gives for `storage_id`, through an app's own query.
pub fn file_url(server: &ConvexTestServer, storage_id: &str) -> String {
    let url =
        call(server, FunctionKind::Query, "files_app:urlOf", json!({"storageId": storage_id}));
    url.as_str().unwrap_or_else(|| panic!("no URL for {storage_id}: {url}")).to_owned()
}

/// An app module reading files the way an app does.
pub const APP_TS: &str = r#"
import { queryGeneric } from "convex/server";
import { v } from "convex/values";

export const urlOf = queryGeneric({
  args: { storageId: v.id("_storage") },
  handler: async (ctx, { storageId }) => await ctx.storage.getUrl(storageId),
});
"#;

/// Every object arrived: recorded once, stored with its bytes and content type.
pub fn assert_arrived(server: &ConvexTestServer, objects: &[(&str, String, &str, Vec<u8>)]) {
    let records = records(server);
    assert_eq!(records.len(), objects.len(), "{records:#?}");
    for (bucket, path, mime, bytes) in objects {
        let record = &records[&format!("{bucket}/{path}")];
        assert_eq!(record["contentType"], *mime);
        assert_eq!(record["size"], bytes.len() as f64);
        assert_eq!(record["owner"], "00000000-0000-4000-8000-000000000007");
        assert_eq!(record["stored"]["size"], bytes.len() as f64, "{record}");
        let url = file_url(server, record["storageId"].as_str().unwrap());
        let (status, content_type, got) = fetch(&url);
        assert_eq!(status, 200, "{url}\n{}", server.stderr());
        assert_eq!(content_type, *mime, "{bucket}/{path}");
        assert!(
            got == *bytes,
            "{bucket}/{path}: the bytes differ ({} vs {} bytes)",
            got.len(),
            bytes.len()
        );
    }
}

fn utf8(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn files_from_a_folder_arrive_with_their_bytes_and_types_and_verify_catches_changed_bytes() {
    let objects = objects();
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &objects);
    let source = format!("file://{}", utf8(dir.path()));
    let (prepared, server) = prepare(&fixture(&objects, &[]), &source);
    let key = server.admin_key().to_owned();

    let dry = prepared.migrate(&["import", "--dry-run"]).success();
    assert!(dry.stdout.contains("avatars"), "{}", dry.stdout);
    let first = prepared.against(server.url(), &key, &["import"]).success();
    assert!(first.stdout.contains("files: 5 of 5 uploaded"), "{}", first.stdout);
    assert_arrived(&server, &objects);

    let again = prepared.against(server.url(), &key, &["import"]).success();
    assert!(
        again.stdout.contains("files: 0 of 5 uploaded (0 bytes), 5 already in Convex"),
        "{}",
        again.stdout
    );
    assert_eq!(server.stderr().matches("/api/storage/upload → 200").count(), 5);

    prepared.against(server.url(), &key, &["verify"]).success();
    std::fs::write(dir.path().join("docs/reports/2024/q1.pdf"), b"%PDF-1.7 changed").unwrap();
    let verify = prepared.against(server.url(), &key, &["verify"]);
    assert_eq!(verify.code, Some(1), "{}", verify.stderr);
    assert!(
        verify.stdout.contains("file `docs/reports/2024/q1.pdf` differs: the source has 16 bytes"),
        "{}",
        verify.stdout
    );
}

/// `migrate <args>` against the test deployment, reading S3 at `s3`.
fn with_s3(prepared: &Prepared, server: &ConvexTestServer, s3: &S3Server, args: &[&str]) -> Run {
    let mut command = prepared.command(args);
    command
        .env("CONVEX_URL", server.url())
        .env("CONVEX_DEPLOY_KEY", server.admin_key())
        .env("AWS_ENDPOINT_URL", s3.url())
        .env("AWS_ACCESS_KEY_ID", "moto-test-key")
        .env("AWS_SECRET_ACCESS_KEY", "moto-test-secret")
        .env("AWS_REGION", "us-east-1");
    Run::of(command)
}

#[test]
fn files_from_s3_arrive_with_their_bytes_and_types_bucket_by_bucket_and_under_one_bucket() {
    let objects = objects();
    let s3 = S3Server::start();
    // Supabase's S3 endpoint: each storage bucket is an S3 bucket.
    for bucket in ["avatars", "docs"] {
        let in_bucket: Vec<(&str, &str, &[u8])> = objects
            .iter()
            .filter(|o| o.0 == bucket)
            .map(|(_, path, mime, bytes)| (path.as_str(), *mime, bytes.as_slice()))
            .collect();
        s3.put(bucket, &in_bucket);
    }
    let (prepared, server) = prepare(&fixture(&objects, &[]), "s3://");
    let run = with_s3(&prepared, &server, &s3, &["import"]).success();
    assert!(run.stdout.contains("files: 5 of 5 uploaded"), "{}", run.stdout);
    assert_arrived(&server, &objects);
    with_s3(&prepared, &server, &s3, &["verify"]).success();
    // The credentials never show.
    assert!(!run.stderr.contains("moto-test-secret") && !run.stdout.contains("moto-test-secret"));

    // A copy under one bucket and a prefix: `s3://<bucket>/<prefix>/<storage bucket>/<path>`.
    let copy: Vec<(String, &str, &[u8])> = objects
        .iter()
        .map(|(bucket, path, mime, bytes)| {
            (format!("backup/{bucket}/{path}"), *mime, bytes.as_slice())
        })
        .collect();
    let copy: Vec<(&str, &str, &[u8])> =
        copy.iter().map(|(k, m, b)| (k.as_str(), *m, *b)).collect();
    s3.put("copy", &copy);
    let (prepared, server) = prepare(&fixture(&objects, &[]), "s3://copy/backup");
    with_s3(&prepared, &server, &s3, &["import"]).success();
    assert_arrived(&server, &objects);
}

#[test]
fn a_kill_9_mid_upload_then_resume_uploads_nothing_twice() {
    let objects: Vec<_> = (0..200)
        .map(|i| {
            let bytes: Vec<u8> = (0..20_000u32).map(|b| ((b + i) % 253) as u8).collect();
            ("docs", format!("many/{i:03}.bin"), "application/octet-stream", bytes)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &objects);
    let (prepared, server) =
        prepare(&fixture(&objects, &[]), &format!("file://{}", utf8(dir.path())));
    let key = server.admin_key().to_owned();

    let mut command = prepared.command(&["import", "--concurrency", "8"]);
    command.env("CONVEX_URL", server.url()).env("CONVEX_DEPLOY_KEY", &key);
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = command.spawn().unwrap();
    wait_until("some files recorded", Duration::from_secs(60), || records(&server).len() >= 5);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = records(&server).len();
    assert!(before < objects.len(), "the import finished before the kill: {before}");

    prepared.against(server.url(), &key, &["import"]).success();
    assert_eq!(records(&server).len(), objects.len());
    let uploads = server.stderr().matches("/api/storage/upload → 200").count();
    assert_eq!(uploads, objects.len(), "every object's bytes were stored exactly once");
    prepared.against(server.url(), &key, &["verify"]).success();
}

#[test]
fn the_files_functions_and_table_typecheck_and_an_app_reads_a_file_url() {
    // GIVEN the generated files of a plan with `[files]`, and an app module using them
    let mut plan = crate::codegen_support::every_conversion_plan();
    plan.files =
        Some(migrate::plan::model::FilesPlan { source: "s3://".into(), at: "test".into() });
    let app = crate::codegen_support::ConvexApp::new("tsc-files");
    app.write_generated(&plan);
    app.write("convex/files_app.ts", APP_TS);
    app.write(
        "convex/usage.ts",
        r#"import type { RegisteredMutation, RegisteredQuery } from "convex/server";
import { filesPage, findStored, generateUploadUrl, recordFiles, removeFiles } from "./migrate";

export const mutations: RegisteredMutation<"internal", any, any>[] = [generateUploadUrl, recordFiles, removeFiles];
export const queries: RegisteredQuery<"internal", any, any>[] = [filesPage, findStored];
"#,
    );
    // WHEN tsc checks the app THEN it finds nothing
    app.assert_typechecks();
}

#[test]
fn an_object_missing_from_the_source_is_named_and_the_rest_arrive() {
    let objects = objects();
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &objects);
    let source = format!("file://{}", utf8(dir.path()));
    let (prepared, server) = prepare(&fixture(&objects, &[("docs", "gone.txt")]), &source);
    let key = server.admin_key().to_owned();

    let run = prepared.against(server.url(), &key, &["import"]);
    run.fails_with(
        5,
        &[
            "1 of the objects `storage.objects` lists are not in the files source",
            "`docs/gone.txt`",
        ],
    );
    assert_arrived(&server, &objects);

    // The object put in place, the next run sends it alone.
    std::fs::write(dir.path().join("docs/gone.txt"), b"back!").unwrap();
    let again = prepared.against(server.url(), &key, &["import"]).success();
    assert!(
        again.stdout.contains("files: 1 of 6 uploaded (5 bytes), 5 already in Convex"),
        "{}",
        again.stdout
    );
    assert_eq!(records(&server).len(), 6);
}

#[test]
fn uploads_to_a_deployment_answering_in_20_ms_keep_many_calls_in_flight() {
    // GIVEN 300 small objects in a folder, and a deployment (the sink) answering every function
    // call after 20 ms and every upload as soon as its bytes are in: an upload's round trip is
    // not a call's
    let objects: Vec<_> = (0..300)
        .map(|i| ("docs", format!("f/{i}.txt"), "text/plain", format!("file {i}").into_bytes()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &objects);
    let db = storage_db();
    db.execute(&fixture(&objects, &[]));
    let source = format!("file://{}", utf8(dir.path()));
    let prepared = Prepared::from_db(db, &["--tables", TABLES], &files_plan(&source));
    prepared.migrate(&["transform"]).success();
    let plan = convex_sink::Plan::from_module_file(prepared.convex_dir().join("migrate.ts"))
        .expect("the generated migrate.ts carries its plan");
    let sink = convex_sink::Sink::start(convex_sink::SinkConfig {
        latency: Duration::from_millis(20),
        ..convex_sink::SinkConfig::new(plan)
    })
    .expect("the sink starts");

    // WHEN import runs with no flag
    let run = prepared.against(&sink.url(), sink.admin_key(), &["import"]).success();

    // THEN every file arrives, and the limiter, judging the deployment by its calls alone,
    // lets far more than its first 4 calls out at once (27 on a quiet machine, 15 under the
    // whole suite on 2 cores; uploads' quick replies mixed in as samples held it at 4 to 8)
    assert!(run.stdout.contains("files: 300 of 300 uploaded"), "{run}");
    let peak: usize = run
        .stdout
        .split("files: 300 of 300 uploaded")
        .nth(1)
        .and_then(|line| line.split("calls in flight: up to ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the files line says how many calls were in flight\n{run}"));
    assert!(peak >= 12, "calls in flight: up to {peak}\n{run}");
    let stats = sink.stats();
    assert!(stats.peak_in_flight >= 12, "{stats:?}");
}
