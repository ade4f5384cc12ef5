#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from the transcript tests
(crates/proto/tests/session_transcripts.rs): run again when they change, commit the result.

- session: one seed per script, `T` and the client's lines (C:) with CRLF;
- command_line: each client line;
- address: the arguments of MAIL FROM: and RCPT TO:;
- reply_parser: the server's lines (S:) of each script;
- receivers: the content of each DATA, and whole scripts;
- records: the configuration examples of README.md, an aliases file, SPF, DMARC and DKIM
  records;
- dsn: a delivery report as Postfix writes it, and a bounce as Exim writes it (no report);
- bdat: one chunk, then a LAST one;
- spool_recovery: the spool's segment unchanged, cut, with a byte flipped in its header and in
  its first record, and replaced by nothing.
"""
import hashlib
import os
import re

ROOT = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(ROOT, "..", "crates", "proto", "tests", "session_transcripts.rs")


def unescape(s):
    return s.encode().decode("unicode_escape").encode("latin-1")


def save(target, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


text = open(SRC, encoding="utf-8").read()
scripts = re.findall(r'script\(\s*"((?:[^"\\]|\\.)*)"', text, re.S)
for script in scripts:
    client, server = [], []
    for line in script.splitlines():
        line = line.strip()
        if line.startswith("C:"):
            client.append(unescape(line[2:].lstrip(" ")))
        elif line.startswith("S:"):
            server.append(unescape(line[2:].lstrip(" ")))
    if not client:
        continue
    wire = b"".join(l + b"\r\n" for l in client)
    save("session", b"T" + wire)
    save("receivers", b"\x07" + wire)
    if server:
        save("reply_parser", b"\x05" + b"".join(l + b"\r\n" for l in server))
    in_data = None
    for l in client:
        save("command_line", l)
        up = l.upper()
        if in_data is not None:
            if l == b".":
                save("receivers", b"\x03" + b"\r\n".join(in_data))
                in_data = None
            else:
                in_data.append(l)
            continue
        if up == b"DATA":
            in_data = []
        for kw in (b"MAIL FROM:", b"RCPT TO:"):
            if up.startswith(kw):
                save("address", l[len(kw):])
# Direct sends of the tests (h.send("...")): raw client bytes.
for raw in re.findall(r'\.send\(\s*"((?:[^"\\]|\\.)*)"', text):
    save("session", b"T" + unescape(raw))
# Spool recovery: (cut, then flips of (offset lo, offset hi, xor)) or 0xFF and a whole segment.
for seed in (b"\x00", b"\x05", b"\x00\x03\x00\x01", b"\x00\x30\x00\x80", b"\xff"):
    save("spool_recovery", seed)
# Records: README's TOML examples, an aliases file, SPF, DMARC and DKIM records.
readme = open(os.path.join(ROOT, "..", "README.md"), encoding="utf-8").read()
for block in re.findall(r"```toml\n(.*?)```", readme, re.S):
    save("records", block.encode())
for seed in (
    b'team: alice, bob\narchive: "|/usr/bin/save --list"\nold: :fail: gone\nlist: :include: team.list\n',
    b"v=spf1 ip4:192.0.2.0/24 a/24 include:_spf.example.test -all",
    b"v=spf1 mx redirect=other.test exp=why.test",
    b"v=DMARC1; p=reject; rua=mailto:postmaster@example.test; pct=50; adkim=s",
    # DKIM keys: RSA 1024 (SubjectPublicKeyInfo), Ed25519, revoked, in testing with flags.
    b"v=DKIM1; k=rsa; h=sha256; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDaXGhDI7uGXB2TU2uCWhfuJpIraCYkc1/G1RyKDcrIoPhdXvKtD/Kd+gghVHxXSRUg+5BrgDDD6+SznScGkq78a3nktgne/fGE9mx9gl9seCIAxFscvSHL+cAn6Slo5pzIiPS3tgCrxaeUY9kETmrp4USDHiaejlCK/vYraVFXnQIDAQAB",
    b"v=DKIM1; k=ed25519; t=y:s; p=rodNP/PPDc7oo3da3/3NxO2kdTiee1mikrf+uWfKdi0=",
    b"v=DKIM1; k=rsa; p=",
    b"k=ed25519; s=email; n=note; p= rodNP/PPDc7oo3da3/3NxO2kdTiee1mikrf+ uWfKdi0=",
):
    save("records", seed)

# Bounces: a multipart/report with a delivery-status part, and a text-only bounce.
save("dsn", (
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
    b"--B\r\nContent-Type: text/plain\r\n\r\nmail system at mx.example.org\r\n"
    b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; mx.example.org\r\n\r\n"
    b"Final-Recipient: rfc822; bob@example.com\r\nOriginal-Recipient: rfc822;bob@example.com\r\n"
    b"Action: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.com\r\n"
    b"Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: Recipient address\r\n"
    b"    rejected: User unknown\r\n\r\n"
    b"Final-Recipient: rfc822; carol@example.com\r\nAction: delayed\r\nStatus: 4.4.1\r\n"
    b"Diagnostic-Code: X-Postfix; connect to mx2.example.com[192.0.2.2]:25: refused\r\n\r\n"
    b"--B--\r\n"))
save("dsn", b"A message that you sent could not be delivered.\n  dave@example.com\n"
     b"    SMTP error from remote mail server after RCPT TO:<dave@example.com>:\n"
     b"    550 5.7.1 Relaying denied\n")
# BDAT: a chunk of 5 ("hello"), then an empty LAST one (the Arbitrary layout of bdat.rs).
save("bdat", b"\x07\x00\x04\x00\x05hello\x01\x02\x00\x00\x03LAST")
