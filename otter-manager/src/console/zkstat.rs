//! ZooKeeper members' state through the `mntr` four-letter word (it must be in the servers'
//! `4lw.commands.whitelist`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one member may take to answer.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The most of a reply read.
const MAX_REPLY: u64 = 64 * 1024;

/// One member as the console shows it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Member {
    /// `host:port` from the connect string.
    pub address: String,
    /// `leader`, `follower`, `observer`, `standalone`; empty when it did not answer.
    pub role: String,
    /// `zk_avg_latency` / `zk_max_latency`, ms.
    pub avg_latency: String,
    /// See `avg_latency`.
    pub max_latency: String,
    /// `zk_outstanding_requests`.
    pub outstanding: String,
    /// `zk_znode_count`.
    pub znodes: String,
    /// `zk_num_alive_connections`.
    pub connections: String,
    /// Why it could not be read, if so.
    pub error: Option<String>,
}

/// The members of a connect string (`host:port[,…][/chroot]`).
pub fn members(servers: &str) -> Vec<String> {
    let hosts = servers.split('/').next().unwrap_or_default();
    hosts
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.contains(':') {
                s.to_string()
            } else {
                format!("{s}:2181")
            }
        })
        .collect()
}

/// Parses a `mntr` reply (tab-separated key and value per line).
pub fn parse_mntr(reply: &str) -> BTreeMap<String, String> {
    reply
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

async fn four_letter(addr: &str, word: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(word.as_bytes()).await?;
    let mut buf = Vec::new();
    s.take(MAX_REPLY).read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Asks one member for `mntr`.
pub async fn member(addr: &str) -> Member {
    let mut m = Member {
        address: addr.to_string(),
        ..Member::default()
    };
    let reply = match tokio::time::timeout(TIMEOUT, four_letter(addr, "mntr")).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            m.error = Some(e.to_string());
            return m;
        }
        Err(_) => {
            m.error = Some(format!("no answer within {TIMEOUT:?}"));
            return m;
        }
    };
    let map = parse_mntr(&reply);
    if map.is_empty() {
        m.error = Some(reply.trim().chars().take(200).collect());
        return m;
    }
    let get = |k: &str| map.get(k).cloned().unwrap_or_default();
    m.role = get("zk_server_state");
    m.avg_latency = get("zk_avg_latency");
    m.max_latency = get("zk_max_latency");
    m.outstanding = get("zk_outstanding_requests");
    m.znodes = get("zk_znode_count");
    m.connections = get("zk_num_alive_connections");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_strings_split_into_members() {
        assert_eq!(
            members("a:1,b:2/otter"),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert_eq!(members("zk"), vec!["zk:2181".to_string()]);
        let m = parse_mntr("zk_server_state\tleader\nzk_znode_count\t42\nnoise\n");
        assert_eq!(m["zk_server_state"], "leader");
        assert_eq!(m["zk_znode_count"], "42");
        assert_eq!(m.len(), 2);
    }
}
