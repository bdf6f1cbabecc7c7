//! Where a flat message goes: its topic (`dynamic_topic` rules, else `topic`) and its
//! partition(s) (`partition_hash` rules over `partitions_num` / `dynamic_topic_partition_num`),
//! splitting a message's rows by partition as Canal does.
//!
//! Partition of a row (reference §5.1): `h` = Java `String.hashCode` of the database (when
//! `database_hash`) XOR that of each hashed column value (`""` for NULL), partition =
//! `|h| % n`; a table-only rule hashes the table name the same way. Differences from Canal, on
//! purpose:
//! - DDL goes to **every** partition of its topic (Canal: partition 0), so each partition's
//!   consumer sees the schema change before the rows after it.
//! - An UPDATE whose hashed columns changed (a primary-key change under `$pk$`) goes to the
//!   partition of its old key **and** the partition of its new key (Canal: only the new one, issue
//!   #3152), so each partition holds the whole history of every key it has seen: the old key's
//!   partition sees the row leave, the new key's partition sees it arrive.

use regex::{Regex, RegexBuilder};

use canal_client::flat::{FlatMessage, FlatRow};

/// A rule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The key (`dynamic_topic`, `partition_hash`, `dynamic_topic_partition_num`).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug)]
struct TopicRule {
    /// `None`: the topic is the schema (rule matched `schema`) or `schema_table`.
    topic: Option<String>,
    pattern: Regex,
}

#[derive(Debug)]
enum HashBy {
    Columns(Vec<String>),
    PrimaryKey,
    Table,
}

#[derive(Debug)]
struct HashRule {
    pattern: Regex,
    by: HashBy,
}

/// The routing of one destination.
#[derive(Debug)]
pub struct Router {
    topic: String,
    partition: u32,
    partitions_num: u32,
    database_hash: bool,
    topics: Vec<TopicRule>,
    hashes: Vec<HashRule>,
    topic_partitions: Vec<(String, u32)>,
}

/// One message to publish: where, and its rows (already split by partition).
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// Topic name.
    pub topic: String,
    /// Partition within the topic, `None` when the topic is not partitioned.
    pub partition: Option<u32>,
    /// The message (rows of that partition only).
    pub message: FlatMessage,
}

fn anchored(key: &'static str, text: &str) -> Result<Regex, RuleError> {
    RegexBuilder::new(&format!("^(?:{text})$"))
        .case_insensitive(true)
        .build()
        .map_err(|e| RuleError {
            key,
            message: format!("bad regex {text:?}: {e}"),
        })
}

