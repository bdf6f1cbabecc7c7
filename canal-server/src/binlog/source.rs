//! The replica connection: connect, check the source's settings, register as a replica and read
//! the binlog stream with heartbeats, a read timeout and checksum verification.

use std::time::Duration;

use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, OptsBuilder};
use mysql_common::binlog::consts::EventType;
use mysql_common::binlog::events::{Event, EventData};

use crate::binlog::event::{self, EventError};
use crate::position::gtid::{MariaGtidList, MysqlGtidSet};
use crate::position::BinlogPosition;
use crate::position::EventPos;

/// How to reach the source and behave as its replica.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// `host:port` of the MySQL/MariaDB source.
    pub address: String,
    /// Replication account.
    pub username: String,
    /// Its password.
    pub password: String,
    /// TLS to the source.
    pub tls: crate::mysql_tls::MysqlTls,
    /// `server_id` this replica registers with; must be unique among the source's replicas.
    pub slave_id: u32,
    /// Binlog heartbeat period the source is asked for (`@master_heartbeat_period`).
    pub heartbeat: Duration,
    /// No byte for this long (several heartbeats) means the link is dead: reconnect.
    pub read_timeout: Duration,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Accepted `binlog_row_image` values (upper case).
    pub accepted_row_images: Vec<String>,
}

/// Which server family the source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB (GTIDs are `domain-server-seq`).
    MariaDb,
    /// Oracle MySQL or Percona (GTIDs are `uuid:n`).
    MySql,
}

/// What the start-up checks learned about the source.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// Server family.
    pub flavor: Flavor,
    /// `@@version`.
    pub version: String,
    /// `@@server_id`.
    pub server_id: u32,
    /// `@@global.binlog_checksum` is CRC32.
    pub checksum: bool,
}

/// Where to start reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRequest {
    /// A binlog file and offset.
    FilePos(BinlogPosition),
    /// MariaDB GTID position (`@slave_connect_state`): the stream starts after these GTIDs.
    MariaGtid(MariaGtidList),
    /// MySQL executed GTID set (COM_BINLOG_DUMP_GTID): the stream starts after these.
    MysqlGtid(MysqlGtidSet),
}

/// Failures talking to the source. [`SourceError::is_retryable`] tells the supervisor what to do.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// TCP connect or handshake failed.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The source address.
        address: String,
        /// Driver error.
        #[source]
        source: mysql_async::Error,
    },
    /// The password setting (`env:NAME` / `file:PATH`) cannot be resolved on this machine.
    #[error("password for source {address}: {source}")]
    Secret {
        /// The source address.
        address: String,
        /// Why.
        #[source]
        source: zk_coord::secret::SecretError,
    },
    /// The TLS handshake failed: the server's certificate does not verify against `tls.ca` (or
    /// names another host, for `verify_identity`), or the server offers no TLS.
    #[error("TLS to source {address} failed: {message}; check [tls] mode and ca (and that the server's certificate was issued by that CA for this host)")]
    Tls {
        /// The source address.
        address: String,
        /// The driver's words.
        message: String,
    },
    /// Wrong user or password, or missing privileges.
    #[error("source {address} refused the replication account: {message}")]
    Access {
        /// The source address.
        address: String,
        /// Server message.
        message: String,
    },
    /// A source setting that makes row capture impossible, found when connecting or, when it
    /// changed while the destination ran, in the stream.
    #[error("source {address} has {variable}={actual}{}; set {variable}={wanted} (in my.cnf and with SET GLOBAL)", seen_suffix(.seen))]
    Setting {
        /// The source address.
        address: String,
        /// The variable.
        variable: &'static str,
        /// Its value.
        actual: String,
        /// What to set.
        wanted: String,
        /// Where the stream showed it (`None`: seen when connecting).
        seen: Option<SeenInStream>,
    },
    /// The requested position is no longer on the source.
    #[error("binlog position {requested} is not on the source any more (purged?); the oldest binlog there is {first_available}. Start from a newer position or re-snapshot")]
    Purged {
        /// What was asked for.
        requested: String,
        /// The oldest binlog file the source still has.
        first_available: String,
    },
    /// No event and no heartbeat for the read timeout: a silent or half-open link.
    #[error(
        "no data from {address} for {after:?} (heartbeat every {heartbeat:?}); the link is dead"
    )]
    ReadTimeout {
        /// The source address.
        address: String,
        /// How long it was silent.
        after: Duration,
        /// The heartbeat period asked for.
        heartbeat: Duration,
    },
    /// The source ended the stream.
    #[error("source {address} closed the binlog stream")]
    Closed {
        /// The source address.
        address: String,
    },
    /// A query or the stream failed.
    #[error("source {address}: {source}")]
    Driver {
        /// The source address.
        address: String,
        /// Driver error.
        #[source]
        source: mysql_async::Error,
    },
    /// An event failed its checks.
    #[error("corrupt event at {at}: {source}")]
    Corrupt {
        /// Where.
        at: BinlogPosition,
        /// What.
        #[source]
        source: EventError,
    },
}

