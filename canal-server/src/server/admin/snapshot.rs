//! The operator's snapshot commands, on the server that runs the destination:
//! - `POST /destinations/{name}/snapshot?tables=shop.orders,shop.items` starts a snapshot of those
//!   tables in the stream (202 with the run id; 409 while one runs);
//! - `GET /destinations/{name}/snapshot` shows the current or last run as JSON (tables, rows
//!   read, done, rows left to the binlog because they changed inside a window, errors).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::AdminState;
use crate::instance::SnapshotStartError;

/// `POST /destinations/{name}/snapshot?tables=a.b,c.d`.
pub(super) async fn start(
    State(s): State<AdminState>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    if let Err(refused) = s.authorize(&headers) {
        return refused;
    }
    let Some(inst) = s.ctx.instance(&name) else {
        return super::not_served(&s, &name);
    };
    let tables: Vec<String> = q
        .get("tables")
        .map(|t| {
            t.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match inst.start_snapshot(tables) {
        Ok(run) => (
            StatusCode::ACCEPTED,
            format!("snapshot {run} of {name} started\n"),
        ),
        Err(e @ (SnapshotStartError::Running(_) | SnapshotStartError::ClientsCatchingUp(_))) => {
            (StatusCode::CONFLICT, format!("{e}\n"))
        }
        Err(e @ SnapshotStartError::BadTables(_)) => (
            StatusCode::BAD_REQUEST,
            format!("{e} (use ?tables=schema.table,schema.table)\n"),
        ),
    }
}

/// `GET /destinations/{name}/snapshot`.
pub(super) async fn status(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> axum::response::Response {
    let Some(inst) = s.ctx.instance(&name) else {
        return super::not_served(&s, &name).into_response();
    };
    axum::Json(inst.snapshot_status()).into_response()
}
