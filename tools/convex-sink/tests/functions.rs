//! The functions of docs/convex-module.md over HTTP: upsert, patchRefs, page, get, remove.

mod common;

use common::{Client, is_convex_id, start, users};
use serde_json::{Value, json};

fn ids(value: &Value) -> Vec<String> {
    value["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn upsert_inserts_then_replaces_under_the_same_ids() {
    let sink = start();
    let mut client = Client::new(&sink);
    let first = client.upsert("users", users(0..3)).await;
    assert_eq!((first["inserted"].clone(), first["replaced"].clone()), (json!(3), json!(0)));
    let first_ids = ids(&first);
    assert_eq!(first_ids.len(), 3);
    assert!(first_ids.iter().all(|id| is_convex_id(id)), "{first_ids:?}");

    let changed = json!([
        {"doc": {"legacyId": "1", "name": "renamed", "score": {"$integer": "AQAAAAAAAAA="}}},
        {"doc": {"legacyId": "3", "name": "new"}},
    ]);
    let second = client.upsert("users", changed).await;
    assert_eq!((second["inserted"].clone(), second["replaced"].clone()), (json!(1), json!(1)));
    let second_ids = ids(&second);
    assert_eq!(second_ids[0], first_ids[1]);
    assert!(!first_ids.contains(&second_ids[1]));

    let docs = sink.documents("users");
    assert_eq!(docs.len(), 4);
    assert_eq!(docs[1]["_id"], first_ids[1].as_str());
    assert_eq!(docs[1]["name"], "renamed");
    assert_eq!(docs[1]["score"], json!({"$integer": "AQAAAAAAAAA="}));
    assert!(
        docs[0]["_creationTime"].as_f64().unwrap() < docs[3]["_creationTime"].as_f64().unwrap()
    );
    let stats = sink.stats();
    assert_eq!((stats.inserted, stats.replaced), (4, 1));
}

#[tokio::test]
async fn references_become_the_parents_ids_even_within_one_batch() {
    let sink = start();
    let mut client = Client::new(&sink);
    let user = ids(&client.upsert("users", users(7..8)).await).remove(0);
    let posts = json!([
        {"doc": {"legacyId": "p1", "title": "root"}, "refs": {"authorId": {"table": "users", "legacyId": "7"}}},
        {"doc": {"legacyId": "p2", "title": "reply"},
         "refs": {"authorId": {"table": "users", "legacyId": "7"}, "parentId": {"table": "posts", "legacyId": "p1"}}},
    ]);
    let post_ids = ids(&client.upsert("posts", posts).await);
    let p2 = sink.document("posts", "p2").unwrap();
    assert_eq!(p2["authorId"], user.as_str());
    assert_eq!(p2["parentId"], post_ids[0].as_str());
    assert_eq!(p2["_id"], post_ids[1].as_str());
    // Table numbers differ per table, so ids of different tables differ in their first bytes.
    assert_ne!(user[..3], post_ids[0][..3]);
}

#[tokio::test]
async fn a_missing_parent_throws_and_applies_nothing() {
    let sink = start();
    let mut client = Client::new(&sink);
    client.upsert("users", users(0..1)).await;
    client.upsert("posts", json!([{"doc": {"legacyId": "old", "title": "kept"}}])).await;
    let args = json!({"table": "posts", "docs": [
        {"doc": {"legacyId": "old", "title": "changed"}},
        {"doc": {"legacyId": "a", "title": "fine"}, "refs": {"authorId": {"table": "users", "legacyId": "0"}}},
        {"doc": {"legacyId": "b", "title": "orphan"}, "refs": {"authorId": {"table": "users", "legacyId": "99"}}},
    ]});
    let message = client.thrown("mutation", "migrate:upsert", args).await;
    assert_eq!(message, "posts b: authorId refers to users 99, which is not in Convex");
    let posts = sink.documents("posts");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["title"], "kept");
    assert_eq!(sink.stats().inserted, 2);
}

