//! A Convex deployment for the tests: `tests/convex/server.ts`, the official `convex-test`
//! runtime behind Convex's HTTP API, running a Convex app folder (the generated `schema.ts` and
//! `migrate.ts`) on a port of its own with an admin key of its own.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use migrate::plan::Plan;

use crate::codegen_support::{ConvexApp, convex_tool, convex_tools};

/// Starting takes tsx compiling the server and the app: seconds on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `server.ts`; the process (and its app folder) goes when this is dropped.
pub struct ConvexTestServer {
    child: Child,
    /// The server exits when this pipe closes, even if the test process dies.
    stdin: Option<ChildStdin>,
    url: String,
    admin_key: String,
    stderr: Arc<Mutex<String>>,
    /// Kept for the server's life; `None` only while [`ConvexTestServer::restart_empty`] runs.
    app: Option<ConvexApp>,
    /// `redeployed` lines the server printed.
    redeployed: Option<mpsc::Receiver<String>>,
}

impl ConvexTestServer {
    /// A server running the `schema.ts`, `migrateTables.ts` and `migrate.ts` generated from
    /// `plan`.
    pub fn for_plan(plan: &Plan) -> Self {
        let app = ConvexApp::new("convex-server");
        let schema = app.write_generated(plan);
        Self::start(app, &schema)
    }

    /// A server running a copy of the Convex app folder `dir` (e.g. what `migrate init` wrote):
    /// copied under `tests/convex`, where its imports of `convex` resolve.
    pub fn for_convex_dir(dir: &Path) -> Self {
        let app = ConvexApp::new("convex-server");
        let schema = dir.join("schema.ts");
        let text = std::fs::read_to_string(&schema)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", schema.display()));
        let schema = app.write("convex/schema.ts", &text);
        copy_modules(dir, &app, "convex");
        Self::start(app, &schema)
    }

    /// A server running the Convex app folder `app` as it is (its `convex/_generated` too,
    /// which the app's modules import).
    pub fn for_app(app: ConvexApp) -> Self {
        let schema = app.path("convex/schema.ts");
        Self::start(app, &schema)
    }

    /// [`ConvexTestServer::for_app`] answering `list_snapshot` `page_size` documents a page,
    /// each page after `page_delay_ms`.
    pub fn for_app_paged(app: ConvexApp, page_size: usize, page_delay_ms: u64) -> Self {
        let schema = app.path("convex/schema.ts");
        let admin_key = format!("convex-test-server|{:032x}", fastrand::u128(..));
        let extra = [
            "--page-size".to_owned(),
            page_size.to_string(),
            "--page-delay-ms".to_owned(),
            page_delay_ms.to_string(),
        ];
        Self::start_on(app, &schema, admin_key, 0, &extra)
    }

    /// Starts the server on the app whose `convex/schema.ts` is `schema`.
    fn start(app: ConvexApp, schema: &Path) -> Self {
        let admin_key = format!("convex-test-server|{:032x}", fastrand::u128(..));
        Self::start_on(app, schema, admin_key, 0, &[])
    }

    /// Stops the server and starts a new one, empty, at the same URL with the same key and
    /// app: a deployment wiped, or replaced by a fresh one at the same address.
    pub fn restart_empty(mut self) -> Self {
        let port: u16 = self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        let (url, admin_key) = (self.url.clone(), self.admin_key.clone());
        self.stop();
        let app = self.app.take().expect("the app is kept until the server is dropped");
        drop(self);
        let schema = app.path("convex/schema.ts");
        let restarted = Self::start_on(app, &schema, admin_key, port, &[]);
        assert_eq!(restarted.url, url, "the restarted server is at the same URL");
        restarted
    }

    fn start_on(
        app: ConvexApp,
        schema: &Path,
        admin_key: String,
        port: u16,
        extra: &[String],
    ) -> Self {
        let convex_dir = schema.parent().expect("schema.ts is in convex/");
        let mut child = Command::new(convex_tool("tsx"))
            .current_dir(convex_tools())
            .arg("server.ts")
            .arg(convex_dir)
            .args(["--admin-key", &admin_key, "--port", &port.to_string()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tests/convex/server.ts: {e}"));

        // Both pipes are drained for the server's whole life: a full pipe would block it.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n @ 1..) = stderr_pipe.read(&mut buffer) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let (listening, address) = mpsc::channel();
        let (redeploys, redeployed) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = listening.send(url.to_owned());
                } else if line == "redeployed" {
                    let _ = redeploys.send(line);
                }
            }
        });

        let stdin = child.stdin.take();
        let started = Instant::now();
        let url = address.recv_timeout(START_TIMEOUT);
        let mut server = Self {
            child,
            stdin,
            url: String::new(),
            admin_key,
            stderr,
            app: Some(app),
            redeployed: Some(redeployed),
        };
        match url {
            Ok(url) => server.url = url,
            Err(reason) => {
                // Give the stderr reader a moment to catch what the server said last.
                std::thread::sleep(Duration::from_millis(200));
                let status = server.child.try_wait().ok().flatten();
                panic!(
                    "tests/convex/server.ts did not say `listening on` within {:?} ({reason}; \
                     exit status: {status:?})\n--- stderr\n{}",
                    started.elapsed(),
                    server.stderr()
                );
            }
        }
        server
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key that `Authorization: Convex <key>` must carry to reach internal functions.
    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// What the server logged so far: one line per call.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Deploys the functions of the Convex app folder `dir` (what `migrate init` wrote again)
    /// and keeps the data, as `npx convex deploy` does; the schema stays the one the server
    /// started with.
    pub fn redeploy(&mut self, dir: &Path) {
        use std::io::Write;
        copy_modules(dir, self.app.as_ref().expect("the app is kept"), "convex");
        let stdin = self.stdin.as_mut().expect("the server runs");
        stdin.write_all(b"redeploy\n").and_then(|()| stdin.flush()).expect("the server reads");
        let answer = self.redeployed.as_ref().expect("a receiver").recv_timeout(START_TIMEOUT);
        assert!(answer.is_ok(), "no `redeployed` from the server\n{}", self.stderr());
    }
}

impl Drop for ConvexTestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ConvexTestServer {
    /// Ends the server process (a second call finds it gone).
    fn stop(&mut self) {
        // Closing stdin ends the server; kill it if it has not gone within a few seconds.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the `.ts` files under `from` into `<app>/<to>`, leaving `_generated/` out: the server
/// needs none of it.
fn copy_modules(from: &Path, app: &ConvexApp, to: &str) {
    let entries = std::fs::read_dir(from)
        .unwrap_or_else(|e| panic!("cannot read the Convex dir {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            if name != "_generated" && name != "node_modules" {
                copy_modules(&path, app, &format!("{to}/{name}"));
            }
        } else if name.ends_with(".ts") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            app.write(&format!("{to}/{name}"), &text);
        }
    }
}
