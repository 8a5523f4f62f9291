//! The generated `convex/migrate.ts` under Convex's own semantics, over real HTTP: the test
//! server (tests/convex/server.ts, the official `convex-test` runtime) runs it with the generated
//! schema, and these tests call it the way import and verify will, checking the contract in
//! docs/convex-module.md: upserts by legacy id, references resolved on the server, batches that
//! fail as a whole, paging, read-back and removal, and Convex's answers to calls without the key,
//! with a wrong key, to functions that do not exist and with a bad client header.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use migrate::plan::{Conversion, NullPolicy, Plan, ReferencePlan};
use serde_json::{Value, json};

use crate::codegen_support::{
    convex_tool, convex_tools, field, integer, optional, printed, reference, run, table,
};
use crate::convex_server::ConvexTestServer;
use crate::plan_support::{SAMPLE_APP, repository_plan_dir};
use crate::support::{TestDb, Workdir, jsonl};

/// One reply of the server: the HTTP status and the JSON body.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
}

/// Calls the test server's HTTP API as migrate does: `Convex-Client`, JSON, `format`, and the
/// admin key unless told otherwise.
struct Api<'a> {
    server: &'a ConvexTestServer,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl<'a> Api<'a> {
    fn new(server: &'a ConvexTestServer) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the HTTP calls");
        // The calls are plain http://, but reqwest (built without a crypto provider of its own)
        // wants a TLS configuration all the same: migrate's provider, ring, and no roots.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let http =
            reqwest::Client::builder().use_preconfigured_tls(tls).build().expect("an HTTP client");
        Self { server, http, runtime }
    }

    /// POSTs `body` to `route` with `headers`; any status is an answer.
    fn send(&self, route: &str, headers: &[(&str, String)], body: String) -> Reply {
        let url = format!("{}/{route}", self.server.url());
        self.runtime.block_on(async {
            let mut request =
                self.http.post(&url).header("Content-Type", "application/json").body(body);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = request.send().await.unwrap_or_else(|e| {
                panic!("POST {url} failed: {e}\n--- server\n{}", self.server.stderr())
            });
            let status = response.status().as_u16();
            let text = response.text().await.expect("a reply body");
            let body = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{url} answered {status} with non-JSON ({e}): {text}"));
            Reply { status, body }
        })
    }

    /// Calls `path` with the admin key.
    fn call(&self, route: &str, path: &str, args: Value) -> Reply {
        self.call_with(route, path, args, Some(self.server.admin_key()))
    }

    fn call_with(&self, route: &str, path: &str, args: Value, key: Option<&str>) -> Reply {
        let mut headers = vec![("Convex-Client", "migrate-0.1.0".to_owned())];
        if let Some(key) = key {
            headers.push(("Authorization", format!("Convex {key}")));
        }
        let body = json!({ "path": path, "args": args, "format": "convex_encoded_json" });
        self.send(route, &headers, body.to_string())
    }

    /// The value of a call that must succeed.
    #[track_caller]
    fn ok(&self, route: &str, path: &str, args: Value) -> Value {
        let reply = self.call(route, path, args);
        assert_eq!(
            (reply.status, &reply.body["status"]),
            (200, &json!("success")),
            "{path} failed: {}",
            reply.body
        );
        reply.body["value"].clone()
    }

    /// The `errorMessage` of a call that must fail as a function error (HTTP 200).
    #[track_caller]
    fn error(&self, route: &str, path: &str, args: Value) -> String {
        function_error(self.call(route, path, args))
    }

    fn upsert(&self, table: &str, docs: Value) -> Value {
        self.ok("api/mutation", "migrate:upsert", json!({ "table": table, "docs": docs }))
    }

    fn get(&self, table: &str, legacy_ids: &[&str]) -> Vec<Value> {
        let value =
            self.ok("api/query", "migrate:get", json!({ "table": table, "legacyIds": legacy_ids }));
        value.as_array().expect("get returns an array").clone()
    }

    /// Every document of `table`, through `migrate:page`, `num_items` at a time; and the number
    /// of pages it took.
    fn all(&self, table: &str, num_items: usize) -> (Vec<Value>, usize) {
        let mut docs = Vec::new();
        let mut cursor = Value::Null;
        for pages in 1.. {
            let page = self.ok(
                "api/query",
                "migrate:page",
                json!({ "table": table, "cursor": cursor, "numItems": num_items }),
            );
            docs.extend(page["page"].as_array().expect("a page").iter().cloned());
            if page["isDone"] == json!(true) {
                return (docs, pages);
            }
            cursor = page["continueCursor"].clone();
            assert!(pages < 10_000, "paging never ends");
        }
        unreachable!()
    }
}

#[track_caller]
fn function_error(reply: Reply) -> String {
    assert_eq!(
        (reply.status, &reply.body["status"]),
        (200, &json!("error")),
        "expected a function error: {}",
        reply.body
    );
    reply.body["errorMessage"].as_str().expect("an error message").to_owned()
}

