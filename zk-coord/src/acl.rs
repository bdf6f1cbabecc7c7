//! Which ACL each znode we create gets.
//!
//! A session opened by [`crate::ZkConfig::connect`] with `digest = "user:password"` creates every
//! znode with `auth` ALL (only sessions authenticated as the same user may read, write, create
//! under or delete it) and nothing for `world`, except where Canal's unmodified clients must read
//! without credentials: the destination running nodes and the cluster lists
//! ([`world_readable`]), which also get `world` READ. They say which server runs what, nothing
//! more. A session without digest creates znodes open to everyone (`world:anyone` ALL), as Canal
//! does; the processes log a warning saying so.
//!
//! The policy depends on the path only, so every creator (election, registration, cursors, otter's
//! queues, otter-manager) applies the same one through [`for_path`], and `otter-manager secure`
//! can re-apply it to a tree created before digest was turned on.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use zookeeper_client::{Acl, Acls, Client, Permission};

static AUTH_ALL: [Acl; 1] = [Acl::new_const(Permission::ALL, "auth", "")];
static AUTH_ALL_WORLD_READ: [Acl; 2] = [
    Acl::new_const(Permission::ALL, "auth", ""),
    Acl::new_const(Permission::READ, "world", "anyone"),
];

/// Sessions opened with digest credentials (the policy only applies to them).
fn authenticated() -> &'static Mutex<HashSet<i64>> {
    static SESSIONS: OnceLock<Mutex<HashSet<i64>>> = OnceLock::new();
    SESSIONS.get_or_init(Default::default)
}

/// Records that `client`'s session authenticated with digest credentials.
pub(crate) fn mark_authenticated(client: &Client) {
    if let Ok(mut s) = authenticated().lock() {
        s.insert(client.session_id().0);
    }
}

/// Whether `client`'s session was opened with digest credentials by [`crate::ZkConfig::connect`].
pub fn is_authenticated(client: &Client) -> bool {
    authenticated()
        .lock()
        .map(|s| s.contains(&client.session_id().0))
        .unwrap_or(false)
}

/// Whether unauthenticated readers may read `path` (relative to the chroot): Canal's running
/// nodes (`/otter/canal/destinations/{d}/running`) and cluster lists (`/otter/canal/cluster`,
/// `/otter/canal/destinations/{d}/cluster` and their children), which Canal's Java, Go and Python
/// clients read to find the server.
pub fn world_readable(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/otter/canal/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    matches!(
        parts.as_slice(),
        ["cluster"]
            | ["cluster", _]
            | ["destinations", _, "running"]
            | ["destinations", _, "cluster"]
            | ["destinations", _, "cluster", _]
    )
}

/// The ACL `client` gives a znode it creates at `path`: see the module documentation.
pub fn for_path(client: &Client, path: &str) -> Acls<'static> {
    if !is_authenticated(client) {
        return Acls::anyone_all();
    }
    acl_list(path, true).into()
}

/// The ACL `client` gives a znode that is never world-readable (otter's channels, queues, locks).
pub fn private(client: &Client) -> Acls<'static> {
    for_path(client, "/otter")
}

/// The ACL list of [`for_path`] for an authenticated session, or `world` ALL otherwise.
pub fn acl_list(path: &str, authenticated: bool) -> &'static [Acl] {
    static ANYONE_ALL: [Acl; 1] = [Acl::new_const(Permission::ALL, "world", "anyone")];
    if !authenticated {
        &ANYONE_ALL
    } else if world_readable(path) {
        &AUTH_ALL_WORLD_READ
    } else {
        &AUTH_ALL
    }
}

/// Gives every znode under `root` (itself included) the ACL [`for_path`] gives a new one, for a
/// tree created before digest was turned on. Needs a session opened with digest credentials (the
/// ACLs grant all to that identity); returns how many znodes were updated.
pub async fn secure_tree(client: &Client, root: &str) -> Result<usize, crate::CoordError> {
    if !is_authenticated(client) {
        return Err(crate::CoordError::Config {
            key: "digest",
            message: "securing the tree needs a session with digest credentials".into(),
        });
    }
    let op = |op: &'static str, path: &str| {
        let path = path.to_string();
        move |source| crate::CoordError::Op { op, path, source }
    };
    let mut stack = vec![root.to_string()];
    let mut updated = 0;
    while let Some(path) = stack.pop() {
        let children = match client.list_children(&path).await {
            Ok(c) => c,
            // Gone meanwhile (an ephemeral node, a finished process).
            Err(zookeeper_client::Error::NoNode) => continue,
            Err(e) => return Err(op("list_children", &path)(e)),
        };
        match client.set_acl(&path, acl_list(&path, true), None).await {
            Ok(_) => updated += 1,
            Err(zookeeper_client::Error::NoNode) => continue,
            Err(e) => return Err(op("set_acl", &path)(e)),
        }
        let base = if path == "/" { "" } else { path.as_str() };
        stack.extend(children.into_iter().map(|c| format!("{base}/{c}")));
    }
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_running_and_cluster_nodes_are_world_readable() {
        for p in [
            "/otter/canal/cluster",
            "/otter/canal/cluster/10.0.0.1:11111",
            "/otter/canal/destinations/example/running",
            "/otter/canal/destinations/example/cluster",
            "/otter/canal/destinations/example/cluster/10.0.0.1:11111",
        ] {
            assert!(world_readable(p), "{p}");
        }
        for p in [
            "/otter",
            "/otter/canal",
            "/otter/canal/destinations",
            "/otter/canal/destinations/example",
            "/otter/canal/destinations/example/1001",
            "/otter/canal/destinations/example/1001/cursor",
            "/otter/canal/destinations/example/1001/running",
            "/otter/canal/destinations/example/schema-history",
            "/otter/channel/1",
            "/otter/node/1",
            "/otter/canal/destinations/example/running/x",
        ] {
            assert!(!world_readable(p), "{p}");
        }
    }
}
