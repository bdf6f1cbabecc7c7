//! The conversions between our [`EntryPosition`] and Canal's cursor model
//! ([`canal_protocol::position::LogPosition`]), as `meta.dat` and the ZooKeeper cursor nodes hold
//! it.

use canal_protocol::position::{EntryPosition as CanalEntryPosition, LogIdentity, LogPosition};

use super::binlog::BinlogPosition;
use super::entry::EntryPosition;
use super::gtid::GtidSet;

impl EntryPosition {
    /// Canal's cursor for this position read from the source at `source` (`host:port`; port
    /// 3306 when missing; the whole text as the host when it is not `host:port`). Writes `"gtid":""` when there is no GTID set, as
    /// Canal does.
    pub fn to_log_position(&self, source: &str) -> LogPosition {
        let (host, port) = canal_protocol::HostPort::mysql(source)
            .map(|a| (a.host, a.port))
            .unwrap_or_else(|_| (source.to_string(), 3306));
        LogPosition {
            identity: LogIdentity::new(host, port),
            position: CanalEntryPosition {
                gtid: Some(
                    self.gtid
                        .as_ref()
                        .map(|g| g.as_str().to_string())
                        .unwrap_or_default(),
                ),
                included: false,
                inclusive: self.inclusive,
                journal_name: Some(self.binlog.file.clone()),
                position: Some(self.binlog.offset as i64),
                server_id: Some(self.server_id as i64),
                timestamp: Some(self.timestamp_ms),
            },
        }
    }

    /// Our position from Canal's cursor: `None` without a file name; a missing offset is 4, an
    /// empty GTID is none.
    pub fn from_log_position(lp: &LogPosition) -> Option<Self> {
        let p = &lp.position;
        let file = p.journal_name.clone().filter(|f| !f.is_empty())?;
        let offset = p.position.unwrap_or(4).max(0) as u64;
        Some(Self {
            binlog: BinlogPosition::new(file, offset),
            next_offset: offset,
            server_id: p.server_id.unwrap_or(0).max(0) as u32,
            timestamp_ms: p.timestamp.unwrap_or(0),
            gtid: p
                .gtid
                .as_deref()
                .filter(|g| !g.is_empty())
                .map(GtidSet::new),
            inclusive: p.inclusive,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_canal_cursor_json() {
        let p = EntryPosition {
            binlog: BinlogPosition::new("mysql-bin.000023", 43893),
            next_offset: 43893,
            server_id: 1,
            timestamp_ms: 1536312619000,
            gtid: Some(GtidSet::new("0-1-100")),
            inclusive: false,
        };
        let lp = p.to_log_position("10.0.0.1:3306");
        assert_eq!(
            lp.to_cursor_json(),
            r#"{"@type":"com.alibaba.otter.canal.protocol.position.LogPosition","identity":{"slaveId":-1,"sourceAddress":{"address":"10.0.0.1","port":3306}},"postion":{"gtid":"0-1-100","included":false,"journalName":"mysql-bin.000023","position":43893,"serverId":1,"timestamp":1536312619000}}"#
        );
        assert_eq!(EntryPosition::from_log_position(&lp), Some(p));
    }
}
