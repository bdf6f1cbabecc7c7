//! Two sites joined by an emulated WAN: ZooKeeper voters in site A, observers in site B, and every
//! connection that crosses between the sites going through a [`FaultProxy`]: observer to voter
//! (the ensemble's site links), site-B clients to the voters' client ports (their fall-back
//! group), and each site's nodes pulling batch data from a node of the other site (one HTTP link
//! each way).

use std::time::Duration;

use harness::{FaultProxy, Wan, ZooKeeper};

/// The two sites and the links between them.
pub struct WanSites {
    pub zk: ZooKeeper,
    /// Site B's way to each voter's client port.
    voter_links: Vec<FaultProxy>,
    /// Site B's way to the site-A node's HTTP server (`http_upstream`).
    pub http_link: FaultProxy,
    /// The site-A node's `--http` address (the upstream of `http_link`).
    pub http_upstream: String,
    /// Site A's way to a site-B node's HTTP server (`http_b_upstream`), for a pipeline the other
    /// way.
    pub http_b_link: FaultProxy,
    /// That site-B node's `--http` address.
    pub http_b_upstream: String,
}

impl WanSites {
    /// 3 voters in site A, 2 observers in site B, the links carrying `one_way` of delay each way.
    pub async fn start(one_way: Duration) -> WanSites {
        let zk = ZooKeeper::start_with_remote_observers(3, 2).await.unwrap();
        let voter_links = zk.members()[..3]
            .iter()
            .map(|m| FaultProxy::start(([127, 0, 0, 1], m.client_port()).into()).unwrap())
            .collect();
        let http_upstream = format!("127.0.0.1:{}", harness::free_port());
        let http_link = FaultProxy::start(http_upstream.parse().unwrap()).unwrap();
        let http_b_upstream = format!("127.0.0.1:{}", harness::free_port());
        let http_b_link = FaultProxy::start(http_b_upstream.parse().unwrap()).unwrap();
        let sites = WanSites {
            zk,
            voter_links,
            http_link,
            http_upstream,
            http_b_link,
            http_b_upstream,
        };
        sites.set_wan(Wan::symmetric(one_way));
        sites
    }

    fn links(&self) -> impl Iterator<Item = &FaultProxy> {
        self.zk
            .site_links()
            .iter()
            .chain(&self.voter_links)
            .chain([&self.http_link, &self.http_b_link])
    }

    /// Puts `wan` on every link between the sites.
    pub fn set_wan(&self, wan: Wan) {
        for l in self.links() {
            l.set_wan(wan);
        }
    }

    /// Site A's `--zk`: the voters.
    pub fn site_a_zk(&self) -> String {
        let v: Vec<String> = self.zk.members()[..3].iter().map(|m| m.addr()).collect();
        v.join(",")
    }

    /// Site B's `--zk`: its observers first, then the voters across the WAN.
    pub fn site_b_zk(&self) -> String {
        let o: Vec<String> = self.zk.members()[3..].iter().map(|m| m.addr()).collect();
        let v: Vec<String> = self
            .voter_links
            .iter()
            .map(|p| p.addr().to_string())
            .collect();
        format!("{};{}", o.join(","), v.join(","))
    }

    /// Connections site B opened to the voters' client ports (its fall-back group).
    pub fn sessions_across(&self) -> usize {
        self.voter_links
            .iter()
            .map(|p| p.accepted_connections())
            .sum()
    }

    /// Partition: nothing crosses between the sites any more (bytes are held, not refused, as on a
    /// WAN whose routes went away), until [`WanSites::heal`].
    pub fn partition(&self) {
        for l in self.links() {
            l.stall();
        }
    }

    /// Ends a partition: the held connections carry on (or find their peers gone).
    pub fn heal(&self) {
        for l in self.links() {
            l.pass();
        }
    }
}
