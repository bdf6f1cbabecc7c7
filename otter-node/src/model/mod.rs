//! Channel and pipeline definitions: what `otter-manager apply -f channel.toml` validates and
//! writes to ZooKeeper (`/otter/channel/{cid}` as JSON), and what nodes read and watch.
//!
//! A [`Channel`] holds one [`Pipeline`], or two for two-way sync (`reverse`, checked to mirror the
//! first by [`two_way`]); a pipeline names its source and target MySQL (and their sites), the
//! nodes allowed to run each side, its batching and its table mappings.

pub mod two_way;
mod validate;

use canal_server::mysql_tls::MysqlTls;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// What nodes do with a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChannelStatus {
    /// Nothing runs (the default after `apply`).
    #[default]
    Stopped,
    /// Pipelines run.
    Started,
    /// Select stops taking new batches; batches in flight finish.
    Paused,
}

/// A channel: one pipeline and its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Channel id (> 0), the `{cid}` of the znode paths.
    pub id: u32,
    /// A name for people.
    #[serde(default)]
    pub name: String,
    /// Status the nodes follow.
    #[serde(default)]
    pub status: ChannelStatus,
    /// The pipeline (for a two-way channel, the one from the first site to the second).
    pub pipeline: Pipeline,
    /// The other direction of a two-way channel: from `pipeline`'s target back to its source,
    /// over mirrored table mappings. Each direction drops what the other loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<Pipeline>,
    /// The site whose changes win conflicts under `site_priority` (and `newer_wins` ties);
    /// default: `pipeline`'s source site.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_site: String,
}

/// One direction of replication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Pipeline id (> 0), the `{pid}` of the znode paths and the canal client id of Select.
    pub id: u32,
    /// A name for people.
    #[serde(default)]
    pub name: String,
    /// Node ids that may run Select/Extract (near the source).
    pub select_nodes: Vec<u32>,
    /// Node ids that may run Transform/Load (near the target).
    pub load_nodes: Vec<u32>,
    /// Batches in flight (the process window).
    #[serde(default = "default_parallelism")]
    pub parallelism: u32,
    /// Entries per Select batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Connections Load spreads one large table's share of a batch over, by key
    /// (Otter's `loadPoolSize`); tables with unique secondary keys or foreign keys always load on
    /// one (see `pipeline::load::shard`). 1 turns the spreading off.
    #[serde(
        default = "default_load_connections",
        skip_serializing_if = "is_default_load_connections"
    )]
    pub load_connections: u32,
    /// Apply DDL to the target (serially, alone in its batch).
    #[serde(default)]
    pub ddl_sync: bool,
    /// Where rows come from.
    pub source: SourceDb,
    /// Where rows go.
    pub target: TargetDb,
    /// Tables replicated; rows of other tables are dropped by Extract.
    pub tables: Vec<TableMapping>,
}

impl Pipeline {
    /// Whether a table mapping takes source table `name` (`schema.table`).
    pub fn maps_source_table(&self, name: &str) -> bool {
        self.tables
            .iter()
            .any(|t| Regex::new(&format!("^(?:{})$", t.source)).is_ok_and(|re| re.is_match(name)))
    }

    /// The site the source is in (`source.site`, else its address).
    pub fn source_site(&self) -> &str {
        site_or(&self.source.site, &self.source.address)
    }

