//! TLS to MySQL/MariaDB: one setting for canal-server's source connections and otter's sources and
//! targets, with MySQL's `ssl_mode` names.
//!
//! ```toml
//! [destinations.example.tls]      # or [pipeline.source.tls] / [pipeline.target.tls]
//! mode = "verify_ca"              # disabled | preferred | required | verify_ca | verify_identity
//! ca = "/etc/canal/mysql-ca.pem"  # PEM; verify_ca and verify_identity need it
//! cert = "/etc/canal/client.pem"  # a client certificate (PEM chain), with `key`
//! key = "/etc/canal/client.key"
//! ```
//!
//! - `disabled` (the default, as before this setting existed): plain TCP.
//! - `preferred`: TLS when the server offers it, plain otherwise, never verified (MySQL's default;
//!   it only keeps passive listeners out).
//! - `required`: TLS or no connection; the certificate is not verified.
//! - `verify_ca`: TLS with a certificate chain that leads to `ca`; the host name is not checked.
//! - `verify_identity`: `verify_ca` plus the certificate names the host connected to.

use std::path::PathBuf;

use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};
use serde::{Deserialize, Serialize};

/// MySQL's `ssl_mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SslMode {
    /// Plain TCP.
    #[default]
    Disabled,
    /// TLS if the server offers it, unverified.
    Preferred,
    /// TLS, unverified.
    Required,
    /// TLS, chain verified against `ca`.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyIdentity,
}

/// TLS settings of a MySQL connection; see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MysqlTls {
    /// How much TLS to insist on.
    pub mode: SslMode,
    /// CA certificates (PEM) the server's chain must lead to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for servers that require one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// A TLS setting that cannot work: the key (below the `tls` table) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsConfigError {
    /// `mode`, `ca`, `cert` or `key`.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn bad(key: &'static str, message: impl Into<String>) -> TlsConfigError {
    TlsConfigError {
        key,
        message: message.into(),
    }
}

impl MysqlTls {
    /// Checks that the files exist and that the mode has what it needs.
    pub fn validate(&self) -> Result<(), TlsConfigError> {
        if matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyIdentity) && self.ca.is_none() {
            return Err(bad(
                "ca",
                "verify_ca and verify_identity need the CA file (PEM)",
            ));
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => return Err(bad("key", "cert needs its key")),
            (None, Some(_)) => return Err(bad("cert", "key needs its cert")),
            _ => {}
        }
        for (key, path) in [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)] {
            if let Some(p) = path {
                if let Err(e) = std::fs::metadata(p) {
                    return Err(bad(key, format!("{}: {e}", p.display())));
                }
            }
        }
        if self.mode == SslMode::Disabled && (self.ca.is_some() || self.cert.is_some()) {
            return Err(bad(
                "mode",
                "is disabled but ca/cert are set: say how to use them (required, verify_ca, …)",
            ));
        }
        Ok(())
    }

    /// The driver's TLS options for this setting (`None` for plain TCP).
    pub fn ssl_opts(&self) -> Option<SslOpts> {
        if self.mode == SslMode::Disabled {
            return None;
        }
        let mut o = SslOpts::default();
        if let Some(ca) = &self.ca {
            o = o
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            o = o.with_client_identity(Some(ClientIdentity::new(
                cert.clone().into(),
                key.clone().into(),
            )));
        }
        match self.mode {
            SslMode::Disabled | SslMode::VerifyIdentity => {}
            SslMode::VerifyCa => o = o.with_danger_skip_domain_validation(true),
            SslMode::Preferred | SslMode::Required => {
                o = o
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true)
            }
        }
        Some(o)
    }

    /// `builder` with this setting's TLS options.
    pub fn apply(&self, builder: OptsBuilder) -> OptsBuilder {
        builder.ssl_opts(self.ssl_opts())
    }

    /// Connects with `builder` and this setting; `preferred` falls back to plain TCP when the
    /// server offers no TLS.
    pub async fn connect(&self, builder: OptsBuilder) -> Result<Conn, mysql_async::Error> {
        match Conn::new(self.apply(builder.clone())).await {
            Err(e) if self.mode == SslMode::Preferred && offers_no_tls(&e) => {
                Conn::new(builder).await
            }
            r => r,
        }
    }

    /// Options for a pool: for `preferred`, one probe connection decides whether the pool uses
    /// TLS; other modes need no probe.
    pub async fn pool_opts(&self, builder: OptsBuilder) -> Result<Opts, mysql_async::Error> {
        if self.mode != SslMode::Preferred {
            return Ok(self.apply(builder).into());
        }
        match Conn::new(self.apply(builder.clone())).await {
            Ok(c) => {
                let _ = c.disconnect().await;
                Ok(self.apply(builder).into())
            }
            Err(e) if offers_no_tls(&e) => Ok(builder.into()),
            Err(e) => Err(e),
        }
    }
}

impl MysqlTls {
    /// Whether `e` (from a connection made with [`MysqlTls::apply`]) means: connect again without
    /// TLS (`preferred`, and the server offers none).
    pub fn falls_back(&self, e: &mysql_async::Error) -> bool {
        self.mode == SslMode::Preferred && offers_no_tls(e)
    }
}

/// The server answered without the TLS capability.
fn offers_no_tls(e: &mysql_async::Error) -> bool {
    matches!(
        e,
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_validate_naming_the_key() {
        let t: MysqlTls = toml::from_str("mode = \"verify_identity\"").unwrap();
        assert_eq!(t.validate().unwrap_err().key, "ca");
        let t: MysqlTls = toml::from_str("mode = \"required\"\ncert = \"/x\"").unwrap();
        assert_eq!(t.validate().unwrap_err().key, "key");
        let t: MysqlTls =
            toml::from_str("mode = \"verify_ca\"\nca = \"/nonexistent/ca.pem\"").unwrap();
        let e = t.validate().unwrap_err();
        assert_eq!(e.key, "ca");
        assert!(e.message.contains("/nonexistent/ca.pem"), "{e}");
        assert!(toml::from_str::<MysqlTls>("mode = \"sometimes\"").is_err());
        assert!(MysqlTls::default().validate().is_ok());
        assert!(MysqlTls::default().ssl_opts().is_none());
    }
}
