//! TLS for Postgres connections with libpq's meanings: `prefer` and `require` encrypt without
//! checking the certificate, unless a root file is named (`sslrootcert`, `PGSSLROOTCERT`,
//! `~/.postgresql/root.crt`), which makes them check the chain as libpq does; `verify-ca`
//! checks the chain, `verify-full` the chain and the host name. The authorities are the root
//! file's alone, the system's store alone (`sslrootcert=system`), or without either the
//! system's store (where a company installs its own authority) and the Mozilla roots. A client
//! certificate and key (`sslcert`/`sslkey`, `PGSSLCERT`/`PGSSLKEY`,
//! `~/.postgresql/postgresql.crt` and `.key`) are presented when the server asks; the key must
//! be readable by its owner only, as libpq requires. rustls with ring.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::ExportError;
use crate::settings::{ClientCert, RootCert, SslMode, Tls};

/// The connector for these settings. With `sslmode=disable` tokio-postgres never calls it, and
/// no file is read.
pub fn connector(tls: &Tls) -> Result<MakeRustlsConnect, ExportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let check = match (tls.mode, &tls.root_cert) {
        (SslMode::Disable, _) => Check::Nothing,
        (SslMode::Prefer | SslMode::Require, RootCert::Default) => Check::Nothing,
        (SslMode::VerifyFull, _) => Check::ChainAndName,
        _ => Check::Chain,
    };
    let builder = match check {
        Check::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider })),
        Check::Chain | Check::ChainAndName => {
            let roots = Arc::new(roots(&tls.root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| ExportError::Tls { reason: e.to_string() })?;
            if check == Check::ChainAndName {
                builder.with_webpki_verifier(webpki)
            } else {
                builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly { webpki }))
            }
        }
    };
    let config = match (&tls.client_cert, tls.mode) {
        (Some(client), mode) if mode != SslMode::Disable => {
            let (chain, key) = client_identity(client)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| ExportError::Tls {
                reason: format!(
                    "the client certificate `{}` and its key cannot be used: {e}",
                    client.cert.display()
                ),
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

fn roots(root_cert: &RootCert) -> Result<RootCertStore, ExportError> {
    match root_cert {
        RootCert::File(path) => roots_from_file(path),
        RootCert::System => {
            let mut store = RootCertStore::empty();
            crate::tls_roots::add_system_roots(&mut store);
            if store.is_empty() {
                return Err(ExportError::Tls {
                    reason: "sslrootcert=system, but the system's trust store holds no \
                             certificate (SSL_CERT_FILE and SSL_CERT_DIR name other places)"
                        .into(),
                });
            }
            Ok(store)
        }
        RootCert::Default => Ok(crate::tls_roots::default_store()),
    }
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, ExportError> {
    let unreadable = |reason: String| ExportError::Tls {
        reason: format!("cannot read sslrootcert `{}`: {reason}", path.display()),
    };
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(e.to_string()))? {
        store
            .add(cert.map_err(|e| unreadable(e.to_string()))?)
            .map_err(|e| unreadable(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(unreadable("it holds no certificate".into()));
    }
    Ok(store)
}

/// The client certificate chain and its key, read as libpq reads them: PEM files, the key
/// refused when group or others may read it.
fn client_identity(
    client: &ClientCert,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ExportError> {
    let cert_error = |reason: String| ExportError::Tls {
        reason: format!("cannot read sslcert `{}`: {reason}", client.cert.display()),
    };
    let chain = CertificateDer::pem_file_iter(&client.cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("it holds no certificate".into()));
    }
    let Some(key_path) = &client.key else {
        return Err(ExportError::Tls {
            reason: format!(
                "sslcert `{}` is given but no sslkey, and there is no home directory to find \
                 ~/.postgresql/postgresql.key in",
                client.cert.display()
            ),
        });
    };
    let key_error = |reason: String| ExportError::Tls {
        reason: format!("cannot use sslkey `{}`: {reason}", key_path.display()),
    };
    let metadata = std::fs::metadata(key_path).map_err(|e| {
        key_error(if e.kind() == std::io::ErrorKind::NotFound {
            format!("it does not exist, and sslcert `{}` needs its key", client.cert.display())
        } else {
            e.to_string()
        })
    })?;
    if let Some(reason) = key_refusal(&metadata) {
        return Err(key_error(reason));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        key_error(match e {
            rustls::pki_types::pem::Error::NoItemsFound => "it holds no unencrypted private key \
                (PKCS#8, PKCS#1 or SEC1 PEM; an encrypted key must be decrypted first: openssl \
                pkey -in KEY -out KEY.plain)"
                .to_owned(),
            e => e.to_string(),
        })
    })?;
    Ok((chain, key))
}

/// libpq's rule for a private key file: no access for group or others, except that a file
/// owned by root may be readable by its group (u=rw,g=r, 0640).
fn key_refusal(metadata: &std::fs::Metadata) -> Option<String> {
    if !metadata.is_file() {
        return Some("it is not a plain file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = metadata.permissions().mode() & 0o7777;
        let allowed = if metadata.uid() == 0 { 0o640 } else { 0o600 };
        if mode & 0o777 & !allowed != 0 {
            return Some(format!(
                "it has group or world access (mode {mode:04o}); it must be u=rw (0600) or less \
                 when owned by its user, or u=rw,g=r (0640) or less when owned by root: chmod \
                 0600 it"
            ));
        }
    }
    None
}

/// `sslmode=prefer|require` without `sslrootcert`: encrypted, certificate not checked, as libpq
/// does. The handshake signatures are still verified.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted authority; the name is not checked.
#[derive(Debug)]
struct ChainOnly {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
