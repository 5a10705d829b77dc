"""An SMTP sink on 127.0.0.1 for the e-mail tests (tests/email.rs).

Python's own SMTP server (`smtpd`, in the standard library up to 3.11) and e-mail parser
(`email`), so the messages hitl writes are read by an implementation that is not hitl's.

It prints `listening PORT` once, then one JSON line per message it is handed:
`{"mail_from", "rcpt_tos", "headers": {name: [values]}, "subject", "text"}`, with the
subject's encoded words and the body's transfer encoding decoded by `email`. A recipient
named `refuse@…` is refused with 550 (printed as `{"refused": 550, ...}`); one named
`busy@…` gets 451 the first time and the message the second.
"""

import email
import email.policy
import json
import sys
import warnings

# Both are deprecated (and gone in 3.12); they are the standard library's SMTP server.
warnings.filterwarnings("ignore", category=DeprecationWarning)
import asyncore  # noqa: E402
import smtpd  # noqa: E402


def say(line):
    print(json.dumps(line) if not isinstance(line, str) else line, flush=True)


class Sink(smtpd.SMTPServer):
    busy_seen = set()

    def process_message(self, peer, mail_from, rcpt_tos, data, **kwargs):
        for rcpt in rcpt_tos:
            if rcpt.startswith("refuse@"):
                say({"refused": 550, "rcpt_tos": rcpt_tos})
                return "550 5.1.1 no such mailbox"
            if rcpt.startswith("busy@") and rcpt not in self.busy_seen:
                self.busy_seen.add(rcpt)
                say({"refused": 451, "rcpt_tos": rcpt_tos})
                return "451 4.3.0 try again later"
        message = email.message_from_bytes(data, policy=email.policy.default)
        headers = {}
        for name, value in message.items():
            headers.setdefault(name.lower(), []).append(str(value))
        say(
            {
                "mail_from": mail_from,
                "rcpt_tos": rcpt_tos,
                "headers": headers,
                "subject": str(message["subject"]),
                "text": message.get_content(),
            }
        )
        return None


sink = Sink(("127.0.0.1", 0), None, decode_data=False)
say(f"listening {sink.socket.getsockname()[1]}")
try:
    asyncore.loop(timeout=0.5)
except KeyboardInterrupt:
    sys.exit(0)