/// The event that showed a bad setting while streaming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenInStream {
    /// Position of the event.
    pub at: BinlogPosition,
    /// What it showed (`an INSERT on shop.t was written as a statement, so its rows are not in
    /// the binlog`).
    pub what: String,
}

fn seen_suffix(seen: &Option<SeenInStream>) -> String {
    seen.as_ref().map(|s| format!(": {s}")).unwrap_or_default()
}

impl std::fmt::Display for SeenInStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {}, {}", self.at, self.what)
    }
}

impl SourceError {
    /// Whether reconnecting (with backoff) may fix it. Bad settings, refused accounts and purged
    /// positions need an operator.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            SourceError::Access { .. }
                | SourceError::Tls { .. }
                | SourceError::Secret { .. }
                | SourceError::Setting { .. }
                | SourceError::Purged { .. }
        )
    }
}

fn split_address(address: &str) -> (String, u16) {
    canal_protocol::HostPort::mysql(address)
        .map(|a| (a.host, a.port))
        .unwrap_or_else(|_| (address.to_string(), 3306))
}

fn classify_driver(address: &str, e: mysql_async::Error) -> SourceError {
    if let mysql_async::Error::Server(s) = &e {
        // 1045 access denied, 1044 db access denied, 1227 missing privilege.
        if matches!(s.code, 1045 | 1044 | 1227) {
            return SourceError::Access {
                address: address.to_string(),
                message: s.message.clone(),
            };
        }
    }
    let text = e.to_string();
    if text.contains("certificate")
        || matches!(
            e,
            mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
        )
    {
        return SourceError::Tls {
            address: address.to_string(),
            message: text
                .rsplit("Input/output error: ")
                .next()
                .unwrap_or(&text)
                .to_string(),
        };
    }
    SourceError::Driver {
        address: address.to_string(),
        source: e,
    }
}

/// Opens a plain SQL connection to the source with the replication account.
pub async fn connect(cfg: &SourceConfig) -> Result<Conn, SourceError> {
    let (host, port) = split_address(&cfg.address);
    let password =
        zk_coord::secret::resolve(&cfg.password).map_err(|source| SourceError::Secret {
            address: cfg.address.clone(),
            source,
        })?;
    let opts = OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(cfg.username.clone()))
        .pass(Some(password))
        .prefer_socket(false)
        .tcp_keepalive(Some(Duration::from_secs(10)))
        .tcp_nodelay(true);
    match tokio::time::timeout(cfg.connect_timeout, cfg.tls.connect(opts)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => match classify_driver(&cfg.address, e) {
            SourceError::Driver { source, .. } => Err(SourceError::Connect {
                address: cfg.address.clone(),
                source,
            }),
            other => Err(other),
        },
        Err(_) => Err(SourceError::Connect {
            address: cfg.address.clone(),
            source: mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connect timed out after {:?}", cfg.connect_timeout),
            ))),
        }),
    }
}

