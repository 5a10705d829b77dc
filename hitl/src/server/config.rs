//! Server configuration: which token names which responder, body limit, cookies.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::sign::{hex, sha256};

/// How the server authenticates and what it accepts.
///
/// Tokens are kept only as SHA-256 fingerprints.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hitl::server::ServerConfig;
///
/// let config = ServerConfig::new()
///     .token("alice", "token-of-alice")
///     .token("bob", "token-of-bob")
///     .session_ttl(Duration::from_secs(8 * 3600))
///     .secure_cookies(true);
/// assert_eq!(config.responders(), ["alice", "bob"]);
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    /// SHA-256 of a token → the responder it names.
    tokens: HashMap<[u8; 32], String>,
    generated: Option<String>,
    body_limit: usize,
    secure_cookies: bool,
    session_ttl: Duration,
    base_path: String,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("responders", &self.responders())
            .field("generated_token", &self.generated.is_some())
            .field("body_limit", &self.body_limit)
            .field("secure_cookies", &self.secure_cookies)
            .field("session_ttl", &self.session_ttl)
            .field("base_path", &self.base_path)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig::new()
    }
}

impl ServerConfig {
    /// No tokens (nobody can sign in until [`token`](Self::token) adds one), a 64 KiB body
    /// limit, 12-hour sessions, cookies without `Secure`.
    pub fn new() -> Self {
        ServerConfig {
            tokens: HashMap::new(),
            generated: None,
            body_limit: 64 * 1024,
            secure_cookies: false,
            session_ttl: Duration::from_secs(12 * 3600),
            base_path: String::new(),
        }
    }

    /// Tokens from the environment: `HITL_TOKENS="alice:tok1,bob:tok2"` (a responder name, a
    /// colon, its token; comma-separated), else a lone `HITL_TOKEN` for the responder `admin`,
    /// else a random token for `admin` ([`generated_token`](Self::generated_token)).
    /// `HITL_SECURE_COOKIES=1` marks cookies `Secure` (serve over HTTPS); `HITL_BASE_PATH`
    /// sets [`base_path`](Self::base_path).
    ///
    /// # Errors
    ///
    /// When `HITL_TOKENS` has an entry without a name or a token, or gives one token to two
    /// responders.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = hitl::server::ServerConfig::from_env().unwrap();
    /// # let _ = config;
    /// ```
    pub fn from_env() -> std::io::Result<Self> {
        let mut config = ServerConfig::new();
        config.secure_cookies = std::env::var("HITL_SECURE_COOKIES").is_ok_and(|value| value == "1");
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
        if let Some(path) = var("HITL_BASE_PATH") {
            config = config.base_path(path.trim());
        }
        if let Some(tokens) = var("HITL_TOKENS") {
            config = config.parse_tokens(&tokens)?;
        } else if let Some(token) = var("HITL_TOKEN") {
            config = config.token("admin", token.trim());
        } else {
            let token = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            config = config.token("admin", &token);
            config.generated = Some(token);
        }
        Ok(config)
    }

    fn parse_tokens(mut self, list: &str) -> std::io::Result<Self> {
        let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
        for (index, entry) in list.split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let Some((name, token)) = entry.split_once(':') else {
                return Err(invalid(format!(
                    "HITL_TOKENS entry {} has no `:`; write `name:token,name:token`",
                    index + 1
                )));
            };
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty() || token.is_empty() {
                return Err(invalid(format!(
                    "HITL_TOKENS entry {} needs both a responder name and a token (`name:token`)",
                    index + 1
                )));
            }
            if let Some(other) = self.tokens.get(&sha256(token.as_bytes()))
                && other != name
            {
                return Err(invalid(format!(
                    "HITL_TOKENS gives one token to both `{other}` and `{name}`; each responder needs its own"
                )));
            }
            self = self.token(name, token);
        }
        if self.tokens.is_empty() {
            return Err(invalid("HITL_TOKENS is set but names no token".to_owned()));
        }
        Ok(self)
    }

    /// Accepts `token` as the credentials of `responder` (a responder may have several).
    pub fn token(mut self, responder: impl Into<String>, token: impl AsRef<str>) -> Self {
        self.tokens
            .insert(sha256(token.as_ref().as_bytes()), responder.into());
        self
    }

    /// The largest request body accepted (64 KiB by default); larger ones get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Marks the session cookie `Secure`, for servers behind HTTPS.
    pub fn secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// How long a browser stays signed in (12 hours by default).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// The path the router is mounted under (`/hitl` for `Router::new().nest("/hitl", …)`),
    /// so that pages link, redirect and set cookies under it. Empty by default.
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        let path = path.trim_end_matches('/');
        self.base_path = if path.is_empty() || path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        self
    }

    /// The token [`from_env`](Self::from_env) generated because none was configured.
    pub fn generated_token(&self) -> Option<&str> {
        self.generated.as_deref()
    }

    /// The responder names that have a token, sorted.
    pub fn responders(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tokens.values().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    pub(crate) fn body_limit_bytes(&self) -> usize {
        self.body_limit
    }

    pub(crate) fn mount_path(&self) -> &str {
        &self.base_path
    }

    pub(crate) fn cookies_secure(&self) -> bool {
        self.secure_cookies
    }

    pub(crate) fn session_lifetime(&self) -> Duration {
        self.session_ttl
    }

    /// The responder `token` names, if any.
    pub(crate) fn responder_of(&self, token: &str) -> Option<&str> {
        self.tokens.get(&sha256(token.as_bytes())).map(String::as_str)
    }

    /// Fingerprints of the tokens of `responder` (a session is bound to one of them, so that
    /// removing a token ends its sessions).
    pub(crate) fn token_fingerprints_of<'a>(
        &'a self,
        responder: &'a str,
    ) -> impl Iterator<Item = String> + 'a {
        self.tokens
            .iter()
            .filter(move |(_, name)| name.as_str() == responder)
            .map(|(fingerprint, _)| hex(fingerprint))
    }
}

/// What `serve` and `router` print when they generated a token.
pub(crate) fn generated_token_notice(token: &str) -> String {
    format!(
        "hitl: neither HITL_TOKENS nor HITL_TOKEN is set; sign in as `admin` with the generated token {token}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_name_their_responders() {
        let config = ServerConfig::new()
            .parse_tokens(" alice:tok:1 , bob:tok2,")
            .unwrap();
        assert_eq!(config.responder_of("tok:1"), Some("alice"));
        assert_eq!(config.responder_of("tok2"), Some("bob"));
        assert_eq!(config.responder_of("tok3"), None);
        assert_eq!(config.responders(), ["alice", "bob"]);
    }

    #[test]
    fn malformed_token_lists_are_refused() {
        for list in ["alice", ":tok", "alice:", "a:same,b:same", " , "] {
            assert!(ServerConfig::new().parse_tokens(list).is_err(), "{list:?}");
        }
    }
}
