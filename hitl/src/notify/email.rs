//! The e-mail of a request: a plain-text message with a link that answers as its recipient.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::links::SignedLink;
use crate::model::outbox::OutboxRecord;
use crate::model::view::Request;

/// What goes into one e-mail besides the request.
pub(super) struct Letter<'a> {
    pub(super) from: &'a str,
    pub(super) to: &'a str,
    pub(super) subject: Option<&'a str>,
    /// The request's page (sign in to answer), with a `base_url`.
    pub(super) page: Option<String>,
    /// The link that answers as the recipient, when they may answer.
    pub(super) personal: Option<SignedLink>,
    /// When it is sent, in seconds since the Unix epoch (the `Date:` header).
    pub(super) sent_at: u64,
}

/// Whether `address` can go into `RCPT TO:<…>` and a `To:` header as it is: ASCII (hitl
/// does not speak SMTPUTF8), one `@` with text on both sides, and nothing that would end
/// the address or start another line.
pub(super) fn is_sendable_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && address
            .chars()
            .all(|c| c.is_ascii_graphic() && !"<>,;\"()[]\\".contains(c))
}

/// The message: headers and a base64 text body, lines ending in CRLF. The same record gives
/// the same `Message-ID` and `X-Hitl-Idempotency-Id`, so a resend after a crash can be
/// recognised.
pub(super) fn email_message(record: &OutboxRecord, request: &Request, letter: &Letter<'_>) -> String {
    let (subject, text) = email_text(request, letter);
    // One line ending throughout (RFC 2046), whatever the prompt and details use.
    let text = text.replace('\n', "\r\n");
    let body = BASE64.encode(text.as_bytes());

    let mut message = String::new();
    let mut header = |name: &str, value: &str| {
        message.push_str(name);
        message.push_str(": ");
        message.push_str(value);
        message.push_str("\r\n");
    };
    header("From", &one_line(letter.from));
    header("To", &one_line(letter.to));
    header("Subject", &encoded_words(&one_line(&subject)));
    header("Date", &rfc5322_date(letter.sent_at));
    header("Message-ID", &format!("<{}@hitl>", message_id_part(&record.id)));
    header("X-Hitl-Idempotency-Id", &one_line(&record.id));
    header("X-Hitl-Request-Id", &one_line(&request.id));
    header("MIME-Version", "1.0");
    header("Content-Type", "text/plain; charset=utf-8");
    header("Content-Transfer-Encoding", "base64");
    message.push_str("\r\n");
    for line in body.as_bytes().chunks(76) {
        // Base64 is ASCII, so every chunk is text.
        message.push_str(std::str::from_utf8(line).unwrap_or_default());
        message.push_str("\r\n");
    }
    message
}

/// The subject and the plain text of the e-mail of `request`, lines ending in `\n`.
pub(super) fn email_text(request: &Request, letter: &Letter<'_>) -> (String, String) {
    let subject = match letter.subject {
        Some(subject) => subject.to_owned(),
        None => format!("Feedback needed: {}", request.prompt),
    };
    let mut text = vec![one_line(&subject), String::new(), request.prompt.clone()];
    if let Some(details) = &request.details {
        text.extend([String::new(), details.clone()]);
    }
    text.push(String::new());
    match (&letter.personal, &letter.page) {
        (Some(personal), _) => text.extend([
            format!("Answer as {}: {}", personal.responder, personal.url),
            format!(
                "This link is yours: whoever opens it answers as {}. It works until {}.",
                personal.responder, personal.expires_at
            ),
        ]),
        (None, Some(page)) => text.push(format!("Sign in to answer: {page}")),
        (None, None) => text.push(format!(
            "Answer it with the hitl CLI or the HTTP API: request {}.",
            request.id
        )),
    }
    text.extend([
        String::new(),
        format!(
            "workflow {} · run {} · request {}",
            request.workflow, request.run_id, request.id
        ),
    ]);
    (subject, text.join("\n").replace("\r\n", "\n").replace('\r', "\n"))
}

/// The longest subject sent as it is: with `Subject: `, well inside a 78-character line.
const PLAIN_SUBJECT: usize = 60;

/// `text` with line breaks turned into spaces: no value can start a header of its own.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `Subject:` value: as it is when it is short printable ASCII, else RFC 2047 encoded
/// words of at most 39 bytes each (52 base64 characters, 64 with the word's frame), one per
/// line, so that no line of the header, `Subject: ` included, passes 76 characters (RFC 2047
/// §2) and no character is split.
fn encoded_words(value: &str) -> String {
    if value.len() <= PLAIN_SUBJECT
        && value.bytes().all(|byte| (0x20..0x7f).contains(&byte))
        && !value.contains("=?")
    {
        return value.to_owned();
    }
    let word = |piece: &str| format!("=?utf-8?b?{}?=", BASE64.encode(piece.as_bytes()));
    let mut words = Vec::new();
    let mut piece = String::new();
    for c in value.chars() {
        if piece.len() + c.len_utf8() > 39 {
            words.push(word(&piece));
            piece.clear();
        }
        piece.push(c);
    }
    if !piece.is_empty() {
        words.push(word(&piece));
    }
    words.join("\r\n ")
}

/// The left part of a `Message-ID`: the idempotency id with anything but letters, digits,
/// `-`, `.` and `/` made `_`.
fn message_id_part(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-./".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `secs` since the Unix epoch as an RFC 5322 date in UTC: `Wed, 02 Dec 2026 09:05:00 +0000`.
fn rfc5322_date(secs: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let (hour, minute, second) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {hour:02}:{minute:02}:{second:02} +0000",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_5322_in_utc() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_796_202_300), "Wed, 02 Dec 2026 09:05:00 +0000");
    }

    #[test]
    fn a_subject_that_is_not_ascii_is_encoded_and_folded_without_splitting_a_character() {
        assert_eq!(encoded_words("Ship it?"), "Ship it?");
        for subject in [
            "Déployer la version 1.4 en production ? Réponse attendue avant vendredi",
            &"A long plain subject, ".repeat(40),
        ] {
            let header = format!("Subject: {}", encoded_words(subject));
            assert!(header.lines().all(|line| line.len() <= 76), "{header}");
            let encoded = header.strip_prefix("Subject: ").unwrap();
            let decoded: String = encoded
                .split("\r\n ")
                .map(|word| {
                    let inner = word
                        .strip_prefix("=?utf-8?b?")
                        .and_then(|w| w.strip_suffix("?="))
                        .unwrap();
                    String::from_utf8(BASE64.decode(inner).unwrap()).unwrap()
                })
                .collect();
            assert_eq!(decoded, subject);
        }
    }

    #[test]
    fn addresses_that_could_inject_a_header_or_a_recipient_are_refused() {
        assert!(is_sendable_address("alice@example.com"));
        assert!(is_sendable_address("a.b+tag@sub.example.org"));
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example.com\r\nBcc: eve@example.com",
            "alice@example.com>,<eve@example.com",
            "Alice <alice@example.com>",
            "a@b@c",
            "zoë@example.com",
        ] {
            assert!(!is_sendable_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn header_values_stay_on_one_line() {
        assert_eq!(
            one_line("Ship\r\nBcc: eve@example.com"),
            "Ship Bcc: eve@example.com"
        );
        assert_eq!(message_id_part("0190-ab/0"), "0190-ab/0");
        assert_eq!(message_id_part("a b<c>"), "a_b_c_");
    }
}
