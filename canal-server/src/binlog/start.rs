//! Where a destination starts reading, in Canal's order: stored cursor → configured GTID →
//! configured file + position → configured timestamp → the current end of the binlog.

use mysql_common::binlog::consts::EventType;
use mysql_common::binlog::events::EventData;

use crate::binlog::event::mariadb;
use crate::binlog::source::{
    self, Flavor, ReplicaStream, SourceConfig, SourceError, SourceInfo, StartRequest,
};
use crate::config::ConfiguredStart;
use crate::position::gtid::{GtidState, MariaGtidList, MysqlGtidSet};
use crate::position::{BinlogPosition, Cursor};

/// The resolved start: what to request from the source and which events were already delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPoint {
    /// The dump request.
    pub request: StartRequest,
    /// Events starting at or before this position were already delivered: skip them.
    pub skip_through: Option<BinlogPosition>,
    /// Initial GTID state for GTID mode.
    pub gtid: Option<GtidState>,
    /// Why this start was chosen (for the log).
    pub reason: &'static str,
}

fn gtid_state(flavor: Flavor, text: &str) -> Option<GtidState> {
    match flavor {
        Flavor::MariaDb => MariaGtidList::parse(text).ok().map(GtidState::Maria),
        Flavor::MySql => MysqlGtidSet::parse(text).ok().map(GtidState::Mysql),
    }
}

fn gtid_request(
    flavor: Flavor,
    text: &str,
    cfg: &SourceConfig,
) -> Result<StartRequest, SourceError> {
    let bad = || SourceError::Setting {
        address: cfg.address.clone(),
        variable: "gtid",
        actual: text.to_string(),
        wanted: match flavor {
            Flavor::MariaDb => "a MariaDB GTID position such as 0-1-100".into(),
            Flavor::MySql => "a MySQL GTID set such as uuid:1-100".into(),
        },
        seen: None,
    };
    match flavor {
        Flavor::MariaDb => MariaGtidList::parse(text)
            .map(StartRequest::MariaGtid)
            .map_err(|_| bad()),
        Flavor::MySql => MysqlGtidSet::parse(text)
            .map(StartRequest::MysqlGtid)
            .map_err(|_| bad()),
    }
}

/// Resolves the start point. `gtid_mode` makes a cursor resume by its GTID set.
pub async fn resolve(
    cfg: &SourceConfig,
    info: &SourceInfo,
    cursor: Option<&Cursor>,
    configured: &ConfiguredStart,
    gtid_mode: bool,
) -> Result<StartPoint, SourceError> {
    if let Some(c) = cursor {
        if gtid_mode {
            if let Some(g) = c
                .gtid
                .as_ref()
                .map(|g| g.as_str())
                .filter(|g| !g.is_empty())
            {
                return Ok(StartPoint {
                    request: gtid_request(info.flavor, g, cfg)?,
                    skip_through: (!c.inclusive).then(|| c.position.clone()),
                    gtid: gtid_state(info.flavor, g),
                    reason: "stored cursor (GTID)",
                });
            }
        }
        return Ok(StartPoint {
            request: StartRequest::FilePos(c.position.clone()),
            skip_through: (!c.inclusive).then(|| c.position.clone()),
            gtid: c
                .gtid
                .as_ref()
                .and_then(|g| gtid_state(info.flavor, g.as_str())),
            reason: "stored cursor",
        });
    }
    let mut conn = source::connect(cfg).await?;
    let point = match configured {
        ConfiguredStart::Gtid(g) => StartPoint {
            request: gtid_request(info.flavor, g, cfg)?,
            skip_through: None,
            gtid: gtid_state(info.flavor, g),
            reason: "configured gtid",
        },
        ConfiguredStart::FilePos(f, p) => StartPoint {
            request: StartRequest::FilePos(BinlogPosition::new(f.clone(), *p)),
            skip_through: None,
            gtid: None,
            reason: "configured journal_name + position",
        },
        ConfiguredStart::Timestamp(ts) => {
            let pos = find_by_timestamp(cfg, info, &mut conn, *ts).await?;
            StartPoint {
                request: StartRequest::FilePos(pos),
                skip_through: None,
                gtid: None,
                reason: "configured timestamp",
            }
        }
        ConfiguredStart::Latest => StartPoint {
            request: StartRequest::FilePos(source::master_status(&mut conn, &cfg.address).await?),
            skip_through: None,
            gtid: None,
            reason: "end of the binlog (SHOW MASTER STATUS)",
        },
    };
    // In GTID mode the executed set at a file-position start is unknown unless configured; start
    // from the source's current set when starting at the end.
    let mut point = point;
    if gtid_mode && point.gtid.is_none() {
        let var = match info.flavor {
            Flavor::MariaDb => "SELECT @@global.gtid_binlog_pos",
            Flavor::MySql => "SELECT @@global.gtid_executed",
        };
        if matches!(configured, ConfiguredStart::Latest) {
            use mysql_async::prelude::Queryable;
            let g: Option<String> =
                conn.query_first(var)
                    .await
                    .map_err(|e| SourceError::Driver {
                        address: cfg.address.clone(),
                        source: e,
                    })?;
            point.gtid = g.as_deref().and_then(|g| gtid_state(info.flavor, g));
        } else {
            point.gtid = Some(match info.flavor {
                Flavor::MariaDb => GtidState::Maria(MariaGtidList::default()),
                Flavor::MySql => GtidState::Mysql(MysqlGtidSet::default()),
            });
        }
    }
    let _ = conn.disconnect().await;
    Ok(point)
}

