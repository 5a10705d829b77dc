"""An SMTP server on 127.0.0.1 for the e-mail tests (tests/email.rs).

Python does the TLS (`ssl`, which is OpenSSL) and reads each message (`email`), so what hitl
sends is checked by implementations that are not hitl's; the SMTP dialogue is this file's.

    smtp_sink.py [--mode plain|starttls|tls] [--cert FILE --key FILE]
                 [--user NAME --password SECRET] [--refuse-ehlo] [--silent-quit]
                 [--inject-after-starttls]

* `plain` (the default) speaks plain text and offers neither STARTTLS nor AUTH; `starttls`
  offers STARTTLS, and only before TLS; `tls` speaks TLS from the first byte.
* With `--user`, AUTH PLAIN is offered over TLS only, and MAIL is refused until the client
  has signed in.
* RCPT to `refuse@…` is refused with 550; RCPT to `busy@…` gets 451 the first time.
* `--refuse-ehlo` answers EHLO with 502 (a server from before ESMTP); `--silent-quit` never
  answers QUIT. `--inject-after-starttls` sends a second reply in the same write as its
  answer to STARTTLS, before any TLS (the injection of CVE-2011-0411), then waits for the
  client to hang up.

It prints `listening PORT`, then one JSON line per event: `{"rcpt", "reply"}` for each RCPT,
`{"auth_failed": user}`, `{"in_plain_text": "AUTH"}` for an AUTH (or, in the TLS modes, a
MAIL) before TLS, and for a message `{"tls", "user", "helo", "mail_from", "rcpt_tos",
"headers", "subject", "text"}`. A line `mark` on its standard input is printed back as
`{"mark": true}` after everything that happened before it.
"""

import argparse
import asyncio
import base64
import email
import email.policy
import json
import ssl
import sys
import threading


def say(event):
    print(event if isinstance(event, str) else json.dumps(event), flush=True)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--refuse-ehlo", action="store_true")
    parser.add_argument("--silent-quit", action="store_true")
    parser.add_argument("--inject-after-starttls", action="store_true")
    options = parser.parse_args()
    context = None
    if options.mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(options.cert, options.key)
    busy_seen = set()

    async def session(reader, writer):
        state = {"tls": options.mode == "tls", "user": None, "helo": None}
        envelope = {"mail_from": None, "rcpt_tos": []}

        async def send(*lines):
            # One write, so the lines of one call leave in one segment (asyncio sends each
            # write on its own when it can).
            writer.write("".join(line + "\r\n" for line in lines).encode())
            await writer.drain()

        await send("220 sink ESMTP")
        while True:
            raw = await reader.readline()
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            argument = line.split(":", 1)[1].strip().strip("<>") if ":" in line else ""
            if not state["tls"] and (verb == "AUTH" or (verb == "MAIL" and options.mode != "plain")):
                say({"in_plain_text": verb})
            if verb == "EHLO" and options.refuse_ehlo:
                await send("502 5.5.1 say HELO")
            elif verb in ("EHLO", "HELO"):
                state["helo"] = line.split(" ", 1)[1] if " " in line else ""
                if verb == "HELO":
                    await send("250 sink")
                    continue
                offers = ["250-sink"]
                if options.mode == "starttls" and not state["tls"]:
                    offers.append("250-STARTTLS")
                if options.user and state["tls"]:
                    offers.append("250-AUTH PLAIN")
                offers.append("250 8BITMIME")
                await send(*offers)
            elif verb == "STARTTLS" and options.mode == "starttls" and not state["tls"]:
                if options.inject_after_starttls:
                    # One write: a client that reads its buffer as if it came over TLS would
                    # take the second line for the server's first answer after the upgrade.
                    await send("220 2.0.0 ready to start TLS", "250 injected before TLS")
                    await reader.read()
                    break
                await send("220 2.0.0 ready to start TLS")
                await writer.start_tls(context)
                state.update(tls=True, user=None, helo=None)
                envelope.update(mail_from=None, rcpt_tos=[])
            elif verb == "AUTH" and options.user:
                parts = line.split(" ")
                if not state["tls"]:
                    await send("538 5.7.11 encryption required")
                elif len(parts) == 3 and parts[1].upper() == "PLAIN":
                    _, name, secret = base64.b64decode(parts[2]).decode().split("\0")
                    if name == options.user and secret == options.password:
                        state["user"] = name
                        await send("235 2.7.0 signed in")
                    else:
                        say({"auth_failed": name})
                        await send("535 5.7.8 bad credentials")
                else:
                    await send("504 5.5.4 only AUTH PLAIN")
            elif verb == "MAIL":
                if options.user and state["user"] is None:
                    await send("530 5.7.0 sign in first")
                else:
                    envelope.update(mail_from=argument, rcpt_tos=[])
                    await send("250 2.1.0 ok")
            elif verb == "RCPT":
                reply = 250
                if argument.startswith("refuse@"):
                    reply = 550
                elif argument.startswith("busy@") and argument not in busy_seen:
                    busy_seen.add(argument)
                    reply = 451
                say({"rcpt": argument, "reply": reply})
                if reply == 250:
                    envelope["rcpt_tos"].append(argument)
                await send(
                    {250: "250 2.1.5 ok", 550: "550 5.1.1 no such mailbox", 451: "451 4.3.0 try again later"}[
                        reply
                    ]
                )
            elif verb == "DATA":
                if not envelope["rcpt_tos"]:
                    await send("554 5.5.1 no valid recipients")
                    continue
                await send("354 end with a lone dot")
                lines = []
                while True:
                    data_line = await reader.readline()
                    if data_line in (b".\r\n", b""):
                        break
                    if data_line.startswith(b"."):
                        data_line = data_line[1:]
                    lines.append(data_line)
                message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                headers = {}
                for name, value in message.items():
                    headers.setdefault(name.lower(), []).append(str(value))
                say(
                    {
                        "tls": state["tls"],
                        "user": state["user"],
                        "helo": state["helo"],
                        "mail_from": envelope["mail_from"],
                        "rcpt_tos": envelope["rcpt_tos"],
                        "headers": headers,
                        "subject": str(message["subject"]),
                        "text": message.get_content(),
                    }
                )
                await send("250 2.0.0 queued")
            elif verb == "QUIT":
                if options.silent_quit:
                    await reader.read()
                else:
                    await send("221 2.0.0 bye")
                break
            else:
                await send("502 5.5.1 not here")
        writer.close()

    loop = asyncio.get_running_loop()

    def marks():
        for line in sys.stdin:
            if line.strip() == "mark":
                loop.call_soon_threadsafe(say, {"mark": True})

    threading.Thread(target=marks, daemon=True).start()
    server = await asyncio.start_server(
        session, "127.0.0.1", 0, ssl=context if options.mode == "tls" else None
    )
    say(f"listening {server.sockets[0].getsockname()[1]}")
    async with server:
        await server.serve_forever()


asyncio.run(main())
