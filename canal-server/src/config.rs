//! canal-server configuration (`config/canal-server.toml`): the server section and one section per
//! destination, named after Canal's `canal.properties` / `instance.properties` keys where sensible.
//!
//! Every field has a serde default equal to the example file, unknown keys are rejected, and
//! [`ServerConfig::validate`] names the offending key (`destinations.example.slave_id`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::binlog::convert::ConvertOptions;
use crate::binlog::source::SourceConfig;
use crate::filter::TableFilter;
use crate::position::gtid::{MariaGtidList, MysqlGtidSet};
use crate::value::{Charset, UtcOffset, ValueOptions};

/// A config value that is not acceptable, with the key that holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `destinations.example.address`.
    pub key: String,
    /// What is wrong and what is expected.
    pub message: String,
}

fn cerr(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Server-wide settings.
    pub server: ServerSection,
    /// Destinations (Canal instances) by name.
    pub destinations: BTreeMap<String, DestinationConfig>,
    /// ZooKeeper for HA (`canal.zkServers`); absent = standalone with cursors in `meta.dat`.
    pub zookeeper: Option<zk_coord::ZkConfig>,
}

/// The largest `server.max_frame_bytes` accepted (64 MiB).
pub const MAX_FRAME_BYTES_LIMIT: usize = 64 << 20;

/// Checks `[zookeeper]`: the coordination settings (`zk_coord`'s rules) and that every server in
/// the connect string is `host:port`.
fn validate_zookeeper(zk: &zk_coord::ZkConfig) -> Result<(), ConfigError> {
    if let Err(e) = zk.validate() {
        return Err(match e {
            zk_coord::CoordError::Config { key, message } => {
                cerr(format!("zookeeper.{key}"), message)
            }
            other => cerr("zookeeper", other.to_string()),
        });
    }
    for server in zk.servers.split(',') {
        if let Err(e) = server.parse::<canal_protocol::HostPort>() {
            return Err(cerr("zookeeper.servers", e.to_string()));
        }
    }
    Ok(())
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// IP to bind and publish (`canal.ip`).
    pub ip: String,
    /// Canal TCP protocol port (`canal.port`).
    pub port: u16,
    /// Admin HTTP port: `/metrics`, `/health` (`canal.metrics.pull.port`).
    pub admin_port: u16,
    /// IP the admin HTTP port binds (loopback unless told otherwise).
    pub admin_ip: String,
    /// Bearer token the admin POST/DELETE endpoints require (`Authorization: Bearer …`); empty =
    /// they are accepted only while `admin_ip` is a loopback address. `CANAL_ADMIN_TOKEN` in the
    /// environment overrides it.
    pub admin_token: String,
    /// Where cursors and schema history live (`canal.file.data.dir`).
    pub data_dir: PathBuf,
    /// Client user (`canal.user`); empty = any user name.
    pub user: String,
    /// Hex SHA1(SHA1(password)) (`canal.passwd`); empty = no password check.
    pub passwd: String,
    /// Cursor flush period in ms (`canal.file.flush.period`); 0 = write on every ack.
    pub flush_period_ms: u64,
    /// Largest frame accepted from a client, bytes.
    pub max_frame_bytes: usize,
    /// Most client connections at once; beyond it a connection gets an error frame instead of
    /// the handshake and is closed. A quarter of them (at least 1) may be waiting to
    /// authenticate, so connections that never authenticate cannot lock clients out.
    pub max_connections: usize,
    /// Certificate chain (PEM) for TLS on the Canal port; with `tls_key`, the port speaks TLS
    /// only (Canal's protocol has no STARTTLS). Empty = plain TCP.
    pub tls_cert: String,
    /// The certificate's private key (PEM).
    pub tls_key: String,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            ip: "127.0.0.1".into(),
            port: 11111,
            admin_port: 11112,
            admin_ip: "127.0.0.1".into(),
            admin_token: String::new(),
            data_dir: PathBuf::from("data"),
            user: String::new(),
            passwd: String::new(),
            flush_period_ms: 1000,
            max_frame_bytes: 1 << 20,
            max_connections: 1000,
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

/// Whether a destination's parser leaves large rows events to other tasks (`parallel_rows`).
/// Without it the parser is bound to one core; with it a light consumer got 1.5–1.8× the
/// rows/s on 2 cores (docs/PERFORMANCE.md). Entries are handed on in binlog order either way.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParallelRows {
    /// On when the machine has more than one CPU ([`ParallelRows::AUTO_MIN_CPUS`]).
    Auto,
    /// Always.
    On,
    /// Never: every event is converted on the parser's task.
    Off,
}

