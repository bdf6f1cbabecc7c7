//! UNSUBSCRIPTION: removes the client from the destination's store and persists that.

use canal_protocol::packet::{Packet, Unsub};
use tracing::warn;

use super::{request_body, Answer, Outcome, Reply, Session};

/// Unsubscribes the client; replies with a success ACK.
pub(super) async fn apply(session: &mut Session, packet: &Packet) -> Outcome {
    let un: Unsub = request_body(packet)?;
    let (inst, id) = session.identity(&un.destination, &un.client_id, "Unsub")?;
    inst.unsubscribe(id);
    if let Err(e) = inst.flush().await {
        warn!(destination = %un.destination, error = %e, "could not persist the unsubscription");
    }
    Ok(Answer::new(un.destination, Reply::Packet(Packet::ack_ok())))
}