#[tokio::test]
async fn plan_violations_and_bad_legacy_ids_throw() {
    let sink = start();
    let mut client = Client::new(&sink);
    client.upsert("users", users(0..1)).await;
    let cases = [
        (json!({"table": "nope", "docs": []}), "unknown table \"nope\"".to_owned()),
        (
            json!({"table": "users", "docs": [{"doc": {"legacyId": "a"}}, {"doc": {"legacyId": 5}}]}),
            "users: document 2 of the batch has no string legacyId (got number)".to_owned(),
        ),
        (
            json!({"table": "users", "docs": [{"doc": {"name": "x"}}]}),
            "users: document 1 of the batch has no string legacyId (got undefined)".to_owned(),
        ),
        (
            json!({"table": "users", "docs": [{"doc": {"legacyId": {"$integer": "AQAAAAAAAAA="}}}]}),
            "users: document 1 of the batch has no string legacyId (got bigint)".to_owned(),
        ),
        (
            json!({"table": "users", "docs": [{"doc": {"legacyId": null}}]}),
            "users: document 1 of the batch has no string legacyId (got null)".to_owned(),
        ),
        (json!({"table": "a\"b", "docs": []}), r#"unknown table "a\"b""#.to_owned()),
        (
            json!({"table": "posts", "docs": [{"doc": {"legacyId": "p"}, "refs": {"authorId": {"table": "posts", "legacyId": "0"}}}]}),
            "posts p: authorId refers to users in the plan, not to posts".to_owned(),
        ),
        (
            json!({"table": "posts", "docs": [{"doc": {"legacyId": "p"}, "refs": {"title": {"table": "users", "legacyId": "0"}}}]}),
            "posts p: title is not a reference of posts in the plan".to_owned(),
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(client.thrown("mutation", "migrate:upsert", args).await, expected);
    }
    assert_eq!(sink.count("posts"), 0);
    assert_eq!(sink.count("users"), 1);
}

#[tokio::test]
async fn two_documents_with_one_legacy_id_make_upsert_and_patch_refs_throw() {
    let sink = start();
    let mut client = Client::new(&sink);
    client.upsert("users", users(0..1)).await;
    let extra =
        sink.insert_raw("users", json!({"legacyId": "0", "name": "twin", "_id": "ignored"}));
    assert!(is_convex_id(&extra));
    assert_eq!(sink.count("users"), 2);
    let message = client
        .thrown("mutation", "migrate:upsert", json!({"table": "users", "docs": users(0..1)}))
        .await;
    assert_eq!(message, "users 0: 2 documents have this legacy id");
    client.upsert("posts", json!([{"doc": {"legacyId": "p"}}])).await;
    let patch = json!({"table": "posts", "docs": [{"legacyId": "p", "refs": {"authorId": {"table": "users", "legacyId": "0"}}}]});
    let message = client.thrown("mutation", "migrate:patchRefs", patch).await;
    assert_eq!(message, "users 0: 2 documents have this legacy id", "as a parent");
    let get = json!({"table": "users", "legacyIds": ["0"]});
    let message = client.thrown("query", "migrate:get", get).await;
    assert_eq!(message, "users 0: 2 documents have this legacy id");
    sink.insert_raw("posts", json!({"legacyId": "p"}));
    let patch = json!({"table": "posts", "docs": [{"legacyId": "p", "refs": {}}]});
    let message = client.thrown("mutation", "migrate:patchRefs", patch).await;
    assert_eq!(message, "posts p: 2 documents have this legacy id");
    // remove deletes both.
    let value = client
        .ok("mutation", "migrate:remove", json!({"table": "users", "legacyIds": ["0"]}))
        .await;
    assert_eq!(value, json!({"deleted": 2}));
    assert_eq!(sink.count("users"), 0);
}

#[tokio::test]
async fn patch_refs_fills_cycle_references_in() {
    let sink = start();
    let mut client = Client::new(&sink);
    client.upsert("users", users(1..2)).await;
    let posts =
        json!([{"doc": {"legacyId": "a", "title": "A"}}, {"doc": {"legacyId": "b", "title": "B"}}]);
    let post_ids = ids(&client.upsert("posts", posts).await);
    let args = json!({"table": "posts", "docs": [
        {"legacyId": "a", "refs": {"parentId": {"table": "posts", "legacyId": "b"}}},
        {"legacyId": "b", "refs": {"parentId": {"table": "posts", "legacyId": "a"}, "authorId": {"table": "users", "legacyId": "1"}}},
    ]});
    let value = client.ok("mutation", "migrate:patchRefs", args).await;
    assert_eq!(ids(&value), post_ids);
    let a = sink.document("posts", "a").unwrap();
    let b = sink.document("posts", "b").unwrap();
    assert_eq!(
        (a["parentId"].as_str(), a["title"].as_str()),
        (Some(post_ids[1].as_str()), Some("A"))
    );
    assert_eq!(b["parentId"], post_ids[0].as_str());
    assert!(is_convex_id(b["authorId"].as_str().unwrap()));
    assert_eq!(sink.stats().patched, 2);

    // A missing document throws and the earlier patch of the call is undone.
    let args = json!({"table": "posts", "docs": [
        {"legacyId": "a", "refs": {"parentId": {"table": "posts", "legacyId": "a"}}},
        {"legacyId": "zzz", "refs": {"parentId": {"table": "posts", "legacyId": "a"}}},
    ]});
    assert_eq!(
        client.thrown("mutation", "migrate:patchRefs", args).await,
        "posts zzz: not in Convex"
    );
    assert_eq!(sink.document("posts", "a").unwrap()["parentId"], post_ids[1].as_str());
}

#[tokio::test]
async fn an_upsert_keeps_the_deferred_references_of_an_existing_document() {
    let sink = start();
    let mut client = Client::new(&sink);
    // GIVEN two posts upserted without their cycle reference, then patched
    let first_pass = json!([
        {"doc": {"legacyId": "a", "title": "A"}, "refs": {}, "deferred": ["parentId"]},
        {"doc": {"legacyId": "b", "title": "B"}, "deferred": ["parentId"]},
    ]);
    let post_ids = ids(&client.upsert("posts", first_pass.clone()).await);
    assert!(sink.document("posts", "a").unwrap().get("parentId").is_none());
    let args = json!({"table": "posts", "docs": [
        {"legacyId": "a", "refs": {"parentId": {"table": "posts", "legacyId": "b"}}},
    ]});
    client.ok("mutation", "migrate:patchRefs", args).await;

    // WHEN the first pass's upsert is applied again, late
    client.upsert("posts", first_pass).await;

    // THEN the patched reference stays, the rest is replaced
    let a = sink.document("posts", "a").unwrap();
    assert_eq!((a["parentId"].as_str(), a["title"].as_str()), (Some(&*post_ids[1]), Some("A")));
    assert!(sink.document("posts", "b").unwrap().get("parentId").is_none());

    // AND a deferred field the element carries in `doc` is left out, not written
    let sneaky = json!([{"doc": {"legacyId": "c", "parentId": "x"}, "deferred": ["parentId"]}]);
    client.upsert("posts", sneaky).await;
    assert!(sink.document("posts", "c").unwrap().get("parentId").is_none());

    // AND an upsert that does not defer the field owns it
    client.upsert("posts", json!([{"doc": {"legacyId": "a", "title": "A"}}])).await;
    assert!(sink.document("posts", "a").unwrap().get("parentId").is_none());

    // AND only a reference of the plan that the element does not set can be deferred
    for element in [
        json!({"doc": {"legacyId": "a"}, "deferred": ["title"]}),
        json!({"doc": {"legacyId": "a"}, "deferred": ["parentId"],
               "refs": {"parentId": {"table": "posts", "legacyId": "b"}}}),
    ] {
        let args = json!({"table": "posts", "docs": [element]});
        let message = client.thrown("mutation", "migrate:upsert", args).await;
        assert!(message.contains("posts a: "), "{message}");
        assert!(message.contains("is deferred, but it is not a reference of posts"), "{message}");
    }
}

#[tokio::test]
async fn the_ledger_records_imports_and_clearing_empties_it_with_the_tables() {
    let sink = start();
    let mut client = Client::new(&sink);
    let read = json!({"importId": "00ff"});
    assert_eq!(client.ok("query", "migrate:ledgerRead", read.clone()).await, json!(null));
    let write = |plan: &str, version: u64, status: &str| {
        json!({"importId": "00ff", "planHash": plan, "planVersion": version,
               "planFiles": ["0001_initial.toml"], "status": status})
    };
    for status in ["running", "completed"] {
        client.ok("mutation", "migrate:ledgerWrite", write("blake3:0011", 1, status)).await;
    }
    let record = client.ok("query", "migrate:ledgerRead", read.clone()).await;
    assert_eq!(
        (&record["status"], &record["planHash"]),
        (&json!("completed"), &json!("blake3:0011"))
    );
    assert!(record["finishedAt"].as_f64() >= record["startedAt"].as_f64(), "{record}");
    assert_eq!(sink.ledger(), std::slice::from_ref(&record));
    assert_eq!(client.ok("query", "migrate:ledgerList", json!({})).await, json!([record]));
    assert_eq!(sink.stats().ledger_calls, 5);
    // Another plan version of the same import is an entry of its own, and the latest read.
    client.ok("mutation", "migrate:ledgerWrite", write("blake3:0022", 2, "running")).await;
    assert_eq!(sink.ledger().len(), 2);
    let latest = client.ok("query", "migrate:ledgerRead", read.clone()).await;
    assert_eq!(latest["planHash"], "blake3:0022");
    assert!(latest.get("finishedAt").is_none(), "{latest}");
    let message =
        client.thrown("mutation", "migrate:ledgerWrite", write("blake3:0011", 1, "done")).await;
    assert!(message.contains("ArgumentValidationError"), "{message}");

    client.upsert("users", users(1..3)).await;
    sink.clear();
    assert_eq!(sink.count("users"), 0);
    assert!(sink.ledger().is_empty());
    assert_eq!(client.ok("query", "migrate:ledgerRead", read).await, json!(null));
}

#[tokio::test]
async fn remove_docs_and_unset_legacy_ids_act_by_id_once() {
    let sink = start();
    let mut client = Client::new(&sink);
    let ids = client.upsert("users", users(1..4)).await["ids"].clone();
    // removeDocs: by id, only while the document holds the legacy id given
    let docs = json!([{ "id": ids[0], "legacyId": "1" }, { "id": ids[1], "legacyId": "9" }]);
    let removed =
        client.ok("mutation", "migrate:removeDocs", json!({"table": "users", "docs": docs})).await;
    assert_eq!(removed["deleted"], 1);
    assert_eq!(sink.count("users"), 2);
    // unsetLegacyIds: the field goes, the document stays; a second call patches nothing
    let args = json!({"table": "users", "ids": [ids[1], ids[0]]});
    let unset = client.ok("mutation", "migrate:unsetLegacyIds", args.clone()).await;
    assert_eq!(unset["patched"], 1);
    let left = sink.documents("users");
    let second = left.iter().find(|d| d["_id"] == ids[1]).unwrap();
    assert!(second.get("legacyId").is_none(), "{second}");
    assert_eq!(client.ok("mutation", "migrate:unsetLegacyIds", args).await["patched"], 0);
}

#[tokio::test]
async fn page_walks_a_table_in_insertion_order() {
    let sink = start();
    let mut client = Client::new(&sink);
    for start in (0..1000).step_by(250) {
        client.upsert("users", users(start..start + 250)).await;
    }
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let args = json!({"table": "users", "cursor": cursor, "numItems": 64});
        let value = client.ok("query", "migrate:page", args).await;
        let page = value["page"].as_array().unwrap();
        assert!(page.len() <= 64);
        for doc in page {
            assert!(is_convex_id(doc["_id"].as_str().unwrap()));
            assert!(doc["_creationTime"].as_f64().is_some_and(|t| t > 1.7e12));
            seen.push(doc["legacyId"].as_str().unwrap().parse::<usize>().unwrap());
        }
        pages += 1;
        cursor = value["continueCursor"].clone();
        assert!(cursor.is_string());
        if value["isDone"] == json!(true) {
            break;
        }
    }
    assert_eq!(pages, 16);
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    let message = client
        .thrown("query", "migrate:page", json!({"table": "users", "cursor": "x!", "numItems": 1}))
        .await;
    assert!(message.contains("cursor"), "{message}");
}

/// `readBack` as the generated module answers it (tests/it/convex_module.rs checks the module
/// under convex-test the same way).
#[tokio::test]
async fn read_back_resolves_references_to_the_parents_legacy_ids() {
    let sink = start();
    let mut client = Client::new(&sink);
    client.upsert("users", users(0..2)).await;
    let post = |legacy: &str, author: &str| json!({"doc": {"legacyId": legacy}, "refs": {"authorId": {"table": "users", "legacyId": author}}});
    client.upsert("posts", json!([post("a", "1"), post("b", "0"), post("c", "1")])).await;
    client.ok("mutation", "migrate:remove", json!({"table": "users", "legacyIds": ["1"]})).await;

    let mut cursor = Value::Null;
    let mut read = Vec::new();
    loop {
        let args = json!({"table": "posts", "cursor": cursor, "numItems": 2});
        let page = client.ok("query", "migrate:readBack", args).await;
        read.extend(page["page"].as_array().unwrap().iter().cloned());
        if page["isDone"] == json!(true) {
            break;
        }
        cursor = page["continueCursor"].clone();
    }
    let by_legacy = |legacy: &str| read.iter().find(|r| r["doc"]["legacyId"] == legacy).unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(by_legacy("b")["refs"], json!({"authorId": {"table": "users", "legacyId": "0"}}));
    assert_eq!(by_legacy("a")["refs"], json!({"authorId": null}));
    assert_eq!(by_legacy("c")["refs"], json!({"authorId": null}));
    assert!(is_convex_id(by_legacy("a")["doc"]["authorId"].as_str().unwrap()));
    assert!(is_convex_id(by_legacy("a")["doc"]["_id"].as_str().unwrap()));
    let users = client
        .ok("query", "migrate:readBack", json!({"table": "users", "cursor": null, "numItems": 10}))
        .await;
    assert_eq!(users["page"][0]["refs"], json!({}));
}

/// `readBack` of a `_creationTime` range (`from <= t < to`) with `creationTimes`' bounds, as
/// verify reads a table in ranges at once.
#[tokio::test]
async fn read_back_in_creation_time_ranges_reads_each_document_once() {
    let sink = start();
    let mut client = Client::new(&sink);
    let times = client.ok("query", "migrate:creationTimes", json!({"table": "users"})).await;
    assert_eq!(times, json!({"first": null, "last": null}));
    client.upsert("users", users(0..50)).await;
    client.ok("mutation", "migrate:remove", json!({"table": "users", "legacyIds": ["20"]})).await;
    let times = client.ok("query", "migrate:creationTimes", json!({"table": "users"})).await;

    // Every document's creation time; the ranges start exactly at some of them.
    let all = client
        .ok("query", "migrate:readBack", json!({"table": "users", "cursor": null, "numItems": 100}))
        .await;
    let created: Vec<f64> = all["page"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["doc"]["_creationTime"].as_f64().unwrap())
        .collect();
    assert_eq!(created.len(), 49);
    assert_eq!(
        (times["first"].as_f64(), times["last"].as_f64()),
        (Some(created[0]), Some(created[48]))
    );
    let bounds = [None, Some(created[10]), Some(created[19] + 1e-9), Some(created[30]), None];

    let mut seen = Vec::new();
    for range in bounds.windows(2) {
        let mut cursor = Value::Null;
        loop {
            let mut args = json!({"table": "users", "cursor": cursor, "numItems": 4});
            if let Some(from) = range[0] {
                args["from"] = json!(from);
            }
            if let Some(to) = range[1] {
                args["to"] = json!(to);
            }
            let page = client.ok("query", "migrate:readBack", args).await;
            for read in page["page"].as_array().unwrap() {
                let t = read["doc"]["_creationTime"].as_f64().unwrap();
                assert!(range[0].is_none_or(|from| from <= t) && range[1].is_none_or(|to| t < to));
                seen.push(read["doc"]["legacyId"].as_str().unwrap().parse::<usize>().unwrap());
            }
            if page["isDone"] == json!(true) {
                break;
            }
            cursor = page["continueCursor"].clone();
        }
    }
    let expected: Vec<usize> = (0..50).filter(|&i| i != 20).collect();
    assert_eq!(seen, expected);
    let message = client
        .thrown(
            "query",
            "migrate:page",
            json!({"table": "users", "cursor": null, "numItems": 1, "from": 1}),
        )
        .await;
    assert!(message.contains("ArgumentValidationError"), "{message}");
}

#[tokio::test]
async fn get_returns_documents_in_order_with_nulls() {
    let sink = start();
    let mut client = Client::new(&sink);
    let user_ids = ids(&client.upsert("users", users(0..3)).await);
    let value = client
        .ok("query", "migrate:get", json!({"table": "users", "legacyIds": ["2", "x", "0"]}))
        .await;
    let docs = value.as_array().unwrap();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0]["_id"], user_ids[2].as_str());
    assert_eq!(docs[0]["name"], "user 2");
    assert_eq!(docs[1], Value::Null);
    assert_eq!(docs[2]["_id"], user_ids[0].as_str());
    let too_many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let message = client
        .thrown("query", "migrate:get", json!({"table": "users", "legacyIds": too_many}))
        .await;
    assert!(message.contains("1000"), "{message}");
}