fn bytes(value: &[u8]) -> Value {
    json!({ "$bytes": STANDARD.encode(value) })
}

/// `users` (an int64 and an optional bytes field), `posts` referring to a user, and `comments`
/// referring to a post and, optionally, to another comment (a self-reference).
fn blog_plan() -> Plan {
    let mut users = table("users", NullPolicy::Omit);
    users.fields = vec![
        field("name", "name", Conversion::String),
        field("karma", "karma", Conversion::Int8AsInt64),
        optional(field("avatar", "avatar", Conversion::Bytes)),
    ];
    let mut posts = table("posts", NullPolicy::Omit);
    posts.fields = vec![field("title", "title", Conversion::String)];
    posts.references = vec![reference("posts", "author_id", "authorId", "users")];
    let mut comments = table("comments", NullPolicy::Omit);
    comments.legacy_id.field = "oldId".to_owned();
    comments.fields = vec![field("body", "body", Conversion::String)];
    comments.references = vec![
        reference("comments", "post_id", "postId", "posts"),
        ReferencePlan {
            optional: true,
            ..reference("comments", "parent_id", "parentId", "comments")
        },
    ];
    Plan {
        tables: vec![users, posts, comments],
        skipped: Vec::new(),
        hash: "blake3:convex-module-tests".to_owned(),
        warnings: Vec::new(),
        files: None,
    }
}

fn user(legacy_id: &str, name: &str) -> Value {
    json!({ "doc": { "legacyId": legacy_id, "name": name, "karma": integer(i64::MAX) } })
}

fn post(legacy_id: &str, author: &str) -> Value {
    json!({
        "doc": { "legacyId": legacy_id, "title": format!("post {legacy_id}") },
        "refs": { "authorId": { "table": "users", "legacyId": author } },
    })
}

fn comment(legacy_id: &str, post: &str) -> Value {
    json!({
        "doc": { "oldId": legacy_id, "body": format!("comment {legacy_id}") },
        "refs": { "postId": { "table": "posts", "legacyId": post } },
    })
}

/// A `patchRefs` element setting comment `legacy_id`'s parent to comment `parent`.
fn parent_patch(legacy_id: &str, parent: &str) -> Value {
    json!({
        "legacyId": legacy_id,
        "refs": { "parentId": { "table": "comments", "legacyId": parent } },
    })
}

/// The value without Convex's system fields.
fn fields(doc: &Value) -> Value {
    let mut doc = doc.as_object().expect("a document").clone();
    doc.remove("_id");
    doc.remove("_creationTime");
    Value::Object(doc)
}

#[test]
fn info_returns_the_plan_the_module_was_generated_from() {
    // GIVEN the module of a plan with a parent, a child and a self-reference
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);

    // WHEN import asks it what it is
    let info = api.ok("api/query", "migrate:info", json!({}));

    // THEN it answers with the plan's hash, each table's legacy id field and references
    assert_eq!(
        info,
        json!({
            "version": 5,
            "planHash": "blake3:convex-module-tests",
            "tables": {
                "users": { "legacyIdField": "legacyId", "references": {} },
                "posts": { "legacyIdField": "legacyId", "references": { "authorId": "users" } },
                "comments": {
                    "legacyIdField": "oldId",
                    "references": { "postId": "posts", "parentId": "comments" },
                },
            },
        })
    );
}

#[test]
fn upsert_inserts_then_replaces_by_legacy_id() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    // GIVEN a batch with an int64 and a bytes field
    let mut ada = user("1", "Ada");
    ada["doc"]["avatar"] = bytes(&[0, 1, 2, 255]);
    let batch = json!([ada, user("2", "Grace")]);

    // WHEN it is upserted
    let first = api.upsert("users", batch.clone());
    // THEN both documents are inserted, each with an id of its own
    assert_eq!((&first["inserted"], &first["replaced"]), (&json!(2), &json!(0)), "{first}");
    let ids = first["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);

    // WHEN the same batch is sent again (a retry after a lost reply)
    let again = api.upsert("users", batch.clone());
    // THEN both are replaced, under the same ids, and there are still two documents
    assert_eq!((&again["inserted"], &again["replaced"]), (&json!(0), &json!(2)), "{again}");
    assert_eq!(again["ids"], first["ids"]);
    let (docs, _) = api.all("users", 100);
    assert_eq!(docs.len(), 2, "{docs:?}");

    // AND the values came through exactly: Int64 and bytes in Convex's tagged encoding
    let found = api.get("users", &["1"]);
    assert_eq!(found[0]["_id"], ids[0]);
    assert_eq!(fields(&found[0]), batch[0]["doc"]);

    // WHEN a changed document is upserted
    let changed = api.upsert("users", json!([user("2", "Grace Hopper")]));
    // THEN it replaces the old one: the new contents under the old id, the field left out gone
    assert_eq!(changed["ids"], json!([ids[1]]));
    assert_eq!(changed["replaced"], json!(1));
    let found = api.get("users", &["2"]);
    assert_eq!(found[0]["name"], "Grace Hopper");
    assert_eq!(api.all("users", 100).0.len(), 2);
    let replaced_ada = api.upsert("users", json!([user("1", "Ada")]));
    assert_eq!(replaced_ada["ids"], json!([ids[0]]));
    assert!(api.get("users", &["1"])[0].get("avatar").is_none(), "replace, not patch");
}

