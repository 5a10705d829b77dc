//! A small SMTP client (RFC 5321): enough to hand one message to a relay or a provider.
//!
//! Plain SMTP to a relay beside the engine, STARTTLS (RFC 3207) or implicit TLS (RFC 8314)
//! with rustls and the Mozilla roots (plus any given), and `AUTH PLAIN` (RFC 4954), which is
//! only ever sent over TLS. `docs/decisions.md`, "E-mail notifications", says why it is this
//! small.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::email::is_sendable_address;

/// The SMTP server e-mail notifications go through ([`EngineBuilder::smtp`]).
///
/// [`EngineBuilder::smtp`]: crate::EngineBuilder::smtp
///
/// # Examples
///
/// A relay beside the engine, and a provider reached over STARTTLS with a password:
///
/// ```
/// use hitl::notify::Smtp;
///
/// let relay = Smtp::relay("127.0.0.1:25").from("approvals@example.com");
/// let provider = Smtp::relay("smtp.example.com:587")
///     .starttls()
///     .credentials("approvals", std::env::var("SMTP_PASSWORD").unwrap_or_default())
///     .from("approvals@example.com");
/// ```
#[derive(Clone)]
pub struct Smtp {
    pub(crate) relay: String,
    pub(crate) from: String,
    helo: Option<String>,
    pub(crate) timeout: Duration,
    security: Security,
    credentials: Option<(String, String)>,
    extra_roots: Vec<CertificateDer<'static>>,
    /// The TLS client made from `extra_roots` and the Mozilla roots at the first delivery
    /// that needs it, and kept: parsing some 150 roots per e-mail would be wasted work. Its
    /// clones share it; changing the roots starts a new one.
    tls: Arc<OnceLock<Result<tokio_rustls::TlsConnector, String>>>,
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Plain,
    StartTls,
    Tls,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("relay", &self.relay)
            .field("from", &self.from)
            .field("helo", &self.helo)
            .field("timeout", &self.timeout)
            .field("security", &self.security)
            // Never the password.
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

impl Smtp {
    /// The server at `addr` (`host:port`), spoken to in plain SMTP until [`Smtp::starttls`]
    /// or [`Smtp::tls`] says otherwise. The sender is `hitl@localhost` until [`Smtp::from`]
    /// sets it; one delivery may take 10 s (as a webhook may) before it counts as failed.
    pub fn relay(addr: impl Into<String>) -> Self {
        Smtp {
            relay: addr.into(),
            from: "hitl@localhost".to_owned(),
            helo: None,
            timeout: Duration::from_secs(10),
            security: Security::Plain,
            credentials: None,
            extra_roots: Vec::new(),
            tls: Arc::default(),
        }
    }

    /// Upgrade to TLS with `STARTTLS` after the greeting (the submission port, 587). A server
    /// that does not offer it gets nothing: hitl never falls back to plain text.
    pub fn starttls(mut self) -> Self {
        self.security = Security::StartTls;
        self
    }

    /// Speak TLS from the first byte (implicit TLS, port 465).
    pub fn tls(mut self) -> Self {
        self.security = Security::Tls;
        self
    }

    /// Sign in with `AUTH PLAIN`. The password is only ever sent over TLS: without
    /// [`Smtp::starttls`] or [`Smtp::tls`], every delivery fails, saying so.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Also trust the certificates in `pem` (a private CA's), besides the Mozilla roots.
    ///
    /// # Errors
    ///
    /// `InvalidData` when `pem` holds no certificate, or one that cannot be read.
    pub fn root_certificates_pem(mut self, pem: &str) -> std::io::Result<Self> {
        let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| {
                invalid(format!(
                    "the PEM text holds a certificate that cannot be read: {error}"
                ))
            })?;
        if certificates.is_empty() {
            return Err(invalid("the PEM text holds no certificate".to_owned()));
        }
        // Refused now rather than skipped at the first delivery.
        let mut check = rustls::RootCertStore::empty();
        for certificate in &certificates {
            check.add(certificate.clone()).map_err(|error| {
                invalid(format!("a certificate in the PEM text cannot be a root: {error}"))
            })?;
        }
        self.extra_roots.extend(certificates);
        self.tls = Arc::default();
        Ok(self)
    }