/// Checks that the source writes a usable binlog (ROW format, an accepted row image, log_bin on)
/// and learns its flavor.
pub async fn check_source(conn: &mut Conn, cfg: &SourceConfig) -> Result<SourceInfo, SourceError> {
    let d = |e| classify_driver(&cfg.address, e);
    type Settings = (String, u32, Option<String>, Option<String>, Option<String>);
    let row: Option<Settings> = conn
        .query_first(
            "SELECT @@version, @@server_id, @@global.log_bin, @@global.binlog_format, @@global.binlog_row_image",
        )
        .await
        .map_err(d)?;
    let Some((version, server_id, log_bin, format, image)) = row else {
        return Err(SourceError::Closed {
            address: cfg.address.clone(),
        });
    };
    let setting = |variable, actual: Option<String>, wanted: &str| SourceError::Setting {
        address: cfg.address.clone(),
        variable,
        actual: actual.unwrap_or_else(|| "(unset)".into()),
        wanted: wanted.to_string(),
        seen: None,
    };
    if !matches!(log_bin.as_deref(), Some("1") | Some("ON")) {
        return Err(setting("log_bin", log_bin, "ON"));
    }
    if !format
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("ROW"))
    {
        return Err(setting("binlog_format", format, "ROW"));
    }
    let image_ok = image.as_deref().is_some_and(|i| {
        cfg.accepted_row_images
            .iter()
            .any(|a| a.eq_ignore_ascii_case(i))
    });
    if !image_ok {
        return Err(setting(
            "binlog_row_image",
            image,
            &cfg.accepted_row_images.join(" or "),
        ));
    }
    let checksum: Option<String> = conn
        .query_first("SELECT @@global.binlog_checksum")
        .await
        .map_err(d)?;
    let checksum = checksum.is_some_and(|c| c.eq_ignore_ascii_case("CRC32"));
    let flavor = if version.to_ascii_lowercase().contains("mariadb") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    Ok(SourceInfo {
        flavor,
        version,
        server_id,
        checksum,
    })
}

/// The binlog files the source has, oldest first, with their sizes (`SHOW BINARY LOGS`).
pub async fn binary_logs(
    conn: &mut Conn,
    address: &str,
) -> Result<Vec<(String, u64)>, SourceError> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|e| classify_driver(address, e))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let name: Option<String> = r.get(0);
            let size: Option<u64> = r.get(1);
            name.map(|n| (n, size.unwrap_or(0)))
        })
        .collect())
}

/// `SHOW MASTER STATUS`: the end of the binlog now.
pub async fn master_status(conn: &mut Conn, address: &str) -> Result<BinlogPosition, SourceError> {
    let row: Option<mysql_async::Row> = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .map_err(|e| classify_driver(address, e))?;
    let row = row.ok_or_else(|| SourceError::Setting {
        address: address.to_string(),
        variable: "log_bin",
        actual: "OFF".into(),
        wanted: "ON".into(),
        seen: None,
    })?;
    let file: Option<String> = row.get(0);
    let pos: Option<u64> = row.get(1);
    Ok(BinlogPosition::new(
        file.unwrap_or_default(),
        pos.unwrap_or(4),
    ))
}

/// One event from the stream with its position.
#[derive(Debug)]
pub struct RawEvent {
    /// The event (checksum verified).
    pub event: Event,
    /// Where it is.
    pub pos: EventPos,
}

/// A registered replica's binlog stream.
pub struct ReplicaStream {
    stream: BinlogStream,
    address: String,
    file: String,
    next_offset: u64,
    read_timeout: Duration,
    heartbeat: Duration,
    /// Position of the TRANSACTION_PAYLOAD event whose inner events are being read.
    payload: Option<EventPos>,
    /// The source checksums events.
    checksum: bool,
    /// A FORMAT_DESCRIPTION was seen (before it, the decoder does not know about checksums).
    seen_fde: bool,
}

impl std::fmt::Debug for ReplicaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaStream")
            .field("address", &self.address)
            .field("file", &self.file)
            .field("next_offset", &self.next_offset)
            .finish()
    }
}

