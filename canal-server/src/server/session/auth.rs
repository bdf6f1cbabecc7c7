//! The HANDSHAKE the server pushes on connect, then CLIENTAUTHENTICATION: every frame is read as
//! `ClientAuth` until one succeeds, as Canal does.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use canal_protocol::packet::{ClientAuth, Packet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::connection::{Connection, ReadError};
use crate::server::ServerContext;

/// Idle limit when the client sends no timeout (Canal: 1 hour).
const DEFAULT_IDLE: Duration = Duration::from_secs(3600);
/// A connection must authenticate within this time.
const AUTH_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends the handshake and waits for a successful authentication. Returns how long the session
/// may then stay idle (the client's `net_read_timeout`), or `None` when the connection is to be
/// closed: the client left, sent garbage, took longer than [`AUTH_TIMEOUT`] for one attempt, a
/// write failed or the server is stopping.
pub(super) async fn authenticate(
    conn: &mut Connection,
    ctx: &ServerContext,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> Option<Duration> {
    let seed: [u8; 8] = rand::random();
    conn.write_packet(&Packet::handshake(Bytes::copy_from_slice(&seed)))
        .await
        .ok()?;
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = conn.read_packet(AUTH_TIMEOUT) => r,
        };
        let packet = match read {
            Ok(Some(packet)) => packet,
            Ok(None) => return None,
            Err(ReadError::TimedOut) => {
                debug!(%peer, "no authentication in time; closing");
                return None;
            }
            Err(e) => {
                conn.report(&e).await;
                return None;
            }
        };
        // Canal reads the body as ClientAuth whatever the packet's type.
        let auth = match packet.decode_body::<ClientAuth>() {
            Ok(auth) => auth,
            Err(e) => {
                conn.report(&ReadError::Packet(e)).await;
                return None;
            }
        };
        match ctx.auth.authenticate(&auth.username, &auth.password, &seed) {
            Ok(()) => {
                conn.write_packet(&Packet::ack_ok()).await.ok()?;
                let ms = auth.net_read_timeout.unwrap_or(0);
                return Some(if ms > 0 {
                    Duration::from_millis(ms as u64)
                } else {
                    DEFAULT_IDLE
                });
            }
            Err(e) => {
                info!(%peer, user = %auth.username, reason = %e, "authentication failed");
                metrics::counter!("canal_server_auth_failures_total").increment(1);
                conn.write_packet(&Packet::ack_error(
                    400,
                    format!("auth failed for user:{}", auth.username),
                ))
                .await
                .ok()?;
            }
        }
    }
}