impl ParallelRows {
    /// The CPU count from which `auto` turns it on.
    pub const AUTO_MIN_CPUS: usize = 2;

    /// Whether it is on, on this machine.
    pub fn enabled(self) -> bool {
        match self {
            ParallelRows::On => true,
            ParallelRows::Off => false,
            ParallelRows::Auto => {
                std::thread::available_parallelism().is_ok_and(|n| n.get() >= Self::AUTO_MIN_CPUS)
            }
        }
    }
}

/// `[destinations.NAME]`: one source and how to read it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DestinationConfig {
    /// Source `host:port` (`canal.instance.master.address`).
    pub address: String,
    /// Replication account (`canal.instance.dbUsername`).
    pub username: String,
    /// Its password (`canal.instance.dbPassword`), or `env:NAME` / `file:PATH` naming where it is
    /// ([`zk_coord::secret`]).
    pub password: String,
    /// TLS to the source (`[destinations.NAME.tls]`; off by default).
    pub tls: crate::mysql_tls::MysqlTls,
    /// `server_id` used towards the source (`canal.instance.mysql.slaveId`); must be unique.
    pub slave_id: u32,
    /// Table allow list (`canal.instance.filter.regex`).
    pub filter: String,
    /// Table deny list (`canal.instance.filter.black.regex`).
    pub black_filter: String,
    /// Start binlog file (`canal.instance.master.journal.name`); empty = not set.
    pub journal_name: String,
    /// Start offset in `journal_name` (`canal.instance.master.position`).
    pub position: Option<u64>,
    /// Start at the first transaction at or after this time, ms since the epoch
    /// (`canal.instance.master.timestamp`).
    pub timestamp: Option<i64>,
    /// Start GTID set/position (`canal.instance.master.gtid`); empty = not set.
    pub gtid: String,
    /// GTID mode (`canal.instance.gtidon`): resume by GTID and put GTIDs in entries.
    pub gtid_mode: bool,
    /// Binlog heartbeat period asked from the source, ms.
    pub heartbeat_ms: u64,
    /// Silence longer than this (ms) means the link is dead.
    pub read_timeout_ms: u64,
    /// Connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// Accepted `binlog_row_image` values.
    pub binlog_images: Vec<String>,
    /// Entries buffered between parser and consumer before the parser waits (back-pressure).
    pub parser_buffer: usize,
    /// The same buffer bounded in bytes of encoded entries (an entry may carry thousands of rows;
    /// a single entry larger than this still passes, alone).
    pub parser_buffer_bytes: usize,
    /// Whether large rows events are written on other tasks while the parser reads on.
    pub parallel_rows: ParallelRows,
    /// Store bound in entries (`canal.instance.memory.buffer.size`).
    pub store_max_entries: usize,
    /// Store bound in bytes of serialized entries.
    pub store_max_bytes: usize,
    /// Most catch-up streams at once: a client that fell behind the shared store reads its own
    /// replica stream from its cursor (server id `0x80000000 | (slave_id & 0xFFFFFF) << 6 | slot`)
    /// until it reaches the shared store again. Each holds at most a store's bounds in memory.
    /// 0 = no catch-up: a lagging client holds the store (and the others) back, as in Canal.
    pub catch_up_streams: usize,
    /// A catch-up stream whose client made no request for this long is stopped (the client
    /// keeps its cursor and gets a new stream when it returns), ms.
    pub catch_up_idle_ms: u64,
    /// `MEMSIZE` or `ITEMSIZE` (`canal.instance.memory.batch.mode`).
    pub batch_mode: crate::store::BatchMode,
    /// Bytes per fetch-size unit in MEMSIZE mode (`canal.instance.memory.buffer.memunit`).
    pub mem_unit: usize,
    /// DDL alone in its batch (`canal.instance.get.ddl.isolation`).
    pub ddl_isolation: bool,
    /// `canal.instance.filter.query.dml`.
    pub filter_query_dml: bool,
    /// `canal.instance.filter.query.dcl`.
    pub filter_query_dcl: bool,
    /// `canal.instance.filter.query.ddl`.
    pub filter_query_ddl: bool,
    /// `canal.instance.filter.table.error`.
    pub filter_table_error: bool,
    /// Value text options (the fixes for Canal's formatting defects; all off = Canal's text).
    pub values: ValueConfig,
    /// Tables (`schema.table`) whose existing rows are copied into the stream once, when the
    /// destination first starts (no Canal equivalent): see [`crate::snapshot`].
    pub snapshot_tables: Vec<String>,
    /// The source table the snapshot writes its window marks to (`schema.table`); created when
    /// missing. The account needs INSERT and DELETE on it (and CREATE to create it).
    pub snapshot_signal_table: String,
    /// Rows per snapshot chunk (one SELECT by primary key between two window marks).
    pub snapshot_chunk_rows: usize,
    /// Tables copied at once.
    pub snapshot_parallel_tables: usize,
    /// MQ mode (`canal.serverMode` + `canal.mq.*`): publish to a broker besides serving TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mq: Option<crate::mq::MqConfig>,
}

