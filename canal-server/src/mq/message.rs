//! A batch of stored entries → the messages to publish, in order: Canal's flat JSON (one per
//! ROWDATA entry, split by partition, built by `canal-client`'s flat module so it is what
//! `canal-client tail` prints) or the protobuf `Packet{MESSAGES}` of the batch's entries.

use bytes::{Bytes, BytesMut};
use canal_client::flat::{flat_message, now_ms, write_flat_json_lines, FlatMessage};
use canal_protocol::{Entry, EntryType};
use prost::Message as _;

use super::route::Router;
use super::{MqConfig, MqError, OversizePolicy};

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Topic (routing key base).
    pub topic: String,
    /// Partition, `None` when the topic is not partitioned.
    pub partition: Option<u32>,
    /// Body.
    pub payload: Vec<u8>,
    /// Flat JSON (else protobuf).
    pub json: bool,
    /// Rows in it.
    pub rows: u64,
}

/// Builds the messages of batch `batch_id`.
pub fn build(
    c: &MqConfig,
    router: &Router,
    batch_id: i64,
    entries: &[Bytes],
) -> Result<Vec<Outgoing>, MqError> {
    let decoded = entries
        .iter()
        .map(|b| Entry::decode(b.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MqError::Encode(format!("stored entry does not decode: {e}")))?;
    if !c.flat_message {
        return protobuf(c, router, batch_id, entries, &decoded);
    }
    let ts = now_ms();
    let mut out = Vec::new();
    let mut line = Vec::new();
    for e in &decoded {
        if e.entry_type() != EntryType::Rowdata {
            continue;
        }
        // Unpartitioned topics: the JSON straight from the entry's bytes (`tail`'s writer, the
        // same bytes as `FlatMessage::to_json`); a message over the limit takes the path below,
        // which splits it.
        let (schema, table) = e
            .header
            .as_ref()
            .map_or(("", ""), |h| (h.schema_name(), h.table_name()));
        let topic = router.topic_of(schema, table);
        if router.partitions_of(&topic) <= 1 {
            line.clear();
            let summary = write_flat_json_lines(batch_id, std::slice::from_ref(e), ts, &mut line)
                .map_err(|e| MqError::Encode(e.to_string()))?;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.is_empty() {
                continue;
            }
            if line.len() <= c.max_message_bytes {
                out.push(Outgoing {
                    topic,
                    partition: router.fixed_partition(),
                    payload: line.clone(),
                    json: true,
                    rows: summary.rows,
                });
                continue;
            }
        }
        let Some(m) = flat_message(batch_id, e, ts).map_err(|e| MqError::Encode(e.to_string()))?
        else {
            continue;
        };
        for r in router.route(m) {
            push_flat(c, r.topic, r.partition, r.message, &mut out)?;
        }
    }
    Ok(out)
}

/// Appends `m`, split by rows while it is over the size limit (policy `split_rows`).
fn push_flat(
    c: &MqConfig,
    topic: String,
    partition: Option<u32>,
    m: FlatMessage,
    out: &mut Vec<Outgoing>,
) -> Result<(), MqError> {
    let json = m.to_json().into_bytes();
    let rows = m.data.as_ref().map_or(0, Vec::len);
    if json.len() <= c.max_message_bytes {
        out.push(Outgoing {
            topic,
            partition,
            payload: json,
            json: true,
            rows: rows as u64,
        });
        return Ok(());
    }
    if c.oversize == OversizePolicy::Stop || rows < 2 {
        return Err(MqError::TooLarge {
            what: format!(
                "flat message of {}.{} ({} {}, {rows} rows)",
                m.database, m.table, m.kind, m.es
            ),
            bytes: json.len(),
            limit: c.max_message_bytes,
        });
    }
    let half = rows / 2;
    let (mut a, mut b) = (m.clone(), m);
    let data = a.data.take().unwrap_or_default();
    let old = a.old.take();
    a.data = Some(data[..half].to_vec());
    b.data = Some(data[half..].to_vec());
    if let Some(o) = old {
        a.old = Some(o[..half.min(o.len())].to_vec());
        b.old = Some(o[half.min(o.len())..].to_vec());
    }
    push_flat(c, topic.clone(), partition, a, out)?;
    push_flat(c, topic, partition, b, out)
}

/// Protobuf mode: the batch's entries as Canal's `Packet{MESSAGES}` (without the TCP length
/// prefix); with dynamic topics, the ROWDATA entries grouped by topic in batch order.
fn protobuf(
    c: &MqConfig,
    router: &Router,
    batch_id: i64,
    raw: &[Bytes],
    decoded: &[Entry],
) -> Result<Vec<Outgoing>, MqError> {
    let mut groups: Vec<(String, Vec<&Bytes>, u64)> = Vec::new();
    for (bytes, e) in raw.iter().zip(decoded) {
        let topic = if c.dynamic_topic.trim().is_empty() {
            c.topic.clone()
        } else {
            if e.entry_type() != EntryType::Rowdata {
                continue;
            }
            let h = e.header.clone().unwrap_or_default();
            router.topic_of(h.schema_name(), h.table_name())
        };
        let rows = e
            .header
            .as_ref()
            .and_then(|h| h.props.iter().find(|p| p.key() == "rowsCount"))
            .and_then(|p| p.value().parse().ok())
            .unwrap_or(0);
        match groups.iter_mut().find(|g| g.0 == topic) {
            Some(g) => {
                g.1.push(bytes);
                g.2 += rows;
            }
            None => groups.push((topic, vec![bytes], rows)),
        }
    }
    let mut out = Vec::new();
    for (topic, entries, rows) in groups {
        let mut buf = BytesMut::new();
        canal_protocol::encode_raw_messages(batch_id, &entries, &mut buf)
            .map_err(|e| MqError::Encode(e.to_string()))?;
        let payload = buf
            .get(canal_protocol::frame::LENGTH_PREFIX_LEN..)
            .unwrap_or_default()
            .to_vec();
        if payload.len() > c.max_message_bytes {
            return Err(MqError::TooLarge {
                what: format!("protobuf message of batch {batch_id} to {topic}"),
                bytes: payload.len(),
                limit: c.max_message_bytes,
            });
        }
        out.push(Outgoing {
            topic,
            partition: (c.partition > 0).then_some(c.partition),
            payload,
            json: false,
            rows,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canal_protocol::entry::{Column, Header, RowChange, RowData};
    use canal_protocol::EventType;

    fn insert(rows: usize) -> Bytes {
        let change = RowChange {
            event_type: Some(EventType::Insert as i32),
            is_ddl: Some(false),
            row_datas: (0..rows)
                .map(|i| RowData {
                    after_columns: vec![Column {
                        name: Some("id".into()),
                        value: Some(format!("{i:0100}")),
                        is_key: Some(true),
                        sql_type: Some(4),
                        mysql_type: Some("int".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let e = Entry {
            header: Some(Header {
                schema_name: Some("db".into()),
                table_name: Some("t".into()),
                event_type: Some(EventType::Insert as i32),
                ..Default::default()
            }),
            entry_type: Some(EntryType::Rowdata as i32),
            store_value: Some(change.encode_to_vec().into()),
        };
        e.encode_to_vec().into()
    }

    fn config(limit: usize, oversize: OversizePolicy) -> MqConfig {
        MqConfig {
            max_message_bytes: limit,
            oversize,
            ..Default::default()
        }
    }

    #[test]
    fn oversize_messages_split_by_rows_keep_every_row_in_order() {
        let c = config(2048, OversizePolicy::SplitRows);
        let r = Router::new(&c).unwrap();
        let out = build(&c, &r, 1, &[insert(40)]).unwrap();
        assert!(out.len() > 1, "split");
        assert!(out.iter().all(|m| m.payload.len() <= 2048));
        let ids: Vec<String> = out
            .iter()
            .flat_map(|m| {
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                v["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let want: Vec<String> = (0..40).map(|i| format!("{i:0100}")).collect();
        assert_eq!(ids, want);
        assert_eq!(out.iter().map(|m| m.rows).sum::<u64>(), 40);
    }

    #[test]
    fn oversize_stop_policy_and_a_single_huge_row_are_errors() {
        let c = config(2048, OversizePolicy::Stop);
        let r = Router::new(&c).unwrap();
        let e = build(&c, &r, 1, &[insert(40)]).unwrap_err();
        assert!(matches!(e, MqError::TooLarge { limit: 2048, .. }), "{e}");
        assert!(!e.is_retryable());
        let c = config(1024, OversizePolicy::SplitRows);
        let mut big = insert(1);
        // One row of ~3 KB cannot be split.
        let mut entry = Entry::decode(big.clone()).unwrap();
        let mut change = RowChange::decode(entry.store_value.clone().unwrap()).unwrap();
        change.row_datas[0].after_columns[0].value = Some("x".repeat(3000));
        entry.store_value = Some(change.encode_to_vec().into());
        big = entry.encode_to_vec().into();
        let e = build(&c, &r, 1, &[big]).unwrap_err();
        assert!(e.to_string().contains("max_message_bytes = 1024"), "{e}");
    }

    #[test]
    fn protobuf_mode_is_canal_packet_of_the_batch() {
        let c = MqConfig {
            flat_message: false,
            ..Default::default()
        };
        let r = Router::new(&c).unwrap();
        let entries = [insert(2), insert(3)];
        let out = build(&c, &r, 7, &entries).unwrap();
        assert_eq!(out.len(), 1);
        let p = canal_protocol::Packet::decode(out[0].payload.as_slice()).unwrap();
        let m = canal_protocol::packet::Messages::decode(p.body.clone()).unwrap();
        assert_eq!(m.batch_id, 7);
        assert_eq!(m.messages, entries.to_vec());
    }
}
