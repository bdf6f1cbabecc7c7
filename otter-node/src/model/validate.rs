//! Reading and checking channel definitions: TOML and JSON in, every value validated with the key
//! at fault named ([`ModelError`]), and a channel checked against the others stored.

use regex::Regex;
use serde::Deserialize;

use super::*;

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
    if !(1..=64).contains(&p.load_connections) {
        return Err(err(k("load_connections"), "must be between 1 and 64"));
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