impl Default for DestinationConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:3306".into(),
            username: "canal".into(),
            password: "canal".into(),
            tls: Default::default(),
            slave_id: 1234,
            filter: r".*\..*".into(),
            black_filter: r"mysql\.slave_.*".into(),
            journal_name: String::new(),
            position: None,
            timestamp: None,
            gtid: String::new(),
            gtid_mode: false,
            heartbeat_ms: 5_000,
            read_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            binlog_images: vec!["FULL".into()],
            parser_buffer: 4096,
            parser_buffer_bytes: 16 * 1024 * 1024,
            parallel_rows: ParallelRows::Auto,
            store_max_entries: 16384,
            store_max_bytes: 16 * 1024 * 1024,
            catch_up_streams: 2,
            catch_up_idle_ms: 60_000,
            batch_mode: crate::store::BatchMode::Memsize,
            mem_unit: 1024,
            ddl_isolation: false,
            filter_query_dml: false,
            filter_query_dcl: false,
            filter_query_ddl: false,
            filter_table_error: false,
            values: ValueConfig::default(),
            snapshot_tables: Vec::new(),
            snapshot_signal_table: "canal_snapshot.signal".into(),
            snapshot_chunk_rows: 8192,
            snapshot_parallel_tables: 2,
            mq: None,
        }
    }
}

/// `[destinations.NAME.values]`: per-destination switches for value text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ValueConfig {
    /// Charset for all text columns (Canal's `connectionCharset`), e.g. `UTF-8`, `ISO-8859-1`.
    pub connection_charset: String,
    /// Decode each text column with its own charset instead of the connection charset.
    pub per_column_charset: bool,
    /// ENUM as its label instead of the 1-based index.
    pub enum_as_label: bool,
    /// SET as comma-separated labels instead of the bitmask.
    pub set_as_labels: bool,
    /// DECIMAL with exactly the column's scale (`1.00`, Canal prints `1.0`).
    pub decimal_exact_scale: bool,
    /// Offset TIMESTAMP values are shown in, e.g. `+08:00` (Canal's Docker default) or `UTC`.
    pub timestamp_zone: String,
    /// Derive `mysqlType` from the binlog when the schema is unknown.
    pub derive_missing_mysql_type: bool,
}

impl Default for ValueConfig {
    fn default() -> Self {
        Self {
            connection_charset: "UTF-8".into(),
            per_column_charset: false,
            enum_as_label: false,
            set_as_labels: false,
            decimal_exact_scale: false,
            timestamp_zone: "+08:00".into(),
            derive_missing_mysql_type: false,
        }
    }
}

