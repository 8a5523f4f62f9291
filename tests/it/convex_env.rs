//! The Convex deployment found as the Convex CLI finds it, from the environment only: the URL
//! derived from `CONVEX_DEPLOY_KEY`, `.env.local` (`CONVEX_DEPLOYMENT`, `CONVEX_URL`) read from
//! the working directory with the environment first, a self-hosted pair, and conflicts refused
//! naming the variables, never the key's secret.

use convex_sink::{Plan, Sink, SinkConfig};

use crate::import_faults::FIXTURE;
use crate::import_pipeline::Prepared;
use crate::support::{Run, Workdir};

const SECRET: &str = "ek-Hq7Vn2Lx9Tz";

fn key(name: &str) -> String {
    format!("prod:{name}|{SECRET}")
}

/// `migrate import --show-settings` in `work` with `vars` as the only Convex variables.
fn shown(work: &Workdir, vars: &[(&str, &str)], args: &[&str]) -> Run {
    let mut all = vec!["--format", "json", "import", "--show-settings"];
    all.extend_from_slice(args);
    let mut command = work.command(&all);
    command.envs(vars.iter().copied());
    Run::of(command)
}

#[test]
fn the_url_is_derived_from_the_deploy_key_and_show_settings_says_so() {
    let work = Workdir::new();
    let run = shown(&work, &[("CONVEX_DEPLOY_KEY", &key("happy-animal-123"))], &[]).success();
    assert!(run.stdout.contains("https://happy-animal-123.convex.cloud"), "{run}");
    assert!(run.stdout.contains("derived from CONVEX_DEPLOY_KEY"), "{run}");
    run.never_shows(SECRET);

    let run = shown(
        &work,
        &[("CONVEX_DEPLOY_KEY", &key("happy-animal-123"))],
        &["--convex-url", "https://happy-animal-123.convex.cloud"],
    )
    .success();
    let settings: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(settings["convex"]["url"]["from"], "--convex-url", "{run}");

    // A key that names no deployment (self-hosted admin keys) needs the URL.
    let run = shown(&work, &[("CONVEX_DEPLOY_KEY", "self-hosted-admin-ek-Hq7Vn2Lx9Tz")], &[]);
    run.fails_with(2, &["names no deployment", "CONVEX_SELF_HOSTED_URL"]);
    run.never_shows(SECRET);
}

#[test]
fn env_local_is_read_after_the_environment_and_before_dotenv() {
    let work = Workdir::new();
    std::fs::write(work.path().join(".env.local"), "CONVEX_DEPLOYMENT=dev:tall-forest-1234\n")
        .unwrap();
    std::fs::write(work.path().join(".env"), "CONVEX_DEPLOYMENT=prod:other-place-5\n").unwrap();

    let run = shown(&work, &[], &[]).success();
    assert!(run.stdout.contains("https://tall-forest-1234.convex.cloud"), "{run}");
    assert!(run.stdout.contains("derived from CONVEX_DEPLOYMENT (from .env.local)"), "{run}");

    let run = shown(&work, &[("CONVEX_DEPLOYMENT", "prod:from-env-7")], &[]).success();
    assert!(run.stdout.contains("https://from-env-7.convex.cloud"), "{run}");

    std::fs::remove_file(work.path().join(".env.local")).unwrap();
    let run = shown(&work, &[], &[]).success();
    assert!(run.stdout.contains("https://other-place-5.convex.cloud"), "{run}");
    assert!(run.stdout.contains("(from .env)"), "{run}");
}

