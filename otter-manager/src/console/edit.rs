//! Creating and editing a channel: a form of fields for the main settings and the rest of the
//! channel's TOML (the format of `otter-manager apply -f`) beside them ([`super::fields`]), merged
//! and checked by the same model code as `apply`, confirmed, then stored by [`crate::apply`] and
//! audited. An error is shown next to the field whose key it names, else next to the TOML.

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use otter_node::model::Channel;
use serde::Deserialize;

use super::fields::{self, FieldError, FieldView};

use super::actions::{utc, AuditEntry};
use super::auth::Session;
use super::pages::{base, error_page};
use super::State;

/// The example channel, offered as the starting point of a new one.
const EXAMPLE: &str = include_str!("../../../config/channel.toml");

fn render_form(
    state: &State,
    session: &Session,
    title: &str,
    fields: Vec<FieldView>,
    rest: &str,
    toml_error: Option<String>,
    failed: bool,
) -> Response {
    let mut r = state.render(
        "edit.html",
        context! { title => title, fields => fields, toml => rest, error => toml_error, ..base(session) },
    );
    if failed {
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    r
}

/// The form for a whole definition `text`, with `error` placed.
fn form(
    state: &State,
    session: &Session,
    title: &str,
    text: &str,
    error: Option<FieldError>,
) -> Response {
    match &error {
        None => {
            let (fields, rest) = fields::split(text);
            render_form(state, session, title, fields, &rest, None, false)
        }
        Some(e) => {
            let (fields, rest, toml_error) = fields::with_error(text, e);
            render_form(state, session, title, fields, &rest, toml_error, true)
        }
    }
}

fn model_error(e: &otter_node::model::ModelError) -> FieldError {
    FieldError {
        key: fields::field_key(&e.key),
        message: e.to_string(),
    }
}

/// GET /channel/new.
pub async fn new_channel(AxState(state): AxState<State>, session: Session) -> Response {
    if let Err(r) = session.require_operator() {
        return r.into_response();
    }
    form(&state, &session, "New channel", EXAMPLE, None)
}

/// GET /channel/{cid}/edit: the stored channel as TOML.
pub async fn edit_channel(
    AxState(state): AxState<State>,
    session: Session,
    Path(cid): Path<u32>,
) -> Response {
    if let Err(r) = session.require_operator() {
        return r.into_response();
    }
    let channel = match crate::get(&state.zk, cid).await {
        Ok(c) => c,
        Err(e) => return error_page(&state, &session, StatusCode::NOT_FOUND, &e.to_string()),
    };
    match channel_toml(&channel) {
        Ok(text) => form(
            &state,
            &session,
            &format!("Edit channel {cid}"),
            &text,
            None,
        ),
        Err(e) => error_page(
            &state,
            &session,
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot write channel {cid} as TOML: {e}"),
        ),
    }
}

/// `channel` in the file format [`Channel::from_toml`] reads: `[channel]` (id, name,
/// priority_site), `[pipeline]`, `[reverse]`; the status is not part of it.
pub fn channel_toml(channel: &Channel) -> Result<String, String> {
    fn drop_nulls(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|_, v| !v.is_null());
                m.values_mut().for_each(drop_nulls);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(drop_nulls),
            _ => {}
        }
    }
    let mut file = serde_json::json!({
        "channel": {
            "id": channel.id,
            "name": channel.name,
            "priority_site": channel.priority_site,
        },
        "pipeline": serde_json::to_value(&channel.pipeline).map_err(|e| e.to_string())?,
        "reverse": serde_json::to_value(&channel.reverse).map_err(|e| e.to_string())?,
    });
    drop_nulls(&mut file);
    toml::to_string(&file).map_err(|e| e.to_string())
}

/// The form: the token, the TOML (the whole definition, or the rest beside the fields), the
/// fields (`f.<key>`) and, on the second step, `confirm=yes`.
#[derive(Deserialize)]
pub struct ApplyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    toml: String,
    #[serde(default)]
    confirm: String,
    #[serde(flatten)]
    fields: std::collections::BTreeMap<String, String>,
}

/// The checks `apply` makes before touching ZooKeeper.
fn check(text: &str) -> Result<Channel, FieldError> {
    let c = Channel::from_toml(text).map_err(|e| model_error(&e))?;
    c.validate().map_err(|e| model_error(&e))?;
    c.check_no_literal_secrets().map_err(|e| model_error(&e))?;
    Ok(c)
}

/// POST /channel/apply: checks; without `confirm=yes` asks; with it stores through
/// [`crate::apply`] (which also checks ids against the other channels) and records it.
pub async fn apply(
    AxState(state): AxState<State>,
    session: Session,
    Form(f): Form<ApplyForm>,
) -> Response {
    if let Err(r) = session.check_csrf(&f.csrf) {
        return r.into_response();
    }
    if let Err(r) = session.require_operator() {
        return r.into_response();
    }
    let text = match fields::merge(&f.toml, f.fields.iter()) {
        Ok(t) => t,
        Err(e) => {
            let views = fields::posted(f.fields.iter(), &e);
            let toml_error = e.key.is_none().then_some(e.message);
            return render_form(
                &state,
                &session,
                "Fix the channel",
                views,
                &f.toml,
                toml_error,
                true,
            );
        }
    };
    let channel = match check(&text) {
        Ok(c) => c,
        Err(e) => return form(&state, &session, "Fix the channel", &text, Some(e)),
    };
    let cid = channel.id;
    if f.confirm != "yes" {
        return state.render(
            "confirm.html",
            context! {
                action => "apply",
                what => format!("channel {cid} ({})", channel.name),
                post_to => "/channel/apply",
                back => "/",
                fields => vec![("toml", text.clone())],
                ..base(&session)
            },
        );
    }
    let result = crate::apply(&state.zk, &channel).await;
    state.audit.record(AuditEntry {
        at: utc(otter_node::pipeline::heartbeat::now_ms()),
        user: session.user.clone(),
        action: "apply".to_string(),
        target: format!("channel {cid}"),
        outcome: match &result {
            Ok(o) => format!("ok: {}", o.verb()),
            Err(e) => e.to_string(),
        },
        channel: Some(cid),
    });
    match result {
        Ok(_) => Redirect::to(&format!("/channel/{cid}")).into_response(),
        Err(crate::ManagerError::Invalid(e)) => form(
            &state,
            &session,
            "Fix the channel",
            &text,
            Some(model_error(&e)),
        ),
        Err(e) => error_page(&state, &session, StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}
