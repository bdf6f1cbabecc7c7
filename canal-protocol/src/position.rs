//! Canal's JSON position documents: client cursors and client identities.
//!
//! Canal writes these with fastjson2: object keys in alphabetical order, null
//! fields omitted, no whitespace. The types below declare their fields in
//! alphabetical order and skip `None`, so `serde_json::to_string` produces the
//! same bytes as Canal. Unknown keys are ignored when reading.
//!
//! * The ZooKeeper cursor node (`…/{clientId}/cursor`) holds a [`LogPosition`]
//!   with a leading `"@type"` key: use [`LogPosition::to_cursor_json`] and
//!   [`LogPosition::from_cursor_json`].
//! * File mode's `meta.dat` ([`FileMetaData`]) holds the same classes
//!   without `@type`.
//!
//! The cursor's position key is spelled `postion`: Canal's historical
//! misspelling, kept for compatibility.

use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// The Java class name Canal writes as `@type` on a cursor node.
pub const LOG_POSITION_TYPE: &str = "com.alibaba.otter.canal.protocol.position.LogPosition";

/// `LogIdentity.slaveId` as Canal always writes it.
pub const DEFAULT_SLAVE_ID: i64 = -1;

/// Errors from reading position documents or client identities.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PositionError {
    /// The text is not valid JSON of the expected shape.
    #[error("invalid position JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The cursor's `@type` names a class other than [`LOG_POSITION_TYPE`].
    #[error("unexpected @type {0:?} in cursor JSON")]
    UnexpectedType(String),
    /// A client id is not a decimal integer in −32768..=32767 (Canal parses it
    /// with Java's `Short.parseShort`).
    #[error("client id {0:?} is not a 16-bit decimal integer")]
    InvalidClientId(String),
}

/// A MySQL server address as fastjson writes a Java `InetSocketAddress`:
/// `{"address":"10.0.0.1","port":3306}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceAddress {
    /// Host IP address text.
    pub address: String,
    /// TCP port.
    pub port: u16,
}

/// Which MySQL server a position belongs to (`LogIdentity`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogIdentity {
    /// Always −1 in Canal; read as −1 when absent.
    #[serde(default = "default_slave_id")]
    pub slave_id: i64,
    /// The MySQL master; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<SourceAddress>,
}

const fn default_slave_id() -> i64 {
    DEFAULT_SLAVE_ID
}

impl Default for LogIdentity {
    fn default() -> Self {
        Self {
            slave_id: DEFAULT_SLAVE_ID,
            source_address: None,
        }
    }
}

impl LogIdentity {
    /// An identity for the MySQL server at `address:port`, slaveId −1.
    pub fn new(address: impl Into<String>, port: u16) -> Self {
        Self {
            slave_id: DEFAULT_SLAVE_ID,
            source_address: Some(SourceAddress {
                address: address.into(),
                port,
            }),
        }
    }
}

/// A point in the binlog (`EntryPosition`). Nullable Java fields are
/// `Option`s and are omitted when `None`; `included` is always written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryPosition {
    /// GTID set of the entry (`""` outside GTID mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// Whether the entry at this position was already consumed; Canal's
    /// cursors always write `false`.
    #[serde(default)]
    pub included: bool,
    /// Extension (not written by Canal, ignored by it): `true` on the cursor of a client that
    /// subscribed and has acked nothing yet. It points at the start of that client's stream, an
    /// event not delivered yet, so a server resuming from it must not skip that event. Written
    /// only when `true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inclusive: bool,
    /// Binlog file name, e.g. `mysql-bin.000023`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_name: Option<String>,
    /// Start offset of the event (Header.logfileOffset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// MySQL server id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<i64>,
    /// Event time in milliseconds since the epoch (Header.executeTime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// A client cursor (`LogPosition`): server identity plus binlog position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogPosition {
    /// The MySQL server the position refers to.
    #[serde(default)]
    pub identity: LogIdentity,
    /// The position; serialized under Canal's misspelled key `postion`.
    #[serde(rename = "postion", default)]
    pub position: EntryPosition,
}