#[test]
fn references_resolve_to_the_parents_convex_ids() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    // GIVEN two users in Convex
    let users = api.upsert("users", json!([user("1", "Ada"), user("2", "Grace")]));

    // WHEN posts referring to them by legacy id are upserted, two sharing a parent
    let posts = api.upsert("posts", json!([post("a", "2"), post("b", "1"), post("c", "2")]));

    // THEN each post holds its author's Convex id
    assert_eq!(posts["inserted"], json!(3));
    let found = api.get("posts", &["a", "b", "c"]);
    assert_eq!(found[0]["authorId"], users["ids"][1]);
    assert_eq!(found[1]["authorId"], users["ids"][0]);
    assert_eq!(found[2]["authorId"], users["ids"][1]);
    assert_eq!(found[0]["title"], "post a");
}

#[test]
fn a_missing_parent_refuses_the_whole_batch() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    api.upsert("users", json!([user("1", "Ada")]));

    // WHEN a batch holds a post whose author is not in Convex, after one whose author is
    let error = api.error(
        "api/mutation",
        "migrate:upsert",
        json!({ "table": "posts", "docs": [post("ok", "1"), post("orphan", "404")] }),
    );

    // THEN the call fails naming the document, the reference and the missing parent
    assert_eq!(error, "posts orphan: authorId refers to users 404, which is not in Convex");
    // AND nothing of the batch was written
    assert_eq!(api.get("posts", &["ok", "orphan"]), [Value::Null, Value::Null]);

    // WHEN a reference names another table than the plan gives for its field
    let mut wrong_table = post("p", "1");
    wrong_table["refs"]["authorId"]["table"] = json!("comments");
    let error = api.error(
        "api/mutation",
        "migrate:upsert",
        json!({ "table": "posts", "docs": [wrong_table] }),
    );
    // THEN it is refused naming both tables
    assert_eq!(error, "posts p: authorId refers to users in the plan, not to comments");

    // WHEN a reference names a field that is no reference of the table
    let mut not_a_reference = post("p", "1");
    not_a_reference["refs"]["title"] = json!({ "table": "users", "legacyId": "1" });
    let error = api.error(
        "api/mutation",
        "migrate:upsert",
        json!({ "table": "posts", "docs": [not_a_reference] }),
    );
    assert_eq!(error, "posts p: title is not a reference of posts in the plan");
    assert_eq!(api.get("posts", &["p"]), [Value::Null]);
}

#[test]
fn schema_validation_failures_come_back_as_function_errors() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    let upsert_error = |docs: Value| {
        api.error("api/mutation", "migrate:upsert", json!({ "table": "users", "docs": docs }))
    };

    // WHEN a document lacks a required field, after a valid one
    let mut nameless = user("2", "x");
    nameless["doc"].as_object_mut().unwrap().remove("name");
    let error = upsert_error(json!([user("1", "Ada"), nameless]));
    // THEN the schema's validator refuses it, naming the field
    assert!(error.contains("Validator error") && error.contains("`name`"), "{error}");

    // WHEN a document has a field the schema does not know
    let mut extra = user("3", "x");
    extra["doc"]["nickname"] = json!("x");
    let error = upsert_error(json!([extra]));
    assert!(error.contains("Validator error") && error.contains("`nickname`"), "{error}");

    // WHEN an int64 field arrives as a plain (float) number
    let mut float = user("4", "x");
    float["doc"]["karma"] = json!(1);
    let error = upsert_error(json!([float]));
    assert!(error.contains("Validator error"), "{error}");

    // WHEN the legacy id is not a string
    let mut numbered = user("5", "x");
    numbered["doc"]["legacyId"] = json!(5);
    let error = upsert_error(json!([numbered]));
    assert_eq!(error, "users: document 1 of the batch has no string legacyId (got number)");

    // THEN none of those batches wrote anything, the valid document included
    assert_eq!(api.all("users", 100).0, Vec::<Value>::new());
}

