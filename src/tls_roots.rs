//! The authorities a TLS connection trusts when nothing else is named, for Postgres and Convex
//! alike: Mozilla's roots (webpki-roots) and the system's store, where a company installs its
//! own authority (and where a TLS-inspecting proxy's is found). The system's store is read once
//! per process, not once per connection.

use std::sync::OnceLock;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

/// Mozilla's roots and the system's.
pub fn default_store() -> RootCertStore {
    let mut store = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    add_system_roots(&mut store);
    store
}

/// The system's authorities, as OpenSSL finds them (`SSL_CERT_FILE`, `SSL_CERT_DIR`, else the
/// platform's store). Certificates that cannot be read are skipped, as libpq's OpenSSL does.
pub fn add_system_roots(store: &mut RootCertStore) {
    let (added, ignored) = store.add_parsable_certificates(system_certificates().iter().cloned());
    tracing::debug!(added, ignored, "system trust store added");
}

fn system_certificates() -> &'static [CertificateDer<'static>] {
    static CERTIFICATES: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    CERTIFICATES.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "a system certificate could not be read");
        }
        found.certs
    })
}
