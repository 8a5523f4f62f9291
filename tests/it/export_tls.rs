//! TLS to Postgres with libpq's `sslmode` meanings, against a throwaway cluster that accepts
//! TCP connections only over TLS, with a certificate issued for `localhost` alone; client
//! certificates and the authorities trusted found as libpq finds them (the connection string,
//! PGSSL* variables, `~/.postgresql/`, the system's trust store), against a cluster that
//! authenticates by client certificate.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{Run, ServerTls, TestCa, ThrowawayCluster, Workdir};

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

/// Writes `text` to `path` with `mode`; returns the path as text.
fn write(path: &Path, text: &str, mode: u32) -> String {
    std::fs::write(path, text).expect("write a test file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path.to_str().expect("temporary paths are UTF-8").to_owned()
}

#[test]
fn client_certificates_and_trusted_authorities_are_found_as_libpq_finds_them() {
    // GIVEN a server that accepts only TLS and only a client certificate issued by its CA for
    // the user's name (`cert` authentication), its own certificate issued by the same CA for
    // `localhost`
    let ca = TestCa::new();
    let cluster = ThrowawayCluster::start_client_cert_only(&ca.server_for_localhost(), &ca);
    let socket = format!(
        "host={} port={} user=postgres dbname=postgres",
        cluster.dir().display(),
        cluster.port
    );
    crate::support::Conn::connect_or_fail(&socket).execute("create table t (id int)");
    let work = Workdir::new();
    let files = tempfile::tempdir().unwrap();
    let client = ca.client("postgres");
    let ca_file = write(&files.path().join("ca.pem"), &ca.cert_pem(), 0o644);
    let other_ca = write(&files.path().join("other-ca.pem"), &TestCa::new().cert_pem(), 0o644);
    let cert = write(&files.path().join("client.crt"), &client.cert_pem, 0o644);
    let key = write(&files.path().join("client.key"), &client.key_pem, 0o600);
    let loose_key = write(&files.path().join("loose.key"), &client.key_pem, 0o644);
    let url =
        |query: &str| format!("postgres://postgres@localhost:{}/postgres?{query}", cluster.port);
    let export = |query: &str, env: &[(&str, &str)]| {
        let mut command = work.export_command(&url(query), &[]);
        command.envs(env.iter().copied());
        Run::of(command)
    };
    let with_cert = format!("sslcert={cert}&sslkey={key}");
    let cert_env = [("PGSSLCERT", cert.as_str()), ("PGSSLKEY", key.as_str())];

    // THEN without a client certificate the login is refused, and the hint says what is missing
    let refused = export("sslmode=require", &[]);
    refused.fails_with(3, &["refused the login of user `postgres`", "certificate", "PGSSLCERT"]);

    // AND the certificate and key named in the URL log in, and so do PGSSLCERT and PGSSLKEY
    export(&format!("sslmode=require&{with_cert}"), &[]).success();
    export("sslmode=require", &cert_env).success();

    // AND a key that others may read is refused, as libpq refuses it
    let loose = export(&format!("sslmode=require&sslcert={cert}&sslkey={loose_key}"), &[]);
    loose.fails_with(2, &["cannot use sslkey", "loose.key", "group or world access", "0600"]);

    // AND the server's certificate checks against the CA in the file sslrootcert names
    export(&format!("sslmode=verify-full&sslrootcert={ca_file}&{with_cert}"), &[]).success();
    let untrusted = export(&format!("sslmode=verify-full&sslrootcert={other_ca}"), &cert_env);
    untrusted.fails_with(3, &["TLS with PostgreSQL at `localhost:", "UnknownIssuer"]);

    // AND without sslrootcert the system's trust store is used (SSL_CERT_FILE stands for a
    // company CA installed on the machine); the CA is unknown without it
    export("sslmode=verify-full", &cert_env).fails_with(3, &["UnknownIssuer", "sslrootcert"]);
    let system = [cert_env[0], cert_env[1], ("SSL_CERT_FILE", ca_file.as_str())];
    export("sslmode=verify-full", &system).success();
    export("sslmode=verify-ca", &system).success();

    // AND sslrootcert=system means verify-full against the system's store alone
    export("sslrootcert=system", &system).success();
    let elsewhere = [cert_env[0], cert_env[1], ("SSL_CERT_FILE", other_ca.as_str())];
    export("sslrootcert=system", &elsewhere).fails_with(3, &["UnknownIssuer"]);
    let weak = export("sslrootcert=system&sslmode=require", &system);
    weak.fails_with(2, &["`sslmode=require` cannot be used with `sslrootcert=system`"]);

    // AND ~/.postgresql/ holds libpq's defaults: root.crt, postgresql.crt and postgresql.key
    let home = work.path().join(".postgresql");
    std::fs::create_dir(&home).unwrap();
    write(&home.join("root.crt"), &ca.cert_pem(), 0o644);
    write(&home.join("postgresql.crt"), &client.cert_pem, 0o644);
    write(&home.join("postgresql.key"), &client.key_pem, 0o600);
    export("sslmode=verify-full", &[]).success();
    // (root.crt makes `require` check the chain too, as in libpq)
    std::fs::write(home.join("root.crt"), TestCa::new().cert_pem()).unwrap();
    export("sslmode=require", &[]).fails_with(3, &["UnknownIssuer"]);
}
