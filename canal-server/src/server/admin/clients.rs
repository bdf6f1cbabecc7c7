//! The operator's client commands:
//! - `DELETE /destinations/{name}/clients/{id}` drops an abandoned client id: it is unsubscribed
//!   and its znode (Canal layout, `/otter/canal/destinations/{name}/{id}`) or `meta.dat` entry is
//!   removed, so it no longer holds anything, not even after a restart.
//! - `POST /destinations/{name}/clients/{id}/reset?to=oldest|FILE:OFFSET` moves its cursor:
//!   `oldest` is the oldest binlog still on the source (for a cursor behind a purge), a position
//!   must be an event start (a cursor, `SHOW BINLOG EVENTS`); the client receives entries from
//!   that event on.
//!
//! Both act on the server that runs the destination; elsewhere they answer 404 naming it.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::AdminState;
use crate::instance::Instance;
use crate::position::{BinlogPosition, Cursor, EntryPosition};
use crate::store::Lane;

type Reply = (StatusCode, String);

fn locate(
    s: &AdminState,
    name: &str,
    client_id: &str,
) -> Result<(std::sync::Arc<Instance>, i16), Reply> {
    let id: i16 = client_id.parse().map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            format!("client id {client_id:?} is not a number in -32768..32767\n"),
        )
    })?;
    let inst = s
        .ctx
        .instance(name)
        .ok_or_else(|| super::not_served(s, name))?;
    if !inst.store().is_subscribed(id) {
        return Err((
            StatusCode::NOT_FOUND,
            format!("client {id} is not subscribed to {name}\n"),
        ));
    }
    Ok((inst, id))
}

/// `DELETE /destinations/{name}/clients/{id}`.
pub(super) async fn drop_client(
    State(s): State<AdminState>,
    headers: axum::http::HeaderMap,
    Path((name, client_id)): Path<(String, String)>,
) -> impl IntoResponse {
    if let Err(refused) = s.authorize(&headers) {
        return refused;
    }
    let (inst, id) = match locate(&s, &name, &client_id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if inst.drop_client(id).await {
        (StatusCode::OK, format!("dropped client {id} of {name}\n"))
    } else {
        (
            StatusCode::NOT_FOUND,
            format!("client {id} is not subscribed to {name}\n"),
        )
    }
}

/// `POST /destinations/{name}/clients/{id}/reset?to=oldest|FILE:OFFSET`.
pub(super) async fn reset(
    State(s): State<AdminState>,
    headers: axum::http::HeaderMap,
    Path((name, client_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    if let Err(refused) = s.authorize(&headers) {
        return refused;
    }
    let (inst, id) = match locate(&s, &name, &client_id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(to) = q.get("to").map(|t| t.trim()) else {
        return (
            StatusCode::BAD_REQUEST,
            "give ?to=oldest or ?to=FILE:OFFSET\n".to_string(),
        );
    };
    let cursor = if to == "oldest" {
        match inst.store().lane(id) {
            Some(Lane::Purged { first_available }) => Cursor {
                position: BinlogPosition::new(first_available, 4),
                gtid: None,
                inclusive: true,
            }
            .stream_start(),
            _ => {
                return (
                    StatusCode::CONFLICT,
                    format!("client {id}'s cursor is not behind a purge; give ?to=FILE:OFFSET\n"),
                )
            }
        }
    } else {
        match to.parse::<BinlogPosition>() {
            Ok(p) => EntryPosition {
                binlog: p,
                next_offset: 0,
                server_id: 0,
                timestamp_ms: 0,
                gtid: None,
                inclusive: true,
            },
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("to={to:?}: {e} (give oldest or FILE:OFFSET)\n"),
                )
            }
        }
    };
    let shown = cursor.binlog.to_string();
    match inst.reset_client(id, cursor).await {
        Ok(()) => (
            StatusCode::OK,
            format!("client {id} of {name} continues after {shown}\n"),
        ),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")),
    }
}