/// Finds the start of the first transaction whose event time is at or after `ts_ms`: the files'
/// first event times pick the file, then that file (and later ones) are scanned. Returns the end
/// of the binlog when every transaction is older.
pub async fn find_by_timestamp(
    cfg: &SourceConfig,
    info: &SourceInfo,
    conn: &mut mysql_async::Conn,
    ts_ms: i64,
) -> Result<BinlogPosition, SourceError> {
    let logs = source::binary_logs(conn, &cfg.address).await?;
    let target_s = ts_ms.div_euclid(1000) + i64::from(ts_ms.rem_euclid(1000) != 0);
    // The last file that starts at or before the target holds the first matching transaction or
    // precedes it.
    let mut start_idx = 0;
    for (i, (file, _)) in logs.iter().enumerate() {
        match first_event_time(cfg, info, file).await? {
            Some(t) if (t as i64) <= target_s => start_idx = i,
            Some(_) => break,
            None => {}
        }
    }
    let Some((file, _)) = logs.get(start_idx) else {
        return source::master_status(conn, &cfg.address).await;
    };
    let mut stream = open_scan(cfg, info, file).await?;
    let mut after_gtid = false;
    loop {
        let ev = match stream.next().await {
            Ok(ev) => ev,
            Err(SourceError::Closed { .. }) => break,
            Err(e) => return Err(e),
        };
        let ty = ev.event.header().event_type_raw();
        let ts = ev.event.header().timestamp() as i64;
        let group_start = match ty {
            t if t == mariadb::GTID
                || t == EventType::GTID_EVENT as u8
                || t == EventType::ANONYMOUS_GTID_EVENT as u8
                || t == EventType::GTID_TAGGED_LOG_EVENT as u8 =>
            {
                after_gtid = true;
                true
            }
            t if t == EventType::QUERY_EVENT as u8 => {
                let start = !after_gtid;
                after_gtid = false;
                start
            }
            t if t == EventType::XID_EVENT as u8 => {
                after_gtid = false;
                false
            }
            _ => false,
        };
        if group_start && ts >= target_s && ev.pos.offset >= 4 {
            stream.close().await;
            return Ok(BinlogPosition::new(ev.pos.file, ev.pos.offset));
        }
    }
    stream.close().await;
    source::master_status(conn, &cfg.address).await
}

async fn open_scan(
    cfg: &SourceConfig,
    info: &SourceInfo,
    file: &str,
) -> Result<ReplicaStream, SourceError> {
    let conn = source::connect(cfg).await?;
    let mut scan_cfg = cfg.clone();
    // A distinct id: the source drops an older replica connection with the same server id.
    scan_cfg.slave_id = cfg.slave_id.wrapping_add(0x4000_0000) | 1;
    ReplicaStream::open_non_blocking(conn, &scan_cfg, info, &BinlogPosition::new(file, 4)).await
}

async fn first_event_time(
    cfg: &SourceConfig,
    info: &SourceInfo,
    file: &str,
) -> Result<Option<u32>, SourceError> {
    let mut stream = open_scan(cfg, info, file).await?;
    let mut result = None;
    for _ in 0..8 {
        match stream.next().await {
            Ok(ev) => {
                let h = ev.event.header();
                let ty = h.event_type_raw();
                let fake = h.log_pos() == 0;
                if !fake
                    && ty != EventType::ROTATE_EVENT as u8
                    && ty != EventType::HEARTBEAT_EVENT as u8
                    && h.timestamp() != 0
                {
                    if ev.pos.file != file {
                        break;
                    }
                    result = Some(h.timestamp());
                    break;
                }
                // Decode only ROTATE bodies: other decoders are not guarded here.
                if ty != EventType::ROTATE_EVENT as u8 {
                    continue;
                }
                if let Ok(Some(EventData::RotateEvent(r))) = ev.event.read_data() {
                    if r.name() != file && !fake {
                        break;
                    }
                }
            }
            Err(SourceError::Closed { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    stream.close().await;
    Ok(result)
}