    /// The site the target is in (`target.site`, else its address).
    pub fn target_site(&self) -> &str {
        site_or(&self.target.site, &self.target.address)
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn site_or<'a>(site: &'a str, address: &'a str) -> &'a str {
    if site.is_empty() {
        address
    } else {
        site
    }
}

fn default_parallelism() -> u32 {
    5
}

/// Load's connections per table when the definition names none.
pub const DEFAULT_LOAD_CONNECTIONS: u32 = 4;

fn default_load_connections() -> u32 {
    DEFAULT_LOAD_CONNECTIONS
}

// Left out of the stored JSON when it is the default, so nodes from before the key read it.
fn is_default_load_connections(n: &u32) -> bool {
    *n == DEFAULT_LOAD_CONNECTIONS
}

fn default_batch_size() -> u32 {
    1000
}

/// The source MySQL/MariaDB and where to start reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDb {
    /// `host:port`.
    pub address: String,
    /// Replication account (REPLICATION SLAVE, REPLICATION CLIENT, SELECT).
    pub username: String,
    /// Where each node finds its password: `env:NAME` or `file:PATH` (mode 0600), resolved on the
    /// node ([`zk_coord::secret`]); `""` for none. `otter-manager apply` refuses the password
    /// itself, which would be stored in ZooKeeper.
    #[serde(default)]
    pub password: String,
    /// The site (data center) this server is in, named alike in every pipeline that touches it:
    /// changes are marked with the site they were first written at, and a pipeline never brings a
    /// change back to its own site. Defaults to the address.
    #[serde(default)]
    pub site: String,
    /// TLS to the source (`[pipeline.source.tls]`: `mode`, `ca`, `cert`, `key`; off by default).
    #[serde(default, skip_serializing_if = "is_default")]
    pub tls: MysqlTls,
    /// Replica server id, unique among the source's replicas.
    pub slave_id: u32,
    /// Start binlog file when no cursor is stored ("" = not set).
    #[serde(default)]
    pub journal_name: String,
    /// Start offset in `journal_name`.
    #[serde(default)]
    pub position: Option<u64>,
    /// Start GTID set ("" = not set).
    #[serde(default)]
    pub gtid: String,
    /// Start at the first transaction at or after this time (ms since the epoch).
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// Tables (`schema.table`, source names) whose existing rows the pipeline copies once when it
    /// first starts, inside the stream and without locks (canal-server's snapshot), so a new
    /// target starts full. The source account needs INSERT, DELETE on `retl.snapshot_signal`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshot_tables: Vec<String>,
    /// Rows per snapshot chunk (default 8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_chunk_rows: Option<usize>,
}

/// The target MySQL/MariaDB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDb {
    /// `host:port`.
    pub address: String,
    /// An account that may write the target tables.
    pub username: String,
    /// Where each node finds its password: `env:NAME`, `file:PATH` or `""`, as for the source.
    #[serde(default)]
    pub password: String,
    /// The site this server is in (see [`SourceDb::site`]). Defaults to the address.
    #[serde(default)]
    pub site: String,
    /// TLS to the target (`[pipeline.target.tls]`, as for the source).
    #[serde(default, skip_serializing_if = "is_default")]
    pub tls: MysqlTls,
}

/// Source tables (a `schema.table` regex) → target schema/table, with a column view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableMapping {
    /// Anchored, case-sensitive regex over `schema.table`, e.g. `shop\.user` or `shop\..*`.
    pub source: String,
    /// Target schema; the source schema when absent.
    #[serde(default)]
    pub target_schema: Option<String>,
    /// Target table; the source table when absent.
    #[serde(default)]
    pub target_table: Option<String>,
    /// Only these columns (empty = all). Key columns are always kept.
    #[serde(default)]
    pub include_columns: Vec<String>,
    /// Never these columns. Key columns cannot be excluded.
    #[serde(default)]
    pub exclude_columns: Vec<String>,
    /// Loading order across tables: lower weights load first; equal weights in parallel.
    #[serde(default)]
    pub weight: u32,
    /// What Load does when an incoming change does not find the row it changed as it was at
    /// the source ([`ConflictPolicy`]). Unset: `site_priority` in a two-way channel, no
    /// detection in a one-way one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictPolicy>,
    /// For `newer_wins`: a column the application raises on every change (a TIMESTAMP(6),
    /// DATETIME(6) or BIGINT); the higher value wins, a tie goes to the priority site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_column: Option<String>,
}

/// How a conflict is resolved. Each site resolves the conflicts it detects by the same rule, so
/// both end with the same row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The incoming change wins (Otter's behaviour): sites can end different when both changed
    /// a row at once. Conflicts are still reported.
    Overwrite,
    /// The change first written at the channel's `priority_site` wins.
    SitePriority,
    /// The higher `version_column` wins; a tie goes to the priority site. A delete applies only
    /// to the version it deleted: a row updated meanwhile stays (the update wins).
    NewerWins,
}