#[tokio::test]
async fn remove_deletes_and_a_modified_document_shows_in_get() {
    let sink = start();
    let mut client = Client::new(&sink);
    client.upsert("users", users(0..4)).await;
    let value = client
        .ok("mutation", "migrate:remove", json!({"table": "users", "legacyIds": ["1", "3", "9"]}))
        .await;
    assert_eq!(value, json!({"deleted": 2}));
    let left: Vec<Value> = sink.documents("users").iter().map(|d| d["legacyId"].clone()).collect();
    assert_eq!(left, [json!("0"), json!("2")]);
    assert_eq!(sink.stats().deleted, 2);

    assert!(sink.modify("users", "2", |doc| {
        doc.insert("name".into(), json!("tampered"));
    }));
    assert!(!sink.modify("users", "1", |_| {}));
    let value =
        client.ok("query", "migrate:get", json!({"table": "users", "legacyIds": ["2"]})).await;
    assert_eq!(value[0]["name"], "tampered");
    // Moving a document to another legacy id re-indexes it.
    assert!(sink.modify("users", "2", |doc| {
        doc.insert("legacyId".into(), json!("20"));
    }));
    let value = client
        .ok("query", "migrate:get", json!({"table": "users", "legacyIds": ["2", "20"]}))
        .await;
    assert_eq!(value[0], Value::Null);
    assert_eq!(value[1]["name"], "tampered");
}

#[tokio::test]
async fn a_table_with_another_legacy_id_field_uses_it() {
    let sink = start();
    let mut client = Client::new(&sink);
    client.upsert("posts", json!([{"doc": {"legacyId": "p"}}])).await;
    let docs = json!([{"doc": {"key": "[\"acme\",\"42\"]", "body": "hi"}, "refs": {"postId": {"table": "posts", "legacyId": "p"}}}]);
    client.upsert("comments", docs).await;
    let value = client
        .ok(
            "query",
            "migrate:get",
            json!({"table": "comments", "legacyIds": ["[\"acme\",\"42\"]"]}),
        )
        .await;
    assert_eq!(value[0]["body"], "hi");
    assert!(is_convex_id(value[0]["postId"].as_str().unwrap()));
}