#[derive(Serialize)]
struct CursorOut<'a> {
    #[serde(rename = "@type")]
    type_name: &'static str,
    #[serde(flatten)]
    position: &'a LogPosition,
}

#[derive(Deserialize)]
struct CursorIn {
    #[serde(rename = "@type", default)]
    type_name: Option<String>,
    #[serde(flatten)]
    position: LogPosition,
}

impl LogPosition {
    /// The ZooKeeper cursor node text: `{"@type":"…LogPosition",…}`, byte for
    /// byte as Canal writes it.
    pub fn to_cursor_json(&self) -> String {
        serde_json::to_string(&CursorOut {
            type_name: LOG_POSITION_TYPE,
            position: self,
        })
        .expect("a LogPosition always serializes")
    }

    /// Reads a cursor node. `@type` may be absent; if present it must be
    /// [`LOG_POSITION_TYPE`].
    pub fn from_cursor_json(text: &str) -> Result<Self, PositionError> {
        let doc: CursorIn = serde_json::from_str(text)?;
        match doc.type_name {
            Some(name) if name != LOG_POSITION_TYPE => Err(PositionError::UnexpectedType(name)),
            _ => Ok(doc.position),
        }
    }
}

/// A consumer of a destination (`ClientIdentity`).
///
/// Equality and hashing use only `destination` and `client_id`; the filter is
/// not part of the identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIdentity {
    /// Client id; every reference client uses 1001.
    pub client_id: i16,
    /// Destination (instance) name.
    #[serde(default)]
    pub destination: String,
    /// Subscription filter; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl PartialEq for ClientIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.client_id == other.client_id && self.destination == other.destination
    }
}

impl Eq for ClientIdentity {}

impl Hash for ClientIdentity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.client_id.hash(state);
        self.destination.hash(state);
    }
}

impl ClientIdentity {
    /// An identity without a filter.
    pub fn new(destination: impl Into<String>, client_id: i16) -> Self {
        Self {
            client_id,
            destination: destination.into(),
            filter: None,
        }
    }

    /// Parses a wire `client_id` string like Java's `Short.parseShort`: an
    /// optional sign and ASCII decimal digits, no whitespace, in range.
    pub fn parse_client_id(text: &str) -> Result<i16, PositionError> {
        text.parse::<i16>()
            .map_err(|_| PositionError::InvalidClientId(text.to_owned()))
    }

    /// Builds an identity from the `destination`, `client_id` and `filter`
    /// fields of a request.
    pub fn from_wire(
        destination: &str,
        client_id: &str,
        filter: &str,
    ) -> Result<Self, PositionError> {
        Ok(Self {
            client_id: Self::parse_client_id(client_id)?,
            destination: destination.to_owned(),
            filter: Some(filter.to_owned()),
        })
    }
}

/// One client's record in file mode's `conf/{dest}/meta.dat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMetaClientData {
    /// The subscribed client.
    pub client_identity: ClientIdentity,
    /// Its cursor (no `@type`); omitted when the client has none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<LogPosition>,
}