impl ConflictPolicy {
    /// The name used in the config, reports and metrics.
    pub fn name(self) -> &'static str {
        match self {
            ConflictPolicy::Overwrite => "overwrite",
            ConflictPolicy::SitePriority => "site_priority",
            ConflictPolicy::NewerWins => "newer_wins",
        }
    }
}

/// A definition that cannot run, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ModelError {
    /// Dotted key path, e.g. `pipeline.tables[1].source`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ModelError {
    ModelError {
        key: key.into(),
        message: message.into(),
    }
}

/// A compiled table mapping: which source tables it takes and where they go.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    regex: Regex,
    /// The definition.
    pub mapping: TableMapping,
}

impl CompiledMapping {
    /// Compiles every mapping of a (validated) pipeline, in order: the first match wins.
    pub fn compile(p: &Pipeline) -> Result<Vec<Self>, ModelError> {
        p.tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Ok(Self {
                    regex: Regex::new(&format!("^(?:{})$", t.source))
                        .map_err(|e| err(format!("pipeline.tables[{i}].source"), e.to_string()))?,
                    mapping: t.clone(),
                })
            })
            .collect()
    }

    /// Whether `schema.table` is taken by this mapping.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        self.regex.is_match(&format!("{schema}.{table}"))
    }

    /// Target (schema, table) for a source table.
    pub fn target(&self, schema: &str, table: &str) -> (String, String) {
        (
            self.mapping
                .target_schema
                .clone()
                .unwrap_or_else(|| schema.to_string()),
            self.mapping
                .target_table
                .clone()
                .unwrap_or_else(|| table.to_string()),
        )
    }

    /// Whether a column is in the view (key columns always are).
    pub fn keeps(&self, column: &str, is_key: bool) -> bool {
        if is_key {
            return true;
        }
        let m = &self.mapping;
        if !m.include_columns.is_empty() {
            return m
                .include_columns
                .iter()
                .any(|c| c.eq_ignore_ascii_case(column));
        }
        !m.exclude_columns
            .iter()
            .any(|c| c.eq_ignore_ascii_case(column))
    }
}