#[test]
fn unknown_tables_are_refused_by_every_function() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    let calls = [
        ("api/mutation", "migrate:upsert", json!({ "table": "nope", "docs": [] })),
        ("api/mutation", "migrate:patchRefs", json!({ "table": "nope", "docs": [] })),
        ("api/query", "migrate:page", json!({ "table": "nope", "cursor": null, "numItems": 1 })),
        ("api/query", "migrate:get", json!({ "table": "nope", "legacyIds": [] })),
        ("api/mutation", "migrate:remove", json!({ "table": "nope", "legacyIds": [] })),
    ];
    for (route, path, args) in calls {
        assert_eq!(api.error(route, path, args), r#"unknown table "nope""#, "{path}");
    }
    // a name every JavaScript object has is no table either
    let error =
        api.error("api/query", "migrate:get", json!({ "table": "constructor", "legacyIds": [] }));
    assert_eq!(error, r#"unknown table "constructor""#);
}

#[test]
fn patch_refs_sets_self_references_once_the_parents_exist() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    api.upsert("users", json!([user("1", "Ada")]));
    api.upsert("posts", json!([post("p", "1")]));
    // GIVEN a reply and the comment it answers, inserted without their self-reference
    let comments = api.upsert("comments", json!([comment("reply", "p"), comment("root", "p")]));
    let (reply_id, root_id) = (&comments["ids"][0], &comments["ids"][1]);
    assert!(api.get("comments", &["reply"])[0].get("parentId").is_none());

    // WHEN the reply's parent is patched in
    let patched = api.ok(
        "api/mutation",
        "migrate:patchRefs",
        json!({ "table": "comments", "docs": [parent_patch("reply", "root")] }),
    );

    // THEN the reply refers to the root by its Convex id, and keeps its other fields
    assert_eq!(patched["ids"], json!([reply_id]));
    let reply = &api.get("comments", &["reply"])[0];
    assert_eq!(&reply["parentId"], root_id);
    assert_eq!(reply["body"], "comment reply");
    assert_eq!(reply["postId"], api.get("posts", &["p"])[0]["_id"]);

    // WHEN a document to patch is not in Convex, after one that is
    let error = api.error(
        "api/mutation",
        "migrate:patchRefs",
        json!({
            "table": "comments",
            "docs": [parent_patch("root", "reply"), parent_patch("gone", "root")],
        }),
    );
    // THEN the call fails naming it, and the first patch was rolled back
    assert_eq!(error, "comments gone: not in Convex");
    assert!(api.get("comments", &["root"])[0].get("parentId").is_none());

    // WHEN the parent to patch in is not in Convex
    let error = api.error(
        "api/mutation",
        "migrate:patchRefs",
        json!({ "table": "comments", "docs": [parent_patch("root", "404")] }),
    );
    assert_eq!(error, "comments root: parentId refers to comments 404, which is not in Convex");
}

/// A first-pass `upsert` element of comment `legacy_id`: its self-reference left to the second
/// pass, and named as deferred.
fn comment_first_pass(legacy_id: &str, post: &str) -> Value {
    let mut element = comment(legacy_id, post);
    element["deferred"] = json!(["parentId"]);
    element
}

#[test]
fn an_upsert_applied_after_the_second_pass_keeps_the_references_it_defers() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    api.upsert("users", json!([user("1", "Ada")]));
    api.upsert("posts", json!([post("p", "1")]));
    // GIVEN a reply and its root, upserted without the self-reference, then patched
    let first_pass = json!([comment_first_pass("reply", "p"), comment_first_pass("root", "p")]);
    let inserted = api.upsert("comments", first_pass.clone());
    assert!(api.get("comments", &["reply"])[0].get("parentId").is_none());
    api.ok(
        "api/mutation",
        "migrate:patchRefs",
        json!({ "table": "comments", "docs": [parent_patch("reply", "root")] }),
    );
    let root_id = &inserted["ids"][1];

    // WHEN the first pass's upsert is applied again, late (a reply lost, the call retried, the
    // first attempt applied after the second pass)
    let again = api.upsert("comments", first_pass);

    // THEN the patched reference is still there, the rest replaced
    assert_eq!((again["inserted"].as_u64(), again["replaced"].as_u64()), (Some(0), Some(2)));
    let reply = &api.get("comments", &["reply"])[0];
    assert_eq!(&reply["parentId"], root_id, "{reply}");
    assert_eq!(reply["body"], "comment reply");
    assert!(api.get("comments", &["root"])[0].get("parentId").is_none());

    // AND an upsert that does not defer the field owns it: the document loses the reference
    api.upsert("comments", json!([comment("reply", "p")]));
    assert!(api.get("comments", &["reply"])[0].get("parentId").is_none());

    // AND only a reference of the plan that the element does not set can be deferred
    for (deferred, refs) in [
        (json!(["body"]), json!({})),
        (json!(["parentId"]), json!({ "parentId": { "table": "comments", "legacyId": "root" } })),
    ] {
        let mut element = comment("reply", "p");
        element["deferred"] = deferred;
        element["refs"].as_object_mut().unwrap().extend(refs.as_object().unwrap().clone());
        let error = api.error(
            "api/mutation",
            "migrate:upsert",
            json!({ "table": "comments", "docs": [element] }),
        );
        assert!(error.contains("comments reply: "), "{error}");
        assert!(error.contains("is deferred, but it is not a reference of comments"), "{error}");
    }
}

