//! A small SMTP client (RFC 5321): enough to hand one message to a relay.
//!
//! It speaks plain SMTP, without TLS or authentication: hitl hands its e-mail to a relay
//! that runs beside it (Postfix, a cloud provider's sidecar, a relay on the same host or
//! network), which does the rest. `docs/decisions.md`, "E-mail notifications", says why.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The SMTP relay e-mail notifications go through ([`EngineBuilder::smtp`]).
///
/// [`EngineBuilder::smtp`]: crate::EngineBuilder::smtp
///
/// # Examples
///
/// ```
/// use hitl::notify::Smtp;
///
/// let relay = Smtp::relay("127.0.0.1:25").from("approvals@example.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    pub(crate) relay: String,
    pub(crate) from: String,
    pub(crate) helo: String,
    pub(crate) timeout: Duration,
}

impl Smtp {
    /// The relay at `addr` (`host:port`). The sender is `hitl@localhost` until
    /// [`Smtp::from`] sets it; one exchange may take 30 s before it counts as failed.
    pub fn relay(addr: impl Into<String>) -> Self {
        Smtp {
            relay: addr.into(),
            from: "hitl@localhost".to_owned(),
            helo: "localhost".to_owned(),
            timeout: Duration::from_secs(30),
        }
    }

    /// The sender's address: the envelope sender and the `From:` header.
    pub fn from(mut self, address: impl Into<String>) -> Self {
        self.from = address.into();
        self
    }

    /// The name this host gives in `EHLO` (`localhost` by default).
    pub fn helo(mut self, name: impl Into<String>) -> Self {
        self.helo = name.into();
        self
    }

    /// How long one delivery (connect to `QUIT`) may take before it counts as failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Why a delivery failed: the server's reply code, if it gave one, and what happened.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) code: Option<u16>,
    pub(super) error: String,
}

impl Failure {
    /// A 5xx reply: the server refuses, and will refuse again.
    pub(super) fn is_permanent(&self) -> bool {
        matches!(self.code, Some(500..=599))
    }
}

/// The longest reply line read, and the most lines of one reply: a hostile or broken
/// server cannot make the notifier read without end.
const MAX_LINE: u64 = 1024;
const MAX_LINES: usize = 100;

/// Sends `message` (headers and body, lines ending in CRLF) to `to`; returns the server's
/// reply code to the end of the data.
pub(super) async fn send(smtp: &Smtp, to: &str, message: &str) -> Result<u16, Failure> {
    match tokio::time::timeout(smtp.timeout, exchange(smtp, to, message)).await {
        Ok(result) => result,
        Err(_) => Err(Failure {
            code: None,
            error: format!(
                "the SMTP relay {} did not take the message within {}",
                smtp.relay,
                humantime::format_duration(smtp.timeout)
            ),
        }),
    }
}

async fn exchange(smtp: &Smtp, to: &str, message: &str) -> Result<u16, Failure> {
    let stream = TcpStream::connect(&smtp.relay).await.map_err(|error| Failure {
        code: None,
        error: format!("cannot connect to the SMTP relay {}: {error}", smtp.relay),
    })?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, "its greeting", 2).await?;
    let ehlo = format!("EHLO {}", smtp.helo);
    if let Err(refused) = command(&mut write, &mut read, &ehlo, 2).await {
        // A server from before ESMTP: say HELO instead.
        if !refused.is_permanent() {
            return Err(refused);
        }
        command(&mut write, &mut read, &format!("HELO {}", smtp.helo), 2).await?;
    }
    command(&mut write, &mut read, &format!("MAIL FROM:<{}>", smtp.from), 2).await?;
    command(&mut write, &mut read, &format!("RCPT TO:<{to}>"), 2).await?;
    command(&mut write, &mut read, "DATA", 3).await?;
    let mut data = dot_stuffed(message);
    data.push_str(".\r\n");
    write.write_all(data.as_bytes()).await.map_err(io_failure)?;
    let accepted = expect(&mut read, "the message", 2).await?;
    // The message is taken; a failed goodbye changes nothing.
    let _ = command(&mut write, &mut read, "QUIT", 2).await;
    Ok(accepted)
}

/// Sends one command line and reads its reply, which must be of reply class `class` (2 for
/// 2xx, 3 for 3xx).
async fn command<R: AsyncRead + Unpin>(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    read: &mut BufReader<R>,
    line: &str,
    class: u16,
) -> Result<u16, Failure> {
    write
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(io_failure)?;
    let verb = line.split([' ', ':']).next().unwrap_or(line);
    expect(read, &format!("`{verb}`"), class).await
}

/// Reads one reply (its continuation lines too) and checks its class.
async fn expect<R: AsyncRead + Unpin>(
    read: &mut BufReader<R>,
    what: &str,
    class: u16,
) -> Result<u16, Failure> {
    let mut text = Vec::new();
    for _ in 0..MAX_LINES {
        let mut line = String::new();
        let read_bytes = (&mut *read)
            .take(MAX_LINE)
            .read_line(&mut line)
            .await
            .map_err(io_failure)?;
        if read_bytes == 0 {
            return Err(Failure {
                code: None,
                error: format!("the SMTP relay closed the connection before answering {what}"),
            });
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let code = line
            .get(..3)
            .and_then(|digits| digits.parse::<u16>().ok())
            .filter(|code| (200..600).contains(code));
        let Some(code) = code else {
            return Err(Failure {
                code: None,
                error: format!("the SMTP relay answered {what} with a line that is not a reply: {line:?}"),
            });
        };
        text.push(line.get(4..).unwrap_or("").trim().to_owned());
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        if code / 100 == class {
            return Ok(code);
        }
        return Err(Failure {
            code: Some(code),
            error: format!("the SMTP relay answered {what} with {code} {}", text.join(" ")),
        });
    }
    Err(Failure {
        code: None,
        error: format!("the SMTP relay's reply to {what} went on for over {MAX_LINES} lines"),
    })
}

fn io_failure(error: std::io::Error) -> Failure {
    Failure {
        code: None,
        error: format!("the connection to the SMTP relay failed: {error}"),
    }
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

    #[test]
    fn only_a_5xx_reply_is_permanent() {
        let failure = |code| Failure {
            code,
            error: String::new(),
        };
        assert!(failure(Some(550)).is_permanent());
        assert!(!failure(Some(451)).is_permanent());
        assert!(!failure(None).is_permanent());
    }
}
