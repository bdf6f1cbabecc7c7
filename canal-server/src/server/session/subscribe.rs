//! SUBSCRIPTION: registers the client (with its table filter) on the destination's store and
//! persists the subscription.

use canal_protocol::packet::{Packet, Sub};
use tracing::{info, warn};

use super::{request_body, Answer, Outcome, Refusal, Reply, Session};

/// Subscribes the client; replies with a success ACK.
pub(super) async fn apply(session: &mut Session, packet: &Packet) -> Outcome {
    let sub: Sub = request_body(packet)?;
    let (inst, id) = session.identity(&sub.destination, &sub.client_id, "Sub")?;
    inst.store()
        .subscribe(id, &sub.filter, None)
        .map_err(|e| Refusal::new(sub.destination.as_str(), 400, e.to_string()))?;
    if let Err(e) = inst.flush().await {
        warn!(destination = %sub.destination, error = %e, "could not persist the subscription");
    }
    info!(destination = %sub.destination, client_id = id, filter = %sub.filter, "client subscribed");
    Ok(Answer::new(
        sub.destination,
        Reply::Packet(Packet::ack_ok()),
    ))
}
