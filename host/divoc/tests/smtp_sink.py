"""A real SMTP server on loopback for the e-mail tests (aiosmtpd).

    python smtp_sink.py OUT_DIR [--defer-first N]

Listens on 127.0.0.1 on a port the system picks and prints that port on
stdout (one line). Every message it receives is written to OUT_DIR as
`NNNN.eml` (the raw RFC 5322 bytes as received) and `NNNN.json`: the SMTP
envelope, the status it answered, and the message as Python's own `email`
package parses it (headers, text and HTML bodies, attachments with their
bytes in base64). The JSON file appears last and whole (written under another
name, then renamed), so a reader polling for it never sees half a message.

The first N messages (`--defer-first`) are answered `451 4.3.0` after they
were written, as a relay that is busy for now: the sender must retry.

Exits when its standard input closes, so it never outlives the test that
started it.
"""

import argparse
import asyncio
import base64
import email
import email.policy
import json
import os
import sys
import threading

from aiosmtpd.smtp import SMTP


def parse(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text = html = None
    attachments = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        if disposition == "attachment":
            data = part.get_payload(decode=True) or b""
            attachments.append(
                {
                    "filename": part.get_filename(),
                    "content_type": part.get_content_type(),
                    "data_base64": base64.b64encode(data).decode("ascii"),
                }
            )
        elif part.get_content_type() == "text/plain" and text is None:
            text = part.get_content()
        elif part.get_content_type() == "text/html" and html is None:
            html = part.get_content()
    return {
        "from": str(msg["From"]) if msg["From"] else None,
        "to": str(msg["To"]) if msg["To"] else None,
        "subject": str(msg["Subject"]) if msg["Subject"] else None,
        "message_id": str(msg["Message-ID"]) if msg["Message-ID"] else None,
        "date": str(msg["Date"]) if msg["Date"] else None,
        "content_type": msg.get_content_type(),
        "text": text,
        "html": html,
        "attachments": attachments,
        "defects": [type(d).__name__ for d in msg.defects],
    }


class Sink:
    def __init__(self, out, defer_first):
        self.out = out
        self.defer_first = defer_first
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        n = self.count
        raw = envelope.original_content or envelope.content
        deferred = n <= self.defer_first
        stem = os.path.join(self.out, f"{n:04d}")
        with open(stem + ".eml", "wb") as f:
            f.write(raw)
        record = {
            "n": n,
            "status": "deferred" if deferred else "accepted",
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "message": parse(raw),
        }
        with open(stem + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.replace(stem + ".json.tmp", stem + ".json")
        if deferred:
            return "451 4.3.0 Busy for now, try again later"
        return "250 2.0.0 OK: queued"


def exit_when_stdin_closes():
    sys.stdin.buffer.read()
    os._exit(0)


async def main():
    args = argparse.ArgumentParser()
    args.add_argument("out")
    args.add_argument("--defer-first", type=int, default=0)
    opts = args.parse_args()
    os.makedirs(opts.out, exist_ok=True)
    sink = Sink(opts.out, opts.defer_first)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink.test", enable_SMTPUTF8=True),
        host="127.0.0.1",
        port=0,
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