impl ValueConfig {
    /// The formatter options, or an error naming the key under `prefix`.
    pub fn to_options(&self, prefix: &str) -> Result<ValueOptions, ConfigError> {
        let connection_charset = Charset::from_java_name(&self.connection_charset)
            .or_else(|| Charset::from_mysql_name(&self.connection_charset))
            .ok_or_else(|| {
                cerr(
                    format!("{prefix}.connection_charset"),
                    format!("unknown charset {:?}", self.connection_charset),
                )
            })?;
        let timestamp_zone = UtcOffset::parse(&self.timestamp_zone).ok_or_else(|| {
            cerr(
                format!("{prefix}.timestamp_zone"),
                format!(
                    "{:?} is not an offset like +08:00, -05:30 or UTC",
                    self.timestamp_zone
                ),
            )
        })?;
        Ok(ValueOptions {
            connection_charset,
            per_column_charset: self.per_column_charset,
            enum_as_label: self.enum_as_label,
            set_as_labels: self.set_as_labels,
            decimal_exact_scale: self.decimal_exact_scale,
            timestamp_zone,
            derive_missing_mysql_type: self.derive_missing_mysql_type,
            ..ValueOptions::default()
        })
    }
}

/// Where a destination is told to start when it has no stored cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfiguredStart {
    /// A GTID set (MySQL) or position (MariaDB), as text.
    Gtid(String),
    /// A binlog file and offset.
    FilePos(String, u64),
    /// The first transaction at or after this time (ms).
    Timestamp(i64),
    /// The current end of the binlog.
    Latest,
}

