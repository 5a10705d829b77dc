//! Credentials: bearer tokens for the API, session cookies for browsers, signed links for
//! one request, and the CSRF tokens forms carry.
//!
//! Sessions are stateless: the cookie is `v1.{hex responder}.{expiry}.{mac}`, the MAC (keyed
//! with the link secret) binding the responder, the expiry and the fingerprint of the token
//! that signed in, so that removing a token ends its sessions. A form's CSRF token is an HMAC
//! of its session cookie or of its link's signature: a page of another site can neither read
//! nor compute it.

use std::time::{Duration, SystemTime};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

use super::AppState;
use super::error::ApiError;
use crate::Responder;
use crate::sign::{self, hex, sha256, unhex, unix_seconds};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "hitl_session";

/// The cookie holding the nonce the login form's CSRF token is bound to.
pub(crate) const LOGIN_COOKIE: &str = "hitl_login";

/// The responder an API call's bearer token names.
pub(crate) struct ApiUser(pub Responder);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "credentials are required: send `Authorization: Bearer <token>`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        match state.config().responder_of(token) {
            Some(responder) => Ok(ApiUser(Responder::new(responder))),
            None => Err(ApiError::unauthorized("the token is not valid")),
        }
    }
}

/// A browser's signed-in session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub responder: String,
    /// The cookie's value; CSRF tokens are derived from it.
    pub cookie: String,
}

/// A new session cookie value for `responder`, who signed in with `token`, valid until
/// `expires` (on the engine's clock).
pub(crate) fn new_session(secret: &[u8], responder: &str, token: &str, expires: SystemTime) -> String {
    let expires = unix_seconds(expires).to_string();
    let fingerprint = hex(&sha256(token.as_bytes()));
    let mac = sign::sign(
        secret,
        "hitl-session-v1",
        &[responder.as_bytes(), expires.as_bytes(), fingerprint.as_bytes()],
    );
    format!("v1.{}.{expires}.{mac}", hex(responder.as_bytes()))
}

/// The valid session in `headers`' cookies, if any.
pub(crate) fn session(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let Some(cookie) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let mut parts = cookie.split('.');
    let (Some("v1"), Some(name), Some(expires), Some(mac), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Ok(None);
    };
    let Some(responder) = unhex(name).and_then(|bytes| String::from_utf8(bytes).ok()) else {
        return Ok(None);
    };
    let Ok(expiry) = expires.parse::<u64>() else {
        return Ok(None);
    };
    if expiry <= unix_seconds(state.engine().now()) {
        return Ok(None);
    }
    let secret = state.secret()?;
    let valid = state
        .config()
        .token_fingerprints_of(&responder)
        .any(|fingerprint| {
            sign::verify(
                &secret,
                "hitl-session-v1",
                &[responder.as_bytes(), expires.as_bytes(), fingerprint.as_bytes()],
                mac,
            )
        });
    Ok(valid.then(|| Session {
        responder,
        cookie: cookie.to_owned(),
    }))
}

/// A `Set-Cookie` value for an HttpOnly cookie under the server's path (an empty `value` with
/// no age removes it).
pub(crate) fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Duration) -> HeaderValue {
    let secure = if state.config().cookies_secure() {
        "; Secure"
    } else {
        ""
    };
    let path = match state.config().mount_path() {
        "" => "/",
        path => path,
    };
    let header = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&header).expect("cookie values are hex, digits and dots")
}

/// The value of the cookie `name`.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The CSRF token of forms shown in a session.
pub(crate) fn session_csrf(secret: &[u8], session: &Session) -> String {
    sign::sign(secret, "hitl-csrf-session-v1", &[session.cookie.as_bytes()])
}

/// The credentials a signed link carries (`as`, `exp`, `sig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Link {
    pub responder: String,
    pub expires: String,
    pub signature: String,
}

impl Link {
    /// The link's fields from query or form pairs, if a signature is among them.
    pub(crate) fn from_pairs(pairs: &[(String, String)]) -> Option<Link> {
        let field = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        Some(Link {
            signature: field("sig")?,
            responder: field("as").unwrap_or_default(),
            expires: field("exp").unwrap_or_default(),
        })
    }

    /// The responder the link vouches for, if it is a valid link to `request_id` unexpired at
    /// `now` (the engine's clock): 403 for a bad signature (which includes any `exp` but the
    /// canonical decimal that was signed), 410 once expired.
    pub(crate) fn check(
        &self,
        secret: &[u8],
        request_id: &str,
        now: SystemTime,
    ) -> Result<Responder, ApiError> {
        let genuine = sign::verify_link(
            secret,
            request_id,
            &self.responder,
            &self.expires,
            &self.signature,
        );
        let expires = self.expires.parse::<u64>().ok();
        if !genuine || expires.is_none() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "bad_signature",
                "this link is not valid: its signature does not match (it was changed, or it is for another request)",
            ));
        }
        if expires.is_some_and(|expires| expires <= unix_seconds(now)) {
            return Err(ApiError::new(
                StatusCode::GONE,
                "link_expired",
                "this link has expired; ask for a new one or sign in",
            ));
        }
        Ok(Responder::new(self.responder.clone()))
    }

    /// The CSRF token of the form a link opens.
    pub(crate) fn csrf(&self, secret: &[u8]) -> String {
        sign::sign(secret, "hitl-csrf-link-v1", &[self.signature.as_bytes()])
    }
}

/// The CSRF token of the login form, bound to the browser's login nonce.
pub(crate) fn login_csrf(secret: &[u8], nonce: &str) -> String {
    sign::sign(secret, "hitl-csrf-login-v1", &[nonce.as_bytes()])
}

/// Whether `given` is the expected CSRF token (constant time).
pub(crate) fn csrf_matches(expected: &str, given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    let (expected, given) = (sha256(expected.as_bytes()), sha256(given.as_bytes()));
    expected
        .iter()
        .zip(given.iter())
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn link(expires: &str) -> Link {
        Link {
            responder: "alice".to_owned(),
            expires: expires.to_owned(),
            signature: sign::link_signature(b"k", "r1", "alice", 100),
        }
    }

    #[test]
    fn a_link_with_a_respelled_expiry_is_forbidden() {
        let before = UNIX_EPOCH + Duration::from_secs(50);
        assert_eq!(link("100").check(b"k", "r1", before).unwrap().name(), "alice");
        for spelling in ["+100", "0100", "+000100", "", "x"] {
            let refused = link(spelling).check(b"k", "r1", before).unwrap_err();
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "exp={spelling}");
        }
    }

    #[test]
    fn a_link_expires_at_its_expiry_on_the_given_clock() {
        let expiry = UNIX_EPOCH + Duration::from_secs(100);
        let last_moment = expiry - Duration::from_millis(1);
        assert!(link("100").check(b"k", "r1", last_moment).is_ok());
        let expired = link("100").check(b"k", "r1", expiry).unwrap_err();
        assert_eq!(expired.status, StatusCode::GONE);
    }
}