impl ReplicaStream {
    /// Registers as a replica on `conn` and requests the binlog from `start`.
    ///
    /// For a file position, first checks that the file still exists on the source, so a purged
    /// position is a clear error instead of a silent jump.
    pub async fn open(
        conn: Conn,
        cfg: &SourceConfig,
        info: &SourceInfo,
        start: &StartRequest,
    ) -> Result<Self, SourceError> {
        Self::open_inner(conn, cfg, info, start, false).await
    }

    /// Like [`ReplicaStream::open`] from a file position, but the source ends the stream at the
    /// end of its binlog instead of waiting for new events (for scans).
    pub async fn open_non_blocking(
        conn: Conn,
        cfg: &SourceConfig,
        info: &SourceInfo,
        from: &BinlogPosition,
    ) -> Result<Self, SourceError> {
        Self::open_inner(conn, cfg, info, &StartRequest::FilePos(from.clone()), true).await
    }

    async fn open_inner(
        mut conn: Conn,
        cfg: &SourceConfig,
        info: &SourceInfo,
        start: &StartRequest,
        non_blocking: bool,
    ) -> Result<Self, SourceError> {
        let d = |e| classify_driver(&cfg.address, e);
        let heartbeat_ns = cfg.heartbeat.as_nanos().min(u64::MAX as u128) as u64;
        conn.query_drop(format!("SET @master_heartbeat_period = {heartbeat_ns}"))
            .await
            .map_err(d)?;
        if info.flavor == Flavor::MariaDb {
            // 4 = MARIA_SLAVE_CAPABILITY_GTID: send GTID/GTID_LIST/checkpoint events as they are.
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(d)?;
        }
        let (file, offset) = match start {
            StartRequest::FilePos(p) => {
                let logs = binary_logs(&mut conn, &cfg.address).await?;
                match logs.iter().find(|(n, _)| *n == p.file) {
                    Some((_, size)) if p.offset <= *size.max(&4) => {}
                    _ => {
                        return Err(SourceError::Purged {
                            requested: p.to_string(),
                            first_available: logs
                                .first()
                                .map(|(n, _)| n.clone())
                                .unwrap_or_else(|| "(none)".into()),
                        })
                    }
                }
                (p.file.clone(), p.offset.max(4))
            }
            StartRequest::MariaGtid(list) => {
                if info.flavor != Flavor::MariaDb {
                    return Err(SourceError::Setting {
                        address: cfg.address.clone(),
                        variable: "gtid",
                        actual: list.to_string(),
                        wanted: "a MySQL GTID set (uuid:1-n) for this MySQL source".into(),
                        seen: None,
                    });
                }
                conn.query_drop(format!("SET @slave_connect_state = '{list}'"))
                    .await
                    .map_err(d)?;
                conn.query_drop("SET @slave_gtid_strict_mode = 1")
                    .await
                    .map_err(d)?;
                conn.query_drop("SET @slave_gtid_ignore_duplicates = 0")
                    .await
                    .map_err(d)?;
                (String::new(), 4)
            }
            StartRequest::MysqlGtid(_) => (String::new(), 4),
        };
        let mut request = BinlogStreamRequest::new(cfg.slave_id);
        if non_blocking {
            request = request.with_non_blocking();
        }
        let sids: Vec<mysql_common::packets::Sid<'static>>;
        match start {
            StartRequest::MysqlGtid(set) => {
                sids = set
                    .to_string()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .filter_map(|s| s.parse().ok())
                    .collect();
                request = request.with_gtid().with_gtid_set(sids);
            }
            _ => {
                request = request.with_filename(file.as_bytes()).with_pos(offset);
            }
        }
        let stream = conn.get_binlog_stream(request).await.map_err(d)?;
        Ok(Self {
            stream,
            address: cfg.address.clone(),
            file,
            next_offset: offset,
            read_timeout: cfg.read_timeout,
            heartbeat: cfg.heartbeat,
            payload: None,
            checksum: info.checksum,
            seen_fde: false,
        })
    }

    /// The file and offset the next event is expected at.
    pub fn position(&self) -> BinlogPosition {
        BinlogPosition::new(self.file.clone(), self.next_offset)
    }