#[test]
fn the_ledger_keeps_an_entry_per_import_and_plan_version() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    let read = |id: &str| api.ok("api/query", "migrate:ledgerRead", json!({ "importId": id }));
    let list = || api.ok("api/query", "migrate:ledgerList", json!({}));
    // GIVEN a deployment that holds no entry of an import
    assert_eq!(read("0badc0de"), Value::Null);
    assert_eq!(list(), json!([]));

    // WHEN import records itself running, then completed with counts, under plan version 1
    let write = |plan: &str, version: u64, status: &str, counts: Option<Value>| {
        let files: Vec<String> = (1..=version).map(|n| format!("{n:04}_step.toml")).collect();
        let mut args = json!({ "importId": "0badc0de", "planHash": plan, "planVersion": version,
                               "planFiles": files, "status": status });
        if let Some(counts) = counts {
            args["counts"] = counts;
        }
        api.ok("api/mutation", "migrate:ledgerWrite", args)
    };
    let running = write("blake3:p1", 1, "running", None);
    assert_eq!(running["status"], "running");
    assert!(running.get("finishedAt").is_none(), "{running}");
    write("blake3:p1", 1, "completed", Some(json!({ "inserted": 3 })));

    // THEN reading it finds one entry, the last status, its counts and times
    let entry = read("0badc0de");
    assert_eq!(
        (&entry["importId"], &entry["planHash"], &entry["status"]),
        (&json!("0badc0de"), &json!("blake3:p1"), &json!("completed"))
    );
    assert_eq!(entry["planVersion"].as_f64(), Some(1.0));
    assert_eq!(entry["counts"]["inserted"].as_f64(), Some(3.0), "{entry}");
    assert_eq!(entry["startedAt"], running["startedAt"], "a finish keeps the start");
    assert!(entry["finishedAt"].as_f64().unwrap() >= entry["startedAt"].as_f64().unwrap());

    // AND the same import under plan version 2 is a second entry, the latest one read
    write("blake3:p2", 2, "running", None);
    let entries = list();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(
        (&entries[0]["status"], &entries[1]["status"]),
        (&json!("completed"), &json!("running"))
    );
    assert_eq!(entries[1]["planFiles"], json!(["0001_step.toml", "0002_step.toml"]));
    assert_eq!(read("0badc0de")["planHash"], "blake3:p2");
    assert_eq!(read("another"), Value::Null);
    // … and a status the ledger does not know is refused
    let args = json!({ "importId": "x", "planHash": "blake3:p", "planVersion": 1,
                       "planFiles": [], "status": "done" });
    let error = api.error("api/mutation", "migrate:ledgerWrite", args);
    assert!(error.contains("Validator"), "{error}");
    // … and the ledger is no table of the plan for the other functions
    let error = api.error(
        "api/query",
        "migrate:get",
        json!({ "table": "migrateLedger", "legacyIds": ["0badc0de"] }),
    );
    assert_eq!(error, r#"unknown table "migrateLedger""#);
}

#[test]
fn remove_docs_deletes_a_document_only_while_it_holds_its_legacy_id() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    // GIVEN two users
    let ids = api.upsert("users", json!([user("1", "Ada"), user("2", "Grace")]))["ids"].clone();
    let doc = |n: usize, legacy: &str| json!({ "id": ids[n], "legacyId": legacy });

    // WHEN rollback removes user 1 by id, and asks for user 2 under a legacy id it does not hold
    let removed = api.ok(
        "api/mutation",
        "migrate:removeDocs",
        json!({ "table": "users", "docs": [doc(0, "1"), doc(1, "1")] }),
    );

    // THEN only user 1 is gone; applied again, nothing more is deleted
    assert_eq!(removed["deleted"].as_f64(), Some(1.0));
    assert_eq!(api.get("users", &["1", "2"])[0], Value::Null);
    assert_eq!(api.get("users", &["2"])[0]["name"], "Grace");
    let again = api.ok(
        "api/mutation",
        "migrate:removeDocs",
        json!({ "table": "users", "docs": [doc(0, "1")] }),
    );
    assert_eq!(again["deleted"].as_f64(), Some(0.0));
}

#[test]
fn page_reads_a_whole_table_in_pages() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    // GIVEN seven users
    let batch: Vec<Value> = (1..=7).map(|n| user(&n.to_string(), &format!("user {n}"))).collect();
    let inserted = api.upsert("users", json!(batch));

    // WHEN verify reads the table three documents at a time
    let (docs, pages) = api.all("users", 3);

    // THEN it gets every document once, with its system fields, over several pages
    assert!(pages >= 3, "{pages} pages");
    let mut ids: Vec<&Value> = docs.iter().map(|d| &d["_id"]).collect();
    ids.sort_by_key(|id| id.to_string());
    let mut expected: Vec<&Value> = inserted["ids"].as_array().unwrap().iter().collect();
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(ids, expected);
    assert!(docs.iter().all(|d| d["_creationTime"].is_number()), "{docs:?}");
    let mut legacy: Vec<&str> = docs.iter().map(|d| d["legacyId"].as_str().unwrap()).collect();
    legacy.sort();
    assert_eq!(legacy, ["1", "2", "3", "4", "5", "6", "7"]);
}

