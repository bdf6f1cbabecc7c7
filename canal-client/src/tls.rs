//! TLS to a canal-server whose port speaks TLS (`server.tls_cert`): the chain must lead to a CA
//! the client names, and the certificate must name the server (the host of the address, or
//! `server_name`).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::{ClientError, Op};

/// How to reach a server over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificates (PEM) the server's chain must lead to.
    pub ca: PathBuf,
    /// The name the server's certificate must carry; the address's host when `None`.
    pub server_name: Option<String>,
}

/// A byte stream to the server: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Runs the TLS handshake over `stream` to `host`.
pub(crate) async fn connect(
    tls: &ClientTls,
    host: &str,
    stream: TcpStream,
) -> Result<Box<dyn Io>, ClientError> {
    let bad = |reason: String| ClientError::Tls { reason };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&tls.ca)
        .map_err(|e| bad(format!("CA file {}: {e}", tls.ca.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| bad(format!("CA file {}: {e}", tls.ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("CA file {}: {e}", tls.ca.display())))?;
    }
    if roots.is_empty() {
        return Err(bad(format!(
            "CA file {} holds no certificate",
            tls.ca.display()
        )));
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = tls.server_name.as_deref().unwrap_or(host);
    let name = ServerName::try_from(name.trim_matches(['[', ']']).to_string())
        .map_err(|e| bad(format!("server name {name:?}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match connector.connect(name, stream).await {
        Ok(s) => Ok(Box::new(s)),
        Err(e) => {
            // A certificate the CA does not vouch for is not going to change by retrying.
            let verdict = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map(ToString::to_string);
            Err(match verdict {
                Some(reason) => bad(reason),
                None => ClientError::Io {
                    op: Op::Connect,
                    source: e,
                },
            })
        }
    }
}
