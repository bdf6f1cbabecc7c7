//! The channel definitions in ZooKeeper, as the node follows them.

use std::collections::HashMap;

use tracing::warn;
use zk_coord::otter_paths;
use zookeeper_client::Client;

use crate::model::Channel;

/// Every valid channel under `/otter/channel`, by id, with its raw JSON. Invalid definitions (or
/// one naming another id) are logged and left out.
pub(crate) async fn read_channels(
    c: &Client,
) -> Result<HashMap<u32, (Channel, Vec<u8>)>, zookeeper_client::Error> {
    let mut out = HashMap::new();
    let children = match c.list_children(otter_paths::CHANNEL_ROOT).await {
        Ok(ch) => ch,
        Err(zookeeper_client::Error::NoNode) => return Ok(out),
        Err(e) => return Err(e),
    };
    for name in children {
        let Ok(cid) = name.parse::<u32>() else {
            continue;
        };
        let data = match c.get_data(&otter_paths::channel(cid)).await {
            Ok((d, _)) => d,
            Err(zookeeper_client::Error::NoNode) => continue,
            Err(e) => return Err(e),
        };
        match Channel::from_json(&data) {
            Ok(ch) if ch.id == cid => {
                out.insert(cid, (ch, data));
            }
            Ok(_) => warn!(channel = cid, "channel JSON names another id; ignored"),
            Err(e) => warn!(channel = cid, error = %e, "invalid channel definition; ignored"),
        }
    }
    Ok(out)
}

/// Whether two channel JSONs are equal apart from the status (a status change does not restart
/// the stages).
pub(crate) fn same_definition(a: &[u8], b: &[u8]) -> bool {
    let strip = |d: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(d)
            .ok()
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("status");
                }
                v
            })
    };
    strip(a) == strip(b)
}