/// The first mapping that takes `schema.table`.
pub fn find_mapping<'a>(
    mappings: &'a [CompiledMapping],
    schema: &str,
    table: &str,
) -> Option<&'a CompiledMapping> {
    mappings.iter().find(|m| m.matches(schema, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../config/channel.toml");

    #[test]
    fn example_file_is_valid_and_round_trips_through_json() {
        let c = Channel::from_toml(EXAMPLE).unwrap();
        assert_eq!(c.status, ChannelStatus::Stopped);
        assert_eq!(c.pipeline.parallelism, 5);
        let back = Channel::from_json(&c.to_json()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn errors_name_the_key() {
        let bad = EXAMPLE.replace("parallelism = 5", "parallelism = 0");
        let e = Channel::from_toml(&bad).unwrap_err();
        assert_eq!(e.key, "pipeline.parallelism", "{e}");
        let bad = EXAMPLE.replacen(
            "source = \"shop\\\\.user\"",
            "source = \"shop\\\\.(user\"",
            1,
        );
        let e = Channel::from_toml(&bad).unwrap_err();
        assert_eq!(e.key, "pipeline.tables[0].source", "{e}");
        let bad = EXAMPLE.replace("batch_size = 1000", "batch_size = 1000\nbogus = 1");
        let e = Channel::from_toml(&bad).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let bad = EXAMPLE.replacen("address = \"127.0.0.1:3306\"", "address = \"nowhere\"", 1);
        let e = Channel::from_toml(&bad).unwrap_err();
        assert_eq!(e.key, "pipeline.source.address", "{e}");
        // Snapshot tables must be schema.table and taken by a mapping.
        let snap = |tables: &str| {
            EXAMPLE.replacen(
                "slave_id = 3301",
                &format!("slave_id = 3301\nsnapshot_tables = [{tables}]"),
                1,
            )
        };
        assert!(Channel::from_toml(&snap("\"shop.user\", \"shop.orders\"")).is_ok());
        let e = Channel::from_toml(&snap("\"shop.user\", \"shop.nothing\"")).unwrap_err();
        assert_eq!(e.key, "pipeline.source.snapshot_tables[1]", "{e}");
        assert!(e.to_string().contains("go nowhere"), "{e}");
        let e = Channel::from_toml(&snap("\"orders\"")).unwrap_err();
        assert_eq!(e.key, "pipeline.source.snapshot_tables[0]", "{e}");
    }

    /// Source and target on one server: a mapping that writes what it reads is refused, naming it.
    #[test]
    fn a_mapping_onto_its_own_tables_is_refused() {
        let one_server = EXAMPLE.replace("127.0.0.1:3307", "127.0.0.1:3306");
        // The example renames every table to schema shop_dr, which the regexes do not take.
        assert!(Channel::from_toml(&one_server).is_ok());
        for (from, to) in [
            (
                "target_schema = \"shop_dr\"\ntarget_table = \"customer\"",
                "",
            ),
            (
                "target_schema = \"shop_dr\"\ntarget_table = \"customer\"",
                "target_schema = \"shop\"",
            ),
            (
                "target_schema = \"shop_dr\"\ntarget_table = \"customer\"",
                "target_table = \"user\"",
            ),
            (
                "target_schema = \"shop_dr\"\ntarget_table = \"customer\"",
                "target_schema = \"shop\"\ntarget_table = \"user\"",
            ),
        ] {
            let bad = one_server.replacen(from, to, 1);
            assert_ne!(bad, one_server);
            let e = Channel::from_toml(&bad).unwrap_err();
            assert_eq!(e.key, "pipeline.tables[0].source", "{to:?}: {e}");
            assert!(e.to_string().contains("same server"), "{e}");
        }
        // The same mappings between two servers are fine.
        let two_servers = EXAMPLE.replacen(
            "target_schema = \"shop_dr\"\ntarget_table = \"customer\"",
            "",
            1,
        );
        assert!(Channel::from_toml(&two_servers).is_ok());
    }

    /// Pipeline ids are unique across channels; slave ids among the channels of one source.
    #[test]
    fn ids_are_unique_across_channels() {
        let c = Channel::from_toml(EXAMPLE).unwrap();
        assert!(
            c.validate_among(std::slice::from_ref(&c)).is_ok(),
            "itself is skipped"
        );
        let mut other = c.clone();
        other.id = c.id + 1;
        other.pipeline.source.slave_id = c.pipeline.source.slave_id + 1;
        let e = c.validate_among(std::slice::from_ref(&other)).unwrap_err();
        assert_eq!(e.key, "pipeline.id", "{e}");
        other.pipeline.id = c.pipeline.id + 1;
        assert!(c.validate_among(std::slice::from_ref(&other)).is_ok());
        other.pipeline.source.slave_id = c.pipeline.source.slave_id;
        let e = c.validate_among(std::slice::from_ref(&other)).unwrap_err();
        assert_eq!(e.key, "pipeline.source.slave_id", "{e}");
        other.pipeline.source.address = "10.0.0.9:3306".into();
        assert!(
            c.validate_among(&[other]).is_ok(),
            "another source may reuse the id"
        );
    }

    #[test]
    fn mappings_rename_and_view_columns() {
        let c = Channel::from_toml(EXAMPLE).unwrap();
        let m = CompiledMapping::compile(&c.pipeline).unwrap();
        let user = find_mapping(&m, "shop", "user").unwrap();
        assert_eq!(
            user.target("shop", "user"),
            ("shop_dr".into(), "customer".into())
        );
        assert!(!user.keeps("password_hash", false));
        assert!(user.keeps("email", false));
        assert!(find_mapping(&m, "shop", "orders").is_some());
        assert!(find_mapping(&m, "other", "user").is_none());
    }
}
