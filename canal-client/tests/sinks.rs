//! The `canal-client` command's sinks against real servers: MariaDB → canal-server → canal-client
//! → stdout / an HTTP endpoint in this test / a real Redis, with the target failing or down for a
//! while. Every row must arrive; nothing acked may be skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{canal_server_bin, CanalServer, FaultProxy, ManagedProcess, MariaDb, Redis, TestDir};

async fn source() -> MariaDb {
    let db = MariaDb::start().await.unwrap();
    db.exec(
        "CREATE DATABASE shop;
         CREATE TABLE shop.user (id INT PRIMARY KEY, email VARCHAR(40), name VARCHAR(20),
           balance DECIMAL(10,2), born DATE);
         CREATE TABLE shop.other (id INT PRIMARY KEY)",
    )
    .await
    .unwrap();
    db
}

async fn server(db: &MariaDb) -> CanalServer {
    let s = CanalServer::start(&canal_server_bin(), db, "", "").await;
    s.wait_streaming().await;
    s
}

/// Starts `canal-client <args>`; stdout and stderr go to `log`.
fn client(dir: &TestDir, name: &str, args: &[&str]) -> (ManagedProcess, PathBuf) {
    let log = dir.path().join(format!("{name}.log"));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_canal-client"));
    cmd.args(args).env("RUST_LOG", "warn,canal_client=info");
    (ManagedProcess::start(name, cmd, &log).unwrap(), log)
}

