//! GET (with or without auto-ack; the store decides): waits for a batch as the request's
//! `timeout`/`unit` say and replies with a raw MESSAGES frame, or `Messages{batch_id = -1}` when
//! nothing came.

use std::time::Duration;

use canal_protocol::packet::{Get, Packet};
use tokio_util::sync::CancellationToken;

use super::{request_body, Answer, Outcome, Refusal, Reply, Session, HANDED_KEPT};
use crate::store::GetWait;

/// Takes the next batch for the client; remembers it as handed out until the session ends.
pub(super) async fn apply(
    session: &mut Session,
    packet: &Packet,
    shutdown: &CancellationToken,
) -> Outcome {
    let get: Get = request_body(packet)?;
    let (inst, id) = session.identity(&get.destination, &get.client_id, "Get")?;
    let wait = get_wait(get.timeout, get.unit);
    let batch = tokio::select! {
        _ = shutdown.cancelled() => return Err(Refusal::new(get.destination, 400, "server is shutting down")),
        b = inst.get(id, get.fetch_size, wait) => b,
    }
    .map_err(|e| Refusal::new(get.destination.as_str(), 400, e.to_string()))?;
    if batch.id == -1 {
        metrics::counter!("canal_instance_client_empty_batches", "destination" => get.destination.clone()).increment(1);
        return Ok(Answer::new(
            get.destination,
            Reply::Packet(Packet::empty_messages()),
        ));
    }
    metrics::counter!("canal_instance_get_rows", "destination" => get.destination.clone())
        .increment(batch.rows);
    if let Some(t) = batch.last_execute_time {
        metrics::gauge!("canal_instance_get_delay", "destination" => get.destination.clone())
            .set((now_ms() - t).max(0) as f64);
    }
    if session.handed.len() == HANDED_KEPT {
        session.handed.pop_front();
    }
    session.handed.push_back((inst.clone(), id, batch.id));
    Ok(Answer::new(
        get.destination,
        Reply::Messages {
            id: batch.id,
            entries: batch.entries,
        },
    ))
}

/// Converts Canal's GET `timeout`/`unit` into a wait (reference §1.7).
pub fn get_wait(timeout: Option<i64>, unit: Option<i32>) -> GetWait {
    let t = timeout.unwrap_or(0);
    if t == -1 {
        return GetWait::NonBlocking;
    }
    if t <= 0 {
        return GetWait::UntilFull;
    }
    let t = t as u64;
    let d = match unit.unwrap_or(0) {
        0 => Duration::from_nanos(t),
        1 => Duration::from_micros(t),
        3 => Duration::from_secs(t),
        4 => Duration::from_secs(t.saturating_mul(60)),
        5 => Duration::from_secs(t.saturating_mul(3600)),
        6 => Duration::from_secs(t.saturating_mul(86400)),
        _ => Duration::from_millis(t),
    };
    GetWait::Up(d)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_timeout_rules() {
        assert_eq!(get_wait(Some(-1), Some(2)), GetWait::NonBlocking);
        assert_eq!(get_wait(None, None), GetWait::UntilFull);
        assert_eq!(get_wait(Some(-2), Some(2)), GetWait::UntilFull);
        assert_eq!(
            get_wait(Some(1000), Some(2)),
            GetWait::Up(Duration::from_millis(1000))
        );
        assert_eq!(
            get_wait(Some(1000), None),
            GetWait::Up(Duration::from_nanos(1000))
        );
        assert_eq!(
            get_wait(Some(5), Some(-1)),
            GetWait::Up(Duration::from_millis(5))
        );
        assert_eq!(
            get_wait(Some(2), Some(3)),
            GetWait::Up(Duration::from_secs(2))
        );
    }
}
