//! Who is logged in to the console, and that a form came from the console (DESIGN §11).
//!
//! Logging in with the admin token sets `sb_session`: `v1.<issued unix s>.<nonce>.<mac>`,
//! the MAC an HMAC-SHA256 under a key derived from the admin token (rotating the token logs
//! everyone out), HttpOnly, SameSite=Strict, 12 hours. Every state-changing request carries
//! the session's CSRF token (an HMAC of its nonce) in the form field `_csrf` and, when the
//! browser sends one, an `Origin` of this host; else 403. The login form itself is
//! protected by a double-submit cookie (`sb_login`), as there is no session yet.

use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How long a session lasts.
pub const SESSION_SECONDS: i64 = 12 * 3600;
pub const SESSION_COOKIE: &str = "sb_session";
pub const LOGIN_COOKIE: &str = "sb_login";

/// The key sessions are signed with.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// The key of the console of a control plane with `admin_token`.
    pub fn derive(admin_token: &str) -> Self {
        Self(mac(
            admin_token.as_bytes(),
            &[b"switchboard console sessions v1"],
        ))
    }

    fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        mac(&self.0, parts)
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail; were it to, a random value
    // verifies nothing.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return rand::random();
    };
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A logged-in operator.
#[derive(Clone, Debug)]
pub struct Session {
    nonce: String,
    /// The form token of this session.
    pub csrf: String,
}

impl Session {
    /// A new session at `now` (unix seconds) and its cookie value.
    pub fn start(key: &Key, now: i64) -> (Self, String) {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let issued = now.to_string();
        let signature = hex::encode(key.sign(&[b"session", issued.as_bytes(), nonce.as_bytes()]));
        let cookie = format!("v1.{issued}.{nonce}.{signature}");
        (Self::with_nonce(key, nonce), cookie)
    }

    fn with_nonce(key: &Key, nonce: String) -> Self {
        let csrf = hex::encode(key.sign(&[b"csrf", nonce.as_bytes()]));
        Self { nonce, csrf }
    }

    /// The session of a request's cookie, if it is genuine and not expired at `now`.
    pub fn from_headers(key: &Key, headers: &HeaderMap, now: i64) -> Option<Self> {
        let value = cookie(headers, SESSION_COOKIE)?;
        let mut parts = value.split('.');
        let (version, issued, nonce, signature) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "v1" || parts.next().is_some() {
            return None;
        }
        let expected = key.sign(&[b"session", issued.as_bytes(), nonce.as_bytes()]);
        let mut presented = [0u8; 32];
        hex::decode_to_slice(signature, &mut presented).ok()?;
        if !bool::from(presented.ct_eq(&expected)) {
            return None;
        }
        let issued: i64 = issued.parse().ok()?;
        (issued <= now && now - issued < SESSION_SECONDS)
            .then(|| Self::with_nonce(key, nonce.to_owned()))
    }

    /// Whether `presented` is this session's form token.
    pub fn accepts(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }

    /// Its nonce, for logs that must tell sessions apart without revealing them.
    pub fn id(&self) -> &str {
        &self.nonce[..8]
    }
}

/// The value of cookie `name` in a request.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for the console's cookies: HttpOnly, SameSite=Strict, on
/// `/console` only; `max_age` 0 clears it.
pub fn set_cookie(name: &str, value: &str, max_age: i64) -> HeaderValue {
    let value =
        format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a state-changing request comes from this console: its `Origin`, when the
/// browser sends one (every current browser does on POST), names this host.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    });
    matches!((origin, host), (Some(o), Some(h)) if o == h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(cookie).unwrap_or_else(|_| HeaderValue::from_static("")),
        );
        h
    }

    #[test]
    fn a_session_is_read_back_until_it_expires() {
        let key = Key::derive("admin-token-1");
        let (session, value) = Session::start(&key, 1000);
        let h = headers(&format!("other=1; {SESSION_COOKIE}={value}"));
        let read = Session::from_headers(&key, &h, 1000 + 60);
        assert_eq!(read.map(|s| s.csrf), Some(session.csrf.clone()));
        assert!(Session::from_headers(&key, &h, 1000 + SESSION_SECONDS).is_none());
        assert!(Session::from_headers(&key, &h, 999).is_none());
        // Another admin token, a changed nonce or time: not a session.
        assert!(Session::from_headers(&Key::derive("admin-token-2"), &h, 1060).is_none());
        let forged = value.replacen(".1000.", ".2000.", 1);
        let h = headers(&format!("{SESSION_COOKIE}={forged}"));
        assert!(Session::from_headers(&key, &h, 2060).is_none());
        assert!(session.accepts(&session.csrf));
        assert!(!session.accepts("nope"));
    }

    #[test]
    fn origins_must_name_this_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h), "no Origin: the CSRF token decides");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
