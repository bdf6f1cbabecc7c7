//! Channel and pipeline definitions: what `otter-manager apply -f channel.toml` validates and
//! writes to ZooKeeper (`/otter/channel/{cid}` as JSON), and what nodes read and watch.
//!
//! A [`Channel`] holds one [`Pipeline`], or two for two-way sync (`reverse`, checked to mirror the
//! first by [`two_way`]); a pipeline names its source and target MySQL (and their sites), the
//! nodes allowed to run each side, its batching and its table mappings.

pub mod two_way;

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

impl Channel {
    /// Parses a channel TOML file (`[channel]` keys at the top plus a `[pipeline]` table) and
    /// validates it. Unknown keys are errors naming them.
    pub fn from_toml(text: &str) -> Result<Self, ModelError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            channel: Head,
            pipeline: Pipeline,
            #[serde(default)]
            reverse: Option<Pipeline>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Head {
            id: u32,
            #[serde(default)]
            name: String,
            #[serde(default)]
            priority_site: String,
        }
        let f: File = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|s| format!("line {}", text[..s.start].lines().count().max(1)))
                .unwrap_or_else(|| "file".into());
            err(key, e.message().to_string())
        })?;
        let c = Channel {
            id: f.channel.id,
            name: f.channel.name,
            status: ChannelStatus::Stopped,
            pipeline: f.pipeline,
            reverse: f.reverse,
            priority_site: f.channel.priority_site,
        };
        c.validate()?;
        Ok(c)
    }

    /// Reads the JSON form stored in ZooKeeper.
    pub fn from_json(data: &[u8]) -> Result<Self, ModelError> {
        let c: Channel =
            serde_json::from_slice(data).map_err(|e| err("channel JSON", e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// The JSON form stored in ZooKeeper.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Refuses a definition that holds a password itself rather than naming where the nodes find
    /// it (`env:NAME` / `file:PATH`): what `otter-manager apply` stores, anyone who may read
    /// ZooKeeper could read.
    pub fn check_no_literal_secrets(&self) -> Result<(), ModelError> {
        let mut settings = vec![
            ("pipeline.source.password", &self.pipeline.source.password),
            ("pipeline.target.password", &self.pipeline.target.password),
        ];
        if let Some(r) = &self.reverse {
            settings.push(("reverse.source.password", &r.source.password));
            settings.push(("reverse.target.password", &r.target.password));
        }
        for (key, setting) in settings {
            if zk_coord::secret::SecretRef::parse(setting).is_literal() {
                return Err(err(
                    key,
                    "holds the password itself, which would be stored in ZooKeeper; write \
                     \"env:NAME\" or \"file:PATH\" (mode 0600) and give each node that \
                     variable or file",
                ));
            }
        }
        Ok(())
    }

    /// Checks everything a node needs before it starts the pipelines: each one's values, and for a
    /// two-way channel that `reverse` mirrors `pipeline` ([`two_way::check_mirror`]).
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.id == 0 {
            return Err(err("channel.id", "must be > 0"));
        }
        validate_pipeline(&self.pipeline, "pipeline")?;
        if let Some(r) = &self.reverse {
            validate_pipeline(r, "reverse")?;
            two_way::check_mirror(&self.pipeline, r)?;
        }
        if !self.priority_site.is_empty() {
            let sites = [self.pipeline.source_site(), self.pipeline.target_site()];
            if !sites.contains(&self.priority_site.as_str()) {
                return Err(err(
                    "channel.priority_site",
                    format!(
                        "{:?} is neither site of the channel ({sites:?})",
                        self.priority_site
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The site whose changes win conflicts (`priority_site`, else `pipeline`'s source site).
    pub fn priority_site(&self) -> &str {
        if self.priority_site.is_empty() {
            self.pipeline.source_site()
        } else {
            &self.priority_site
        }
    }

    /// The conflict policy of a mapping of this channel (see [`TableMapping::conflict`]).
    pub fn conflict_policy(&self, m: &TableMapping) -> Option<ConflictPolicy> {
        m.conflict.or(self
            .reverse
            .is_some()
            .then_some(ConflictPolicy::SitePriority))
    }

    /// The pipelines of the channel, each as the channel seen from that direction: `pipeline` is
    /// the direction, `reverse` the other one (if any). Stages work on `pipeline`.
    pub fn directions(&self) -> Vec<Channel> {
        // The priority site stays the channel's, whichever direction is `pipeline`.
        let fixed = Channel {
            priority_site: self.priority_site().to_string(),
            ..self.clone()
        };
        let mut out = vec![fixed.clone()];
        if let Some(r) = &self.reverse {
            out.push(Channel {
                pipeline: r.clone(),
                reverse: Some(self.pipeline.clone()),
                ..fixed
            });
        }
        out
    }
}

/// Checks one pipeline's values; `key` prefixes the keys named in errors (`pipeline`, `reverse`).
fn validate_pipeline(p: &Pipeline, key: &str) -> Result<(), ModelError> {
    let k = |f: &str| format!("{key}.{f}");
    if p.id == 0 {
        return Err(err(k("id"), "must be > 0"));
    }
    if p.id > i16::MAX as u32 {
        return Err(err(
            k("id"),
            "must be at most 32767 (it is the canal client id of Select)",
        ));
    }
    if p.select_nodes.is_empty() {
        return Err(err(k("select_nodes"), "name at least one node id"));
    }
    if p.load_nodes.is_empty() {
        return Err(err(k("load_nodes"), "name at least one node id"));
    }
    if !(1..=256).contains(&p.parallelism) {
        return Err(err(k("parallelism"), "must be between 1 and 256"));
    }
    if !(1..=100_000).contains(&p.batch_size) {
        return Err(err(k("batch_size"), "must be between 1 and 100000"));
    }
    check_address(&k("source.address"), &p.source.address)?;
    check_address(&k("target.address"), &p.target.address)?;
    if p.source.username.is_empty() {
        return Err(err(k("source.username"), "must not be empty"));
    }
    if p.target.username.is_empty() {
        return Err(err(k("target.username"), "must not be empty"));
    }
    if p.source.slave_id == 0 {
        return Err(err(k("source.slave_id"), "must be a non-zero server id"));
    }
    if p.tables.is_empty() {
        return Err(err(k("tables"), "map at least one table"));
    }
    let same_server = match (
        p.source.address.parse::<canal_protocol::HostPort>(),
        p.target.address.parse::<canal_protocol::HostPort>(),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    for (i, t) in p.tables.iter().enumerate() {
        let k = |f: &str| format!("{key}.tables[{i}].{f}");
        let re = Regex::new(&format!("^(?:{})$", t.source))
            .map_err(|e| err(k("source"), format!("not a regex: {e}")))?;
        if !t.source.contains('.') {
            return Err(err(
                k("source"),
                "must match schema.table, e.g. shop\\.user",
            ));
        }
        for (f, v) in [
            ("target_schema", &t.target_schema),
            ("target_table", &t.target_table),
        ] {
            if let Some(v) = v {
                if v.is_empty() || v.contains('`') || v.contains('.') {
                    return Err(err(k(f), "must be a plain identifier"));
                }
            }
        }
        if t.conflict == Some(ConflictPolicy::NewerWins) {
            match &t.version_column {
                None => {
                    return Err(err(
                        k("version_column"),
                        "newer_wins needs the column that orders the versions",
                    ))
                }
                Some(v)
                    if t.exclude_columns.contains(v)
                        || (!t.include_columns.is_empty() && !t.include_columns.contains(v)) =>
                {
                    return Err(err(k("version_column"), "must be in the column view"))
                }
                Some(_) => {}
            }
        }
        if !t.include_columns.is_empty() && !t.exclude_columns.is_empty() {
            return Err(err(
                k("exclude_columns"),
                "give include_columns or exclude_columns, not both",
            ));
        }
        if same_server && maps_onto_itself(&re, t) {
            return Err(err(
                k("source"),
                "source and target are the same server and this mapping writes the tables it \
                     reads: Load's rows would be selected again, forever; rename the target \
                     (target_schema / target_table) to tables the source regex does not match",
            ));
        }
    }
    for (i, name) in p.source.snapshot_tables.iter().enumerate() {
        let key = k(&format!("source.snapshot_tables[{i}]"));
        if canal_server::snapshot::split_table_name(name).is_none() {
            return Err(err(key, format!("{name:?} is not schema.table")));
        }
        if !p.maps_source_table(name) {
            return Err(err(
                key,
                format!("{name} is not matched by any [[pipeline.tables]] source: its rows would go nowhere"),
            ));
        }
    }
    if p.source.snapshot_chunk_rows == Some(0) {
        return Err(err(k("source.snapshot_chunk_rows"), "must be > 0"));
    }
    Ok(())
}

impl Channel {
    /// Checks this channel against the other channels stored (`others`; a stored version of this
    /// channel is skipped): a pipeline id belongs to one channel (it names the embedded destination
    /// and its cursor in ZooKeeper, and Select's client id), and two pipelines reading one source
    /// server use different `slave_id`s (the source drops a replica whose server id another one
    /// registers).
    pub fn validate_among(&self, others: &[Channel]) -> Result<(), ModelError> {
        let mine: Vec<(&str, &Pipeline)> = std::iter::once(("pipeline", &self.pipeline))
            .chain(self.reverse.as_ref().map(|r| ("reverse", r)))
            .collect();
        for (key, p) in &mine {
            let source = p.source.address.parse::<canal_protocol::HostPort>().ok();
            for o in others.iter().filter(|o| o.id != self.id) {
                for op in std::iter::once(&o.pipeline).chain(o.reverse.as_ref()) {
                    if op.id == p.id {
                        return Err(err(
                            format!("{key}.id"),
                            format!(
                                "pipeline {} already belongs to channel {} ({:?}); pipeline ids \
                                 are unique across channels",
                                p.id, o.id, o.name
                            ),
                        ));
                    }
                    let same_source = match (&source, op.source.address.parse().ok()) {
                        (Some(a), Some(b)) => *a == b,
                        _ => op.source.address == p.source.address,
                    };
                    if same_source && op.source.slave_id == p.source.slave_id {
                        return Err(err(
                            format!("{key}.source.slave_id"),
                            format!(
                                "{} is already the slave_id of channel {} ({:?}) on source {}; \
                                 each replica of one source needs its own server id",
                                p.source.slave_id, o.id, o.name, p.source.address
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether mapping `t` (anchored source regex `re`) writes into a table it also reads, when source
/// and target are one server: it keeps both names, or the target it names is taken by its own
/// regex (a target that keeps the source's schema or table names is probed with the regex's own
/// part when it is a plain name, else with any name).
fn maps_onto_itself(re: &Regex, t: &TableMapping) -> bool {
    // The regex's schema and table parts where they are plain names; any name otherwise.
    let (schema_part, table_part) = t.source.split_once(r"\.").unwrap_or(("", ""));
    let plain = |part: &str| {
        !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let probe = |part: &'static str, p: &str| {
        if plain(p) {
            p.to_string()
        } else {
            part.to_string()
        }
    };
    let source_schema = probe("x", schema_part);
    let source_table = probe("x", table_part);
    match (&t.target_schema, &t.target_table) {
        (None, None) => true,
        (Some(s), Some(tb)) => re.is_match(&format!("{s}.{tb}")),
        (None, Some(tb)) => re.is_match(&format!("{source_schema}.{tb}")),
        (Some(s), None) => re.is_match(&format!("{s}.{source_table}")),
    }
}

fn check_address(key: &str, a: &str) -> Result<(), ModelError> {
    a.parse::<canal_protocol::HostPort>()
        .map(|_| ())
        .map_err(|e| err(key, e.to_string()))
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
