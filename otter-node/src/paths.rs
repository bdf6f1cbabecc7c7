//! Otter's znode layout.

/// `/otter/node`: parent of the nodes' ephemeral registrations.
pub fn nodes() -> String {
    "/otter/node".into()
}

/// `/otter/node/{nid}`: ephemeral, holds the node's HTTP address.
pub fn node(nid: u32) -> String {
    format!("/otter/node/{nid}")
}

/// `/otter/channel`: parent of channel definitions.
pub fn channels() -> String {
    "/otter/channel".into()
}

/// `/otter/channel/{cid}`: the channel JSON.
pub fn channel(cid: u32) -> String {
    format!("/otter/channel/{cid}")
}

/// `/otter/channel/{cid}/{pid}`.
pub fn pipeline(cid: u32, pid: u32) -> String {
    format!("/otter/channel/{cid}/{pid}")
}

/// `/otter/channel/{cid}/{pid}/mainstem`: ephemeral, the node running Select.
pub fn mainstem(cid: u32, pid: u32) -> String {
    format!("/otter/channel/{cid}/{pid}/mainstem")
}

/// `/otter/channel/{cid}/{pid}/process`: the window of batches in flight.
pub fn processes(cid: u32, pid: u32) -> String {
    format!("/otter/channel/{cid}/{pid}/process")
}

/// `/otter/channel/{cid}/{pid}/process/{name}`.
pub fn process(cid: u32, pid: u32, name: &str) -> String {
    format!("/otter/channel/{cid}/{pid}/process/{name}")
}

/// `/otter/channel/{cid}/{pid}/termin`: batches Load finished, for Select to ack in order.
pub fn termins(cid: u32, pid: u32) -> String {
    format!("/otter/channel/{cid}/{pid}/termin")
}

/// `/otter/channel/{cid}/{pid}/termin/{id}`.
pub fn termin(cid: u32, pid: u32, id: u64) -> String {
    format!("/otter/channel/{cid}/{pid}/termin/{id:010}")
}

/// The process id in a sequential node name (`p0000000042` → 42).
pub fn process_id(name: &str) -> Option<u64> {
    name.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// The canal destination name of a pipeline's embedded Select.
pub fn destination(pid: u32) -> String {
    format!("otter-pipeline-{pid}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        assert_eq!(super::process_id("p0000000042"), Some(42));
        assert_eq!(super::process_id("0000000007"), Some(7));
        assert_eq!(super::process_id("lock"), None);
        assert_eq!(
            super::termin(1, 2, 42),
            "/otter/channel/1/2/termin/0000000042"
        );
    }
}
