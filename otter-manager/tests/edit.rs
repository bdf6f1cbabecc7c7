//! Creating and editing a channel in the console's form: fields for the main settings, the rest
//! as TOML, merged and checked by `apply`'s code; each error next to the field it names (or the
//! TOML); confirmed, stored, audited. A real manager process and ZooKeeper, over HTTP.

mod web;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use harness::{free_port, init_tracing, TestDir, ZooKeeper};
use otter_node::model::Channel;
use web::http::{csrf_of, login, page, serve, viewer};

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// The form as the page holds it: `f.<key>` inputs and the `toml` textarea.
fn form_of(page: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = page;
    while let Some(at) = rest.find("name=\"f.") {
        let after = &rest[at + 6..];
        let name = &after[..after.find('"').unwrap()];
        let v = &after[after.find("value=\"").unwrap() + 7..];
        out.insert(name.to_string(), unescape(&v[..v.find('"').unwrap()]));
        rest = after;
    }
    let start = page.find("<textarea name=\"toml\"").expect("the form");
    let start = start + page[start..].find('>').unwrap() + 1;
    let end = start + page[start..].find("</textarea>").unwrap();
    out.insert("toml".into(), unescape(&page[start..end]));
    out
}

/// The error shown next to field `id` (`channel-id`), if any.
fn field_error(page: &str, id: &str) -> Option<String> {
    let at = page.find(&format!("id=\"error-{id}\">"))?;
    let text = &page[at..];
    Some(unescape(&text[text.find('>')? + 1..text.find("</p>")?]))
}

async fn post(http: &reqwest::Client, port: u16, form: &BTreeMap<String, String>) -> (u16, String) {
    let r = http
        .post(format!("http://127.0.0.1:{port}/channel/apply"))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_creates_and_edits_channels_through_fields_with_apply_s_checks() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/channel.toml");
    let first = Channel::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
    otter_manager::apply(&client, &first).await.unwrap();
    let dir = TestDir::new("otter-console-edit").unwrap();
    let config = dir.path().join("manager.toml");
    std::fs::write(
        &config,
        format!(
            "[console]\n\n[[console.users]]\nname = \"olga\"\npassword_hash = \"{}\"\nrole = \"operator\"\n\n[[console.users]]\nname = \"victor\"\npassword_hash = \"{}\"\nrole = \"viewer\"\n",
            otter_manager::console::hash_password("olga-pass").unwrap(),
            otter_manager::console::hash_password("victor-pass").unwrap()
        ),
    )
    .unwrap();
    let port = free_port();
    let _server = serve(&zk.connect_string(), port, &config).await;
    let olga = login(port, "olga", "olga-pass").await;

    // The new-channel form starts from the example: its settings in fields, the rest as TOML.
    let html = page(&olga, port, "/channel/new").await;
    let csrf = csrf_of(&html);
    let mut form = form_of(&html);
    assert_eq!(form["f.channel.id"], "1");
    assert_eq!(form["f.pipeline.source.slave_id"], "3301");
    assert_eq!(form["f.pipeline.load_nodes"], "1");
    assert!(form["toml"].contains("[[pipeline.tables]]"), "{form:?}");
    assert!(!form["toml"].contains("slave_id"), "{form:?}");
    form.insert("csrf".into(), csrf.clone());
    form.insert("confirm".into(), "yes".into());

    // A bad value: the model's error next to its field, the value kept; nothing stored.
    let mut bad = form.clone();
    bad.insert("f.channel.id".into(), "0".into());
    let (status, html) = post(&olga, port, &bad).await;
    assert_eq!(status, 422, "{html}");
    assert!(field_error(&html, "channel-id").is_some_and(|e| e.contains("channel.id")));
    assert_eq!(form_of(&html)["f.channel.id"], "0");
    assert!(!html.contains("id=\"toml-error\""));
    // Not a number: named before the model sees it.
    let mut bad = form.clone();
    bad.insert("f.pipeline.load_nodes".into(), "1, x".into());
    let (status, html) = post(&olga, port, &bad).await;
    assert_eq!(status, 422, "{html}");
    assert!(field_error(&html, "pipeline-load_nodes").is_some_and(|e| e.contains("whole numbers")));
    assert_eq!(form_of(&html)["f.pipeline.load_nodes"], "1, x");
    // A key the model does not know, in the TOML: the error is next to the TOML.
    let mut bad = form.clone();
    bad.insert(
        "toml".into(),
        form["toml"].replacen("[pipeline]", "[pipeline]\nbogus = 1", 1),
    );
    let (status, html) = post(&olga, port, &bad).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"toml-error\""), "{html}");
    // A pipeline id that channel 1 holds: refused by apply's check among the stored channels.
    let mut taken = form.clone();
    taken.insert("f.channel.id".into(), "2".into());
    let (status, _) = post(&olga, port, &taken).await;
    assert_eq!(status, 422);
    assert!(matches!(
        otter_manager::get(&client, 2).await,
        Err(otter_manager::ManagerError::NoSuchChannel(2))
    ));

    // A good one: confirmation first, then created, audited, shown.
    let mut good = taken.clone();
    good.insert("f.pipeline.id".into(), "2".into());
    good.insert("f.pipeline.source.slave_id".into(), "3302".into());
    good.insert("f.channel.name".into(), "made-in-console".into());
    good.remove("confirm");
    let (status, html) = post(&olga, port, &good).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Apply channel 2 (made-in-console)?"),
        "{html}"
    );
    assert!(otter_manager::get(&client, 2).await.is_err());
    good.insert("confirm".into(), "yes".into());
    let (status, html) = post(&olga, port, &good).await;
    assert_eq!(status, 200, "{html}");
    let stored = otter_manager::get(&client, 2).await.unwrap();
    assert_eq!(
        (
            stored.name.as_str(),
            stored.pipeline.id,
            stored.pipeline.source.slave_id
        ),
        ("made-in-console", 2, 3302)
    );
    assert_eq!(stored.pipeline.tables, first.pipeline.tables);
    assert!(html.contains("Channel 2 · made-in-console"));
    assert!(
        html.contains("<td>olga</td><td>apply</td><td>ok: created</td>"),
        "{html}"
    );

    // Editing shows the stored channel; applying it unchanged writes nothing.
    let html = page(&olga, port, "/channel/2/edit").await;
    let mut again = form_of(&html);
    assert_eq!(again["f.pipeline.source.slave_id"], "3302");
    again.insert("csrf".into(), csrf.clone());
    again.insert("confirm".into(), "yes".into());
    let (_, html) = post(&olga, port, &again).await;
    assert!(
        html.contains("<td>olga</td><td>apply</td><td>ok: unchanged</td>"),
        "{html}"
    );

    // A viewer may not, and nobody without the token.
    let victor = viewer(port).await;
    let r = victor
        .get(format!("http://127.0.0.1:{port}/channel/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let mut as_victor = good.clone();
    as_victor.insert("csrf".into(), csrf_of(&page(&victor, port, "/").await));
    assert_eq!(post(&victor, port, &as_victor).await.0, 403);
    let mut no_token = good.clone();
    no_token.remove("csrf");
    assert_eq!(post(&olga, port, &no_token).await.0, 403);
}
