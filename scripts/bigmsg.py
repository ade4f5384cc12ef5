#!/usr/bin/env python3
"""Helpers of the `bigmsg` bench target (scripts/bench_bigmsg.sh): one large message made,
sent, taken over LMTP and checked where it was delivered.

  bigmsg.py make FILE OCTETS          a message of about OCTETS (CRLF lines of 78 octets, every
                                      50th line starting with a dot, so DATA must stuff it)
  bigmsg.py send PORT RCPT FILE       one SMTP transaction to 127.0.0.1:PORT; prints the queue id
  bigmsg.py lmtp PORT_FILE DIR        an LMTP server on a free port of 127.0.0.1 (written to
                                      PORT_FILE); each message into DIR/N.eml, dots unstuffed
  bigmsg.py check ORIGINAL DELIVERED [mbox]
                                      exit 0 when DELIVERED ends with ORIGINAL (mbox: its mbox
                                      form, LF line ends and the blank line after it)

Only 127.0.0.1 is used. The peers here hold a message in memory: they are not what is measured.
"""

import os
import smtplib
import socket
import sys


def make(path, octets):
    head = (
        "From: bench@bench.test\r\nTo: big@bench.test\r\nSubject: a big message\r\n"
        "Message-ID: <big@bench.test>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\n"
    ).encode()
    with open(path, "wb") as f:
        f.write(head)
        n, written = 0, len(head)
        while written < octets:
            mark = b"." if n % 50 == 0 else b"x"
            line = mark + (b"%010d" % n) + b"y" * 65 + b"\r\n"
            f.write(line)
            written += len(line)
            n += 1


def send(port, rcpt, path):
    with open(path, "rb") as f:
        content = f.read()
    s = smtplib.SMTP("127.0.0.1", int(port), timeout=600)
    s.ehlo("bench.test")
    code, text = s.mail("bench@bench.test")
    assert code == 250, text
    code, text = s.rcpt(rcpt)
    assert code == 250, text
    code, text = s.data(content)
    assert code == 250, text
    s.quit()
    print(text.decode().split("queued as ")[-1].split()[0])


def lmtp(port_file, out):
    srv = socket.create_server(("127.0.0.1", 0))
    with open(port_file, "w") as f:
        f.write(str(srv.getsockname()[1]))
    count = 0
    while True:
        conn, _ = srv.accept()
        rf = conn.makefile("rb")
        say = lambda text: conn.sendall(text.encode() + b"\r\n")
        say("220 bench LMTP")
        rcpts = 0
        while True:
            line = rf.readline()
            verb = line[:4].upper()
            if not line or verb == b"QUIT":
                break
            if verb == b"LHLO":
                say("250-bench\r\n250-PIPELINING\r\n250 8BITMIME")
            elif verb == b"MAIL":
                rcpts = 0
                say("250 2.1.0 ok")
            elif verb == b"RCPT":
                rcpts += 1
                say("250 2.1.5 ok")
            elif verb == b"DATA":
                say("354 go ahead")
                data = bytearray()
                while not data.endswith(b"\r\n.\r\n") and data != b".\r\n":
                    piece = rf.read1(1 << 20)
                    if not piece:
                        return
                    data += piece
                body = bytes(data[:-3]).replace(b"\r\n..", b"\r\n.")
                if body.startswith(b".."):
                    body = body[1:]
                count += 1
                with open(os.path.join(out, "%d.eml" % count), "wb") as f:
                    f.write(body)
                del data, body
                for _ in range(rcpts):
                    say("250 2.0.0 delivered")
            else:
                say("250 ok")
        conn.close()


def check(original, delivered, mbox=False):
    with open(original, "rb") as f:
        want = f.read()
    if mbox:
        want = want.replace(b"\r\n", b"\n") + b"\n"
    size = os.path.getsize(delivered)
    with open(delivered, "rb") as f:
        f.seek(max(0, size - len(want)))
        tail = f.read()
    ok = size >= len(want) and tail == want
    print("%s %d octets, %s" % ("exact" if ok else "DIFFERENT", size, delivered))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make":
        make(args[0], int(args[1]))
    elif cmd == "send":
        send(*args)
    elif cmd == "lmtp":
        lmtp(*args)
    elif cmd == "check":
        check(args[0], args[1], len(args) > 2 and args[2] == "mbox")
    else:
        sys.exit("unknown command " + cmd)
