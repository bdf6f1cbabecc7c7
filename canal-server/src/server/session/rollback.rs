//! CLIENTROLLBACK: hands a batch (or, with `batch_id` 0, every outstanding batch) out again. No
//! reply; a failure is reported as the reply to the client's next request.

use canal_protocol::packet::{ClientRollback, Packet};

use super::{request_body, Answer, Outcome, Refusal, Reply, Session};

/// Rolls back; does nothing for a client that has not subscribed yet.
pub(super) async fn apply(session: &mut Session, packet: &Packet) -> Outcome {
    let rb: ClientRollback = request_body(packet)?;
    let (inst, id) = session.identity(&rb.destination, &rb.client_id, "Rollback")?;
    if !inst.store().is_subscribed(id) {
        // Clients send rollback(0) right after connecting, before they subscribe.
        return Ok(Answer::new(rb.destination, Reply::None));
    }
    inst.rollback(id, rb.batch_id)
        .map_err(|e| Refusal::new(rb.destination.as_str(), 400, e.to_string()))?;
    Ok(Answer::new(rb.destination, Reply::None))
}
