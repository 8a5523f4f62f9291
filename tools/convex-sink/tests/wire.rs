//! Convex's wire format: routes, the deploy key, `Convex-Client`, malformed bodies, function
//! lookup, reply shapes and keep-alive.

mod common;

use common::{Client, PLAN, start};
use serde_json::{Value, json};

const INFO: &str = r#"{"path":"migrate:info","args":{},"format":"convex_encoded_json"}"#;

#[tokio::test]
async fn info_returns_the_plan_over_one_kept_alive_connection() {
    let sink = start();
    let mut client = Client::new(&sink);
    for _ in 0..3 {
        let value = client.ok("query", "migrate:info", json!({})).await;
        assert_eq!(value, serde_json::from_str::<Value>(PLAN).unwrap());
    }
    assert_eq!(client.connections, 1);
    let reply = client.try_call("query", "migrate:info", json!({})).await.unwrap();
    assert_eq!(reply.body["status"], "success");
    assert_eq!(reply.body["logLines"], json!([]));
    assert_eq!(sink.stats().succeeded, 4);
}

#[tokio::test]
async fn a_missing_or_wrong_deploy_key_is_401_bad_admin_key() {
    let sink = start();
    let mut client = Client::new(&sink);
    let wrong = format!("Convex {}x", sink.admin_key());
    let bare = sink.admin_key().to_owned();
    for headers in
        [vec![], vec![("authorization", wrong.as_str())], vec![("authorization", bare.as_str())]]
    {
        let reply = client.post("/api/query", &headers, INFO).await.unwrap();
        assert_eq!(reply.status, 401, "{headers:?}");
        assert_eq!(
            reply.body,
            json!({"code": "BadAdminKey", "message": "The provided admin key was invalid for this instance"})
        );
    }
    let stats = sink.stats();
    assert_eq!((stats.requests, stats.wire_errors, stats.succeeded), (3, 3, 0));
}

#[tokio::test]
async fn a_convex_client_header_without_semver_is_400_invalid_version() {
    let sink = start();
    let mut client = Client::new(&sink);
    let auth = format!("Convex {}", sink.admin_key());
    for (version, status) in [
        ("migrate", 400),
        ("migrate-1.0", 400),
        ("migrate-0.1.0", 200),
        ("npm-cli-1.2.3-alpha.1", 200),
    ] {
        let headers = [("authorization", auth.as_str()), ("convex-client", version)];
        let reply = client.post("/api/query", &headers, INFO).await.unwrap();
        assert_eq!(reply.status, status, "{version}: {}", reply.body);
        if status == 400 {
            assert_eq!(reply.body["code"], "InvalidVersion");
            assert!(reply.body["message"].is_string());
        }
    }
    // No header at all is fine.
    let reply = client.post("/api/query", &[("authorization", auth.as_str())], INFO).await.unwrap();
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_malformed_body_is_400_bad_json_body() {
    let sink = start();
    let mut client = Client::new(&sink);
    let auth = format!("Convex {}", sink.admin_key());
    let bodies = [
        r#"{"path":"migrate:info","#,
        "not json",
        "[]",
        r#"{"args":{},"format":"convex_encoded_json"}"#,
        r#"{"path":"migrate:info","format":"convex_encoded_json"}"#,
        r#"{"path":"migrate:info","args":[{}],"format":"convex_encoded_json"}"#,
        r#"{"path":"migrate:info","args":{}}"#,
        r#"{"path":"migrate:info","args":{},"format":"json"}"#,
    ];
    for body in bodies {
        let reply =
            client.post("/api/query", &[("authorization", auth.as_str())], body).await.unwrap();
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.body["code"], "BadJsonBody", "{body}");
    }
}

#[tokio::test]
async fn unknown_functions_and_the_wrong_endpoint_are_function_errors() {
    let sink = start();
    let mut client = Client::new(&sink);
    let message = client.thrown("query", "migrate:nope", json!({})).await;
    assert_eq!(
        message,
        "Could not find function for 'migrate:nope'. Did you forget to run `npx convex dev` or `npx convex deploy`?"
    );
    let message = client.thrown("mutation", "other:upsert", json!({})).await;
    assert!(message.starts_with("Could not find function for 'other:upsert'"), "{message}");
    let message = client.thrown("mutation", "migrate:info", json!({})).await;
    assert!(message.contains("migrate:info") && message.contains("Query"), "{message}");
    let message =
        client.thrown("query", "migrate:upsert", json!({"table": "users", "docs": []})).await;
    assert!(message.contains("Mutation"), "{message}");
    assert_eq!(sink.stats().function_errors, 4);
}

#[tokio::test]
async fn arguments_of_the_wrong_shape_are_refused() {
    let sink = start();
    let mut client = Client::new(&sink);
    let message = client.thrown("mutation", "migrate:upsert", json!({"table": "users"})).await;
    assert!(message.starts_with("ArgumentValidationError"), "{message}");
    let message = client
        .thrown("mutation", "migrate:upsert", json!({"table": "users", "docs": [], "x": 1}))
        .await;
    assert!(message.starts_with("ArgumentValidationError"), "{message}");
    let message = client.thrown("query", "migrate:info", json!({"x": 1})).await;
    assert!(message.starts_with("ArgumentValidationError"), "{message}");
    let value =
        client.ok("mutation", "migrate:upsert", json!({"table": "users", "docs": []})).await;
    assert_eq!(value, json!({"ids": [], "inserted": 0, "replaced": 0}));
}

#[tokio::test]
async fn other_routes_are_404() {
    let sink = start();
    let mut client = Client::new(&sink);
    let reply = client.post("/api/action", &[], INFO).await.unwrap();
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["code"], "NotFound");
}