#[test]
fn read_back_resolves_references_to_the_parents_legacy_ids() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    // GIVEN two users, three posts referring to them, then user 2 removed behind migrate's back
    api.upsert("users", json!([user("1", "Ada"), user("2", "Grace")]));
    api.upsert("posts", json!([post("a", "2"), post("b", "1"), post("c", "2")]));
    api.ok("api/mutation", "migrate:remove", json!({ "table": "users", "legacyIds": ["2"] }));

    // WHEN verify reads the posts back two at a time
    let mut cursor = Value::Null;
    let mut read = Vec::new();
    loop {
        let page = api.ok(
            "api/query",
            "migrate:readBack",
            json!({ "table": "posts", "cursor": cursor, "numItems": 2 }),
        );
        read.extend(page["page"].as_array().unwrap().iter().cloned());
        if page["isDone"] == true {
            break;
        }
        cursor = page["continueCursor"].clone();
    }

    // THEN each document comes whole, with its reference resolved on the server to the
    // parent's table and legacy id, and null where the id is no document's any more
    let by_legacy = |legacy: &str| read.iter().find(|r| r["doc"]["legacyId"] == legacy).unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(
        by_legacy("b")["refs"],
        json!({ "authorId": { "table": "users", "legacyId": "1" } })
    );
    assert_eq!(by_legacy("a")["refs"], json!({ "authorId": null }));
    assert_eq!(by_legacy("c")["refs"], json!({ "authorId": null }));
    assert!(by_legacy("a")["doc"]["authorId"].is_string());
    assert!(by_legacy("a")["doc"]["_id"].is_string());
    // … and a table without references has empty refs
    let users = api.ok(
        "api/query",
        "migrate:readBack",
        json!({ "table": "users", "cursor": null, "numItems": 10 }),
    );
    assert_eq!(users["page"][0]["refs"], json!({}));
}

#[test]
fn read_back_in_creation_time_ranges_reads_each_document_once() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    let times = api.ok("api/query", "migrate:creationTimes", json!({ "table": "users" }));
    assert_eq!(times, json!({ "first": null, "last": null }));
    // GIVEN seven users, in three batches
    let names = ["1", "2", "3", "4", "5", "6", "7"];
    for batch in names.chunks(3) {
        api.upsert("users", Value::Array(batch.iter().map(|n| user(n, n)).collect()));
    }
    let (docs, _) = api.all("users", 10);
    let created: Vec<f64> = docs.iter().map(|d| d["_creationTime"].as_f64().unwrap()).collect();
    let times = api.ok("api/query", "migrate:creationTimes", json!({ "table": "users" }));
    assert_eq!(
        (times["first"].as_f64(), times["last"].as_f64()),
        (Some(created[0]), Some(created[6]))
    );

    // WHEN verify reads them in ranges whose bounds are exactly documents' creation times,
    // two at a time
    let bounds = [None, Some(created[2]), Some(created[3]), Some(created[6]), None];
    let mut read = Vec::new();
    for range in bounds.windows(2) {
        let mut cursor = Value::Null;
        loop {
            let mut args = json!({ "table": "users", "cursor": cursor, "numItems": 2 });
            if let Some(from) = range[0] {
                args["from"] = json!(from);
            }
            if let Some(to) = range[1] {
                args["to"] = json!(to);
            }
            let page = api.ok("api/query", "migrate:readBack", args);
            for r in page["page"].as_array().unwrap() {
                let t = r["doc"]["_creationTime"].as_f64().unwrap();
                assert!(range[0].is_none_or(|from| from <= t) && range[1].is_none_or(|to| t < to));
                read.push(r["doc"]["legacyId"].as_str().unwrap().to_owned());
            }
            if page["isDone"] == true {
                break;
            }
            cursor = page["continueCursor"].clone();
        }
    }

    // THEN each document comes once, the one at a boundary in the range it starts
    assert_eq!(read, names);
}

#[test]
fn get_answers_in_order_with_null_for_the_missing() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    api.upsert("users", json!([user("1", "Ada"), user("2", "Grace")]));

    // WHEN verify asks for documents by legacy id, one of them missing
    let found = api.get("users", &["2", "missing", "1"]);

    // THEN they come in the order asked, null where there is none
    assert_eq!(found.len(), 3);
    assert_eq!(
        (&found[0]["name"], &found[1], &found[2]["name"]),
        (&json!("Grace"), &Value::Null, &json!("Ada"))
    );

    // WHEN it asks for more than a query can look up
    let many: Vec<String> = (0..1001).map(|n| n.to_string()).collect();
    let error =
        api.error("api/query", "migrate:get", json!({ "table": "users", "legacyIds": many }));
    assert_eq!(error, "get takes at most 1000 legacy ids, not 1001");
}

