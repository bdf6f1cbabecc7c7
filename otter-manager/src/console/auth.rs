//! Login, sessions and CSRF tokens.
//!
//! Users come from the config with argon2 PHC hashes (`otter-manager hash-password` makes one).
//! A login creates a random session token, sent back as an `HttpOnly; SameSite=Strict` cookie, and
//! a separate random CSRF token that every form carries and every POST must echo. The login form
//! itself is protected the double-submit way (a cookie and a hidden field that must match).
//! Sessions live in memory, bounded (the oldest is dropped) and expire after [`SESSION_TTL`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{FromRequestParts, State as AxState};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{ConsoleError, State};

/// How long a session lasts after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const SESSION_COOKIE: &str = "otter_session";
const LOGIN_COOKIE: &str = "otter_login";

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees every page; cannot act.
    Viewer,
    /// Also starts, stops and pauses channels.
    Operator,
}

/// A console user from the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Argon2 PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
    /// `viewer` or `operator`.
    pub role: Role,
}

/// An argon2id PHC hash of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub(crate) fn check_hash(user: &User) -> Result<(), ConsoleError> {
    PasswordHash::new(&user.password_hash)
        .map(|_| ())
        .map_err(|e| ConsoleError::BadHash {
            user: user.name.clone(),
            reason: e.to_string(),
        })
}

fn verify(user: &User, password: &str) -> bool {
    match PasswordHash::new(&user.password_hash) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Equal without leaking where they differ through timing.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Why a request was refused: the status and the text shown.
pub type Refused = (StatusCode, &'static str);

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub user: String,
    /// What they may do.
    pub role: Role,
    /// The token every POST of this session must carry.
    pub csrf: String,
    created: Instant,
}

impl Session {
    /// Fails with 403 unless the form's token is this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), Refused> {
        if same(&self.csrf, token) {
            Ok(())
        } else {
            tracing::warn!(user = %self.user, "POST without a valid CSRF token refused");
            Err((StatusCode::FORBIDDEN, "missing or invalid CSRF token"))
        }
    }

    /// Fails with 403 unless the user is an operator.
    pub fn require_operator(&self) -> Result<(), Refused> {
        if self.role == Role::Operator {
            Ok(())
        } else {
            Err((StatusCode::FORBIDDEN, "operators only: you are a viewer"))
        }
    }
}

/// The sessions alive, bounded.
pub struct Sessions {
    max: usize,
    inner: Mutex<(HashMap<String, Session>, VecDeque<String>)>,
}

impl Sessions {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    fn create(&self, user: String, role: Role) -> String {
        let token = random_token();
        let session = Session {
            user,
            role,
            csrf: random_token(),
            created: Instant::now(),
        };
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        while map.len() >= self.max {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
        map.insert(token.clone(), session);
        order.push_back(token.clone());
        token
    }

    fn get(&self, token: &str) -> Option<Session> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        match map.get(token) {
            Some(s) if s.created.elapsed() < SESSION_TTL => Some(s.clone()),
            Some(_) => {
                map.remove(token);
                order.retain(|t| t != token);
                None
            }
            None => None,
        }
    }

    fn remove(&self, token: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        map.remove(token);
        order.retain(|t| t != token);
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, max_age: u64) -> HeaderValue {
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    // Tokens are hex: always a valid header value.
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl FromRequestParts<State> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Response> {
        cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|t| state.sessions.get(t))
            .ok_or_else(|| {
                if parts.method == axum::http::Method::GET {
                    Redirect::to("/login").into_response()
                } else {
                    (StatusCode::UNAUTHORIZED, "log in first").into_response()
                }
            })
    }
}

/// GET /login.
pub async fn login_page(AxState(state): AxState<State>) -> Response {
    login_form(&state, None, StatusCode::OK)
}

fn login_form(state: &State, error: Option<&str>, status: StatusCode) -> Response {
    let token = random_token();
    let mut resp = state.render(
        "login.html",
        minijinja::context! {
            csrf => token,
            error => error,
            open => state.config.users.is_empty(),
        },
    );
    *resp.status_mut() = status;
    resp.headers_mut()
        .append(SET_COOKIE, set_cookie(LOGIN_COOKIE, &token, 3600));
    resp
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

/// POST /login.
pub async fn login(
    AxState(state): AxState<State>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    match cookie(&headers, LOGIN_COOKIE) {
        Some(c) if !form.csrf.is_empty() && same(c, &form.csrf) => {}
        _ => return (StatusCode::FORBIDDEN, "missing or invalid CSRF token").into_response(),
    }
    let role = if state.config.users.is_empty() {
        // Only possible on loopback (checked at start): everyone is an operator.
        Some(Role::Operator)
    } else {
        state
            .config
            .users
            .iter()
            .find(|u| u.name == form.user)
            .filter(|u| verify(u, &form.password))
            .map(|u| u.role)
    };
    let Some(role) = role else {
        tracing::warn!(user = %form.user, "console login failed");
        return login_form(
            &state,
            Some("wrong user or password"),
            StatusCode::UNAUTHORIZED,
        );
    };
    let user = if form.user.is_empty() {
        "anonymous".to_string()
    } else {
        form.user.clone()
    };
    tracing::info!(user = %user, ?role, "console login");
    let token = state.sessions.create(user, role);
    let mut resp = Redirect::to("/").into_response();
    resp.headers_mut().append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, SESSION_TTL.as_secs()),
    );
    resp.headers_mut()
        .append(SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0));
    resp
}

/// A form that only carries the CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// POST /logout.
pub async fn logout(
    AxState(state): AxState<State>,
    headers: HeaderMap,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = session.check_csrf(&form.csrf) {
        return r.into_response();
    }
    if let Some(t) = cookie(&headers, SESSION_COOKIE) {
        state.sessions.remove(t);
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut()
        .append(SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let h = hash_password("s3cret").unwrap();
        let u = User {
            name: "a".into(),
            password_hash: h,
            role: Role::Viewer,
        };
        check_hash(&u).unwrap();
        assert!(verify(&u, "s3cret"));
        assert!(!verify(&u, "s3cres"));
    }

    #[test]
    fn sessions_are_bounded_and_tokens_compare_exactly() {
        let s = Sessions::new(2);
        let a = s.create("a".into(), Role::Viewer);
        let b = s.create("b".into(), Role::Viewer);
        let c = s.create("c".into(), Role::Operator);
        assert!(s.get(&a).is_none(), "the oldest is dropped");
        assert_eq!(s.get(&b).unwrap().user, "b");
        assert_eq!(s.get(&c).unwrap().role, Role::Operator);
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