/// The whole `meta.dat` document of one destination in file mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMetaData {
    /// One record per subscribed client.
    #[serde(default)]
    pub client_datas: Vec<FileMetaClientData>,
    /// Destination name.
    #[serde(default)]
    pub destination: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURSOR: &str = r#"{"@type":"com.alibaba.otter.canal.protocol.position.LogPosition","identity":{"slaveId":-1,"sourceAddress":{"address":"10.0.0.1","port":3306}},"postion":{"gtid":"","included":false,"journalName":"mysql-bin.000023","position":43893,"serverId":1,"timestamp":1536312619000}}"#;

    fn sample() -> LogPosition {
        LogPosition {
            identity: LogIdentity::new("10.0.0.1", 3306),
            position: EntryPosition {
                gtid: Some(String::new()),
                included: false,
                inclusive: false,
                journal_name: Some("mysql-bin.000023".into()),
                position: Some(43893),
                server_id: Some(1),
                timestamp: Some(1536312619000),
            },
        }
    }

    #[test]
    fn cursor_round_trips_byte_for_byte() {
        let parsed = LogPosition::from_cursor_json(CURSOR).unwrap();
        assert_eq!(parsed, sample());
        assert_eq!(parsed.to_cursor_json(), CURSOR);
    }

    #[test]
    fn plain_form_has_no_type() {
        let text = serde_json::to_string(&sample()).unwrap();
        assert_eq!(
            text,
            CURSOR.replace(&format!(r#""@type":"{LOG_POSITION_TYPE}","#), "")
        );
        assert_eq!(
            serde_json::from_str::<LogPosition>(&text).unwrap(),
            sample()
        );
        // A cursor without @type is accepted too.
        assert_eq!(LogPosition::from_cursor_json(&text).unwrap(), sample());
    }

    #[test]
    fn wrong_type_rejected() {
        let text = CURSOR.replace("position.LogPosition", "position.EntryPosition");
        assert!(matches!(
            LogPosition::from_cursor_json(&text),
            Err(PositionError::UnexpectedType(name)) if name.ends_with("EntryPosition")
        ));
        assert!(matches!(
            LogPosition::from_cursor_json("{"),
            Err(PositionError::Json(_))
        ));
    }

    #[test]
    fn nulls_omitted_and_unknown_keys_ignored() {
        let minimal = LogPosition::default();
        assert_eq!(
            minimal.to_cursor_json(),
            r#"{"@type":"com.alibaba.otter.canal.protocol.position.LogPosition","identity":{"slaveId":-1},"postion":{"included":false}}"#
        );
        let text = r#"{"postion":{"journalName":"a","position":4,"extra":1},"other":true}"#;
        let parsed = LogPosition::from_cursor_json(text).unwrap();
        assert_eq!(parsed.identity.slave_id, -1);
        assert_eq!(parsed.position.journal_name.as_deref(), Some("a"));
        assert_eq!(parsed.position.position, Some(4));
        assert_eq!(parsed.position.gtid, None);
    }

    #[test]
    fn meta_dat_round_trip() {
        let text = format!(
            r#"{{"clientDatas":[{{"clientIdentity":{{"clientId":1001,"destination":"example","filter":""}},"cursor":{}}}],"destination":"example"}}"#,
            serde_json::to_string(&sample()).unwrap()
        );
        let meta: FileMetaData = serde_json::from_str(&text).unwrap();
        assert_eq!(meta.destination, "example");
        assert_eq!(meta.client_datas.len(), 1);
        let client = &meta.client_datas[0];
        assert_eq!(client.client_identity, ClientIdentity::new("example", 1001));
        assert_eq!(client.client_identity.filter.as_deref(), Some(""));
        assert_eq!(client.cursor.as_ref(), Some(&sample()));
        assert_eq!(serde_json::to_string(&meta).unwrap(), text);
    }

    #[test]
    fn client_identity_ignores_filter_and_parses_like_java_short() {
        let a = ClientIdentity::from_wire("example", "1001", ".*\\..*").unwrap();
        let b = ClientIdentity::new("example", 1001);
        assert_eq!(a, b);
        assert_ne!(a, ClientIdentity::new("other", 1001));
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"clientId":1001,"destination":"example"}"#
        );
        assert_eq!(ClientIdentity::parse_client_id("-32768").unwrap(), i16::MIN);
        assert_eq!(ClientIdentity::parse_client_id("+7").unwrap(), 7);
        for bad in ["", "32768", " 1", "1 ", "abc", "1.0", "0x10"] {
            assert!(
                matches!(
                    ClientIdentity::parse_client_id(bad),
                    Err(PositionError::InvalidClientId(_))
                ),
                "{bad:?}"
            );
        }
    }
}