impl DestinationConfig {
    /// Checks every field; `prefix` is the section path (`destinations.NAME`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let k = |f: &str| format!("{prefix}.{f}");
        if let Some(mq) = &self.mq {
            mq.validate(&k("mq"))?;
        }
        if self.address.trim().is_empty() {
            return Err(cerr(k("address"), "must be host:port of the source"));
        }
        // Canal's `canal.instance.master.address` always names the port.
        if let Err(e) = self.address.parse::<canal_protocol::HostPort>() {
            return Err(cerr(k("address"), e.to_string()));
        }
        if self.username.is_empty() {
            return Err(cerr(k("username"), "must not be empty"));
        }
        zk_coord::secret::resolve(&self.password)
            .map_err(|e| cerr(k("password"), e.to_string()))?;
        if self.slave_id == 0 {
            return Err(cerr(
                k("slave_id"),
                "must be a non-zero server id unique among the source's replicas",
            ));
        }
        TableFilter::new(&self.filter, "").map_err(|e| cerr(k("filter"), e.to_string()))?;
        TableFilter::new("", &self.black_filter)
            .map_err(|e| cerr(k("black_filter"), e.to_string()))?;
        if self.position.is_some() && self.journal_name.trim().is_empty() {
            return Err(cerr(k("position"), "needs journal_name"));
        }
        if crate::snapshot::split_table_name(&self.snapshot_signal_table).is_none() {
            return Err(cerr(
                k("snapshot_signal_table"),
                "must be schema.table (unquoted names)",
            ));
        }
        for t in &self.snapshot_tables {
            if crate::snapshot::split_table_name(t).is_none() {
                return Err(cerr(
                    k("snapshot_tables"),
                    format!("{t:?} is not schema.table (unquoted names)"),
                ));
            }
        }
        if self.snapshot_chunk_rows == 0 {
            return Err(cerr(k("snapshot_chunk_rows"), "must be > 0"));
        }
        if self.snapshot_parallel_tables == 0 {
            return Err(cerr(k("snapshot_parallel_tables"), "must be > 0"));
        }
        if !self.gtid.trim().is_empty()
            && MariaGtidList::parse(&self.gtid).is_err()
            && MysqlGtidSet::parse(&self.gtid).is_err()
        {
            return Err(cerr(
                k("gtid"),
                format!(
                    "{:?} is neither a MariaDB GTID position (0-1-100) nor a MySQL GTID set (uuid:1-100)",
                    self.gtid
                ),
            ));
        }
        if let Some(ts) = self.timestamp {
            if ts <= 0 {
                return Err(cerr(k("timestamp"), "must be ms since the epoch"));
            }
        }
        if self.heartbeat_ms == 0 {
            return Err(cerr(k("heartbeat_ms"), "must be > 0"));
        }
        if self.read_timeout_ms <= self.heartbeat_ms {
            return Err(cerr(
                k("read_timeout_ms"),
                format!(
                    "must be longer than heartbeat_ms ({}), e.g. 3 heartbeats",
                    self.heartbeat_ms
                ),
            ));
        }
        if self.binlog_images.is_empty()
            || self
                .binlog_images
                .iter()
                .any(|i| !["FULL", "MINIMAL", "NOBLOB"].contains(&i.to_ascii_uppercase().as_str()))
        {
            return Err(cerr(k("binlog_images"), "list of FULL, MINIMAL, NOBLOB"));
        }
        if self.parser_buffer == 0 {
            return Err(cerr(k("parser_buffer"), "must be > 0"));
        }
        if self.parser_buffer_bytes < 1024 || self.parser_buffer_bytes > u32::MAX as usize {
            return Err(cerr(
                k("parser_buffer_bytes"),
                "must be between 1024 and 4294967295",
            ));
        }
        if self.catch_up_streams > 64 {
            return Err(cerr(
                k("catch_up_streams"),
                "at most 64 (each is a replica connection to the source)",
            ));
        }
        if self.catch_up_idle_ms == 0 {
            return Err(cerr(k("catch_up_idle_ms"), "must be > 0"));
        }
        if self.store_max_entries == 0 {
            return Err(cerr(k("store_max_entries"), "must be > 0"));
        }
        if self.store_max_bytes < 1024 {
            return Err(cerr(k("store_max_bytes"), "must be at least 1024"));
        }
        if self.mem_unit == 0 {
            return Err(cerr(k("mem_unit"), "must be > 0"));
        }
        self.values.to_options(&k("values"))?;
        Ok(())
    }

    /// The configured start, in Canal's order: GTID → file+position → timestamp → latest.
    pub fn configured_start(&self) -> ConfiguredStart {
        if !self.gtid.trim().is_empty() {
            ConfiguredStart::Gtid(self.gtid.trim().to_string())
        } else if !self.journal_name.trim().is_empty() {
            ConfiguredStart::FilePos(
                self.journal_name.trim().to_string(),
                self.position.unwrap_or(4),
            )
        } else if let Some(ts) = self.timestamp {
            ConfiguredStart::Timestamp(ts)
        } else {
            ConfiguredStart::Latest
        }
    }

    /// The replica-connection settings.
    pub fn source(&self) -> SourceConfig {
        SourceConfig {
            address: self.address.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            tls: self.tls.clone(),
            slave_id: self.slave_id,
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            read_timeout: Duration::from_millis(self.read_timeout_ms),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            accepted_row_images: self
                .binlog_images
                .iter()
                .map(|s| s.to_ascii_uppercase())
                .collect(),
        }
    }

    /// The store settings.
    pub fn store(&self) -> crate::store::StoreConfig {
        crate::store::StoreConfig {
            max_entries: self.store_max_entries,
            max_bytes: self.store_max_bytes,
            batch_mode: self.batch_mode,
            mem_unit: self.mem_unit,
            ddl_isolation: self.ddl_isolation,
            detach_laggards: self.catch_up_streams > 0,
        }
    }

    /// The converter options (call after [`DestinationConfig::validate`]).
    pub fn convert_options(&self, prefix: &str) -> Result<ConvertOptions, ConfigError> {
        Ok(ConvertOptions {
            filter: TableFilter::new(&self.filter, &self.black_filter)
                .map_err(|e| cerr(format!("{prefix}.filter"), e.to_string()))?,
            values: self.values.to_options(&format!("{prefix}.values"))?,
            gtid_mode: self.gtid_mode,
            filter_query_dml: self.filter_query_dml,
            filter_query_dcl: self.filter_query_dcl,
            filter_query_ddl: self.filter_query_ddl,
            filter_table_error: self.filter_table_error,
            require_row_format: true,
            signal_table: crate::snapshot::split_table_name(&self.snapshot_signal_table),
            ..ConvertOptions::default()
        })
    }
}

