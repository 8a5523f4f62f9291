//! The `convex-sink` binary: reads the plan from a module, announces its URL, serves, and prints
//! its counters on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::{Client, PLAN};
use serde_json::{Value, json};

#[tokio::test]
async fn the_binary_serves_a_module_and_reports_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("convex-sink-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("migrate.ts");
    let source = format!(
        "import {{ v }} from \"convex/values\";\nconst PLAN = {PLAN};\nexport const x = 1;\n"
    );
    std::fs::write(&module, source).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_convex-sink"))
        .args(["--module", module.to_str().unwrap(), "--admin-key", "k3y", "--latency-ms", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start convex-sink");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url =
        line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{line:?}"));
    let addr: SocketAddr = url.parse().unwrap();

    let mut client = Client::to(addr, "k3y");
    let value = client.ok("query", "migrate:info", json!({})).await;
    assert_eq!(value, serde_json::from_str::<Value>(PLAN).unwrap());
    client.upsert("users", common::users(0..2)).await;

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("requests=2 succeeded=2"), "{stderr}");
    assert!(stderr.contains("inserted=2"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_module_without_a_plan_is_refused() {
    let dir = std::env::temp_dir().join(format!("convex-sink-noplan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("migrate.ts");
    std::fs::write(&module, "export const x = 1;\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_convex-sink"))
        .args(["--module", module.to_str().unwrap(), "--admin-key", "k"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("const PLAN = "));
    std::fs::remove_dir_all(&dir).unwrap();
}