fn rules(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Java's `String.hashCode` (UTF-16 code units, wrapping).
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

impl Router {
    /// Parses the rules of `c`.
    pub fn new(c: &super::MqConfig) -> Result<Self, RuleError> {
        let mut topics = Vec::new();
        for r in rules(&c.dynamic_topic) {
            // `topic:regex`; a regex may itself hold ':' only after the first one.
            let (topic, pattern) = match r.split_once(':') {
                Some((t, p)) if !t.is_empty() && !t.contains(['\\', '.', '*']) => {
                    (Some(t.to_string()), p)
                }
                _ => (None, r),
            };
            topics.push(TopicRule {
                topic,
                pattern: anchored("dynamic_topic", pattern)?,
            });
        }
        let mut hashes = Vec::new();
        for r in rules(&c.partition_hash) {
            let (pattern, by) = match r.rsplit_once(':') {
                Some((p, "$pk$")) => (p, HashBy::PrimaryKey),
                Some((p, cols)) => (
                    p,
                    HashBy::Columns(cols.split('^').map(|s| s.trim().to_string()).collect()),
                ),
                None => (r, HashBy::Table),
            };
            hashes.push(HashRule {
                pattern: anchored("partition_hash", pattern)?,
                by,
            });
        }
        let mut topic_partitions = Vec::new();
        for r in rules(&c.dynamic_topic_partition_num) {
            let parsed = r
                .split_once(':')
                .and_then(|(t, n)| Some((t.trim().to_string(), n.trim().parse::<u32>().ok()?)))
                .filter(|(_, n)| *n > 0);
            match parsed {
                Some(p) => topic_partitions.push(p),
                None => {
                    return Err(RuleError {
                        key: "dynamic_topic_partition_num",
                        message: format!("{r:?} is not topic:partitions (partitions ≥ 1)"),
                    })
                }
            }
        }
        Ok(Self {
            topic: c.topic.clone(),
            partition: c.partition,
            partitions_num: c.partitions_num,
            database_hash: c.database_hash,
            topics,
            hashes,
            topic_partitions,
        })
    }

    /// The topic of `schema.table`.
    pub fn topic_of(&self, schema: &str, table: &str) -> String {
        let full = format!("{schema}.{table}");
        for r in &self.topics {
            if let Some(t) = &r.topic {
                if r.pattern.is_match(&full) {
                    return t.clone();
                }
            } else if r.pattern.is_match(schema) {
                return schema.to_string();
            } else if r.pattern.is_match(&full) {
                return format!("{schema}_{table}");
            }
        }
        self.topic.clone()
    }

    /// The partition of messages to unpartitioned topics (`partition`, `None` when 0).
    pub fn fixed_partition(&self) -> Option<u32> {
        (self.partition > 0).then_some(self.partition)
    }

    /// How many partitions `topic` has (1 = not partitioned).
    pub fn partitions_of(&self, topic: &str) -> u32 {
        if self.hashes.is_empty() {
            return 1;
        }
        self.topic_partitions
            .iter()
            .find(|(t, _)| t == topic)
            .map_or(self.partitions_num, |(_, n)| *n)
    }

    fn hash_rule(&self, schema: &str, table: &str) -> Option<&HashRule> {
        let full = format!("{schema}.{table}");
        self.hashes.iter().find(|r| r.pattern.is_match(&full))
    }

    fn hash(&self, m: &FlatMessage, by: &HashBy, row: &FlatRow, n: u32) -> u32 {
        let mut h = if self.database_hash {
            java_hash(&m.database)
        } else {
            0
        };
        let mut mix = |col: &str| {
            let v = row.get(col).and_then(|v| v.as_deref()).unwrap_or("");
            h ^= java_hash(v);
        };
        match by {
            HashBy::Columns(cols) => cols.iter().for_each(|c| mix(c)),
            HashBy::PrimaryKey => m.pk_names.iter().flatten().for_each(|c| mix(c)),
            HashBy::Table => h ^= java_hash(&m.table),
        }
        ((h as i64).unsigned_abs() % n as u64) as u32
    }

    /// Routes one flat message: one [`Routed`] per partition that gets rows of it (in partition
    /// order), or one per partition for DDL, or one to the fixed partition.
    pub fn route(&self, m: FlatMessage) -> Vec<Routed> {
        let topic = self.topic_of(&m.database, &m.table);
        let n = self.partitions_of(&topic);
        if n <= 1 {
            return vec![Routed {
                topic,
                partition: self.fixed_partition(),
                message: m,
            }];
        }
        let rule = self.hash_rule(&m.database, &m.table);
        let Some(rule) = rule.filter(|_| !m.is_ddl && m.data.is_some()) else {
            let every: Vec<u32> = if m.is_ddl { (0..n).collect() } else { vec![0] };
            return every
                .into_iter()
                .map(|p| Routed {
                    topic: topic.clone(),
                    partition: Some(p),
                    message: m.clone(),
                })
                .collect();
        };
        let data = m.data.clone().unwrap_or_default();
        let old = m.old.clone();
        // Per partition, the indexes of the rows it gets.
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); n as usize];
        for (i, row) in data.iter().enumerate() {
            let p_new = self.hash(&m, &rule.by, row, n);
            parts[p_new as usize].push(i);
            if let Some(before) = old.as_ref().and_then(|o| o.get(i)) {
                // The row's before image: the after values with the changed columns' old ones.
                let mut b = row.clone();
                for (k, v) in &before.0 {
                    if let Some(slot) = b.0.iter_mut().find(|(name, _)| name == k) {
                        slot.1 = v.clone();
                    }
                }
                let p_old = self.hash(&m, &rule.by, &b, n);
                if p_old != p_new {
                    parts[p_old as usize].push(i);
                    parts[p_old as usize].sort_unstable();
                }
            }
        }
        parts
            .into_iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(p, rows)| {
                let mut part = m.clone();
                part.data = Some(rows.iter().map(|&i| data[i].clone()).collect());
                part.old = old
                    .as_ref()
                    .map(|o| rows.iter().filter_map(|&i| o.get(i).cloned()).collect());
                Routed {
                    topic: topic.clone(),
                    partition: Some(p as u32),
                    message: part,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mq::MqConfig;

    fn msg(kind: &str, rows: &[(&str, &str)], old: Option<&[(&str, &str)]>) -> FlatMessage {
        let row = |id: &str, v: &str| FlatRow::from_pairs([("id", Some(id)), ("v", Some(v))]);
        FlatMessage {
            data: Some(rows.iter().map(|(i, v)| row(i, v)).collect()),
            database: "db".into(),
            es: 1,
            gtid: String::new(),
            id: 1,
            is_ddl: false,
            mysql_type: None,
            old: old.map(|o| {
                o.iter()
                    .map(|(k, v)| FlatRow::from_pairs([(*k, Some(*v))]))
                    .collect()
            }),
            pk_names: Some(vec!["id".into()]),
            sql: String::new(),
            sql_type: None,
            table: "t".into(),
            ts: 1,
            kind: kind.into(),
        }
    }

    fn router(f: impl FnOnce(&mut MqConfig)) -> Router {
        let mut c = MqConfig::default();
        f(&mut c);
        Router::new(&c).unwrap()
    }

    #[test]
    fn java_hash_matches_java() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("hello"), 99162322);
        // Wraps like Java's int.
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn dynamic_topics_name_explicit_schema_and_schema_table() {
        let r = router(|c| {
            c.dynamic_topic = r"orders:shop\.order.*,inv,db\.t".into();
            c.topic = "rest".into();
        });
        assert_eq!(r.topic_of("shop", "order_line"), "orders");
        assert_eq!(r.topic_of("inv", "x"), "inv");
        assert_eq!(r.topic_of("db", "t"), "db_t");
        assert_eq!(r.topic_of("db", "u"), "rest");
        assert_eq!(r.topic_of("SHOP", "ORDERS"), "orders", "case-insensitive");
    }

    #[test]
    fn rows_split_by_key_and_ddl_goes_everywhere() {
        let r = router(|c| {
            c.partitions_num = 4;
            c.partition_hash = r"db\..*:$pk$".into();
        });
        let rows: Vec<(String, String)> =
            (0..40).map(|i| (i.to_string(), "x".to_string())).collect();
        let refs: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let out = r.route(msg("INSERT", &refs, None));
        assert!(out.len() > 1, "40 keys over 4 partitions");
        let total: usize = out
            .iter()
            .map(|o| o.message.data.as_ref().unwrap().len())
            .sum();
        assert_eq!(total, 40, "each row once");
        for o in &out {
            for row in o.message.data.as_ref().unwrap() {
                let id = row.get("id").unwrap().as_deref().unwrap();
                let h = java_hash("db") ^ java_hash(id);
                assert_eq!(o.partition, Some(((h as i64).unsigned_abs() % 4) as u32));
            }
        }
        let mut ddl = msg("ALTER", &[], None);
        ddl.is_ddl = true;
        ddl.data = None;
        let out = r.route(ddl);
        assert_eq!(
            out.iter().map(|o| o.partition).collect::<Vec<_>>(),
            vec![Some(0), Some(1), Some(2), Some(3)]
        );
    }

    #[test]
    fn a_key_change_reaches_the_old_and_the_new_keys_partitions() {
        let r = router(|c| {
            c.partitions_num = 8;
            c.partition_hash = r"db\.t:id".into();
            c.database_hash = false;
        });
        let p = |id: &str| ((java_hash(id) as i64).unsigned_abs() % 8) as u32;
        assert_ne!(p("1"), p("2"));
        let out = r.route(msg("UPDATE", &[("2", "x")], Some(&[("id", "1")])));
        let mut got: Vec<u32> = out.iter().filter_map(|o| o.partition).collect();
        got.sort_unstable();
        let mut want = vec![p("1"), p("2")];
        want.sort_unstable();
        assert_eq!(got, want);
        for o in &out {
            assert_eq!(
                o.message.old.as_ref().unwrap().len(),
                1,
                "old stays aligned"
            );
        }
    }

    #[test]
    fn unpartitioned_topics_have_no_partition_and_bad_rules_are_refused() {
        let r = router(|_| {});
        let out = r.route(msg("INSERT", &[("1", "a")], None));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].partition, None);
        let mut c = MqConfig {
            partition_hash: "db\\.(:id".into(),
            ..Default::default()
        };
        assert_eq!(Router::new(&c).unwrap_err().key, "partition_hash");
        c.partition_hash.clear();
        c.dynamic_topic_partition_num = "t:x".into();
        assert_eq!(
            Router::new(&c).unwrap_err().key,
            "dynamic_topic_partition_num"
        );
    }
}
