//! Signing primitives: HMAC-SHA256 tokens, SHA-256 fingerprints, hex, percent-encoding, and
//! the signed-link format the notifier hands out and the server verifies.
//!
//! Everything here is a pure function of its arguments: no database, no engine, no feedback
//! types, and no import from the rest of the crate, so that every layer may use it. Where the
//! key comes from is the caller's business ([`Engine::link_secret`](crate::Engine::link_secret)).
//!
//! A link names its request, the responder it vouches for and when it expires, and carries
//! an HMAC-SHA256 of the three: `/requests/{id}?as={responder}&exp={unix seconds}&sig={hex}`.
//! Whoever holds the link may answer that one request as that responder until it expires;
//! nothing else.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256 over `purpose` and `parts`, each length-prefixed so that no two different
/// lists of parts sign the same bytes.
pub(crate) fn mac(secret: &[u8], purpose: &str, parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    for part in std::iter::once(purpose.as_bytes()).chain(parts.iter().copied()) {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

/// The hex HMAC of `purpose` and `parts`.
pub(crate) fn sign(secret: &[u8], purpose: &str, parts: &[&[u8]]) -> String {
    hex(&mac(secret, purpose, parts).finalize().into_bytes())
}

/// Whether `signature` (hex) is the HMAC of `purpose` and `parts`; compared in constant time.
#[cfg(any(feature = "server", test))]
pub(crate) fn verify(secret: &[u8], purpose: &str, parts: &[&[u8]], signature: &str) -> bool {
    match unhex(signature) {
        Some(bytes) => mac(secret, purpose, parts).verify_slice(&bytes).is_ok(),
        None => false,
    }
}

/// SHA-256, for fingerprinting tokens.
#[cfg(feature = "server")]
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(bytes).into()
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// Decodes hex (either case); `None` if it is not hex.
#[cfg(any(feature = "server", test))]
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

/// Seconds since the epoch.
pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The signature of a link to `request_id` for `responder`, valid until `expires` (unix
/// seconds).
pub(crate) fn link_signature(secret: &[u8], request_id: &str, responder: &str, expires: u64) -> String {
    sign(
        secret,
        "hitl-link-v1",
        &[
            request_id.as_bytes(),
            responder.as_bytes(),
            expires.to_string().as_bytes(),
        ],
    )
}

/// Whether `signature` signs a link to `request_id` for `responder` until `expires`, the
/// `exp` text exactly as received: the MAC covers those bytes, so only the canonical decimal
/// [`link_signature`] signed verifies (`+N`, `0N` or ` N` for the same number do not). Expiry
/// is checked separately, so that an expired link can be told apart from a forged one.
#[cfg(any(feature = "server", test))]
pub(crate) fn verify_link(
    secret: &[u8],
    request_id: &str,
    responder: &str,
    expires: &str,
    signature: &str,
) -> bool {
    verify(
        secret,
        "hitl-link-v1",
        &[request_id.as_bytes(), responder.as_bytes(), expires.as_bytes()],
        signature,
    )
}

/// The path and query of a signed link: `/requests/{id}?as=…&exp=…&sig=…`.
pub(crate) fn link_path(secret: &[u8], request_id: &str, responder: &str, expires: u64) -> String {
    format!(
        "/requests/{}?as={}&exp={expires}&sig={}",
        percent_encode(request_id),
        percent_encode(responder),
        link_signature(secret, request_id, responder, expires)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_only_with_its_own_fields() {
        let secret = b"k";
        let signature = link_signature(secret, "r1", "alice", 100);
        assert!(verify_link(secret, "r1", "alice", "100", &signature));
        assert!(!verify_link(secret, "r2", "alice", "100", &signature));
        assert!(!verify_link(secret, "r1", "bob", "100", &signature));
        assert!(!verify_link(secret, "r1", "alice", "101", &signature));
        assert!(!verify_link(b"other", "r1", "alice", "100", &signature));
        assert!(!verify_link(secret, "r1", "alice", "100", "zz"));
        assert!(!verify_link(secret, "r1", "alice", "100", &signature[..10]));
    }

    #[test]
    fn only_the_canonical_expiry_verifies() {
        let secret = b"k";
        let signature = link_signature(secret, "r1", "alice", 100);
        for spelling in [
            "+100", "0100", "+000100", "00100", " 100", "100 ", "100.0", "1e2", "١٠٠",
        ] {
            assert!(
                !verify_link(secret, "r1", "alice", spelling, &signature),
                "`exp={spelling}` must not verify"
            );
        }
        assert!(verify_link(secret, "r1", "alice", "100", &signature));
    }

    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(sign(b"k", "p", &[b"ab", b"c"]), sign(b"k", "p", &[b"a", b"bc"]));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 15, 255])), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn responders_are_percent_encoded() {
        assert_eq!(percent_encode("a b&c=é"), "a%20b%26c%3D%C3%A9");
    }

    #[test]
    fn a_link_path_carries_its_fields_encoded_and_its_signature() {
        let path = link_path(b"k", "r 1", "a&b", 100);
        let signature = link_signature(b"k", "r 1", "a&b", 100);
        assert_eq!(path, format!("/requests/r%201?as=a%26b&exp=100&sig={signature}"));
    }
}
