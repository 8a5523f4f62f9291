//! Measures how many ~300-byte documents per second a sink upserts (latency 0, no faults).
//!
//! `cargo run --release -p convex-sink --example throughput -- [DOCS] [BATCH] [CONNECTIONS]`
//! starts a sink in-process. To measure the binary on one core and its CPU time, start it with
//! `taskset -c 0 convex-sink --module M --admin-key K` and add `--url URL --key K --pid PID`
//! (the plan must have a table `users`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use convex_sink::{Plan, Sink, SinkConfig};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

const PLAN: &str = r#"{"version":1,"planHash":"blake3:00","tables":{"users":{"legacyIdField":"legacyId","references":{}}}}"#;

struct Options {
    docs: usize,
    batch: usize,
    connections: usize,
    url: Option<String>,
    key: String,
    pid: Option<u32>,
}

fn options() -> Options {
    let mut options = Options {
        docs: 500_000,
        batch: 100,
        connections: 8,
        url: None,
        key: String::new(),
        pid: None,
    };
    let mut args = std::env::args().skip(1);
    let mut positional = 0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => options.url = args.next(),
            "--key" => options.key = args.next().expect("--key KEY"),
            "--pid" => options.pid = args.next().map(|p| p.parse().expect("--pid PID")),
            n => {
                let n: usize = n.parse().expect("DOCS BATCH CONNECTIONS are numbers");
                match positional {
                    0 => options.docs = n,
                    1 => options.batch = n,
                    _ => options.connections = n,
                }
                positional += 1;
            }
        }
    }
    options
}

/// One upsert body: `batch` documents of about 300 bytes each, legacy ids from `first`.
fn body(first: usize, batch: usize) -> String {
    let mut docs = String::with_capacity(batch * 340 + 100);
    for i in first..first + batch {
        if i > first {
            docs.push(',');
        }
        docs.push_str(&format!(
            concat!(
                r#"{{"doc":{{"legacyId":"{i}","name":"User number {i}","email":"user{i}@example.com","#,
                r#""active":true,"score":{{"$integer":"KgAAAAAAAAA="}},"balance":1234.5,"#,
                r#""createdAt":1717171717171,"tags":["alpha","beta","gamma"],"#,
                r#""bio":"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua."}}}}"#
            ),
            i = i
        ));
    }
    format!(
        r#"{{"path":"migrate:upsert","args":{{"table":"users","docs":[{docs}]}},"format":"convex_encoded_json"}}"#
    )
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn main() {
    let options = options();
    let plan = Plan::from_json(PLAN).unwrap();
    let sink = options.url.is_none().then(|| Sink::start(SinkConfig::new(plan)).unwrap());
    let (url, key) = match &sink {
        Some(sink) => (sink.url(), sink.admin_key().to_owned()),
        None => (options.url.clone().unwrap(), options.key.clone()),
    };
    let addr = url.strip_prefix("http://").unwrap().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sample = body(0, 1);
    println!(
        "{} documents, {} per call, {} connections, ~{} bytes a document",
        options.docs,
        options.batch,
        options.connections,
        sample.len() - 95
    );
    let cpu_before = options.pid.map(cpu_seconds);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    runtime.block_on(async {
        let tasks: Vec<_> = (0..options.connections)
            .map(|_| {
                let (next, addr, auth) = (next.clone(), addr.clone(), format!("Convex {key}"));
                let (docs, batch) = (options.docs, options.batch);
                tokio::spawn(async move {
                    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    let (mut sender, connection) =
                        http1::handshake(TokioIo::new(stream)).await.unwrap();
                    tokio::spawn(connection);
                    loop {
                        let first = next.fetch_add(batch, Ordering::Relaxed);
                        if first >= docs {
                            break;
                        }
                        let request = Request::post("/api/mutation")
                            .header("host", "127.0.0.1")
                            .header("authorization", &auth)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body(first, batch.min(docs - first)))))
                            .unwrap();
                        let response = sender.send_request(request).await.unwrap();
                        assert_eq!(response.status(), 200);
                        let reply = response.into_body().collect().await.unwrap().to_bytes();
                        assert!(reply.starts_with(br#"{"status":"success""#), "{reply:?}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    report(
        options.docs,
        elapsed,
        cpu_before.map(|before| cpu_seconds(options.pid.unwrap()) - before),
    );
    if let Some(sink) = sink {
        let stats = sink.stats();
        assert_eq!(stats.inserted as usize, options.docs);
        assert_eq!(sink.count("users"), options.docs);
    }
}

fn report(docs: usize, elapsed: Duration, sink_cpu: Option<f64>) {
    let seconds = elapsed.as_secs_f64();
    println!("{:.2} s wall, {:.0} documents/s", seconds, docs as f64 / seconds);
    if let Some(cpu) = sink_cpu {
        println!("sink: {cpu:.2} s CPU, {:.0} documents per CPU second", docs as f64 / cpu);
    }
}
