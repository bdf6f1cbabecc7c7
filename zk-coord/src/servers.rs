//! The connect string with preference groups: `obs1:2181,obs2:2181;zk1:2181,zk2:2181,zk3:2181`.
//!
//! Groups are separated by `;`, members of a group by `,`. A new session is opened in the first
//! group that answers: the ZooKeeper client (zookeeper-client 0.11) shuffles the members it is
//! given and would send a remote site's sessions across the ocean if it saw the voters too, so each
//! group is offered to it alone. Within the group the client picks any member, and once a session
//! is open it moves only between that group's members (so it keeps its observers while one of them
//! is up). A session that expires, or could not be held, is reopened from the first group again:
//! a node back from a fall-back to the voters returns to its local observers with its next session.
//!
//! Without a `;` the string is one group, exactly as before.

use std::fmt;

/// A parsed connect string: groups of `host:port` in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerGroups {
    groups: Vec<Vec<String>>,
    /// A chroot written at the end of the string (`a:1;b:2/canal`), for every group.
    chroot: String,
}

/// Why a connect string is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServersError {
    /// Nothing in it.
    #[error("must list host:port of the ZooKeeper servers")]
    Empty,
    /// A group (between `;`) with no member.
    #[error("group {group} (counting from 1, groups separated by ';') lists no server")]
    EmptyGroup {
        /// 1-based group number.
        group: usize,
    },
    /// A member that is not `host:port`.
    #[error("{member:?} in group {group} is not host:port")]
    BadMember {
        /// 1-based group number.
        group: usize,
        /// The text.
        member: String,
    },
}

impl ServerGroups {
    /// Parses `a:1,b:2;c:3[/chroot]`. Whitespace around members is ignored; an empty member (a
    /// trailing comma) is ignored too, but an empty group is an error, as is a member without a
    /// port. A chroot at the end (the Java client's syntax) applies to every group.
    pub fn parse(s: &str) -> Result<Self, ServersError> {
        let (s, chroot) = match s.find('/') {
            Some(i) => (&s[..i], s[i..].trim_end().to_string()),
            None => (s, String::new()),
        };
        if s.trim().is_empty() {
            return Err(ServersError::Empty);
        }
        let mut groups = Vec::new();
        for (i, group) in s.split(';').enumerate() {
            let members: Vec<String> = group
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            if members.is_empty() {
                return Err(ServersError::EmptyGroup { group: i + 1 });
            }
            for m in &members {
                let ok = m
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !ok {
                    return Err(ServersError::BadMember {
                        group: i + 1,
                        member: m.clone(),
                    });
                }
            }
            groups.push(members);
        }
        Ok(Self { groups, chroot })
    }

    /// The groups in the order they are tried.
    pub fn groups(&self) -> &[Vec<String>] {
        &self.groups
    }

    /// Whether there is more than one group (so a connect must fail fast in one to try the next).
    pub fn has_fallback(&self) -> bool {
        self.groups.len() > 1
    }

    /// The connect string the ZooKeeper client gets for group `i`: its members joined by `,`,
    /// then the chroot written in the string, then `chroot` (the config's own key).
    pub fn connect_string(&self, i: usize, chroot: &str) -> Option<String> {
        self.groups.get(i).map(|g| {
            let mut s = g.join(",");
            s.push_str(&self.chroot);
            s.push_str(chroot);
            s
        })
    }
}

impl fmt::Display for ServerGroups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self.groups.iter().map(|g| g.join(",")).collect();
        f.write_str(&groups.join(";"))?;
        f.write_str(&self.chroot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_group_is_the_plain_connect_string() {
        let g = ServerGroups::parse("a:1, b:2").unwrap();
        assert!(!g.has_fallback());
        assert_eq!(g.connect_string(0, "").as_deref(), Some("a:1,b:2"));
        assert_eq!(g.connect_string(1, ""), None);
    }

    #[test]
    fn groups_keep_their_order_and_get_the_chroot() {
        let g = ServerGroups::parse("obs1:2181,obs2:2181;zk1:2181,zk2:2181,zk3:2181").unwrap();
        assert!(g.has_fallback());
        assert_eq!(g.groups().len(), 2);
        assert_eq!(
            g.connect_string(0, "/prod").as_deref(),
            Some("obs1:2181,obs2:2181/prod")
        );
        assert_eq!(
            g.connect_string(1, "/prod").as_deref(),
            Some("zk1:2181,zk2:2181,zk3:2181/prod")
        );
        assert_eq!(
            g.to_string(),
            "obs1:2181,obs2:2181;zk1:2181,zk2:2181,zk3:2181"
        );
    }

    #[test]
    fn bad_strings_say_where() {
        assert_eq!(ServerGroups::parse(" "), Err(ServersError::Empty));
        assert_eq!(
            ServerGroups::parse("a:1;;b:2"),
            Err(ServersError::EmptyGroup { group: 2 })
        );
        assert_eq!(
            ServerGroups::parse("a:1;b"),
            Err(ServersError::BadMember {
                group: 2,
                member: "b".into()
            })
        );
        assert!(ServerGroups::parse("a:1;b:x").is_err());
        assert!(ServerGroups::parse("[::1]:2181;b:2").is_ok());
        assert!(ServerGroups::parse("/canal").is_err());
    }

    #[test]
    fn a_chroot_at_the_end_applies_to_every_group() {
        let g = ServerGroups::parse("obs:1;zk1:1,zk2:1/canal").unwrap();
        assert_eq!(g.connect_string(0, "").as_deref(), Some("obs:1/canal"));
        assert_eq!(
            g.connect_string(1, "").as_deref(),
            Some("zk1:1,zk2:1/canal")
        );
        assert_eq!(g.to_string(), "obs:1;zk1:1,zk2:1/canal");
    }
}
