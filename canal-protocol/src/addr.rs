//! `host:port` text, parsed in one place for every crate: source and target MySQL addresses, Canal
//! server addresses, running-node data.
//!
//! Accepted: `host:port`, `[v6-address]:port`, and a bare `host` / `[v6-address]` where the caller
//! names a default port. The host is never empty and the port is in `1..=65535`.

use std::fmt;
use std::str::FromStr;

/// A host (name, IPv4 or IPv6 text without brackets) and a non-zero TCP port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or address, without the brackets of an IPv6 literal.
    pub host: String,
    /// TCP port, never 0.
    pub port: u16,
}

/// Why a text is not `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not host:port: {reason}")]
pub struct AddrError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl HostPort {
    /// Parses `host:port` or `[v6]:port`; without a port, `default_port` is used, or the text is
    /// refused when there is none.
    pub fn parse(text: &str, default_port: Option<u16>) -> Result<Self, AddrError> {
        let bad = |reason| AddrError {
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        let (host, port) = if let Some(rest) = trimmed.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("missing `]` after an IPv6 address"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("expected `:port` after `]`"))?,
                    ),
                ),
            }
        } else {
            match trimmed.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (trimmed, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => default_port.ok_or_else(|| bad("no port"))?,
            Some(p) => p
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("the port is not a number in 1..=65535"))?,
        };
        if port == 0 {
            return Err(bad("the port is not a number in 1..=65535"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }

    /// Parses a MySQL server address: the port defaults to 3306.
    pub fn mysql(text: &str) -> Result<Self, AddrError> {
        Self::parse(text, Some(3306))
    }
}

/// `host:port` with a required port.
impl FromStr for HostPort {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, None)
    }
}

/// Writes `host:port`, bracketing an IPv6 host.
impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_v6() {
        let a: HostPort = "db-1:3307".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("db-1", 3307));
        let b = HostPort::mysql("[::1]:3310").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 3310));
        assert_eq!(b.to_string(), "[::1]:3310");
        assert_eq!(HostPort::mysql(" 10.0.0.1 ").unwrap().port, 3306);
        assert_eq!(HostPort::mysql("[fe80::1]").unwrap().host, "fe80::1");
    }

    #[test]
    fn refuses_what_is_not_host_port() {
        for text in ["", ":3306", "h:0", "h:x", "h:70000", "[::1", "[::1]3306"] {
            assert!(HostPort::mysql(text).is_err(), "{text:?}");
        }
        let e = "db-1".parse::<HostPort>().unwrap_err();
        assert_eq!(e.to_string(), "\"db-1\" is not host:port: no port");
    }
}
