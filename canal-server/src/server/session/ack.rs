//! CLIENTACK: confirms a batch, which moves the client's cursor. No reply; a failure is reported
//! as the reply to the client's next request.

use canal_protocol::packet::{ClientAck, Packet};
use tracing::warn;

use super::{request_body, Answer, Outcome, Refusal, Reply, Session};

/// Acks the batch (`batch_id` -1, the empty batch, is accepted and does nothing).
pub(super) async fn apply(session: &mut Session, packet: &Packet) -> Outcome {
    let ack: ClientAck = request_body(packet)?;
    let (inst, id) = session.identity(&ack.destination, &ack.client_id, "Ack")?;
    if ack.batch_id == 0 {
        return Err(Refusal::new(
            ack.destination,
            402,
            "batchId should assign value",
        ));
    }
    if ack.batch_id == -1 {
        return Ok(Answer::new(ack.destination, Reply::None));
    }
    let (rows, _) = inst
        .ack(id, ack.batch_id)
        .map_err(|e| Refusal::new(ack.destination.as_str(), 400, e.to_string()))?;
    metrics::counter!("canal_instance_ack_rows", "destination" => ack.destination.clone())
        .increment(rows);
    if inst.flush_on_ack() {
        if let Err(e) = inst.flush().await {
            warn!(destination = %ack.destination, error = %e, "could not write the cursor");
        }
    }
    Ok(Answer::new(ack.destination, Reply::None))
}