#[test]
fn remove_deletes_by_legacy_id() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    api.upsert("users", json!([user("1", "Ada"), user("2", "Grace"), user("3", "Edsger")]));

    // WHEN a rehearsal is rolled back for two documents and one that is not there
    let removed = api.ok(
        "api/mutation",
        "migrate:remove",
        json!({ "table": "users", "legacyIds": ["1", "404", "3"] }),
    );

    // THEN those two are gone and the third stays
    assert_eq!(removed, json!({ "deleted": 2 }));
    assert_eq!(api.get("users", &["1", "2", "3"])[1]["name"], "Grace");
    let (docs, _) = api.all("users", 100);
    assert_eq!(docs.len(), 1, "{docs:?}");
}

#[test]
fn a_mutation_beyond_convexs_limits_fails_and_writes_nothing() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    // GIVEN a batch writing more than the 16 MiB a mutation may write
    let name = "x".repeat(1_000_000);
    let batch: Vec<Value> = (0..17).map(|n| user(&n.to_string(), &name)).collect();

    // WHEN it is upserted
    let error =
        api.error("api/mutation", "migrate:upsert", json!({ "table": "users", "docs": batch }));

    // THEN the server refuses it as Convex would, and writes none of it
    assert!(error.contains("Wrote too much data"), "{error}");
    assert_eq!(api.all("users", 100).0.len(), 0);
}

#[test]
fn internal_functions_need_the_admin_key() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);

    // WHEN a call without the key reaches the module's mutation
    let reply = api.call_with(
        "api/mutation",
        "migrate:upsert",
        json!({ "table": "users", "docs": [user("1", "Ada")] }),
        None,
    );
    // THEN Convex answers as if it did not exist, and nothing was written
    assert_eq!(
        function_error(reply),
        "Could not find public function for 'migrate:upsert'. \
         Did you forget to run `npx convex dev` or `npx convex deploy`?"
    );
    assert_eq!(api.get("users", &["1"]), [Value::Null]);
    // AND the same for a query
    let reply = api.call_with("api/query", "migrate:info", json!({}), None);
    assert!(function_error(reply).starts_with("Could not find public function for 'migrate:info'"));

    // WHEN the key is wrong
    let reply = api.call_with("api/query", "migrate:info", json!({}), Some("not-the-key"));
    // THEN it is a 401, not a function error
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.body,
        json!({
            "code": "BadAdminKey",
            "message": "The provided admin key was invalid for this instance",
        })
    );
}

#[test]
fn calls_to_functions_that_do_not_exist_or_are_of_another_kind_fail() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);

    // WHEN import calls a function the deployed module does not have
    let error = api.error("api/query", "migrate:nope", json!({}));
    // THEN Convex says so, as it does when migrate.ts was not deployed
    assert_eq!(
        error,
        "Could not find function for 'migrate:nope'. \
         Did you forget to run `npx convex dev` or `npx convex deploy`?"
    );
    assert!(api.error("api/query", "elsewhere:info", json!({})).starts_with("Could not find"));

    // WHEN a query is called as a mutation, and a mutation as a query
    let error = api.error("api/mutation", "migrate:info", json!({}));
    assert_eq!(error, "Trying to execute migrate:info as Mutation, but it is defined as Query.");
    let error =
        api.error("api/query", "migrate:remove", json!({ "table": "users", "legacyIds": [] }));
    assert!(error.contains("defined as Mutation"), "{error}");

    // WHEN the arguments do not match the function's validator
    let error = api.error("api/query", "migrate:get", json!({ "table": "users" }));
    assert!(error.contains("legacyIds"), "{error}");
}

#[test]
fn bad_headers_and_bodies_are_http_errors() {
    let server = ConvexTestServer::for_plan(&blog_plan());
    let api = Api::new(&server);
    let body = json!({ "path": "migrate:info", "args": {}, "format": "convex_encoded_json" });
    let key = ("Authorization", format!("Convex {}", server.admin_key()));

    // WHEN the client header has no version
    let reply = api.send(
        "api/query",
        &[key.clone(), ("Convex-Client", "migrate".into())],
        body.to_string(),
    );
    // THEN the request is refused before any function runs
    assert_eq!((reply.status, &reply.body["code"]), (400, &json!("InvalidVersion")), "{reply:?}");
    // AND with a version it goes through
    let reply = api.send(
        "api/query",
        &[key.clone(), ("Convex-Client", "migrate-0.1.0".into())],
        body.to_string(),
    );
    assert_eq!(reply.body["status"], "success", "{reply:?}");

    // WHEN the body is not JSON
    let reply = api.send("api/query", std::slice::from_ref(&key), "{\"path\":".to_owned());
    assert_eq!((reply.status, &reply.body["code"]), (400, &json!("BadJsonBody")), "{reply:?}");

    // WHEN the route does not exist
    let reply = api.send("api/nothing", &[key], body.to_string());
    assert_eq!(reply.status, 404, "{reply:?}");
}

