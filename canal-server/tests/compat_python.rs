//! Compatibility with a Canal client not written here: the unmodified `canal-python` package from
//! PyPI, run as a real process (scripts/compat/canal_python_consumer.py) against the canal-server
//! binary and a real MariaDB.
//!
//! Asserted: every row change (INSERT/UPDATE/DELETE over INT, VARCHAR with non-BMP unicode,
//! DECIMAL, BIGINT UNSIGNED, DOUBLE, DATE, DATETIME(3), TEXT, VARBINARY, TINYINT(1), NULLs)
//! reaches the client exactly as the in-process parser produced it, with Canal's text rules
//! (DECIMAL 1.00 -> "1.0", DOUBLE 1e21 -> "1.0E21", bytes as Latin-1, ...) spelled out; the Sub
//! filter hides schema `other` from client 1001 while a concurrent client 1002 using the library's
//! own `get()` loop and default filter sees it; after the run `/health` shows each client's acked
//! cursor at the last transaction end with nothing outstanding; a reconnect redelivers nothing,
//! un-acked rows are redelivered after a "crash"; a server with `passwd` refuses canal-python's
//! plaintext password with a 400 error frame.
//!
//! The venv is built once under `<target dir>/compat-venv` with the exact pins of
//! scripts/compat/requirements.txt and rebuilt when that file or the interpreter changes. A machine
//! without `python3` or its venv module fails this test (never skips): scripts/setup.sh installs the
//! Debian package `python3-venv`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use canal_protocol::entry::EntryType;
use common::server::*;
use common::*;
use harness::MariaDb;
use serde_json::{json, Value};

const CLIENT_ID: &str = "1001";
/// The Sub filter the Python client sends: only schema `compat` (rows of `other` must not arrive).
const FILTER: &str = "compat\\..*";

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace dir")
        .to_path_buf()
}

/// The target dir this test was built into (CARGO_TARGET_DIR or the workspace's `target`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
        .to_path_buf()
}

fn output_text(o: &Output) -> String {
    format!(
        "exit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Returns the venv's interpreter, creating the venv and installing the pinned packages if the
/// cached one is missing or was built from other pins or another python3.
fn venv_python() -> PathBuf {
    let requirements = workspace_dir().join("scripts/compat/requirements.txt");
    let pins = std::fs::read_to_string(&requirements)
        .unwrap_or_else(|e| panic!("{}: {e}", requirements.display()));
    let version = match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => panic!(
            "python3 --version failed; install the Debian packages python3 and python3-venv \
             (scripts/setup.sh does):\n{}",
            output_text(&o)
        ),
        Err(e) => panic!(
            "python3 not found ({e}): install the Debian packages python3 and python3-venv \
             (scripts/setup.sh does)"
        ),
    };
    let venv = target_dir().join("compat-venv");
    let python = venv.join("bin/python");
    let stamp_path = venv.join(".compat-stamp");
    let stamp = format!("{version}\n{pins}");
    if python.exists() && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        return python;
    }
    eprintln!("compat_python: creating {} ({version})", venv.display());
    if venv.exists() {
        std::fs::remove_dir_all(&venv).unwrap_or_else(|e| panic!("remove {}: {e}", venv.display()));
    }
    let o = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap_or_else(|e| panic!("running python3 -m venv: {e}"));
    if !o.status.success() || !python.exists() {
        panic!(
            "`python3 -m venv {}` failed: install the Debian package python3-venv \
             (scripts/setup.sh does)\n{}",
            venv.display(),
            output_text(&o)
        );
    }
    let o = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            "-r",
        ])
        .arg(&requirements)
        .output()
        .unwrap_or_else(|e| panic!("running pip: {e}"));
    if !o.status.success() {
        panic!(
            "pip install -r {} into {} failed:\n{}",
            requirements.display(),
            venv.display(),
            output_text(&o)
        );
    }
    std::fs::write(&stamp_path, stamp).unwrap();
    python
}

