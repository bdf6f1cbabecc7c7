//! Otter's znode layout, shared by otter-node and otter-manager. Every function returns an
//! absolute path (relative to the chroot, if any).

/// `/otter/channel`: one persistent child per channel.
pub const CHANNEL_ROOT: &str = "/otter/channel";

/// `/otter/node`: one ephemeral child per live node.
pub const NODE_ROOT: &str = "/otter/node";

/// `/otter/node`: parent of the nodes' ephemeral registrations.
pub fn nodes() -> String {
    NODE_ROOT.into()
}

/// `/otter/node/{nid}`: ephemeral, holds the node's HTTP address.
pub fn node(nid: u32) -> String {
    format!("{NODE_ROOT}/{nid}")
}

/// `/otter/channel`: parent of channel definitions.
pub fn channels() -> String {
    CHANNEL_ROOT.into()
}

/// `/otter/channel/{cid}`: the channel JSON.
pub fn channel(cid: u32) -> String {
    format!("{CHANNEL_ROOT}/{cid}")
}

/// `/otter/channel/{cid}/{pid}`.
pub fn pipeline(cid: u32, pid: u32) -> String {
    format!("{CHANNEL_ROOT}/{cid}/{pid}")
}

/// `/otter/channel/{cid}/{pid}/mainstem`: ephemeral, the node running Select.
pub fn mainstem(cid: u32, pid: u32) -> String {
    format!("{CHANNEL_ROOT}/{cid}/{pid}/mainstem")
}

/// `/otter/channel/{cid}/{pid}/snapshot`: an operator's snapshot request and the node's answer.
pub fn snapshot_request(cid: u32, pid: u32) -> String {
    format!("{CHANNEL_ROOT}/{cid}/{pid}/snapshot")
}

/// `/otter/channel/{cid}/{pid}/delay`: the delay Load measured last (JSON `{delay_ms, at_ms}`).
pub fn delay(cid: u32, pid: u32) -> String {
    format!("{CHANNEL_ROOT}/{cid}/{pid}/delay")
}

/// `/otter/channel/{cid}/{pid}/process`: the window of batches in flight.
pub fn processes(cid: u32, pid: u32) -> String {
    format!("{CHANNEL_ROOT}/{cid}/{pid}/process")
}

/// The name of process `id` of a window: `p{id}` for a batch staged through the workers, `t{id}`
/// for one its Select node extracted and transformed itself (every stage done at creation, its
/// data holding what Load pulls), the id on ten digits. Select numbers the processes of its
/// window itself, from 0 after each reset, so that it can create a process and a child of it in
/// one transaction (a multi cannot name a child of a sequential node it creates).
pub fn process_name(inline: bool, id: u64) -> String {
    let prefix = if inline { 't' } else { 'p' };
    format!("{prefix}{id:010}")
}

/// Whether a process node name is an inline one (see [`process_name`]).
pub fn is_inline_process(name: &str) -> bool {
    name.starts_with('t')
}

/// `/otter/channel/{cid}/{pid}/process/{name}`.
pub fn process(cid: u32, pid: u32, name: &str) -> String {
    format!("{CHANNEL_ROOT}/{cid}/{pid}/process/{name}")
}

/// `/otter/channel/{cid}/{pid}/termin`: batches Load finished, for Select to ack in order.
pub fn termins(cid: u32, pid: u32) -> String {
    format!("{CHANNEL_ROOT}/{cid}/{pid}/termin")
}

/// `/otter/channel/{cid}/{pid}/termin/{id}` (the id on ten digits, like the process's sequence).
pub fn termin(cid: u32, pid: u32, id: u64) -> String {
    format!("{CHANNEL_ROOT}/{cid}/{pid}/termin/{id:010}")
}

/// The process id in a process node name (`p0000000042` → 42, `0000000007` → 7).
pub fn process_id(name: &str) -> Option<u64> {
    name.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        assert_eq!(super::process_id("p0000000042"), Some(42));
        assert_eq!(super::process_id("0000000007"), Some(7));
        assert_eq!(super::process_id("t0000000043"), Some(43));
        assert!(super::is_inline_process("t0000000043"));
        assert!(!super::is_inline_process("p0000000042"));
        assert_eq!(super::process_id("lock"), None);
        assert_eq!(
            super::termin(1, 2, 42),
            "/otter/channel/1/2/termin/0000000042"
        );
    }

    #[test]
    fn roots() {
        assert_eq!(super::channel(7), "/otter/channel/7");
        assert_eq!(super::node(3), "/otter/node/3");
        assert_eq!(super::process_name(false, 42), "p0000000042");
        assert_eq!(super::process_name(true, 43), "t0000000043");
    }
}