/// The JSON lines of a tail log (log lines are interleaved; JSON lines start with `{`).
fn json_lines(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

/// The keys of a JSON object's top level, in the order written.
fn top_level_keys(json: &str) -> Vec<String> {
    let (mut depth, mut in_str, mut esc) = (0, false, false);
    let (mut keys, mut cur, mut expect_key) = (Vec::new(), String::new(), false);
    for ch in json.chars() {
        if in_str {
            match (esc, ch) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => {
                    in_str = false;
                    if expect_key {
                        keys.push(std::mem::take(&mut cur));
                        expect_key = false;
                    }
                    continue;
                }
                _ => {}
            }
            if expect_key {
                cur.push(ch);
            }
            continue;
        }
        match ch {
            '"' => in_str = true,
            '{' | '[' => {
                depth += 1;
                expect_key = depth == 1 && ch == '{';
            }
            '}' | ']' => depth -= 1,
            ',' if depth == 1 => expect_key = true,
            _ => {}
        }
    }
    keys
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ids in the `data` rows of flat messages of table `user`.
fn user_ids(messages: &[serde_json::Value]) -> BTreeSet<i64> {
    messages
        .iter()
        .filter(|m| m["table"] == "user")
        .flat_map(|m| m["data"].as_array().cloned().unwrap_or_default())
        .filter_map(|row| row["id"].as_str().and_then(|s| s.parse().ok()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_canal_flat_messages_and_acks_only_what_it_wrote() {
    harness::init_tracing();
    let db = source().await;
    let s = server(&db).await;
    let dir = TestDir::new("tail").unwrap();
    let addr = s.addr();
    let args = [
        "tail",
        "--server",
        &addr,
        "--progress",
        "never",
        "--poll-ms",
        "100",
    ];
    let (mut tail, log) = client(&dir, "tail", &args);
    db.exec(
        "INSERT INTO shop.user VALUES (1, 'a@x', 'ann', 10.50, '2000-01-02'), (2, 'b@x', NULL, 0, NULL);
         UPDATE shop.user SET name = 'anna', balance = 11 WHERE id = 1;
         DELETE FROM shop.user WHERE id = 2;
         ALTER TABLE shop.user ADD COLUMN note TEXT",
    )
    .await
    .unwrap();
    wait_until("4 messages", Duration::from_secs(60), || {
        json_lines(&log).len() >= 4
    })
    .await;
    let m = json_lines(&log);
    // Field names and their order are Canal's (alphabetical, nulls written).
    let raw = std::fs::read_to_string(&log).unwrap();
    let keys = top_level_keys(raw.lines().find(|l| l.starts_with('{')).unwrap());
    assert_eq!(
        keys,
        [
            "data",
            "database",
            "es",
            "gtid",
            "id",
            "isDdl",
            "mysqlType",
            "old",
            "pkNames",
            "sql",
            "sqlType",
            "table",
            "ts",
            "type"
        ]
    );
    let insert = &m[0];
    assert_eq!(insert["type"], "INSERT");
    assert_eq!(insert["database"], "shop");
    assert_eq!(insert["table"], "user");
    assert_eq!(insert["isDdl"], false);
    assert_eq!(insert["gtid"], "");
    assert_eq!(insert["sql"], "");
    assert_eq!(insert["old"], serde_json::Value::Null);
    assert_eq!(insert["pkNames"], serde_json::json!(["id"]));
    // DECIMAL zero is "0.0" as Canal prints it (decimal_exact_scale = false, the default).
    assert_eq!(
        insert["data"],
        serde_json::json!([
            {"id": "1", "email": "a@x", "name": "ann", "balance": "10.50", "born": "2000-01-02"},
            {"id": "2", "email": "b@x", "name": null, "balance": "0.0", "born": null}
        ])
    );
    assert_eq!(
        insert["mysqlType"],
        serde_json::json!({"id": "int(11)", "email": "varchar(40)", "name": "varchar(20)", "balance": "decimal(10,2)", "born": "date"})
    );
    assert_eq!(
        insert["sqlType"],
        serde_json::json!({"id": 4, "email": 12, "name": 12, "balance": 3, "born": 91})
    );
    assert!(insert["es"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(insert["ts"].as_i64().unwrap() >= insert["es"].as_i64().unwrap());
    assert!(insert["id"].as_i64().unwrap() >= 1);
    let update = &m[1];
    assert_eq!(update["type"], "UPDATE");
    assert_eq!(update["data"][0]["name"], "anna");
    assert_eq!(
        update["old"],
        serde_json::json!([{"name": "ann", "balance": "10.50"}])
    );
    let delete = &m[2];
    assert_eq!(delete["type"], "DELETE");
    assert_eq!(
        delete["data"],
        serde_json::json!([{"id": "2", "email": "b@x", "name": null, "balance": "0.0", "born": null}])
    );
    assert_eq!(delete["old"], serde_json::Value::Null);
    let ddl = &m[3];
    assert_eq!(ddl["type"], "ALTER");
    assert_eq!(ddl["isDdl"], true);
    assert_eq!(ddl["sql"], "ALTER TABLE shop.user ADD COLUMN note TEXT");
    assert_eq!(ddl["data"], serde_json::Value::Null);
    assert_eq!(ddl["pkNames"], serde_json::Value::Null);

    // SIGTERM: stops cleanly (exit 0) after the current batch; what it printed was acked, so a new
    // tail with the same client id prints only what came after.
    tail.terminate(Duration::from_secs(20)).unwrap();
    assert!(!tail.is_running());
    db.exec("INSERT INTO shop.user (id) VALUES (3)")
        .await
        .unwrap();
    let (_tail2, log2) = client(&dir, "tail2", &args);
    wait_until("the new row", Duration::from_secs(60), || {
        !json_lines(&log2).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = json_lines(&log2);
    assert_eq!(user_ids(&again), BTreeSet::from([3]), "{again:?}");
}

/// What the test's webhook endpoint saw.
#[derive(Default)]
struct Endpoint {
    /// Requests answered 500 before the endpoint accepts.
    fail_first: usize,
    attempts: usize,
    /// (batch id header, body) of accepted requests.
    accepted: Vec<(i64, serde_json::Value)>,
}

async fn endpoint(state: Arc<Mutex<Endpoint>>) -> std::net::SocketAddr {
    use axum::http::{HeaderMap, StatusCode};
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let mut s = state.lock().unwrap();
                s.attempts += 1;
                if s.attempts <= s.fail_first {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "not yet");
                }
                assert_eq!(headers["content-type"], "application/json");
                let id: i64 = headers["x-canal-batch-id"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                s.accepted.push((id, serde_json::from_str(&body).unwrap()));
                (StatusCode::OK, "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn accepted_ids(state: &Mutex<Endpoint>) -> BTreeSet<i64> {
    accepted_ids_of(&state.lock().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_errors_and_outages_and_loses_no_batch() {
    harness::init_tracing();
    let db = source().await;
    let s = server(&db).await;
    let state = Arc::new(Mutex::new(Endpoint {
        fail_first: 3,
        ..Default::default()
    }));
    let http = endpoint(state.clone()).await;
    let proxy = FaultProxy::start(http).unwrap();
    let dir = TestDir::new("webhook").unwrap();
    let url = format!("http://{}/hook", proxy.addr());
    let addr = s.addr();
    let (_hook, log) = client(
        &dir,
        "webhook",
        &[
            "webhook",
            "--server",
            &addr,
            "--url",
            &url,
            "--timeout-ms",
            "1000",
            "--max-backoff-ms",
            "400",
            "--progress",
            "never",
            "--poll-ms",
            "100",
        ],
    );
    for id in 0..10 {
        db.exec(&format!("INSERT INTO shop.user (id) VALUES ({id})"))
            .await
            .unwrap();
    }
    wait_until(
        "rows 0..10 after three 500s",
        Duration::from_secs(60),
        || accepted_ids(&state).len() == 10,
    )
    .await;
    assert!(state.lock().unwrap().attempts > 3);
    // The endpoint goes away (connections refused), rows keep coming, then it is back.
    proxy.refuse();
    proxy.cut();
    for id in 10..30 {
        db.exec(&format!("INSERT INTO shop.user (id) VALUES ({id})"))
            .await
            .unwrap();
    }
    wait_until(
        "a failed attempt in the log",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("retrying")
                && std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .matches("POST failed")
                    .count()
                    >= 5
        },
    )
    .await;
    proxy.pass();
    wait_until(
        "rows 10..30 after the outage",
        Duration::from_secs(60),
        || accepted_ids(&state).len() == 30,
    )
    .await;
    let s = state.lock().unwrap();
    assert_eq!(accepted_ids_of(&s), (0..30).collect::<BTreeSet<_>>());
    // Batches arrive in order, each body a JSON array of flat messages carrying the batch id.
    let ids: Vec<i64> = s.accepted.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for (id, body) in &s.accepted {
        for m in body.as_array().unwrap() {
            assert_eq!(m["id"].as_i64(), Some(*id));
            assert_eq!(m["type"], "INSERT");
        }
    }
}

fn accepted_ids_of(s: &Endpoint) -> BTreeSet<i64> {
    s.accepted
        .iter()
        .flat_map(|(_, body)| user_ids(body.as_array().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_dead_letter_is_explicit_and_keeps_every_failed_batch() {
    harness::init_tracing();
    let db = source().await;
    let s = server(&db).await;
    let state = Arc::new(Mutex::new(Endpoint {
        fail_first: usize::MAX,
        ..Default::default()
    }));
    let http = endpoint(state.clone()).await;
    let dir = TestDir::new("dead-letter").unwrap();
    let dl = dir.path().join("dead.jsonl");
    let url = format!("http://{http}/hook");
    let addr = s.addr();
    let dl_arg = dl.display().to_string();
    let (_hook, _log) = client(
        &dir,
        "webhook",
        &[
            "webhook",
            "--server",
            &addr,
            "--url",
            &url,
            "--max-attempts",
            "2",
            "--dead-letter",
            &dl_arg,
            "--max-backoff-ms",
            "200",
            "--progress",
            "never",
            "--poll-ms",
            "100",
        ],
    );
    for id in 0..5 {
        db.exec(&format!("INSERT INTO shop.user (id) VALUES ({id})"))
            .await
            .unwrap();
    }
    let dead = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&dl)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    wait_until(
        "every row in the dead-letter file",
        Duration::from_secs(60),
        || {
            let ids: BTreeSet<i64> = dead()
                .iter()
                .flat_map(|d| user_ids(d["messages"].as_array().unwrap()))
                .collect();
            ids.len() == 5
        },
    )
    .await;
    for d in dead() {
        assert!(d["error"].as_str().unwrap().contains("500"), "{d}");
        assert_eq!(d["destination"], "example");
        assert!(d["batchId"].as_i64().unwrap() >= 1);
    }
    // Two attempts per dead-lettered batch, never more.
    let batches = dead().len();
    assert_eq!(state.lock().unwrap().attempts, batches * 2);

    // Without --dead-letter, --max-attempts is refused: skipping must be explicit.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_canal-client"))
        .args([
            "webhook",
            "--server",
            &addr,
            "--url",
            &url,
            "--max-attempts",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dead-letter"));
}

async fn exists(r: &Redis, key: &str) -> bool {
    r.command(&["EXISTS", key]).await.unwrap().as_int() == Some(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_invalidate_deletes_old_and_new_keys_and_survives_redis_outage() {
    harness::init_tracing();
    let db = source().await;
    db.exec(
        "INSERT INTO shop.user (id, email, name) VALUES (1, 'a@x', 'ann'), (2, 'b@x', 'bob'),
           (3, 'c@x', 'cy'), (4, 'd@x', 'di'), (5, 'e@x', 'ed')",
    )
    .await
    .unwrap();
    let s = server(&db).await;
    let redis = Redis::start().await.unwrap();
    let proxy = FaultProxy::start(redis.addr().parse().unwrap()).unwrap();
    for k in [
        "user:1",
        "user:2",
        "user:3",
        "user:4",
        "user:5",
        "user:6",
        "email:a@x",
        "email:b@x",
        "email:new@x",
        "email:c@x",
        "email:d@x",
        "email:e@x",
        "other:1",
    ] {
        redis.command(&["SET", k, "cached"]).await.unwrap();
    }
    let dir = TestDir::new("redis").unwrap();
    let url = format!("redis://{}/", proxy.addr());
    let addr = s.addr();
    let (_inv, log) = client(
        &dir,
        "redis",
        &[
            "redis-invalidate",
            "--server",
            &addr,
            "--redis",
            &url,
            "--key",
            "shop.user=user:{id}",
            "--key",
            "shop.user=email:{email}",
            "--timeout-ms",
            "1000",
            "--progress",
            "never",
            "--poll-ms",
            "100",
        ],
    );
    db.exec(
        "UPDATE shop.user SET name = 'anna' WHERE id = 1;
         UPDATE shop.user SET email = 'new@x' WHERE id = 2;
         DELETE FROM shop.user WHERE id = 3;
         INSERT INTO shop.user (id, email) VALUES (6, 'f@x');
         INSERT INTO shop.other VALUES (1)",
    )
    .await
    .unwrap();
    let gone = [
        "user:1",
        "email:a@x",
        "user:2",
        "email:b@x",
        "email:new@x",
        "user:3",
        "email:c@x",
    ];
    let t = Instant::now();
    for k in gone {
        while exists(&redis, k).await {
            assert!(t.elapsed() < Duration::from_secs(60), "{k} still cached");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Untouched rows, inserts (without --include-inserts) and other tables keep their keys.
    for k in ["user:4", "user:5", "email:d@x", "user:6", "other:1"] {
        assert!(exists(&redis, k).await, "{k} was deleted");
    }

    // Redis unreachable: the change waits, retried, and is applied when Redis is back.
    proxy.refuse();
    proxy.cut();
    db.exec("UPDATE shop.user SET name = 'x' WHERE id = 4")
        .await
        .unwrap();
    wait_until("retries in the log", Duration::from_secs(60), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("invalidation failed")
            .count()
            >= 3
    })
    .await;
    assert!(exists(&redis, "user:4").await);
    proxy.pass();
    let t = Instant::now();
    while exists(&redis, "user:4").await || exists(&redis, "email:d@x").await {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "user:4 still cached after the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(exists(&redis, "user:5").await);
}

/// A stderr nobody reads any more (a pipe whose reader exited, as in `canal-client … 2>&1 | head`)
/// does not turn an error exit into a panic (exit code 101).
#[test]
fn closed_stderr_is_no_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_canal-client"))
        .args([
            "webhook",
            "--server",
            "127.0.0.1:1",
            "--url",
            "localhost:80/x",
        ])
        .stderr(writer)
        .output()
        .unwrap();
    let code = out.status.code();
    assert!(
        code.is_some() && code != Some(101) && code != Some(0),
        "{out:?}"
    );
}

#[test]
fn bad_arguments_are_clear_errors() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_canal-client"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for (args, want) in [
        (
            "redis-invalidate --server 127.0.0.1:1 --key shop.user=user:{id",
            "is not closed",
        ),
        (
            "redis-invalidate --server 127.0.0.1:1 --key user=user:{id}",
            "schema.table",
        ),
        (
            "webhook --server 127.0.0.1:1 --url localhost:80/x",
            "must be http",
        ),
        ("tail", "--server"),
        ("tail --server nohostport", "is not host:port"),
        ("tail --server 127.0.0.1:99999", "1..=65535"),
        ("tail --zk 127.0.0.1:2181,zk2/canal", "--zk"),
    ] {
        let args: Vec<&str> = args.split(' ').collect();
        let e = run(&args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}
