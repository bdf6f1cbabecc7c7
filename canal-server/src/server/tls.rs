//! TLS on the Canal port. Canal's protocol has no STARTTLS, so a server with `server.tls_cert` and
//! `server.tls_key` speaks TLS only on its port: a client connects with TLS from the first byte.
//! Canal's own clients (Java `canal.client`, canal-go, canal-python) open plain sockets and cannot
//! use it; canal-client can (`--tls-ca`). The handshake is bounded like authentication.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("{key} {path}: {reason}")]
    File {
        /// `server.tls_cert` or `server.tls_key`.
        key: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair (the key does not match the certificate, …).
    #[error("server.tls_cert / server.tls_key: {0}")]
    Config(#[from] rustls::Error),
}

/// An acceptor for the certificate chain at `cert` and the key at `key` (PEM).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsSetupError> {
    let file_err = |key: &'static str, path: &Path, reason: String| TlsSetupError::File {
        key,
        path: path.display().to_string(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err("server.tls_cert", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("server.tls_cert", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err(
            "server.tls_cert",
            cert,
            "holds no certificate".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_err("server.tls_key", key, e.to_string()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