const SCHEMA: &str = "CREATE DATABASE compat; CREATE DATABASE other;
CREATE TABLE compat.items (
  id INT PRIMARY KEY,
  name VARCHAR(64),
  price DECIMAL(10,2),
  qty BIGINT UNSIGNED,
  ratio DOUBLE,
  born DATE,
  seen DATETIME(3),
  note TEXT,
  raw VARBINARY(8),
  flag TINYINT(1)
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE other.ignored (id INT PRIMARY KEY, v VARCHAR(10));";

const UNICODE: &str = "héllo wörld ✓ 日本語 🚀";

/// The DML: returns the statements and the number of row changes in schema `compat`.
fn dml() -> (String, usize) {
    let mut sql = format!(
        "INSERT INTO compat.items VALUES
           (1, 'plain', 1.00, 18446744073709551615, 0.1, '2024-01-02', '2024-01-02 03:04:05.120', NULL, X'00FF41', 1),
           (2, '{UNICODE}', 1234.50, 0, 1e21, NULL, NULL, 'multi\\nline \"quoted\" \\\\ text', NULL, 0);
         INSERT INTO other.ignored VALUES (1, 'x');
         INSERT INTO compat.items (id, name, price) VALUES (3, NULL, -0.50);
         BEGIN;
         UPDATE compat.items SET price = 0.00, note = 'now set', qty = qty - 1 WHERE id = 1;
         UPDATE compat.items SET name = NULL WHERE id = 2;
         INSERT INTO other.ignored VALUES (2, 'y');
         COMMIT;
         DELETE FROM compat.items WHERE id = 3;\n"
    );
    let mut rows = 2 + 1 + 2 + 1;
    // Many small transactions, a multi-row UPDATE and DELETE: several batches, several acks.
    for i in 100..130 {
        sql.push_str(&format!(
            "INSERT INTO compat.items (id, name, price) VALUES ({i}, 'r{i}', {i}.25);\n"
        ));
    }
    sql.push_str("UPDATE compat.items SET flag = 1 WHERE id >= 100;\n");
    sql.push_str("DELETE FROM compat.items WHERE id >= 100 AND id < 110;\n");
    rows += 30 + 30 + 10;
    (sql, rows)
}

/// A row change in the Python script's JSON shape, from the in-process parser's entries of
/// tables `keep` accepts.
fn parser_rows(es: &[canal_server::ParsedEntry], keep: impl Fn(&str) -> bool) -> Vec<Value> {
    let image = |cs: &Cols| -> Value {
        Value::Object(
            cs.iter()
                .map(|(n, v, _)| (n.clone(), v.clone().map_or(Value::Null, Value::String)))
                .collect(),
        )
    };
    dml_rows(es)
        .into_iter()
        .filter(|(_, table, _, _)| keep(table))
        .map(|(ty, table, before, after)| {
            let (schema, table) = table.split_once('.').expect("schema.table");
            json!({
                "schema": schema,
                "table": table,
                "type": ty.as_str_name(),
                "before": image(&before),
                "after": image(&after),
                "updated": after.iter().filter(|c| c.2).map(|c| c.0.clone()).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn is_compat(table: &str) -> bool {
    table.starts_with("compat.")
}

/// A client's cursor in `/health` as `journal:offset`.
fn cursor_text(client: &Value) -> String {
    let c = &client["cursor"];
    format!("{}:{}", c["journal"].as_str().unwrap_or(""), c["offset"])
}

/// Client `id` in the server's `/health`.
async fn health_client(s: &ServerProc, id: i64) -> Option<Value> {
    let resp = http_get(s.admin_port, "/health").await.ok()?;
    let body = resp.split_once("\r\n\r\n")?.1;
    let health: Value = serde_json::from_str(body).ok()?;
    health["destinations"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == "example")?["clients"]
        .as_array()?
        .iter()
        .find(|c| c["client_id"] == id)
        .cloned()
}

/// Starts the consumer script against `s` with these extra (whitespace-separated) arguments.
fn spawn_consumer(python: &Path, s: &ServerProc, args: &str) -> Child {
    Command::new(python)
        .arg(workspace_dir().join("scripts/compat/canal_python_consumer.py"))
        .args(["--port", &s.port.to_string(), "--destination", "example"])
        .args(args.split_whitespace())
        .env("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()))
}

/// Waits for the consumer, requires exit 0 and returns its JSON lines.
async fn finish(child: Child, what: &str, s: &ServerProc) -> Vec<Value> {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let report = output_text(&out);
    eprintln!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    assert!(
        out.status.success(),
        "the Python client ({what}) failed:\n{report}\n--- server log ---\n{}",
        s.log()
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 stdout")
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}\n{report}"))
        })
        .collect()
}

/// Waits until client `id` has acked everything up to `cursor`; asserts its /health entry.
async fn assert_acked(s: &ServerProc, id: i64, cursor: &str, filter: &str) {
    let mut client = None;
    for _ in 0..100 {
        client = health_client(s, id).await;
        if client
            .as_ref()
            .is_some_and(|c| cursor_text(c) == cursor && c["outstanding_batches"] == 0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = client.unwrap_or_else(|| panic!("client {id} missing from /health"));
    assert_eq!(
        cursor_text(&client),
        cursor,
        "acked cursor of {id}: {client}"
    );
    assert_eq!(client["outstanding_batches"], 0, "{client}");
    assert_eq!(client["filter"], filter, "{client}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canal_python_client_consumes_real_rows() {
    harness::init_tracing();
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();

    let db = MariaDb::start().await.unwrap();
    db.exec(SCHEMA).await.unwrap();
    let from = db.master_status().await.unwrap();
    let position = format!(
        "journal_name = \"{}\"\nposition = {}\n",
        from.file, from.position
    );
    let s = ServerProc::start(server_bin(), &db, "", &position).await;
    // The same range decoded in-process: what the Python clients must see.
    let (_g, dir) = data_dir();
    let mut cfg = dest_config(&db);
    cfg.journal_name = from.file.clone();
    cfg.position = Some(from.position);
    let mut h = start("example", cfg, &dir, None);
    wait_streaming(&s).await;

    let (sql, rows) = dml();
    let all_rows = rows + 2; // plus the two inserts into other.ignored
                             // Client 1001: get_without_ack + ack with a 100 ms GET timeout and 1 KiB batches (MEMSIZE
                             // fetch_size 1): many batches, many acks; its Sub filter keeps only schema `compat`.
    let main = spawn_consumer(
        &python,
        &s,
        &format!(
            "--client-id {CLIENT_ID} --filter {FILTER} --rows {rows} \
             --batch-size 1 --get-timeout-ms 100 --deadline 40"
        ),
    );
    // Client 1002 at the same time: the library's own get() loop (non-blocking GET with
    // timeout -1 and unit -1, ack inside) with its default filter `.*\..*`.
    let second = spawn_consumer(
        &python,
        &s,
        &format!("--client-id 1002 --api get --rows {all_rows} --batch-size 10 --deadline 40"),
    );
    // Write while both clients are subscribed and polling.
    for _ in 0..200 {
        if health_client(&s, 1001).await.is_some() && health_client(&s, 1002).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.exec(&sql).await.unwrap();
    let got = finish(main, "client 1001", &s).await;
    let got_all = finish(second, "client 1002", &s).await;

    // Exactly what the in-process parser produced, in order.
    let parsed = collect_until(&mut h, |es| {
        parser_rows(es, |_| true).len() >= all_rows
            && es
                .last()
                .is_some_and(|e| e.entry_type() == EntryType::Transactionend)
    })
    .await;
    h.stop().await.unwrap();
    let want = parser_rows(&parsed, is_compat);
    let want_all = parser_rows(&parsed, |_| true);
    assert_eq!((want.len(), want_all.len()), (rows, all_rows));
    assert_eq!(got.len(), rows, "client 1001: {got:#?}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g, w,
            "client 1001: row change {i} differs from the parser's"
        );
    }
    assert_eq!(got_all.len(), all_rows, "client 1002: {got_all:#?}");
    for (i, (g, w)) in got_all.iter().zip(&want_all).enumerate() {
        assert_eq!(
            g, w,
            "client 1002: row change {i} differs from the parser's"
        );
    }
    assert_eq!(
        got_all
            .iter()
            .filter(|r| r["schema"] == "other")
            .map(|r| r["after"]["v"].clone())
            .collect::<Vec<_>>(),
        vec![json!("x"), json!("y")],
        "client 1002's default filter lets schema other through"
    );

    // Canal's text rules, spelled out for the interesting values.
    let first = &got[0];
    assert_eq!(first["type"], "INSERT");
    assert_eq!(
        (&first["schema"], &first["table"]),
        (&json!("compat"), &json!("items"))
    );
    assert_eq!(first["before"], json!({}));
    assert_eq!(
        first["after"],
        json!({
            "id": "1", "name": "plain", "price": "1.0", "qty": "18446744073709551615",
            "ratio": "0.1", "born": "2024-01-02", "seen": "2024-01-02 03:04:05.120",
            "note": null, "raw": "\u{0}\u{ff}A", "flag": "1",
        })
    );
    assert_eq!(
        first["updated"],
        json!(["id", "name", "price", "qty", "ratio", "born", "seen", "note", "raw", "flag"]),
        "every INSERT column is updated"
    );
    assert_eq!(
        got[1]["after"],
        json!({
            "id": "2", "name": UNICODE, "price": "1234.50", "qty": "0", "ratio": "1.0E21",
            "born": null, "seen": null, "note": "multi\nline \"quoted\" \\ text", "raw": null,
            "flag": "0",
        })
    );
    assert_eq!(got[2]["after"]["price"], "-0.50");
    assert_eq!(got[2]["after"]["name"], Value::Null);
    let upd = &got[3];
    assert_eq!(upd["type"], "UPDATE");
    assert_eq!(upd["before"]["price"], "1.0");
    assert_eq!(upd["after"]["price"], "0.0");
    assert_eq!(upd["before"]["note"], Value::Null);
    assert_eq!(upd["after"]["note"], "now set");
    assert_eq!(upd["after"]["qty"], "18446744073709551614");
    assert_eq!(upd["updated"], json!(["price", "qty", "note"]));
    assert_eq!(got[4]["before"]["name"], UNICODE);
    assert_eq!(got[4]["after"]["name"], Value::Null);
    assert_eq!(got[4]["updated"], json!(["name"]));
    assert_eq!(got[5]["type"], "DELETE");
    assert_eq!(got[5]["after"], json!({}));
    assert_eq!(got[5]["before"]["id"], "3");
    assert_eq!(got[6]["type"], "INSERT");
    assert_eq!(got[6]["after"]["price"], "100.25");
    let count = |ty: &str| got.iter().filter(|r| r["type"] == ty).count();
    assert_eq!(
        (count("INSERT"), count("UPDATE"), count("DELETE")),
        (33, 32, 11)
    );

    // Both clients acked everything: each cursor is the end of the last transaction, nothing
    // is outstanding.
    let last_end = parsed
        .iter()
        .rev()
        .find(|e| e.entry_type() == EntryType::Transactionend)
        .unwrap()
        .position
        .binlog
        .to_string();
    assert_acked(&s, 1001, &last_end, FILTER).await;
    assert_acked(&s, 1002, &last_end, ".*\\..*").await;

    // A new connection of client 1001 (rollback(0), Sub, GET) gets nothing again.
    let args = format!("--client-id {CLIENT_ID} --filter {FILTER} --deadline 20");
    let again = spawn_consumer(&python, &s, &format!("{args} --rows 0"));
    let again = finish(again, "client 1001 again", &s).await;
    assert_eq!(again, Vec::<Value>::new(), "acked rows are not redelivered");
    assert_acked(&s, 1001, &last_end, FILTER).await;

    // A consumer that dies before acking: the next connection's rollback(0), sent by
    // canal-python before its Sub, has the server hand the same rows out again.
    db.exec(
        "INSERT INTO compat.items (id, name) VALUES (200, 'a'), (201, 'b');
         DELETE FROM compat.items WHERE id = 200",
    )
    .await
    .unwrap();
    let ids = |rs: &[Value]| -> Vec<String> {
        rs.iter()
            .map(|r| {
                let image = if r["type"] == "DELETE" {
                    &r["before"]
                } else {
                    &r["after"]
                };
                format!(
                    "{} {}",
                    r["type"].as_str().unwrap(),
                    image["id"].as_str().unwrap()
                )
            })
            .collect()
    };
    let lost = spawn_consumer(&python, &s, &format!("{args} --rows 3 --no-ack"));
    let lost = finish(lost, "client 1001 without ack", &s).await;
    assert_eq!(ids(&lost), ["INSERT 200", "INSERT 201", "DELETE 200"]);
    let redelivered = spawn_consumer(&python, &s, &format!("{args} --rows 3"));
    let redelivered = finish(redelivered, "client 1001 after a crash", &s).await;
    assert_eq!(
        redelivered, lost,
        "un-acked rows are redelivered, identical"
    );
    let mut client = Value::Null;
    for _ in 0..100 {
        client = health_client(&s, 1001).await.unwrap();
        if cursor_text(&client) != last_end.as_str() && client["outstanding_batches"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(
        cursor_text(&client),
        last_end.as_str(),
        "the cursor moved on: {client}"
    );
    assert_eq!(client["outstanding_batches"], 0, "{client}");

    // canal-python sends its password verbatim, not scrambled (reference §1.4): a server with
    // canal.passwd refuses it with a 400 error frame, which the library reports, rather than
    // dropping the connection.
    let mut locked = ServerProc::start(
        server_bin(),
        &db,
        "user = \"canal\"\npasswd = \"6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9\"\n",
        "",
    )
    .await;
    let out = tokio::task::spawn_blocking({
        let child = spawn_consumer(
            &python,
            &locked,
            "--username canal --password 123456 --rows 1 --deadline 20",
        );
        move || child.wait_with_output()
    })
    .await
    .unwrap()
    .unwrap();
    let report = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    assert!(
        report.contains("error code:400") && report.contains("auth failed for user:canal"),
        "{report}"
    );
    locked.stop();
}
