//! Console pages read from what the nodes leave: the channel page's process window (each batch's
//! last stage, the node holding its data, the locks held) and termins (a rollback shown with its
//! error), and the conflicts page filtered by table and time over a real target's
//! `retl.retl_conflict`; the audit log and the history kept across a restart in `data_dir`. A real
//! manager process, ZooKeeper and MariaDB.

mod web;

use std::path::Path;
use std::time::Duration;

use harness::{free_port, init_tracing, MariaDb, TestDir, ZooKeeper};
use otter_node::model::{Channel, TargetDb};
use otter_node::process::{Produced, Stage, Termin};
use web::http::{csrf_of, login, page, serve, viewer};
use zookeeper_client::{Acls, CreateMode};

async fn put(zk: &zookeeper_client::Client, path: &str, data: &[u8]) {
    let parent = path.rsplit_once('/').unwrap().0;
    zk_coord::ensure_path(zk, parent).await.unwrap();
    zk.create(
        path,
        data,
        &CreateMode::Persistent.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
}

/// The `<tr>` holding `needle` in `html`.
fn row_with<'a>(html: &'a str, needle: &str) -> &'a str {
    let at = html
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in {html}"));
    let start = html[..at].rfind("<tr").unwrap();
    &html[start..at + html[at..].find("</tr>").unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_page_shows_the_window_and_termins_and_conflicts_filter_by_table_and_time() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let target = MariaDb::start().await.unwrap();
    otter_node::pipeline::load::prepare_site(&TargetDb {
        address: target.addr().to_string(),
        username: "root".into(),
        password: String::new(),
        site: String::new(),
        tls: Default::default(),
    })
    .await
    .unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/channel.toml");
    let mut channel = Channel::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
    channel.pipeline.target.address = target.addr().to_string();
    otter_manager::apply(&client, &channel).await.unwrap();
    let (cid, pid) = (channel.id, channel.pipeline.id);

    // Batch 5: selected on node 1, extracted on node 2, claimed by Load on node 3. Batch 6: just
    // created. Termin 4: a failed load (Select rolls back).
    let proc5 = zk_coord::otter_paths::process(cid, pid, "p0000000005");
    let produced = |node, stage| Produced::new(node, "127.0.0.1:1", pid, 5, stage, 10).to_json();
    put(&client, &proc5, b"").await;
    put(
        &client,
        &format!("{proc5}/selected"),
        &produced(1, Stage::Selected),
    )
    .await;
    put(
        &client,
        &format!("{proc5}/extracted"),
        &produced(2, Stage::Extracted),
    )
    .await;
    put(&client, &format!("{proc5}/lock"), b"3").await;
    put(
        &client,
        &zk_coord::otter_paths::process(cid, pid, "p0000000006"),
        b"",
    )
    .await;
    put(
        &client,
        &zk_coord::otter_paths::termin(cid, pid, 4),
        &Termin::failed(4, "Duplicate entry '7' for key 'PRIMARY'".into()).to_json(),
    )
    .await;

    // Three conflicts at the target: two on shop.user (January 1st and 3rd), one on shop.orders.
    target
        .exec(&format!(
            "INSERT INTO retl.retl_conflict (channel_id, pipeline_id, schema_name, table_name, pk,
               kind, policy, winner, origin, detected_at) VALUES
             ({cid}, {pid}, 'shop', 'user', '1', 'update', 'newest', 'incoming', 'a', '2026-01-01 10:00:00'),
             ({cid}, {pid}, 'shop', 'orders', '2', 'update', 'newest', 'local', 'a', '2026-01-02 10:00:00'),
             ({cid}, {pid}, 'shop', 'user', '3', 'delete', 'newest', 'local', 'a', '2026-01-03 10:00:00')"
        ))
        .await
        .unwrap();

    let dir = TestDir::new("otter-console-pages").unwrap();
    let config = dir.path().join("manager.toml");
    std::fs::write(
        &config,
        format!(
            "[console]\n\n[[console.users]]\nname = \"victor\"\npassword_hash = \"{}\"\nrole = \"viewer\"\n",
            otter_manager::console::hash_password("victor-pass").unwrap()
        ),
    )
    .unwrap();
    let port = free_port();
    let _server = serve(&zk.connect_string(), port, &config).await;
    let victor = viewer(port).await;

    let html = page(&victor, port, &format!("/channel/{cid}")).await;
    let window = &html[html
        .find(&format!("id=\"window-{pid}\""))
        .expect("the process window")..];
    assert!(
        row_with(window, "<td>5</td>")
            .contains("<td>5</td><td>extracted</td><td>node 2</td><td>load by node 3</td>"),
        "{window}"
    );
    assert!(
        row_with(window, "<td>6</td>").contains("<td>6</td><td>selecting</td><td>–</td><td>–</td>"),
        "{window}"
    );
    assert!(
        html.contains("rollback: Duplicate entry &#x27;7&#x27; for key &#x27;PRIMARY&#x27;"),
        "{html}"
    );

    // Conflicts: all three; by table; by table and time.
    let count = |html: &str| html.matches("<tr><td>2026-01-0").count();
    let all = page(&victor, port, &format!("/channel/{cid}/conflicts")).await;
    assert_eq!(count(&all), 3, "{all}");
    let users = page(
        &victor,
        port,
        &format!("/channel/{cid}/conflicts?table=shop.user"),
    )
    .await;
    assert_eq!(count(&users), 2, "{users}");
    assert!(!users.contains("shop.orders</td>"), "{users}");
    let recent = page(
        &victor,
        port,
        &format!("/channel/{cid}/conflicts?table=user&since=2026-01-02"),
    )
    .await;
    assert_eq!(count(&recent), 1, "{recent}");
    assert!(
        row_with(&recent, "<td>shop.user</td>").contains("<td>3</td><td>delete</td>"),
        "{recent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_history_survive_a_restart_with_a_data_dir() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/channel.toml");
    let channel = Channel::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
    otter_manager::apply(&client, &channel).await.unwrap();
    let dir = TestDir::new("otter-console-data-dir").unwrap();
    let data = dir.path().join("console-data");
    let config = dir.path().join("manager.toml");
    std::fs::write(
        &config,
        format!(
            "[console]\nsample_secs = 1\ndata_dir = \"{}\"\n\n[[console.users]]\nname = \"olga\"\npassword_hash = \"{}\"\nrole = \"operator\"\n",
            data.display(),
            otter_manager::console::hash_password("olga-pass").unwrap()
        ),
    )
    .unwrap();

    let port = free_port();
    let mut server = serve(&zk.connect_string(), port, &config).await;
    let olga = login(port, "olga", "olga-pass").await;
    let csrf = csrf_of(&page(&olga, port, "/").await);
    let r = olga
        .post(format!(
            "http://127.0.0.1:{port}/channel/{}/start",
            channel.id
        ))
        .form(&[("csrf", csrf.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // Two samples written.
    let history = data.join("history.jsonl");
    for _ in 0..300 {
        if std::fs::read_to_string(&history).is_ok_and(|t| t.lines().count() >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let samples = std::fs::read_to_string(&history).unwrap().lines().count();
    assert!(samples >= 2, "{samples} samples on disk");
    server.kill().await.unwrap();

    // A new manager process reads both back.
    let port = free_port();
    let _server = serve(&zk.connect_string(), port, &config).await;
    let olga = login(port, "olga", "olga-pass").await;
    let audit = page(&olga, port, "/audit").await;
    assert!(
        audit.contains("<td>olga</td><td>start</td><td>channel 1</td><td>ok</td>"),
        "{audit}"
    );
    let overview = page(&olga, port, "/").await;
    let kept: usize = overview
        .split(" sample(s) in memory")
        .next()
        .and_then(|s| s.rsplit('>').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{overview}"));
    assert!(
        kept >= samples,
        "{kept} samples after the restart, {samples} before"
    );
}