impl ServerConfig {
    /// Parses TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: ServerConfig = toml::from_str(text).map_err(|e| {
            // toml's message names the line, column and key; show it whole.
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                .unwrap_or(0);
            cerr(format!("(line {line})"), e.to_string().trim().to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.port == 0 {
            return Err(cerr("server.port", "must be > 0"));
        }
        if self.server.admin_port == self.server.port {
            return Err(cerr("server.admin_port", "must differ from server.port"));
        }
        match (
            self.server.tls_cert.is_empty(),
            self.server.tls_key.is_empty(),
        ) {
            (true, true) => {}
            (false, true) => return Err(cerr("server.tls_key", "tls_cert needs its key")),
            (true, false) => return Err(cerr("server.tls_cert", "tls_key needs its certificate")),
            (false, false) => {
                crate::server::tls::acceptor(
                    std::path::Path::new(&self.server.tls_cert),
                    std::path::Path::new(&self.server.tls_key),
                )
                .map_err(|e| cerr("server.tls_cert", e.to_string()))?;
            }
        }
        if !self.server.passwd.is_empty() {
            canal_protocol::scramble::StoredPassword::from_hex(&self.server.passwd).map_err(|e| {
                cerr(
                    "server.passwd",
                    format!("{e}: expected 40 hex digits of SHA1(SHA1(password)), like MySQL's PASSWORD() without '*'"),
                )
            })?;
        } else if !self.server.user.is_empty() {
            return Err(cerr(
                "server.passwd",
                "server.user is set but server.passwd is empty: every password would be accepted",
            ));
        }
        if self.server.ip.trim().parse::<std::net::IpAddr>().is_err() {
            return Err(cerr(
                "server.ip",
                format!(
                    "{:?} is not an IP address (e.g. 0.0.0.0 to listen everywhere, 127.0.0.1)",
                    self.server.ip
                ),
            ));
        }
        if self
            .server
            .admin_ip
            .trim()
            .parse::<std::net::IpAddr>()
            .is_err()
        {
            return Err(cerr(
                "server.admin_ip",
                format!("{:?} is not an IP address", self.server.admin_ip),
            ));
        }
        if self.server.max_connections == 0 || self.server.max_connections > 100_000 {
            return Err(cerr("server.max_connections", "must be 1..=100000"));
        }
        if self.server.max_frame_bytes < 1024 {
            return Err(cerr("server.max_frame_bytes", "must be at least 1024"));
        }
        if self.server.max_frame_bytes > MAX_FRAME_BYTES_LIMIT {
            return Err(cerr(
                "server.max_frame_bytes",
                format!(
                    "{} is more than {MAX_FRAME_BYTES_LIMIT}: client requests are small (a subscription \
                     filter is the largest), and every connection may reserve this much",
                    self.server.max_frame_bytes
                ),
            ));
        }
        if let Some(zk) = &self.zookeeper {
            validate_zookeeper(zk)?;
        }
        if self.destinations.is_empty() {
            return Err(cerr(
                "destinations",
                "configure at least one [destinations.NAME]",
            ));
        }
        for (name, d) in &self.destinations {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(cerr(
                    format!("destinations.{name}"),
                    "destination names use letters, digits, '_' and '-' (they become znode names)",
                ));
            }
            d.validate(&format!("destinations.{name}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--check` refuses values that parse as the right type but cannot work, naming the key.
    #[test]
    fn values_are_checked_not_only_types() {
        let base = "[destinations.example]\naddress = \"127.0.0.1:3306\"\nusername = \"canal\"\nslave_id = 1001\n";
        let cases = [
            ("[server]\nip = \"not an ip\"\n", "server.ip"),
            (
                "[server]\nmax_frame_bytes = 4000000000\n",
                "server.max_frame_bytes",
            ),
            ("[zookeeper]\nservers = \"\"\n", "zookeeper.servers"),
            (
                "[zookeeper]\nservers = \"zk1:2181,zk2\"\n",
                "zookeeper.servers",
            ),
            (
                "[zookeeper]\nsession_timeout_ms = 0\n",
                "zookeeper.session_timeout_ms",
            ),
        ];
        for (section, key) in cases {
            let e = ServerConfig::from_toml(&format!("{section}{base}")).unwrap_err();
            assert!(e.to_string().contains(key), "{section:?}: {e}");
        }
        let e = ServerConfig::from_toml(&base.replace("127.0.0.1:3306", "nohostport")).unwrap_err();
        assert!(
            e.to_string().contains("destinations.example.address"),
            "{e}"
        );
        assert!(ServerConfig::from_toml(&format!(
            "[server]\nip = \"0.0.0.0\"\n[zookeeper]\nservers = \"zk1:2181,[::1]:2182\"\n{base}"
        ))
        .is_ok());
    }

    #[test]
    fn parallel_rows_is_auto_on_or_off() {
        let base = "[destinations.example]\naddress = \"127.0.0.1:3306\"\nslave_id = 2\n";
        for (text, want) in [
            ("auto", ParallelRows::Auto),
            ("on", ParallelRows::On),
            ("off", ParallelRows::Off),
        ] {
            let cfg =
                ServerConfig::from_toml(&format!("{base}parallel_rows = \"{text}\"\n")).unwrap();
            assert_eq!(cfg.destinations["example"].parallel_rows, want);
        }
        assert!(ParallelRows::On.enabled() && !ParallelRows::Off.enabled());
        let e =
            ServerConfig::from_toml(&format!("{base}parallel_rows = \"sometimes\"\n")).unwrap_err();
        // A bad enum value is a TOML parse error: it names the line and the accepted values.
        let text = e.to_string();
        assert!(
            text.contains("line 4") && text.contains("sometimes") && text.contains("`off`"),
            "{text}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = ServerConfig::from_toml(
            "[destinations.example]\naddress = \"127.0.0.1:3306\"\nslave_id = 0\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "destinations.example.slave_id");
        let e =
            ServerConfig::from_toml("[destinations.example]\nfilter = \"db\\\\.(\"\n").unwrap_err();
        assert_eq!(e.key, "destinations.example.filter");
        let e = ServerConfig::from_toml("[destinations.example]\nbogus = 1\n").unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
        let e = ServerConfig::from_toml("[destinations.example]\nposition = 4\n").unwrap_err();
        assert_eq!(e.key, "destinations.example.position");
        let e = ServerConfig::from_toml(
            "[destinations.example]\n[destinations.example.values]\ntimestamp_zone = \"Mars\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "destinations.example.values.timestamp_zone");
    }

    #[test]
    fn start_order_follows_canal() {
        let mut d = DestinationConfig::default();
        assert_eq!(d.configured_start(), ConfiguredStart::Latest);
        d.timestamp = Some(1_700_000_000_000);
        assert_eq!(
            d.configured_start(),
            ConfiguredStart::Timestamp(1_700_000_000_000)
        );
        d.journal_name = "mysql-bin.000002".into();
        d.position = Some(120);
        assert_eq!(
            d.configured_start(),
            ConfiguredStart::FilePos("mysql-bin.000002".into(), 120)
        );
        d.gtid = "0-1-5".into();
        assert_eq!(d.configured_start(), ConfiguredStart::Gtid("0-1-5".into()));
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The shipped example is valid and its values are the serde defaults.
    #[test]
    fn config_example_matches_defaults() {
        let text = include_str!("../../config/canal-server.toml");
        let cfg = ServerConfig::from_toml(text).expect("config/canal-server.toml is valid");
        assert_eq!(cfg.server, ServerSection::default());
        assert_eq!(cfg.destinations["example"], DestinationConfig::default());
        assert_eq!(cfg.zookeeper, None);
        let with_zk = format!("{text}\n[zookeeper]\nservers = \"127.0.0.1:2181\"\n");
        let cfg = ServerConfig::from_toml(&with_zk).unwrap();
        assert_eq!(cfg.zookeeper, Some(zk_coord::ZkConfig::default()));
    }

    /// The MQ example is valid and its `mq` keys are the defaults.
    #[test]
    fn mq_example_is_valid() {
        let text = include_str!("../../config/canal-server-mq.toml");
        let cfg = ServerConfig::from_toml(text).expect("config/canal-server-mq.toml is valid");
        assert_eq!(
            cfg.destinations["example"].mq,
            Some(crate::mq::MqConfig::default())
        );
    }

    /// The HA example is valid, runs in HA mode, and its keys say what the defaults are.
    #[test]
    fn ha_example_is_valid() {
        let text = include_str!("../../config/canal-server-ha.toml");
        let cfg = ServerConfig::from_toml(text).expect("config/canal-server-ha.toml is valid");
        let zk = cfg.zookeeper.expect("a [zookeeper] section");
        assert_eq!(
            zk.session_timeout_ms,
            zk_coord::ZkConfig::default().session_timeout_ms
        );
        assert_eq!(zk.grace_ms, zk_coord::ZkConfig::default().grace_ms);
        assert_eq!(
            cfg.server.flush_period_ms,
            ServerSection::default().flush_period_ms
        );
        assert!(cfg.destinations.contains_key("example"));
    }
}
