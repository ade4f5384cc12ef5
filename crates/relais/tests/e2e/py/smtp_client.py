#!/usr/bin/env python3
"""SMTP client side of relais' end-to-end tests, with Python's standard smtplib only.

Usage: smtp_client.py MODE PORT EXPECTED_FILE [ARG]

Each mode sends one message to 127.0.0.1:PORT and writes to EXPECTED_FILE the exact octets the
server must store for it (what smtplib sent, before dot-stuffing, with the CRLF smtplib adds at
the end when the message lacks one). On success it prints the reply to the end of the message
("250 2.0.0 Ok: queued as ID") as its last line and exits 0; any SMTP error exits non-zero with
the server's reply on stderr.

Modes:
  plain         send_message() of a small message, dot-stuffing exercised
  8bitmime      BODY=8BITMIME with 8-bit octets (UTF-8 and not) in the body
  smtputf8      SMTPUTF8 with a UTF-8 sender local part, To display name and Subject
  big SIZE      a message of about SIZE octets (MAIL FROM carries SIZE=)
"""

import base64
import hashlib
import random
import smtplib
import sys
from email.message import EmailMessage
from email import policy

TIMEOUT = 60


class RecordingSMTP(smtplib.SMTP):
    """smtplib.SMTP that remembers what it gave to DATA and the server's final reply."""

    sent = None
    final_reply = None

    def data(self, msg):
        self.sent = msg
        code, text = super().data(msg)
        self.final_reply = (code, text)
        return code, text


def expected_octets(sent):
    """What the server must store: smtplib's DATA payload without its dot-stuffing."""
    if isinstance(sent, str):
        sent = sent.encode("ascii")
    if not sent.endswith(b"\r\n"):
        sent += b"\r\n"
    return sent


def plain(s):
    msg = EmailMessage()
    msg["From"] = "Sender <a@example.org>"
    msg["To"] = "user@localhost"
    msg["Subject"] = "relais e2e: smtplib plain"
    msg["Message-ID"] = "<plain.e2e@example.org>"
    msg.set_content(
        "Hello from smtplib.\n"
        ".a line that starts with a dot\n"
        "..two dots\n"
        ".\n"
        "the line above is a lone dot: content, not the end\n"
    )
    s.send_message(msg)


def eightbit(s):
    body = (
        b"From: a@example.org\r\n"
        b"To: user@localhost\r\n"
        b"Subject: relais e2e: 8BITMIME\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        + "Grüße, ça marche, 日本語, emoji ✉\r\n".encode("utf-8")
        + b"latin-1 octets: \xe9\xe8\xff\x80\r\n"
    )
    s.sendmail("a@example.org", ["user@localhost"], body, mail_options=["BODY=8BITMIME"])


def smtputf8(s):
    msg = EmailMessage(policy=policy.SMTPUTF8)
    msg["From"] = "René <rené@example.org>"
    msg["To"] = "Jürgen <user@localhost>"
    msg["Subject"] = "Grüße aus relais ✉"
    msg.set_content("Unicode everywhere: ünïcödé ✓\n", cte="8bit")
    flat = msg.as_bytes(policy=policy.SMTPUTF8.clone(linesep="\r\n"))
    s.sendmail(
        "rené@example.org",
        ["user@localhost"],
        flat,
        mail_options=["SMTPUTF8", "BODY=8BITMIME"],
    )


def big(s, size):
    rng = random.Random(20240601)
    head = (
        "From: a@example.org\r\n"
        "To: user@localhost\r\n"
        "Subject: relais e2e: big message\r\n"
        "\r\n"
    )
    lines = [head]
    total = len(head)
    n = 0
    while total < size:
        n += 1
        line = base64.b64encode(rng.randbytes(57)).decode("ascii")  # 76 characters
        if n % 997 == 0:
            line = "." + line[1:]  # stuffed on the wire, unstuffed by the server
        lines.append(line + "\r\n")
        total += 78
    payload = "".join(lines).encode("ascii")
    s.sendmail("a@example.org", ["user@localhost"], payload)


def main():
    mode, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = RecordingSMTP("127.0.0.1", port, local_hostname="client.example.org", timeout=TIMEOUT)
    try:
        if mode == "plain":
            plain(s)
        elif mode == "8bitmime":
            s.ehlo_or_helo_if_needed()
            if not s.has_extn("8bitmime"):
                sys.exit("server does not advertise 8BITMIME")
            eightbit(s)
        elif mode == "smtputf8":
            s.ehlo_or_helo_if_needed()
            if not s.has_extn("smtputf8"):
                sys.exit("server does not advertise SMTPUTF8")
            smtputf8(s)
        elif mode == "big":
            big(s, int(sys.argv[4]))
        else:
            sys.exit(f"unknown mode {mode}")
        s.quit()
    except smtplib.SMTPException as e:
        sys.exit(f"SMTP error: {e!r}")
    expected = expected_octets(s.sent)
    with open(out, "wb") as f:
        f.write(expected)
    code, text = s.final_reply
    print(f"sha256 {hashlib.sha256(expected).hexdigest()} octets {len(expected)}")
    print(f"{code} {text.decode('utf-8', 'replace')}")


if __name__ == "__main__":
    main()
