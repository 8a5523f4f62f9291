//! TLS to Postgres with libpq's `sslmode` meanings, against a throwaway cluster that accepts
//! TCP connections only over TLS, with a certificate issued for `localhost` alone.

use crate::support::{ServerTls, ThrowawayCluster, Workdir};

const PASSWORD: &str = "tls-test-pw-61c2";

struct Server {
    cluster: ThrowawayCluster,
    root_cert: String,
}

impl Server {
    fn start() -> Self {
        let tls = ServerTls::self_signed_for_localhost();
        let cluster = ThrowawayCluster::start_tls_only(PASSWORD, &tls);
        let root_cert = cluster.dir().join("root.pem");
        std::fs::write(&root_cert, &tls.cert_pem).expect("write the root certificate");
        let root_cert = root_cert.to_str().expect("temporary paths are UTF-8").to_owned();
        Server { cluster, root_cert }
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres:{PASSWORD}@{host}:{}/postgres?{query}", self.cluster.port)
    }
}

#[test]
fn every_sslmode_connects_or_refuses_as_libpq_would() {
    // GIVEN a server that accepts only TLS, its certificate valid for `localhost` only
    let server = Server::start();
    let work = Workdir::new();
    // A table to export (an export that finds none is an error), created over the Unix
    // socket, where the cluster trusts local connections without TLS.
    let socket = format!(
        "host={} port={} user=postgres dbname=postgres",
        server.cluster.dir().display(),
        server.cluster.port
    );
    crate::support::Conn::connect_or_fail(&socket).execute("create table t (id int)");
    let trusted = format!("sslrootcert={}", server.root_cert);

    // THEN without TLS the server turns the login away: the cluster really is TLS-only
    let plain = work.export(&server.url("127.0.0.1", "sslmode=disable"), &[]);
    plain.fails_with(3, &["refused the login of user `postgres`", "no encryption"]);

    // AND encrypting without checking the certificate works, as libpq's `require` does
    work.export(&server.url("127.0.0.1", "sslmode=require"), &[]).success();

    // AND checking it against the Mozilla roots fails: nobody public signed it
    let untrusted = work.export(&server.url("localhost", "sslmode=verify-full"), &[]);
    untrusted
        .fails_with(3, &["TLS with PostgreSQL at `localhost:", "UnknownIssuer", "sslrootcert"]);

    // AND with the certificate as root, the name `localhost` passes verify-full
    work.export(&server.url("localhost", &format!("sslmode=verify-full&{trusted}")), &[]).success();

    // AND the address `127.0.0.1` is not a name the certificate was issued for
    let wrong_name =
        work.export(&server.url("127.0.0.1", &format!("sslmode=verify-full&{trusted}")), &[]);
    wrong_name.fails_with(3, &["not valid for name", "hint: the certificate is not issued for"]);

    // AND verify-ca checks the authority only, so the address is fine there
    work.export(&server.url("127.0.0.1", &format!("sslmode=verify-ca&{trusted}")), &[]).success();

    for run in [&plain, &untrusted, &wrong_name] {
        run.never_shows(PASSWORD);
    }
}

#[test]
fn an_unreadable_root_certificate_is_a_usage_error_naming_the_file() {
    let work = Workdir::new();
    let url = "postgres://u:pw@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem";
    let run = work.export(url, &[]);
    run.fails_with(2, &["cannot read sslrootcert `/nonexistent/ca.pem`"]);
}

#[test]
fn an_unknown_sslmode_is_a_usage_error() {
    let work = Workdir::new();
    let run = work.export("postgres://u:pw@127.0.0.1:1/db?sslmode=always", &[]);
    run.fails_with(2, &["`sslmode=always` is not a TLS mode", "verify-full"]);
}
