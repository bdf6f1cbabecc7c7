//! Automatic-ack consumption against the fake server: acks only after the
//! handler succeeded, rollback on failure, empty batches skipped.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use canal_client::{
    CancellationToken, ClientError, ConnectorOptions, ConsumeError, ConsumeOptions,
    HandlerErrorPolicy, Message, SimpleConnector,
};
use canal_protocol::PacketType;
use futures::StreamExt;
use support::{insert_entry, FakeServer, GetReply};

fn options() -> ConnectorOptions {
    ConnectorOptions {
        username: "canal".into(),
        password: Some("123456".into()),
        so_timeout: Duration::from_secs(5),
        ..ConnectorOptions::default()
    }
}

async fn subscribed(server: &FakeServer) -> SimpleConnector {
    let mut connector = SimpleConnector::new(server.address(), "example", options());
    connector.connect().await.unwrap();
    connector.subscribe(None).await.unwrap();
    connector
}

fn consume_options(policy: HandlerErrorPolicy) -> ConsumeOptions {
    ConsumeOptions {
        batch_size: 10,
        poll_timeout: Duration::from_millis(20),
        on_handler_error: policy,
    }
}

/// Ids of the `id` column of every row in the message.
fn ids(message: &Message) -> Vec<String> {
    message
        .views()
        .filter_map(|v| v.unwrap().as_row_change().cloned())
        .flat_map(|rc| {
            rc.rows()
                .iter()
                .map(|r| r.after.value("id").unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[derive(Debug)]
struct Boom;

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}

impl std::error::Error for Boom {}

#[tokio::test]
async fn acks_only_after_handler_success_and_skips_empty_batches() {
    let server = Arc::new(FakeServer::start().await);
    server.script([
        GetReply::Empty,
        GetReply::Batch(vec![insert_entry("1", 100)]),
        GetReply::Empty,
        GetReply::Empty,
        GetReply::Batch(vec![insert_entry("2", 200), insert_entry("3", 300)]),
    ]);
    let mut connector = subscribed(&server).await;
    let shutdown = CancellationToken::new();
    let seen = Arc::new(Mutex::new(Vec::new()));

    let result = connector
        .consume(&consume_options(HandlerErrorPolicy::Stop), &shutdown, {
            let server = server.clone();
            let seen = seen.clone();
            let shutdown = shutdown.clone();
            move |message: Message| {
                let server = server.clone();
                let seen = seen.clone();
                let shutdown = shutdown.clone();
                async move {
                    assert!(!message.is_empty(), "empty batches are not passed on");
                    // While the handler runs, this batch is not acked yet.
                    assert!(!server.state().acked.contains(&message.id));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    assert!(!server.state().acked.contains(&message.id));
                    let mut seen = seen.lock().unwrap();
                    seen.push((message.id, ids(&message)));
                    if seen.len() == 2 {
                        shutdown.cancel();
                    }
                    Ok::<(), Boom>(())
                }
            }
        })
        .await;
    result.unwrap();
    assert!(connector.is_connected());
    connector.disconnect().await.unwrap();
    server.wait_for("session end", |s| s.closed == 1).await;

    assert_eq!(
        *seen.lock().unwrap(),
        [
            (1, vec!["1".to_owned()]),
            (2, vec!["2".to_owned(), "3".to_owned()])
        ]
    );
    let st = server.state();
    assert_eq!(st.acked, [1, 2]);
    // Each ack directly follows the GET whose batch it acks: written after
    // the handler returned, before the next GET.
    let after_sub: Vec<PacketType> = st.types[3..].to_vec();
    use PacketType::{Clientack as A, Clientrollback as R, Get as G};
    assert_eq!(after_sub, [G, G, A, G, G, G, A, R]);
}

#[tokio::test]
async fn handler_failure_rolls_back_and_stops() {
    let server = FakeServer::start().await;
    server.script([GetReply::Batch(vec![insert_entry("1", 100)])]);
    let mut connector = subscribed(&server).await;
    let shutdown = CancellationToken::new();
    let err = connector
        .consume(
            &consume_options(HandlerErrorPolicy::Stop),
            &shutdown,
            |_message| async { Err::<(), _>(Boom) },
        )
        .await
        .unwrap_err();
    match &err {
        ConsumeError::Handler {
            batch_id,
            attempts,
            source: Boom,
        } => {
            assert_eq!(*batch_id, 1);
            assert_eq!(*attempts, 1);
        }
        other => panic!("expected Handler, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "handler failed on batch 1 (1 attempt(s) in a row)"
    );
    assert!(std::error::Error::source(&err).is_some());
    server
        .wait_for("rollback", |s| s.rollbacks.len() == 2)
        .await;
    let st = server.state();
    assert!(st.acked.is_empty(), "a failed batch is never acked");
    assert_eq!(st.rollbacks, [0, 0]);
    assert_eq!(
        st.types.last(),
        Some(&PacketType::Clientrollback),
        "rollback right after the failed delivery"
    );
}

#[tokio::test]
async fn retry_policy_redelivers_then_acks() {
    let server = FakeServer::start().await;
    server.script([GetReply::Batch(vec![insert_entry("7", 700)])]);
    let mut connector = subscribed(&server).await;
    let shutdown = CancellationToken::new();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let policy = HandlerErrorPolicy::Retry {
        max_retries: 3,
        backoff: Duration::from_millis(10),
    };
    connector
        .consume(&consume_options(policy), &shutdown, {
            let calls = calls.clone();
            let shutdown = shutdown.clone();
            move |message: Message| {
                let calls = calls.clone();
                let shutdown = shutdown.clone();
                async move {
                    let mut calls = calls.lock().unwrap();
                    calls.push((message.id, ids(&message)));
                    if calls.len() < 3 {
                        return Err(Boom);
                    }
                    shutdown.cancel();
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
    connector.disconnect().await.unwrap();
    server.wait_for("session end", |s| s.closed == 1).await;

    // Same entries each time, under a new batch id after every rollback.
    assert_eq!(
        *calls.lock().unwrap(),
        [
            (1, vec!["7".to_owned()]),
            (2, vec!["7".to_owned()]),
            (3, vec!["7".to_owned()])
        ]
    );
    let st = server.state();
    assert_eq!(st.acked, [3]);
    // connect, two handler failures, disconnect.
    assert_eq!(st.rollbacks, [0, 0, 0, 0]);
}

#[tokio::test]
async fn retry_policy_gives_up_after_max_retries() {
    let server = FakeServer::start().await;
    server.script([GetReply::Batch(vec![insert_entry("7", 700)])]);
    let mut connector = subscribed(&server).await;
    let shutdown = CancellationToken::new();
    let policy = HandlerErrorPolicy::Retry {
        max_retries: 1,
        backoff: Duration::from_millis(1),
    };
    let err = connector
        .consume(&consume_options(policy), &shutdown, |_m| async {
            Err::<(), _>(Boom)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConsumeError::Handler {
                batch_id: 2,
                attempts: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(server.state().acked.is_empty());
}

#[tokio::test]
async fn client_error_ends_consume() {
    let server = FakeServer::start().await;
    server.script([GetReply::Packet(canal_protocol::Packet::ack_error(
        400,
        "batchId:1 is not the firstly:2",
    ))]);
    let mut connector = subscribed(&server).await;
    let shutdown = CancellationToken::new();
    let err = connector
        .consume(
            &consume_options(HandlerErrorPolicy::Stop),
            &shutdown,
            |_m| async { Ok::<(), Boom>(()) },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConsumeError::Client(ClientError::Server { code: 400, .. })
        ),
        "{err:?}"
    );
    assert!(!connector.is_connected());
}

#[tokio::test]
async fn stream_acks_previous_batch_on_next_poll() {
    let server = FakeServer::start().await;
    server.script([
        GetReply::Batch(vec![insert_entry("1", 100)]),
        GetReply::Empty,
        GetReply::Batch(vec![insert_entry("2", 200)]),
        GetReply::Batch(vec![insert_entry("3", 300)]),
    ]);
    let connector = subscribed(&server).await;
    let mut stream = connector.into_stream(10, Duration::from_millis(20));

    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.id, 1);
    // Nothing acked while the consumer holds the batch.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(server.state().acked.is_empty());

    let second = stream.next().await.unwrap().unwrap();
    assert_eq!(second.id, 2, "the empty batch was skipped");
    server.wait_for("ack 1", |s| s.acked == [1]).await;

    let third = stream.next().await.unwrap().unwrap();
    assert_eq!(third.id, 3);
    server.wait_for("ack 2", |s| s.acked == [1, 2]).await;

    // Dropping the stream leaves batch 3 un-acked; a new connection rolls it
    // back and gets it again.
    drop(stream);
    server.wait_for("session end", |s| s.closed == 1).await;
    let mut connector = subscribed(&server).await;
    let again = connector.get_without_ack(10, None).await.unwrap();
    assert_eq!(again.id, 4);
    assert_eq!(again.entries, third.entries);
    assert_eq!(server.state().acked, [1, 2]);
}

#[tokio::test]
async fn stream_ends_after_error() {
    let server = FakeServer::start().await;
    server.script([GetReply::Close]);
    let connector = subscribed(&server).await;
    let mut stream = connector.into_stream(10, Duration::ZERO);
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, ClientError::ConnectionClosed { .. }),
        "{err:?}"
    );
    assert!(stream.next().await.is_none());
}
