#!/usr/bin/env python3
"""DKIM and ARC with dkimpy, the reference Python implementation, for relais' interop tests.

  dkim_tool.py keygen rsa|ed25519 PRIVATE_FILE      prints the public key (the p= value)
  dkim_tool.py send PORT FROM TO [options]          signs a message, sends it with smtplib,
                                                    prints "CODE TEXT" of the final reply
      --sign DOMAIN:SELECTOR:KEYFILE:rsa|ed25519:HEADER_CANON/BODY_CANON   (repeatable)
      --arc DOMAIN:SELECTOR:KEYFILE:AUTHSERV_ID   seal an ARC set (after --sign)
      --header-from ADDRESS                        the From: header (default: FROM)
      --extra "Name: value"                        one more header, on top (repeatable)
      --tamper                                     change the body after signing
      --body-lines N                               a longer body
  dkim_tool.py verify FILE DNS_PORT                 verifies every DKIM signature of FILE
                                                    (exit 0 when all pass), keys from the
                                                    DNS server on 127.0.0.1:DNS_PORT
  dkim_tool.py arc-verify FILE DNS_PORT             verifies the ARC chain (prints cv=)
  dkim_tool.py sink DIR                             an SMTP server on 127.0.0.1 (aiosmtpd) that
                                                    writes each message to DIR/N.eml and its
                                                    sender to DIR/N.from; prints its port,
                                                    serves until standard input closes
"""
import base64
import smtplib
import sys

import dkim
import dns.resolver


def keygen(kind, path):
    if kind == "ed25519":
        import nacl.signing
        key = nacl.signing.SigningKey.generate()
        with open(path, "wb") as f:
            f.write(base64.b64encode(bytes(key)))
        print(base64.b64encode(bytes(key.verify_key)).decode())
    else:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with open(path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        print(base64.b64encode(der).decode())


def dnsfunc_for(port):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = int(port)
    resolver.lifetime = 5

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(name, "TXT")
        except Exception:
            return None
        for rr in answer:
            return b"".join(rr.strings)
        return None
    return dnsfunc


def send(args):
    port, mail_from, rcpt = args[0], args[1], args[2]
    signs, arcs, extra = [], [], []
    header_from, tamper, body_lines = mail_from, False, 1
    i = 3
    while i < len(args):
        a = args[i]
        if a == "--sign":
            signs.append(args[i + 1]); i += 2
        elif a == "--arc":
            arcs.append(args[i + 1]); i += 2
        elif a == "--header-from":
            header_from = args[i + 1]; i += 2
        elif a == "--extra":
            extra.append(args[i + 1]); i += 2
        elif a == "--tamper":
            tamper = True; i += 1
        elif a == "--body-lines":
            body_lines = int(args[i + 1]); i += 2
        else:
            sys.exit("unknown option " + a)
    body = "".join("Line %d of a message signed by dkimpy.\r\n" % n for n in range(body_lines))
    message = ("From: <%s>\r\nTo: <%s>\r\nSubject: dkim interop\r\n"
               "Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <interop.%s>\r\n\r\n%s"
               % (header_from, rcpt, mail_from, body)).encode()
    for spec in signs:
        domain, selector, keyfile, alg, canon = spec.split(":")
        h, b = canon.split("/")
        key = open(keyfile, "rb").read()
        sig = dkim.sign(message, selector.encode(), domain.encode(), key,
                        canonicalize=(h.encode(), b.encode()),
                        signature_algorithm=b"ed25519-sha256" if alg == "ed25519" else b"rsa-sha256",
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        message = sig + message
    for spec in arcs:
        domain, selector, keyfile, authserv = spec.split(":")
        key = open(keyfile, "rb").read()
        # the sealer's own Authentication-Results, which ARC-Authentication-Results copies
        message = ("Authentication-Results: %s; dkim=pass header.d=%s\r\n" % (authserv, domain)).encode() + message
        sets = dkim.arc_sign(message, selector.encode(), domain.encode(), key,
                             authserv.encode(), b"none" if not message.count(b"ARC-Seal") else b"pass")
        message = b"".join(sets) + message
    for h in reversed(extra):
        message = h.encode() + b"\r\n" + message
    if tamper:
        message = message.replace(b"signed by dkimpy", b"changed after signing")
    try:
        with smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.test", timeout=20) as s:
            s.ehlo("client.test")
            code, text = s.docmd("MAIL FROM:<%s>" % mail_from)
            if code != 250:
                print(code, text.decode()); return
            code, text = s.docmd("RCPT TO:<%s>" % rcpt)
            if code != 250:
                print(code, text.decode()); return
            code, text = s.data(message)
            print(code, text.decode())
    except smtplib.SMTPDataError as e:
        print(e.smtp_code, e.smtp_error.decode())


def sink(outdir):
    import os
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            n = len([f for f in os.listdir(outdir) if f.endswith(".eml")])
            with open(os.path.join(outdir, "%d.from" % n), "w") as f:
                f.write(envelope.mail_from)
            with open(os.path.join(outdir, "%d.eml" % n), "wb") as f:
                f.write(envelope.original_content or envelope.content)
            return "250 2.0.0 Ok: kept"

    import socket
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print(port, flush=True)
    sys.stdin.read()
    controller.stop()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "keygen":
        keygen(args[0], args[1])
    elif cmd == "send":
        send(args)
    elif cmd == "verify":
        message = open(args[0], "rb").read()
        d = dkim.DKIM(message)
        count = message.count(b"\nDKIM-Signature:") + message.startswith(b"DKIM-Signature:")
        ok = all(d.verify(idx=i, dnsfunc=dnsfunc_for(args[1])) for i in range(max(count, 1)))
        print("pass" if ok else "fail")
        sys.exit(0 if ok else 1)
    elif cmd == "sink":
        sink(args[0])
    elif cmd == "arc-verify":
        message = open(args[0], "rb").read()
        cv, results, reason = dkim.arc_verify(message, dnsfunc=dnsfunc_for(args[1]))
        print(cv.decode(), reason)
        sys.exit(0 if cv == b"pass" else 1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