    /// The next event, its CRC checked. Heartbeats are returned too (they prove the link lives and
    /// carry the source's position); callers skip them.
    pub async fn next(&mut self) -> Result<RawEvent, SourceError> {
        let item = match tokio::time::timeout(self.read_timeout, self.stream.next()).await {
            Err(_) => {
                return Err(SourceError::ReadTimeout {
                    address: self.address.clone(),
                    after: self.read_timeout,
                    heartbeat: self.heartbeat,
                })
            }
            Ok(None) => {
                return Err(SourceError::Closed {
                    address: self.address.clone(),
                })
            }
            Ok(Some(item)) => item,
        };
        let ev = match item {
            Ok(ev) => ev,
            Err(e) => {
                if let mysql_async::Error::Server(s) = &e {
                    // ER_MASTER_FATAL_ERROR_READING_BINLOG: position purged or invalid.
                    if s.code == 1236 {
                        return Err(SourceError::Purged {
                            requested: format!(
                                "{}:{} ({})",
                                self.file, self.next_offset, s.message
                            ),
                            first_available: "(see SHOW BINARY LOGS on the source)".into(),
                        });
                    }
                }
                if let mysql_async::Error::Io(mysql_async::IoError::Io(io)) = &e {
                    if io.kind() == std::io::ErrorKind::InvalidData {
                        return Err(SourceError::Corrupt {
                            at: self.position(),
                            source: EventError::Malformed {
                                event_type: 0,
                                reason: io.to_string(),
                            },
                        });
                    }
                }
                return Err(classify_driver(&self.address, e));
            }
        };
        self.place(ev)
    }

    fn place(&mut self, ev: Event) -> Result<RawEvent, SourceError> {
        let header = ev.header();
        let ty = header.event_type_raw();
        let size = header.event_size() as u64;
        let log_pos = header.log_pos() as u64;
        // Events inside a TRANSACTION_PAYLOAD have no position of their own and no checksum.
        if let Some(p) = &self.payload {
            if log_pos == 0 && ty != EventType::ROTATE_EVENT as u8 {
                return Ok(RawEvent {
                    event: ev,
                    pos: p.clone(),
                });
            }
            self.payload = None;
        }
        event::verify_checksum(&ev).map_err(|source| SourceError::Corrupt {
            at: self.position(),
            source,
        })?;
        if ty == EventType::FORMAT_DESCRIPTION_EVENT as u8 {
            self.seen_fde = true;
        }
        if ty == EventType::ROTATE_EVENT as u8 {
            if let Ok(Some(EventData::RotateEvent(r))) = ev.read_data() {
                let mut name = r.name_raw().to_vec();
                // The fake ROTATE that opens the stream comes before any FORMAT_DESCRIPTION, so
                // the decoder leaves the CRC32 on the end of the file name.
                if !self.seen_fde && self.checksum && name.len() > 4 {
                    name.truncate(name.len() - 4);
                }
                self.file = String::from_utf8_lossy(&name).into_owned();
                self.next_offset = r.position();
            }
            let pos = EventPos {
                file: self.file.clone(),
                offset: self.next_offset,
                next_offset: self.next_offset,
            };
            return Ok(RawEvent { event: ev, pos });
        }
        if ty == EventType::HEARTBEAT_EVENT as u8
            || ty == EventType::FORMAT_DESCRIPTION_EVENT as u8 && log_pos == 0
        {
            // Heartbeats and the fake FDE at stream start do not advance the position.
            let pos = EventPos {
                file: self.file.clone(),
                offset: self.next_offset,
                next_offset: self.next_offset,
            };
            return Ok(RawEvent { event: ev, pos });
        }
        let (offset, next) = if log_pos >= size && log_pos != 0 {
            (log_pos - size, log_pos)
        } else {
            (self.next_offset, self.next_offset + size)
        };
        self.next_offset = next;
        let pos = EventPos {
            file: self.file.clone(),
            offset,
            next_offset: next,
        };
        if ty == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
            self.payload = Some(pos.clone());
        }
        Ok(RawEvent { event: ev, pos })
    }

    /// Closes the replica connection.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.close()).await;
    }
}
