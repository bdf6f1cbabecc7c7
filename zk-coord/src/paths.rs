//! Canal's znode layout (reference §4.1). Every function returns an absolute path (relative to
//! the chroot, if any).

/// `/otter/canal`.
pub const ROOT: &str = "/otter/canal";

/// `/otter/canal/cluster`: one ephemeral child per live canal-server.
pub fn cluster() -> String {
    format!("{ROOT}/cluster")
}

/// `/otter/canal/cluster/{ip:port}`.
pub fn cluster_node(address: &str) -> String {
    format!("{ROOT}/cluster/{address}")
}

/// `/otter/canal/destinations`.
pub fn destinations() -> String {
    format!("{ROOT}/destinations")
}

/// `/otter/canal/destinations/{dest}`.
pub fn destination(dest: &str) -> String {
    format!("{ROOT}/destinations/{dest}")
}

/// `/otter/canal/destinations/{dest}/cluster`: candidates for a destination.
pub fn destination_cluster(dest: &str) -> String {
    format!("{ROOT}/destinations/{dest}/cluster")
}

/// `/otter/canal/destinations/{dest}/cluster/{ip:port}`.
pub fn destination_cluster_node(dest: &str, address: &str) -> String {
    format!("{ROOT}/destinations/{dest}/cluster/{address}")
}

/// `/otter/canal/destinations/{dest}/running`: the active server.
pub fn running(dest: &str) -> String {
    format!("{ROOT}/destinations/{dest}/running")
}

/// `/otter/canal/destinations/{dest}/{clientId}`: exists while the client is subscribed.
pub fn client(dest: &str, client_id: i16) -> String {
    format!("{ROOT}/destinations/{dest}/{client_id}")
}

/// `/otter/canal/destinations/{dest}/{clientId}/cursor`: LogPosition JSON.
pub fn cursor(dest: &str, client_id: i16) -> String {
    format!("{ROOT}/destinations/{dest}/{client_id}/cursor")
}

/// `/otter/canal/destinations/{dest}/{clientId}/filter`: the client's filter text.
pub fn filter(dest: &str, client_id: i16) -> String {
    format!("{ROOT}/destinations/{dest}/{client_id}/filter")
}

/// `/otter/canal/destinations/{dest}/{clientId}/running`: the active consumer process.
pub fn client_running(dest: &str, client_id: i16) -> String {
    format!("{ROOT}/destinations/{dest}/{client_id}/running")
}

/// `/otter/canal/destinations/{dest}/schema-history`: our schema history (not in Canal).
pub fn schema_history(dest: &str) -> String {
    format!("{ROOT}/destinations/{dest}/schema-history")
}

/// `/otter/canal/destinations/{dest}/snapshot`: the destination's snapshot progress (JSON).
pub fn snapshot(dest: &str) -> String {
    format!("{ROOT}/destinations/{dest}/snapshot")
}

#[cfg(test)]
mod tests {
    #[test]
    fn canal_layout() {
        assert_eq!(
            super::running("example"),
            "/otter/canal/destinations/example/running"
        );
        assert_eq!(
            super::cursor("example", 1001),
            "/otter/canal/destinations/example/1001/cursor"
        );
        assert_eq!(
            super::cluster_node("10.0.0.1:11111"),
            "/otter/canal/cluster/10.0.0.1:11111"
        );
        assert_eq!(
            super::destination_cluster_node("e", "1.2.3.4:5"),
            "/otter/canal/destinations/e/cluster/1.2.3.4:5"
        );
    }
}
