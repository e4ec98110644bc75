//! TLS from `service.tls`.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// Makes *ring* the process's TLS crypto (the callbacks' client and the
/// server use it). rustls deprecates *ring* for lacking post-quantum
/// key exchange; remex already builds *ring* for SSH, and its TLS is
/// for the orchestrator's own network — aws-lc-rs would add a C build
/// of minutes for it.
#[allow(deprecated)]
pub(crate) fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The rustls server config: certificate and key; with `client_ca`,
/// client certificates are required.
pub(super) fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    install_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| format!("service.tls.cert {}: {e}", tls.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("service.tls.cert {}: {e}", tls.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| format!("service.tls.key {}: {e}", tls.key.display()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("service.tls.client_ca {}: {e}", ca.display()))?
            {
                let cert =
                    cert.map_err(|e| format!("service.tls.client_ca {}: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("service.tls.client_ca {}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| format!("service.tls.client_ca: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("service.tls: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
