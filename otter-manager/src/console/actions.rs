//! Actions (start, stop, pause a channel), each confirmed on a second page and recorded in the
//! audit log: who, what, when, and how it ended. The log is in memory, bounded (oldest dropped),
//! and also written to `audit.jsonl` under `[console] data_dir` when one is set ([`super::store`]).

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use otter_node::model::ChannelStatus;
use serde::{Deserialize, Serialize};

use super::auth::Session;
use super::pages::{base, error_page};
use super::State;

/// One audited action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub at: String,
    /// Who.
    pub user: String,
    /// What: `stop`, `start`, `pause`.
    pub action: String,
    /// On what: `channel 1`.
    pub target: String,
    /// `ok` or the error.
    pub outcome: String,
    /// The channel, for the channel page's excerpt.
    #[serde(default)]
    pub channel: Option<u32>,
}

/// The bounded audit log.
pub struct AuditLog {
    cap: usize,
    entries: Mutex<VecDeque<AuditEntry>>,
    store: Option<super::store::Jsonl>,
}

impl AuditLog {
    /// A log of at most `cap` entries, starting with those `store` kept, if any.
    pub(crate) fn new(cap: usize, store: Option<super::store::Jsonl>) -> Self {
        let kept: VecDeque<AuditEntry> = store
            .as_ref()
            .map(|s| s.load().into_iter().collect())
            .unwrap_or_default();
        Self {
            cap: cap.max(1),
            entries: Mutex::new(kept),
            store,
        }
    }

    /// Appends, dropping the oldest beyond the capacity; also logged through tracing.
    pub fn record(&self, e: AuditEntry) {
        tracing::info!(user = %e.user, action = %e.action, target = %e.target, outcome = %e.outcome, "console audit");
        if let Some(store) = &self.store {
            store.append(&e);
        }
        let mut g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() >= self.cap {
            g.pop_front();
        }
        g.push_back(e);
    }

    /// Newest first.
    pub fn all(&self) -> Vec<AuditEntry> {
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().rev().cloned().collect()
    }

    /// Newest first, one channel's.
    pub fn for_channel(&self, cid: u32) -> Vec<AuditEntry> {
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        g.iter()
            .rev()
            .filter(|e| e.channel == Some(cid))
            .take(20)
            .cloned()
            .collect()
    }
}

/// UTC `YYYY-MM-DD HH:MM:SS` of ms since the epoch.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An action form: the CSRF token and, on the second step, `confirm=yes`.
#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

fn status_of(action: &str) -> Option<ChannelStatus> {
    match action {
        "start" => Some(ChannelStatus::Started),
        "stop" => Some(ChannelStatus::Stopped),
        "pause" => Some(ChannelStatus::Paused),
        _ => None,
    }
}

/// POST /channel/{cid}/{start|stop|pause}: without `confirm=yes` shows the confirmation page;
/// with it sets the status (through [`crate::set_status`], as the CLI does) and records it.
pub async fn channel_action(
    AxState(state): AxState<State>,
    session: Session,
    Path((cid, action)): Path<(u32, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(r) = session.check_csrf(&form.csrf) {
        return r.into_response();
    }
    if let Err(r) = session.require_operator() {
        return r.into_response();
    }
    let Some(status) = status_of(&action) else {
        return error_page(&state, &session, StatusCode::NOT_FOUND, "no such action");
    };
    if form.confirm != "yes" {
        let name = crate::get(&state.zk, cid)
            .await
            .map(|c| c.name)
            .unwrap_or_default();
        return state.render(
            "confirm.html",
            context! {
                action => action,
                what => format!("channel {cid}{}", if name.is_empty() { String::new() } else { format!(" ({name})") }),
                post_to => format!("/channel/{cid}/{action}"),
                back => format!("/channel/{cid}"),
                ..base(&session)
            },
        );
    }
    let result = crate::set_status(&state.zk, cid, status).await;
    state.audit.record(AuditEntry {
        at: utc(otter_node::pipeline::heartbeat::now_ms()),
        user: session.user.clone(),
        action: action.clone(),
        target: format!("channel {cid}"),
        outcome: match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        },
        channel: Some(cid),
    });
    match result {
        Ok(()) => Redirect::to(&format!("/channel/{cid}")).into_response(),
        Err(e) => error_page(&state, &session, StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

/// POST /canal/{dest}/release: after confirmation, asks the running server to hand the
/// destination to a standby ([`super::canal::release`]) and records it.
pub async fn canal_release(
    AxState(state): AxState<State>,
    session: Session,
    Path(dest): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(r) = session.check_csrf(&form.csrf) {
        return r.into_response();
    }
    if let Err(r) = session.require_operator() {
        return r.into_response();
    }
    if form.confirm != "yes" {
        return state.render(
            "confirm.html",
            context! {
                action => "release",
                what => format!("destination {dest}"),
                post_to => format!("/canal/{dest}/release"),
                back => "/canal",
                ..base(&session)
            },
        );
    }
    let result = super::canal::release(&state.zk, &dest).await;
    state.audit.record(AuditEntry {
        at: utc(otter_node::pipeline::heartbeat::now_ms()),
        user: session.user.clone(),
        action: "release".to_string(),
        target: format!("destination {dest}"),
        outcome: match &result {
            Ok(addr) => format!("ok: {addr} asked to hand over"),
            Err(e) => e.to_string(),
        },
        channel: None,
    });
    match result {
        Ok(_) => Redirect::to("/canal").into_response(),
        Err(e @ super::canal::ReleaseError::NotRunning(_)) => {
            error_page(&state, &session, StatusCode::CONFLICT, &e.to_string())
        }
        Err(e) => error_page(&state, &session, StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

/// GET /audit.
pub async fn audit(AxState(state): AxState<State>, session: Session) -> Response {
    state.render(
        "audit.html",
        context! { entries => state.audit.all(), ..base(&session) },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_351_545_123), "2026-12-04 02:32:25");
    }

    #[test]
    fn the_log_keeps_the_newest() {
        let log = AuditLog::new(2, None);
        for i in 0..3 {
            log.record(AuditEntry {
                at: String::new(),
                user: format!("u{i}"),
                action: "stop".into(),
                target: String::new(),
                outcome: "ok".into(),
                channel: Some(i),
            });
        }
        let all: Vec<_> = log.all().into_iter().map(|e| e.user).collect();
        assert_eq!(all, vec!["u2", "u1"]);
        assert!(log.for_channel(0).is_empty());
    }
}
