//! The signed links a notification carries, and the key they are signed with.
//!
//! A notification carries one link per responder it may be answered as, keyed with the
//! database's link secret ([`Engine::link_secret`](crate::Engine::link_secret)):
//! `{base_url}/requests/{id}?as={responder}&exp={unix seconds}&sig={hex}`. The link format
//! itself, and the HMAC primitives under it, are in [`crate::sign`]; this module holds the
//! rules of which links a notification gets and for how long.
//!
//! This module is compiled without the `server` feature because the notifier puts signed
//! links into webhook and Slack payloads; the server verifies them.

use std::time::{Duration, UNIX_EPOCH};

use crate::error::Result;
use crate::model::outbox::Notify;
use crate::model::view::Request;
use crate::sign::{link_path, unix_seconds};
use crate::store::Store;

/// How long a notification link stays valid when its request has no deadline.
pub(crate) const DEFAULT_LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The signing key: `HITL_SECRET` if set, else the random key kept in the database (the same
/// rule as [`Engine::link_secret`](crate::Engine::link_secret)).
pub(crate) async fn secret(store: &dyn Store) -> Result<Vec<u8>> {
    match std::env::var("HITL_SECRET") {
        Ok(secret) if !secret.is_empty() => Ok(secret.into_bytes()),
        _ => store.secret().await,
    }
}

/// One signed link of a notification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct SignedLink {
    /// Whom the link vouches for.
    pub responder: String,
    /// The link.
    pub url: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
}

/// The signed links a notification carries: one per allowed responder, or, when anyone may
/// answer, one for a responder named after the channel (`slack`, `webhook`). They expire with
/// the request's deadline, or [`DEFAULT_LINK_TTL`] after it was made. Deterministic, so a
/// retried delivery carries the same links.
pub(crate) fn notification_links(
    base_url: &str,
    secret: &[u8],
    request: &Request,
    notify: &Notify,
) -> Vec<SignedLink> {
    if request.responders.is_empty() {
        vec![signed_link(base_url, secret, request, notify.channel())]
    } else {
        request
            .responders
            .iter()
            .map(|responder| signed_link(base_url, secret, request, responder))
            .collect()
    }
}

/// A signed link that opens `request`'s form and answers as `responder`, expiring with the
/// request's deadline (or [`DEFAULT_LINK_TTL`] after it was made).
pub(crate) fn signed_link(base_url: &str, secret: &[u8], request: &Request, responder: &str) -> SignedLink {
    let expires = request
        .expires_at
        .unwrap_or(request.created_at + DEFAULT_LINK_TTL);
    let expires_secs = unix_seconds(expires);
    SignedLink {
        url: format!(
            "{base_url}{}",
            link_path(secret, &request.id, responder, expires_secs)
        ),
        responder: responder.to_owned(),
        expires_at: humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(expires_secs))
            .to_string(),
    }
}