#[test]
fn the_test_server_typechecks() {
    // WHEN tsc checks tests/convex/server.ts against the installed convex and convex-test
    let output = run(Command::new(convex_tool("tsc")).current_dir(convex_tools()).args([
        "--noEmit",
        "-p",
        "tsconfig.server.json",
    ]));

    // THEN it finds nothing
    assert!(output.status.success(), "server.ts does not typecheck:\n{}", printed(&output));
}

/// `value` with every number as a float: a JSON number is a Float64 in Convex, however written
/// (`1.0` in transformed/, `1` in Convex's reply).
fn as_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().expect("a finite number")),
        Value::Array(items) => items.iter().map(as_floats).collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), as_floats(v))).collect(),
        other => other.clone(),
    }
}

/// The documents of `transformed/<table>.jsonl`.
fn transformed(work: &Workdir, table: &str) -> Vec<Value> {
    jsonl(&work.data_dir().join("transformed").join(format!("{table}.jsonl")))
}

#[test]
fn the_sample_apps_transformed_documents_import_through_the_generated_module() {
    // GIVEN the README's sample database, exported, planned with the repository's plan by
    // `migrate init`, and transformed
    let db = TestDb::with(SAMPLE_APP);
    let work = Workdir::new();
    work.export(db.url(), &[]).success();
    let plan_dir = work.path().join("migrations");
    std::fs::create_dir_all(&plan_dir).unwrap();
    std::fs::copy(
        repository_plan_dir().join("0001_initial.toml"),
        plan_dir.join("0001_initial.toml"),
    )
    .unwrap();
    let init = work.run(&["--format", "json", "init"]).success();
    let report: Value = serde_json::from_str(&init.stdout).expect("init's JSON report");
    assert_eq!(report["convex"]["module"]["status"], "created", "{init}");
    work.run(&["transform"]).success();

    // AND the Convex app `migrate init` wrote, running on the test server
    let server = ConvexTestServer::for_convex_dir(&work.path().join("convex"));
    let api = Api::new(&server);

    // WHEN the documents are upserted parents first, 100 at a time, the comments' self-reference
    // left out, then patched in
    let mut ids: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut lines: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for table in ["userProfiles", "posts", "comments"] {
        let docs = transformed(&work, table);
        assert!(!docs.is_empty(), "no {table}");
        for batch in docs.chunks(100) {
            let batch: Vec<Value> = batch
                .iter()
                .map(|line| {
                    let mut line = line.clone();
                    if let Some(refs) = line.get_mut("refs").and_then(Value::as_object_mut) {
                        refs.remove("parentId");
                    }
                    line
                })
                .collect();
            let result = api.upsert(table, json!(batch));
            assert_eq!(result["inserted"], json!(batch.len()), "{table}: {result}");
            for (line, id) in batch.iter().zip(result["ids"].as_array().unwrap()) {
                let legacy = line["doc"]["legacyId"].as_str().unwrap().to_owned();
                ids.insert((table.to_owned(), legacy), id.clone());
            }
        }
        lines.insert(table, docs);
    }
    let patches: Vec<Value> = lines["comments"]
        .iter()
        .filter_map(|line| {
            let parent = line["refs"].get("parentId")?;
            Some(json!({ "legacyId": line["doc"]["legacyId"], "refs": { "parentId": parent } }))
        })
        .collect();
    assert!(!patches.is_empty(), "the sample has replies");
    for batch in patches.chunks(100) {
        api.ok("api/mutation", "migrate:patchRefs", json!({ "table": "comments", "docs": batch }));
    }

    // THEN every table holds exactly its transformed documents, each reference holding the
    // Convex id of the parent its line names
    for (table, docs) in &lines {
        let (stored, _) = api.all(table, 500);
        assert_eq!(stored.len(), docs.len(), "{table}");
        let stored: BTreeMap<&str, &Value> =
            stored.iter().map(|d| (d["legacyId"].as_str().unwrap(), d)).collect();
        for line in docs {
            let legacy = line["doc"]["legacyId"].as_str().unwrap();
            let doc = stored[legacy];
            assert_eq!(doc["_id"], ids[&(table.to_string(), legacy.to_owned())]);
            for (field, value) in line["doc"].as_object().unwrap() {
                assert_eq!(as_floats(&doc[field]), as_floats(value), "{table} {legacy}.{field}");
            }
            for (field, parent) in line["refs"].as_object().into_iter().flatten() {
                let key = (
                    parent["table"].as_str().unwrap().to_owned(),
                    parent["legacyId"].as_str().unwrap().to_owned(),
                );
                assert_eq!(doc[field], ids[&key], "{table} {legacy}.{field}");
            }
        }
    }
}
