//! The HANDSHAKE the server pushes on connect, then CLIENTAUTHENTICATION: the first frame is read
//! as `ClientAuth` whatever its type, as Canal does. Unlike Canal (which lets a connection retry
//! forever), one attempt per connection, like MySQL: a failure is answered and the connection
//! closed, and the address's next attempts wait longer (`auth_throttle`).

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
pub(super) const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends the handshake and checks the one authentication attempt. Returns how long the session
/// may then stay idle (the client's `net_read_timeout`), or `None` when the connection is to be
/// closed: the attempt failed, the client left, sent garbage, took longer than [`AUTH_TIMEOUT`], a
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
    {
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
        // Attempts from an address with recent failures wait their turn and a growing delay.
        let _turn = tokio::select! {
            _ = shutdown.cancelled() => return None,
            t = ctx.auth_throttle.wait_turn(peer.ip()) => t,
        };
        match ctx.auth.authenticate(&auth.username, &auth.password, &seed) {
            Ok(()) => {
                ctx.auth_throttle.succeeded(peer.ip());
                conn.write_packet(&Packet::ack_ok()).await.ok()?;
                let ms = auth.net_read_timeout.unwrap_or(0);
                Some(if ms > 0 {
                    Duration::from_millis(ms as u64)
                } else {
                    DEFAULT_IDLE
                })
            }
            Err(e) => {
                let (failures, log) = ctx.auth_throttle.failed(peer.ip());
                if log {
                    info!(%peer, user = %auth.username, reason = %e, failures, next_delay_ms = ctx.auth_throttle.next_delay(peer.ip()).as_millis() as u64, "authentication failed; closing (logged at the 1st, 2nd, 4th, … failure per address)");
                }
                metrics::counter!("canal_server_auth_failures_total").increment(1);
                let _ = conn
                    .write_packet(&Packet::ack_error(
                        400,
                        format!("auth failed for user:{}", auth.username),
                    ))
                    .await;
                None
            }
        }
    }
}
