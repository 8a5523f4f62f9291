//! Each injected fault does what it says, `fail_all` toggles, and latency delays replies.

mod common;

use std::time::{Duration, Instant};

use common::{Client, plan, start, start_with, users};
use convex_sink::{Faults, SinkConfig};
use serde_json::json;

fn upsert_args(range: std::ops::Range<usize>) -> serde_json::Value {
    json!({"table": "users", "docs": users(range)})
}

#[tokio::test]
async fn unavailable_answers_503_and_429_alternately_and_applies_nothing() {
    let sink = start_with(SinkConfig {
        faults: Faults { unavailable: 1.0, ..Faults::none() },
        ..SinkConfig::new(plan())
    });
    let mut client = Client::new(&sink);
    let mut codes = Vec::new();
    for i in 0..4 {
        let reply =
            client.try_call("mutation", "migrate:upsert", upsert_args(i..i + 1)).await.unwrap();
        codes.push((reply.status, reply.body["code"].as_str().unwrap().to_owned()));
        assert!(reply.body["message"].is_string());
    }
    let expected = [(503, "Overloaded"), (429, "TooManyConcurrentRequests")];
    let expected: Vec<(u16, String)> =
        expected.iter().cycle().take(4).map(|(s, c)| (*s, c.to_string())).collect();
    assert_eq!(codes, expected);
    assert_eq!(sink.count("users"), 0);
    assert_eq!(sink.stats().unavailable, 4);
    // Turned off at runtime, the same call goes through.
    sink.set_faults(Faults::none()).unwrap();
    client.upsert("users", users(0..1)).await;
    assert_eq!(sink.count("users"), 1);
}

#[tokio::test]
async fn reset_before_drops_the_connection_and_applies_nothing() {
    let sink = start();
    sink.set_faults(Faults { reset_before: 1.0, ..Faults::none() }).unwrap();
    let mut client = Client::new(&sink);
    let result = client.try_call("mutation", "migrate:upsert", upsert_args(0..5)).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(sink.count("users"), 0);
    assert_eq!(sink.stats().reset_before, 1);
}

#[tokio::test]
async fn reset_after_applies_the_write_and_loses_the_reply() {
    let sink = start();
    sink.set_faults(Faults { reset_after: 1.0, ..Faults::none() }).unwrap();
    let mut client = Client::new(&sink);
    let result = client.try_call("mutation", "migrate:upsert", upsert_args(0..5)).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(sink.count("users"), 5);
    let stats = sink.stats();
    assert_eq!((stats.reset_after, stats.inserted, stats.succeeded), (1, 5, 0));
    // The retry a client makes replaces instead of duplicating.
    sink.set_faults(Faults::none()).unwrap();
    let value = client.upsert("users", users(0..5)).await;
    assert_eq!((value["inserted"].clone(), value["replaced"].clone()), (json!(0), json!(5)));
    assert_eq!(sink.count("users"), 5);
    assert_eq!(client.connections, 2);
}

#[tokio::test]
async fn stall_applies_and_holds_the_reply_without_holding_other_requests() {
    let sink = start();
    sink.set_faults(Faults { stall: 1.0, stall_for: Duration::from_secs(60), ..Faults::none() })
        .unwrap();
    let mut stalled_client = Client::new(&sink);
    let stalled = tokio::spawn(async move {
        stalled_client
            .try_call("mutation", "migrate:upsert", upsert_args(0..3))
            .await
            .map(|r| r.status)
    });
    for _ in 0..500 {
        if sink.count("users") == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.count("users"), 3, "the stalled call was not applied");
    sink.set_faults(Faults::none()).unwrap();
    let mut client = Client::new(&sink);
    client.upsert("users", users(3..4)).await;
    assert!(!stalled.is_finished(), "the stalled reply came");
    stalled.abort();
    assert_eq!(sink.stats().stalled, 1);

    // A short stall is waited out and then answered.
    let stall_for = Duration::from_millis(300);
    sink.set_faults(Faults { stall: 1.0, stall_for, ..Faults::none() }).unwrap();
    let started = Instant::now();
    let reply = client.try_call("mutation", "migrate:upsert", upsert_args(4..5)).await.unwrap();
    assert!(started.elapsed() >= stall_for);
    assert_eq!(reply.body["status"], "success");
    assert_eq!(sink.count("users"), 5);
}

#[tokio::test]
async fn fail_all_refuses_everything_until_turned_off() {
    let sink = start();
    let mut client = Client::new(&sink);
    sink.set_fail_all(true);
    for i in 0..3 {
        let reply =
            client.try_call("mutation", "migrate:upsert", upsert_args(i..i + 1)).await.unwrap();
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body["code"], "Overloaded");
    }
    assert_eq!(sink.count("users"), 0);
    sink.set_fail_all(false);
    client.upsert("users", users(0..3)).await;
    assert_eq!(sink.count("users"), 3);
    let stats = sink.stats();
    assert_eq!((stats.failed_all, stats.succeeded, stats.requests), (3, 1, 4));
}

#[tokio::test]
async fn latency_delays_every_reply() {
    let sink = start();
    let mut client = Client::new(&sink);
    client.upsert("users", users(0..1)).await;
    let latency = Duration::from_millis(300);
    sink.set_latency(latency);
    let started = Instant::now();
    // Four calls on four connections at once.
    let calls = (0..4).map(|_| {
        let mut client = Client::new(&sink);
        tokio::spawn(async move { client.ok("query", "migrate:info", json!({})).await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap();
    }
    let elapsed = started.elapsed();
    // The sink aims half a millisecond early (tokio's timer fires late); the four waited
    // together, not one after another.
    let at_least = latency - Duration::from_millis(1);
    assert!(elapsed >= at_least && elapsed < 2 * latency, "{elapsed:?}");
    // Wire errors wait too.
    let started = Instant::now();
    let reply = client.post("/api/query", &[], "{}").await.unwrap();
    assert_eq!(reply.status, 401);
    assert!(started.elapsed() >= at_least);
}

#[tokio::test]
async fn invalid_rates_are_refused() {
    let sink = start();
    assert!(sink.set_faults(Faults { unavailable: 0.7, stall: 0.7, ..Faults::none() }).is_err());
    assert!(sink.set_faults(Faults { reset_after: 2.0, ..Faults::none() }).is_err());
    assert_eq!(sink.faults(), Faults::none());
    let config =
        SinkConfig { faults: Faults { stall: -1.0, ..Faults::none() }, ..SinkConfig::new(plan()) };
    assert!(convex_sink::Sink::start(config).is_err());
}
