//! What the HTTP tests share: a plan, a started sink, and a small keep-alive HTTP/1.1 client
//! (hyper's own, so connection resets show as errors and no TLS stack is involved).

#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::Bytes;
use convex_sink::{Plan, Sink, SinkConfig, SinkHandle};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// users; posts → users (authorId) and posts (parentId); comments → posts.
pub const PLAN: &str = r#"{"version":1,"planHash":"blake3:0011","tables":{"users":{"legacyIdField":"legacyId","references":{}},"posts":{"legacyIdField":"legacyId","references":{"authorId":"users","parentId":"posts"}},"comments":{"legacyIdField":"key","references":{"postId":"posts"}}}}"#;

pub fn plan() -> Plan {
    Plan::from_json(PLAN).expect("the test plan parses")
}

pub fn start() -> SinkHandle {
    start_with(SinkConfig::new(plan()))
}

pub fn start_with(config: SinkConfig) -> SinkHandle {
    Sink::start(config).expect("the sink starts")
}

/// A client on one keep-alive connection, reconnecting after the server dropped it.
pub struct Client {
    addr: SocketAddr,
    key: String,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Connections opened so far.
    pub connections: usize,
}

/// A reply: HTTP status and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Client {
    pub fn new(sink: &SinkHandle) -> Client {
        Client::to(sink.addr(), sink.admin_key())
    }

    pub fn to(addr: SocketAddr, key: &str) -> Client {
        Client { addr, key: key.to_owned(), sender: None, connections: 0 }
    }

    async fn sender(&mut self) -> &mut SendRequest<Full<Bytes>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(self.addr).await.expect("connect to the sink");
            let (sender, connection) =
                http1::handshake(TokioIo::new(stream)).await.expect("HTTP handshake");
            tokio::spawn(connection);
            self.sender = Some(sender);
            self.connections += 1;
        }
        let sender = self.sender.as_mut().expect("just set");
        sender.ready().await.ok();
        sender
    }

    /// POSTs `body` to `path` with these headers; `Err` when the connection broke instead.
    pub async fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Reply, hyper::Error> {
        let mut request = Request::post(path).header("host", "127.0.0.1");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body.to_owned()))).expect("a request");
        let sender = self.sender().await;
        let result = sender.send_request(request).await;
        let response: Response<_> = match result {
            Ok(response) => response,
            Err(e) => {
                self.sender = None;
                return Err(e);
            }
        };
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("reply is not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
        });
        Ok(Reply { status, body })
    }

    /// Calls `function` on `/api/query` or `/api/mutation` as migrate does.
    pub async fn try_call(
        &mut self,
        endpoint: &str,
        function: &str,
        args: Value,
    ) -> Result<Reply, hyper::Error> {
        let auth = format!("Convex {}", self.key);
        let body = json!({"path": function, "args": args, "format": "convex_encoded_json"});
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("convex-client", "migrate-0.1.0"),
        ];
        self.post(&format!("/api/{endpoint}"), &headers, &body.to_string()).await
    }

    /// A call that must answer 200; returns its `{"status": ...}` body.
    pub async fn call(&mut self, endpoint: &str, function: &str, args: Value) -> Value {
        let reply = self.try_call(endpoint, function, args).await.expect("a reply");
        assert_eq!(reply.status, 200, "{function}: {}", reply.body);
        reply.body
    }

    /// A call that must succeed; returns its value.
    pub async fn ok(&mut self, endpoint: &str, function: &str, args: Value) -> Value {
        let body = self.call(endpoint, function, args).await;
        assert_eq!(body["status"], "success", "{function}: {body}");
        body["value"].clone()
    }

    /// A call that must throw; returns its error message.
    pub async fn thrown(&mut self, endpoint: &str, function: &str, args: Value) -> String {
        let body = self.call(endpoint, function, args).await;
        assert_eq!(body["status"], "error", "{function}: {body}");
        body["errorMessage"].as_str().expect("an error message").to_owned()
    }

    pub async fn upsert(&mut self, table: &str, docs: Value) -> Value {
        self.ok("mutation", "migrate:upsert", json!({"table": table, "docs": docs})).await
    }
}

/// `n` user lines `{"doc": {"legacyId": "<i>", "name": "user <i>"}}`.
pub fn users(range: std::ops::Range<usize>) -> Value {
    range
        .map(|i| json!({"doc": {"legacyId": i.to_string(), "name": format!("user {i}")}}))
        .collect()
}

/// Whether `id` is a Convex id of a table numbered from 128 (two bytes of table number, as the
/// sink numbers its tables): 32 characters that decode with a right footer.
pub fn is_convex_id(id: &str) -> bool {
    id.len() == 32 && convex_sink::id::decode(id).is_some_and(|(table, _)| table >= 128)
}
