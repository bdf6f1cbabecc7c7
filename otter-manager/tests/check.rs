//! `otter-manager check` against two real MariaDB servers and a real ZooKeeper: every difference
//! planted on the target is found (a changed column, a NULL that became '', a missing row, extra
//! rows before the first and after the last key, a composite-key table), across many chunks,
//! while a column the mapping leaves out differs without being reported; `--repair` leaves the
//! target equal, written in transactions that carry Load's mark.

use std::process::Output;
use std::time::Duration;

use harness::{init_tracing, MariaDb, ZooKeeper};
use otter_node::model::{Channel, TableMapping};

async fn manager(zk: &str, args: &[&str]) -> Output {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_otter-manager"))
        .arg("--zk")
        .arg(zk)
        .args(args)
        .env_remove("OTTER_ZK")
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    tracing::info!(
        ?args,
        code = ?out.status.code(),
        stdout = %String::from_utf8_lossy(&out.stdout),
        stderr = %String::from_utf8_lossy(&out.stderr),
        "otter-manager"
    );
    out
}

const TABLES: &str =
    "CREATE TABLE SCHEMA.items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2),
       seen TIMESTAMP(3) NULL, data VARBINARY(16), note TEXT NULL, secret VARCHAR(20));
     CREATE TABLE SCHEMA.pairs (a INT, b VARCHAR(10), v DOUBLE, PRIMARY KEY (a, b))";

/// The same 3 000 items and 300 pairs on both sides.
async fn fill(db: &MariaDb, schema: &str, secret: &str) {
    db.exec(&format!(
        "CREATE DATABASE {schema}; {}",
        TABLES.replace("SCHEMA", schema)
    ))
    .await
    .unwrap();
    for chunk in 0..3 {
        let rows: Vec<String> = (chunk * 1000 + 1..=chunk * 1000 + 1000)
            .map(|i| {
                format!(
                    "({i}, 'item {i}', {i}.25, '2026-01-01 00:00:00.123', X'00FF{:04X}', {}, '{secret}')",
                    i,
                    if i % 7 == 0 { "NULL".to_string() } else { format!("'note {i}'") }
                )
            })
            .collect();
        db.exec(&format!(
            "INSERT INTO {schema}.items VALUES {}",
            rows.join(",")
        ))
        .await
        .unwrap();
    }
    let pairs: Vec<String> = (1..=300)
        .map(|i| format!("({}, 'k{}', {i}.5)", i / 3, i % 3))
        .collect();
    db.exec(&format!(
        "INSERT INTO {schema}.pairs VALUES {}",
        pairs.join(",")
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_every_planted_difference_and_repair_makes_the_target_equal() {
    init_tracing();
    let (src, dst) = (
        MariaDb::start().await.unwrap(),
        MariaDb::start().await.unwrap(),
    );
    let zk = ZooKeeper::start().await.unwrap();
    otter_node::pipeline::load::prepare_site(&otter_node::model::TargetDb {
        address: dst.addr().to_string(),
        username: "root".into(),
        password: String::new(),
        site: String::new(),
        tls: Default::default(),
    })
    .await
    .unwrap();
    // The target's `secret` column differs everywhere: the mapping leaves it out.
    fill(&src, "shop", "at source").await;
    fill(&dst, "shop_dr", "at target").await;
    dst.exec(
        "UPDATE shop_dr.items SET price = 99.99 WHERE id = 17;
         UPDATE shop_dr.items SET note = '' WHERE id = 1400;
         DELETE FROM shop_dr.items WHERE id = 2500;
         INSERT INTO shop_dr.items VALUES (0, 'before all', 1, NULL, NULL, NULL, 'x');
         INSERT INTO shop_dr.items VALUES (99999, 'after all', 1, NULL, NULL, NULL, 'x');
         UPDATE shop_dr.items SET data = X'00FE' WHERE id = 2999;
         UPDATE shop_dr.pairs SET v = 0 WHERE a = 50 AND b = 'k1';",
    )
    .await
    .unwrap();

    let mut c = Channel::from_toml(include_str!("../../config/channel.toml")).unwrap();
    let user = src.replication_user().cloned().unwrap_or_default();
    c.id = 7;
    c.pipeline.id = 70;
    c.pipeline.source.address = src.addr().to_string();
    c.pipeline.source.username = user.user;
    c.pipeline.source.password = user.password;
    c.pipeline.target.address = dst.addr().to_string();
    c.pipeline.target.username = "root".into();
    c.pipeline.target.password = String::new();
    c.pipeline.tables = vec![TableMapping {
        source: "shop\\..*".into(),
        target_schema: Some("shop_dr".into()),
        target_table: None,
        include_columns: Vec::new(),
        exclude_columns: vec!["secret".into()],
        weight: 0,
        conflict: None,
        version_column: None,
    }];
    c.validate().unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json())
        .await
        .unwrap();

    let zks = zk.connect_string();
    let fast = [
        "--chunk-rows",
        "100",
        "--rechecks",
        "1",
        "--recheck-wait-ms",
        "100",
    ];
    let out = manager(&zks, &[&["check", "7", "--json"][..], &fast].concat()).await;
    assert_eq!(out.status.code(), Some(1), "differences exit 1");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut found: Vec<(String, String, String)> = Vec::new();
    for t in report["tables"].as_array().unwrap() {
        assert!(t["chunks"].as_u64().unwrap() >= 2, "{t}");
        for d in t["differences"].as_array().unwrap() {
            found.push((
                t["target"].as_str().unwrap().to_string(),
                d["key"].as_str().unwrap().to_string(),
                d["kind"].as_str().unwrap().to_string(),
            ));
        }
    }
    found.sort();
    let want = [
        ("shop_dr.items", "id=0", "extra"),
        ("shop_dr.items", "id=1400", "changed"),
        ("shop_dr.items", "id=17", "changed"),
        ("shop_dr.items", "id=2500", "missing"),
        ("shop_dr.items", "id=2999", "changed"),
        ("shop_dr.items", "id=99999", "extra"),
        ("shop_dr.pairs", "a=50, b='k1'", "changed"),
    ]
    .map(|(t, k, d)| (t.to_string(), k.to_string(), d.to_string()));
    assert_eq!(found, want.to_vec(), "{report:#}");
    let items = &report["tables"][0];
    assert_eq!(items["source_rows"], 3000);
    assert_eq!(items["target_rows"], 3001);

    // The table form names the rows.
    let out = manager(
        &zks,
        &[&["check", "7", "--tables", "shop.items"][..], &fast].concat(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(text.contains("id=2500  missing on target"), "{text}");
    assert!(!text.contains("shop_dr.pairs"), "{text}");

    // An unknown table is an error (exit 2), not an empty report.
    let out = manager(&zks, &["check", "7", "--tables", "shop.nope"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shop.nope"));

    let out = manager(&zks, &[&["check", "7", "--repair"][..], &fast].concat()).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "the differences are still reported"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(repaired)"));
    let out = manager(&zks, &[&["check", "7"][..], &fast].concat()).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The repairs carried the pipeline's mark; the excluded column is never written (the row
    // re-inserted at the target has none).
    let marks: Vec<(u64, String)> = dst
        .query("SELECT channel_id, origin FROM retl.retl_mark")
        .await
        .unwrap();
    assert_eq!(marks, vec![(7, src.addr().to_string())]);
    let secrets: Vec<(u64, u64)> = dst
        .query("SELECT SUM(secret = 'at source'), SUM(secret IS NULL) FROM shop_dr.items")
        .await
        .unwrap();
    assert_eq!(secrets, vec![(0, 1)]);
}
