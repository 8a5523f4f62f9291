//! `s3-fs-server`: the local S3 endpoint of `scripts/bench-files.sh`. It is `s3s-fs`'s own server
//! (the `s3s-fs` crate's `FileSystem`, objects as files under a folder, behind `s3s`'s S3
//! protocol with signature v4 checked, path-style requests) with one change: every connection
//! has `TCP_NODELAY`. The `s3s-fs` binary leaves Nagle's algorithm on, and its 4 KiB body
//! chunks then wait for the client's delayed ACK: about 35 ms per GET of 100 KB on loopback,
//! which would make a sequential client look slow for the server's sake. A real S3 endpoint
//! serves many requests at once; so does this one (a multi-threaded tokio runtime).
//!
//! Prints `listening on http://127.0.0.1:<port>` on stdout once it accepts connections; runs
//! until SIGTERM or Ctrl-C.
//!
//!   s3-fs-server <root> <access-key> <secret-key> [<port>]

use std::process::ExitCode;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, access_key, secret_key, rest @ ..] = args.as_slice() else {
        eprintln!("usage: s3-fs-server <root> <access-key> <secret-key> [<port>]");
        return ExitCode::from(2);
    };
    let port: u16 = match rest.first().map(|p| p.parse()) {
        None => 0,
        Some(Ok(port)) => port,
        Some(Err(e)) => {
            eprintln!("port `{}`: {e}", rest[0]);
            return ExitCode::from(2);
        }
    };
    match serve(root, access_key, secret_key, port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3-fs-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    root: &str,
    access_key: &str,
    secret_key: &str,
    port: u16,
) -> Result<(), Box<dyn std::error::Error>> {
    let store =
        s3s_fs::FileSystem::new(root).map_err(|e| format!("root folder `{root}`: {e:?}"))?;
    let service = {
        let mut builder = S3ServiceBuilder::new(store);
        builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
        builder.build()
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let http = ConnBuilder::new(TokioExecutor::new());
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(e) => {
                    eprintln!("accepting a connection: {e}");
                    continue;
                }
            },
            _ = terminate.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        socket.set_nodelay(true)?;
        let connection = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