    /// The sender's address: the envelope sender and the `From:` header.
    pub fn from(mut self, address: impl Into<String>) -> Self {
        self.from = address.into();
        self
    }

    /// The name this host gives in `EHLO`: its fully qualified domain name. By default, the
    /// address literal of the connection's local end (`[10.0.0.7]`), which RFC 5321 allows
    /// where a host has no name.
    pub fn helo(mut self, name: impl Into<String>) -> Self {
        self.helo = Some(name.into());
        self
    }

    /// How long one delivery (from connecting to the server's answer to the message) may take
    /// before it counts as failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What in this configuration hitl will not send with: a sender that is not an address,
    /// an `EHLO` name that is not one word of ASCII, a password without TLS.
    fn check(&self) -> Result<(), Failure> {
        if !is_sendable_address(&self.from) {
            return Err(Failure::refused_by_hitl(format!(
                "the Smtp's sender {:?} is not an e-mail address hitl can send from",
                self.from
            )));
        }
        if let Some(helo) = &self.helo
            && (helo.is_empty() || !helo.chars().all(|c| c.is_ascii_graphic()))
        {
            let error = format!("the Smtp's EHLO name {helo:?} is not a host name");
            return Err(Failure::refused_by_hitl(error));
        }
        if self.credentials.is_some() && self.security == Security::Plain {
            return Err(Failure::refused_by_hitl(
                "hitl does not send an SMTP password without TLS: add .starttls() or .tls() to the Smtp"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// The host part of `relay`, which the server's certificate must name.
    fn server_name(&self) -> Result<ServerName<'static>, Failure> {
        let host = match self.relay.strip_prefix('[') {
            Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
            None => self
                .relay
                .rsplit_once(':')
                .map_or(self.relay.as_str(), |(host, _)| host),
        };
        ServerName::try_from(host.to_owned()).map_err(|_| {
            Failure::refused_by_hitl(format!(
                "the SMTP server's address {:?} has no host name for TLS",
                self.relay
            ))
        })
    }

    /// The TLS client, made at the first call and kept in the `tls` field.
    fn tls_connector(&self) -> Result<tokio_rustls::TlsConnector, Failure> {
        self.tls
            .get_or_init(|| {
                let mut roots =
                    rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                roots.add_parsable_certificates(self.extra_roots.iter().cloned());
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|error| format!("TLS is not available: {error}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
            })
            .clone()
            .map_err(Failure::refused_by_hitl)
    }
}

/// Why a delivery failed: the server's reply code, if it gave one, what happened, and
/// whether trying again could help.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) code: Option<u16>,
    pub(super) error: String,
    permanent: bool,
}

impl Failure {
    /// A lost connection, a timeout, a 4xx: worth another try.
    fn transient(error: String) -> Self {
        Failure {
            code: None,
            error,
            permanent: false,
        }
    }

    /// What hitl will not do with this configuration or this server (send a password in
    /// plain text, fall back from STARTTLS): trying again changes nothing.
    fn refused_by_hitl(error: String) -> Self {
        Failure {
            code: None,
            error,
            permanent: true,
        }
    }

    /// A reply of the wrong class; a 5xx will be refused again.
    fn reply(code: u16, error: String) -> Self {
        Failure {
            code: Some(code),
            error,
            permanent: (500..600).contains(&code),
        }
    }

    pub(super) fn is_permanent(&self) -> bool {
        self.permanent
    }
}

/// The longest reply line read, and the most lines of one reply: a hostile or broken
/// server cannot make the notifier read without end.
const MAX_LINE: u64 = 1024;
const MAX_LINES: usize = 100;
/// The most of a refusal's text kept in the attempt's error.
const MAX_KEPT: usize = 512;

/// A connection, plain or TLS, read through one buffer.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type Connection = BufReader<Box<dyn Stream>>;

/// Sends `message` (headers and body, lines ending in CRLF) to `to`; returns the server's
/// reply code to the end of the data. What hitl will not send (a bad address, an `Smtp` that
/// would put a password in plain text) is refused before connecting.
pub(super) async fn send(smtp: &Smtp, to: &str, message: &str) -> Result<u16, Failure> {
    smtp.check()?;
    if !is_sendable_address(to) {
        return Err(Failure::refused_by_hitl(format!(
            "{to:?} is not an e-mail address hitl can send to"
        )));
    }
    match tokio::time::timeout(smtp.timeout, exchange(smtp, to, message)).await {
        Ok(Ok((accepted, mut connection))) => {
            // The message is taken. The goodbye gets a moment of its own: a server slow to
            // answer it must not turn a delivery into a failure, and a resend.
            let _ = tokio::time::timeout(QUIT_WAIT, command(&mut connection, "QUIT", 2)).await;
            Ok(accepted)
        }
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(Failure::transient(format!(
            "the SMTP server {} did not take the message within {}",
            smtp.relay,
            humantime::format_duration(smtp.timeout)
        ))),
    }
}

/// How long hitl waits for the answer to `QUIT` once the message is taken.
pub(crate) const QUIT_WAIT: Duration = Duration::from_secs(1);

/// Everything up to the server's answer to the message; returns it and the connection.
async fn exchange(smtp: &Smtp, to: &str, message: &str) -> Result<(u16, Connection), Failure> {
    let tcp = TcpStream::connect(&smtp.relay).await.map_err(|error| {
        Failure::transient(format!(
            "cannot connect to the SMTP server {}: {error}",
            smtp.relay
        ))
    })?;
    let helo = match (&smtp.helo, tcp.local_addr()) {
        (Some(name), _) => name.clone(),
        (None, Ok(local)) => address_literal(local.ip()),
        (None, Err(_)) => "[127.0.0.1]".to_owned(),
    };
    let mut connection: Connection = match smtp.security {
        Security::Tls => BufReader::new(Box::new(upgrade(smtp, Box::new(tcp)).await?)),
        Security::Plain | Security::StartTls => BufReader::new(Box::new(tcp)),
    };
    expect(&mut connection, "its greeting", 2).await?;
    let extensions = hello(&helo, &mut connection).await?;
    if smtp.security == Security::StartTls {
        if !extensions
            .iter()
            .any(|extension| extension.eq_ignore_ascii_case("STARTTLS"))
        {
            // Retried (a server being reconfigured, or an attacker stripping the offer, may
            // not last), but never in plain text.
            return Err(Failure::transient(format!(
                "the SMTP server {} does not offer STARTTLS, and hitl does not fall back to plain text",
                smtp.relay
            )));
        }
        command(&mut connection, "STARTTLS", 2).await?;
        // Anything the server sent after its answer would be read as if it came over TLS
        // (the STARTTLS injection of CVE-2011-0411): refuse it.
        if !connection.buffer().is_empty() {
            return Err(Failure::refused_by_hitl(
                "the SMTP server sent data after its answer to STARTTLS".to_owned(),
            ));
        }
        connection = BufReader::new(Box::new(upgrade(smtp, connection.into_inner()).await?));
        // What the server said in plain text no longer counts: greet it again (RFC 3207 §4.2).
        hello(&helo, &mut connection).await?;
    }
    if let Some((user, password)) = &smtp.credentials {
        let token = BASE64.encode(format!("\0{user}\0{password}"));
        // The command carries the password: its reply is reported as `AUTH`'s, never echoed.
        command_named(&mut connection, &format!("AUTH PLAIN {token}"), "`AUTH`", 2).await?;
    }
    command(&mut connection, &format!("MAIL FROM:<{}>", smtp.from), 2).await?;
    command(&mut connection, &format!("RCPT TO:<{to}>"), 2).await?;
    command(&mut connection, "DATA", 3).await?;
    let mut data = dot_stuffed(message);
    data.push_str(".\r\n");
    write(&mut connection, &data).await?;
    let accepted = expect(&mut connection, "the message", 2).await?;
    Ok((accepted, connection))
}

/// `EHLO` (or `HELO`, for a server from before ESMTP); returns the extensions the server
/// offers (the first word of each line after the first).
async fn hello(helo: &str, connection: &mut Connection) -> Result<Vec<String>, Failure> {
    match command_lines(connection, &format!("EHLO {helo}"), "`EHLO`", 2).await {
        Ok((_, lines)) => Ok(lines
            .iter()
            .skip(1)
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect()),
        Err(refused) if refused.is_permanent() => {
            command(connection, &format!("HELO {helo}"), 2).await?;
            Ok(Vec::new())
        }
        Err(failure) => Err(failure),
    }
}

/// An address as `EHLO` may name a host without a name: `[192.0.2.1]`, `[IPv6:2001:db8::1]`.
fn address_literal(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(ip) => format!("[{ip}]"),
        std::net::IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
    }
}

/// The connection wrapped in TLS, the server's certificate checked against its host name.
async fn upgrade(
    smtp: &Smtp,
    stream: Box<dyn Stream>,
) -> Result<tokio_rustls::client::TlsStream<Box<dyn Stream>>, Failure> {
    let name = smtp.server_name()?;
    smtp.tls_connector()?
        .connect(name, stream)
        .await
        .map_err(|error| {
            Failure::transient(format!("TLS with the SMTP server {} failed: {error}", smtp.relay))
        })
}

async fn write(connection: &mut Connection, text: &str) -> Result<(), Failure> {
    connection.write_all(text.as_bytes()).await.map_err(io_failure)?;
    connection.flush().await.map_err(io_failure)
}

/// Sends one command line and reads its reply, which must be of reply class `class` (2 for
/// 2xx, 3 for 3xx).
async fn command(connection: &mut Connection, line: &str, class: u16) -> Result<u16, Failure> {
    let verb = line.split([' ', ':']).next().unwrap_or(line);
    command_named(connection, line, &format!("`{verb}`"), class).await
}

async fn command_named(
    connection: &mut Connection,
    line: &str,
    what: &str,
    class: u16,
) -> Result<u16, Failure> {
    command_lines(connection, line, what, class)
        .await
        .map(|(code, _)| code)
}

async fn command_lines(
    connection: &mut Connection,
    line: &str,
    what: &str,
    class: u16,
) -> Result<(u16, Vec<String>), Failure> {
    write(connection, &format!("{line}\r\n")).await?;
    reply(connection, what, class).await
}

async fn expect(connection: &mut Connection, what: &str, class: u16) -> Result<u16, Failure> {
    reply(connection, what, class).await.map(|(code, _)| code)
}

/// Reads one reply (its continuation lines too) and checks its class; returns its code and
/// the text of each line.
async fn reply(connection: &mut Connection, what: &str, class: u16) -> Result<(u16, Vec<String>), Failure> {
    let mut text = Vec::new();
    let mut first_code = None;
    for _ in 0..MAX_LINES {
        let mut line = String::new();
        let read_bytes = (&mut *connection)
            .take(MAX_LINE)
            .read_line(&mut line)
            .await
            .map_err(io_failure)?;
        if read_bytes == 0 {
            return Err(Failure::transient(format!(
                "the SMTP server closed the connection before answering {what}"
            )));
        }
        if !line.ends_with('\n') {
            return Err(Failure::transient(format!(
                "the SMTP server answered {what} with a line of over {MAX_LINE} bytes"
            )));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let code = line
            .get(..3)
            .and_then(|digits| digits.parse::<u16>().ok())
            .filter(|code| (200..600).contains(code));
        let Some(code) = code.filter(|code| first_code.is_none_or(|first| first == *code)) else {
            return Err(Failure::transient(format!(
                "the SMTP server answered {what} with a line that is not a reply: {line:?}"
            )));
        };
        first_code = Some(code);
        text.push(line.get(4..).unwrap_or("").trim().to_owned());
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        if code / 100 == class {
            return Ok((code, text));
        }
        let mut said = text.join(" ");
        if said.len() > MAX_KEPT {
            let end = (0..=MAX_KEPT)
                .rev()
                .find(|end| said.is_char_boundary(*end))
                .unwrap_or(0);
            said.truncate(end);
            said.push('…');
        }
        return Err(Failure::reply(
            code,
            format!("the SMTP server answered {what} with {code} {said}"),
        ));
    }
    Err(Failure::transient(format!(
        "the SMTP server's reply to {what} went on for over {MAX_LINES} lines"
    )))
}

fn io_failure(error: std::io::Error) -> Failure {
    Failure::transient(format!("the connection to the SMTP server failed: {error}"))
}

/// The message as DATA sends it: every line ending in CRLF, and a line that starts with a
/// dot given a second one (RFC 5321 §4.5.2), so no line of the text ends the data early.
fn dot_stuffed(message: &str) -> String {
    let mut data = String::with_capacity(message.len() + 64);
    for line in message.lines() {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_starting_with_a_dot_gets_a_second_one() {
        assert_eq!(dot_stuffed("a\r\n.\r\n..b\nc"), "a\r\n..\r\n...b\r\nc\r\n");
    }

    /// A self-signed CA certificate (P-256, valid until 2126), made for this test only.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBjzCCATWgAwIBAgIUPnBawTQGUaNf6Q1Flu7oEKkeAUswCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRaGl0bCB1bml0IHRlc3QgQ0EwIBcNMjYxMjAyMTE0MDIzWhgP
MjEyNjExMDgxMTQwMjNaMBwxGjAYBgNVBAMMEWhpdGwgdW5pdCB0ZXN0IENBMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEGIgkDJ50GflsyM8I8j6dCul6EnnuaqHO
qbAhEiDjNnW9dm0MWCnWfeTj2uV/fbXSc++Df7UahIOPkAoqBd86OqNTMFEwHQYD
VR0OBBYEFEQ5YtwK1teXuIx7BffzLpiy6HHwMB8GA1UdIwQYMBaAFEQ5YtwK1teX
uIx7BffzLpiy6HHwMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIh
AMHmOUdP0STZ0ZYECoeMGVKoPLuBpP9bzpzGIDL6KJW9AiA2xV3AgRJO8IpOFjvC
z9rZvbHkusx2F0PqdsRyqpP8YQ==
-----END CERTIFICATE-----";

    #[test]
    fn the_tls_client_is_made_once_shared_by_clones_and_made_again_for_new_roots() {
        let smtp = Smtp::relay("smtp.example.com:465").tls();
        let first = smtp.tls_connector().unwrap();
        let from_a_clone = smtp.clone().tls_connector().unwrap();
        assert!(Arc::ptr_eq(first.config(), from_a_clone.config()));
        let with_a_ca = smtp.clone().root_certificates_pem(TEST_CA).unwrap();
        let second = with_a_ca.tls_connector().unwrap();
        assert!(
            !Arc::ptr_eq(first.config(), second.config()),
            "new roots, new client"
        );
        assert!(Arc::ptr_eq(
            second.config(),
            with_a_ca.tls_connector().unwrap().config()
        ));
        assert!(
            Arc::ptr_eq(first.config(), smtp.tls_connector().unwrap().config()),
            "the original keeps its own"
        );
    }

    #[test]
    fn only_a_5xx_reply_and_what_hitl_refuses_are_permanent() {
        assert!(Failure::reply(550, String::new()).is_permanent());
        assert!(!Failure::reply(451, String::new()).is_permanent());
        assert!(!Failure::transient(String::new()).is_permanent());
        assert!(Failure::refused_by_hitl(String::new()).is_permanent());
    }
}