#[test]
fn conflicting_settings_are_refused_naming_the_variables_not_the_secret() {
    let work = Workdir::new();
    std::fs::write(
        work.path().join(".env.local"),
        "CONVEX_URL=https://tall-forest-1234.convex.cloud\n",
    )
    .unwrap();
    let run = shown(&work, &[("CONVEX_DEPLOY_KEY", &key("happy-animal-123"))], &[]);
    run.fails_with(
        2,
        &["CONVEX_URL (from .env.local)", "tall-forest-1234", "happy-animal-123", "hint:"],
    );
    run.never_shows(SECRET);

    let run = shown(
        &work,
        &[
            ("CONVEX_DEPLOY_KEY", &key("happy-animal-123")),
            ("CONVEX_SELF_HOSTED_URL", "http://127.0.0.1:3210"),
            ("CONVEX_SELF_HOSTED_ADMIN_KEY", "self-hosted|ek-Hq7Vn2Lx9Tz"),
        ],
        &[],
    );
    run.fails_with(2, &["CONVEX_SELF_HOSTED_URL", "CONVEX_DEPLOY_KEY"]);
    run.never_shows(SECRET);

    let run = shown(&work, &[("CONVEX_SELF_HOSTED_URL", "http://127.0.0.1:3210")], &[]);
    run.fails_with(2, &["CONVEX_SELF_HOSTED_ADMIN_KEY"]);
}

#[test]
fn a_self_hosted_pair_imports_and_a_derived_url_is_the_one_called() {
    let prepared = Prepared::new(FIXTURE, "");
    prepared.migrate(&["transform"]).success();
    let plan = Plan::from_module_file(prepared.convex_dir().join("migrate.ts")).unwrap();
    let sink = Sink::start(SinkConfig::new(plan)).expect("the sink starts");

    let mut command = prepared.command(&["--format", "json", "import"]);
    command
        .env("CONVEX_SELF_HOSTED_URL", sink.url())
        .env("CONVEX_SELF_HOSTED_ADMIN_KEY", sink.admin_key());
    let run = Run::of(command).success();
    run.never_shows(sink.admin_key());
    for (table, rows) in crate::import_faults::TABLES {
        assert_eq!(sink.count(table), rows, "{table}\n{run}");
    }

    // With only a deploy key, the call goes to the URL it names.
    let mut command = prepared.command(&["import", "--force", "--retries", "0", "--timeout", "2"]);
    command.env("CONVEX_DEPLOY_KEY", key("no-such-deployment-h10"));
    let run = Run::of(command);
    run.fails_with(4, &["https://no-such-deployment-h10.convex.cloud"]);
    run.never_shows(SECRET);
}

/// An HTTPS server for `localhost` with a certificate from `ca`, answering every request with
/// Convex's reply for a function that does not exist; returns its port.
fn https_convex_without_the_module(ca: &crate::support::TestCa) -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let tls = ca.server_for_localhost();
    let certs = vec![CertificateDer::from_pem_slice(tls.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut reader = BufReader::new(rustls::StreamOwned::new(connection, stream));
            // A handshake the client refuses ends here: the next connection is served.
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let reply = r#"{"status":"error","errorMessage":"Could not find public function for 'migrate:info'"}"#;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                    let _ = reader.get_mut().write_all(response.as_bytes());
                    let _ = reader.get_mut().flush();
                    break;
                }
            }
        }
    });
    port
}

#[test]
fn a_deployment_behind_a_company_authority_is_trusted_through_the_system_store() {
    // GIVEN a Convex URL served over HTTPS with a certificate from a company's own authority
    // (not one of Mozilla's roots), and the transformed data to import
    let ca = crate::support::TestCa::new();
    let port = https_convex_without_the_module(&ca);
    let prepared = Prepared::new(FIXTURE, "");
    prepared.migrate(&["transform"]).success();
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("company-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let import = |system_store: Option<&std::path::Path>| {
        let mut command = prepared.command(&["import", "--retries", "0"]);
        command
            .env("CONVEX_URL", format!("https://localhost:{port}"))
            .env("CONVEX_DEPLOY_KEY", key("company-app"));
        if let Some(file) = system_store {
            command.env("SSL_CERT_FILE", file);
        }
        Run::of(command)
    };

    // WHEN the authority is not in the system's store, the certificate is refused
    let refused = import(None);
    refused.fails_with(4, &["cannot reach Convex", "UnknownIssuer"]);

    // WHEN it is (SSL_CERT_FILE stands in for the system store), the call goes through: the
    // deployment answers, and what it says (no migrate module) is the error
    let answered = import(Some(&ca_file));
    answered.fails_with(4, &["not deployed"]);
    answered.never_shows(SECRET);
}
