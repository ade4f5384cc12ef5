#!/usr/bin/python3
"""A content filter for relais' milter tests, on Sendmail's own libmilter (Debian's
python3-milter), so that relais is tested against the reference implementation of the
protocol's filter side.

    test_filter.py PORT SEEN_FILE

It listens on 127.0.0.1:PORT and prints `listening on 127.0.0.1:PORT` once it accepts
connections. What it does depends on the message, so that one filter serves every test:

- MAIL FROM <spammer@...>: refused (550 5.7.1 Sender refused by the test filter);
- RCPT TO <blocked@...>: that recipient refused (550 5.1.1 ...);
- Subject containing a word:
  reject-me (550 5.7.1 Rejected by the test filter), tempfail-me (TEMPFAIL),
  discard-me (DISCARD), quarantine-me (quarantine "held by the test filter"),
  change-me (Subject changed, X-Remove deleted, X-Top inserted on top, X-Added added),
  replace-body (body replaced), replace-big (replaced by 480 kB), slow-me (answers end of message after 5 s);
- every other message gets `X-Test-Filter: seen` added.

Each connection's story (connect name and address, HELO, sender, recipients, headers, body
size, macros) is appended to SEEN_FILE as one JSON line per message.
"""

import json
import socket
import sys
import threading
import time

import Milter

PORT = int(sys.argv[1])
SEEN = sys.argv[2]
lock = threading.Lock()


class TestFilter(Milter.Base):
    def __init__(self):
        self.id = Milter.uniqueID()
        self.connected = None
        self.helo = None
        self.reset()

    def reset(self):
        self.sender = None
        self.rcpts = []
        self.headers = []
        self.content = b""
        self.subject = ""

    def connect(self, hostname, family, hostaddr):
        self.connected = {"name": hostname, "addr": list(hostaddr) if hostaddr else None,
                          "client_addr": self.getsymval("{client_addr}")}
        return Milter.CONTINUE

    def hello(self, name):
        self.helo = name
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        self.reset()
        self.sender = sender
        self.macros = {m: self.getsymval(m) for m in ("i", "{auth_authen}", "j")}
        if sender.lower().startswith("<spammer@"):
            self.setreply("550", "5.7.1", "Sender refused by the test filter")
            return Milter.REJECT
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *params):
        if rcpt.lower().startswith("<blocked@"):
            self.setreply("550", "5.1.1", "Recipient refused by the test filter")
            return Milter.REJECT
        self.rcpts.append(rcpt)
        return Milter.CONTINUE

    def header(self, name, value):
        self.headers.append([name, value])
        if name.lower() == "subject":
            self.subject = value
        return Milter.CONTINUE

    def eoh(self):
        return Milter.CONTINUE

    def body(self, chunk):
        self.content += chunk
        return Milter.CONTINUE

    def record(self, verdict):
        story = {
            "connect": self.connected, "helo": self.helo, "from": self.sender,
            "rcpts": self.rcpts, "headers": self.headers, "body_size": len(self.content),
            "body_tail": self.content[-40:].decode("latin-1"), "macros": self.macros,
            "queue_id": self.getsymval("i"), "verdict": verdict,
        }
        with lock, open(SEEN, "a") as f:
            f.write(json.dumps(story) + "\n")

    def eom(self):
        s = self.subject
        if "reject-me" in s:
            self.record("reject")
            self.setreply("550", "5.7.1", "Rejected by the test filter")
            return Milter.REJECT
        if "tempfail-me" in s:
            self.record("tempfail")
            return Milter.TEMPFAIL
        if "discard-me" in s:
            self.record("discard")
            return Milter.DISCARD
        if "slow-me" in s:
            time.sleep(5)
        if "quarantine-me" in s:
            self.quarantine("held by the test filter")
        if "change-me" in s:
            self.chgheader("Subject", 1, "[filtered] " + s)
            self.chgheader("X-Remove", 1, "")
            self.addheader("X-Top", "inserted on top", 0)
            self.addheader("X-Added", "a long value\n\tfolded on two lines")
        elif "replace-big" in s:
            # a new body larger than the spool keeps inline, in several chunks
            line = b"The test filter replaced this body with a long one.........\r\n"
            for _ in range(8):
                self.replacebody(line * 1000)
        elif "replace-body" in s:
            self.replacebody(b"The test filter replaced this body.\r\n")
        else:
            self.addheader("X-Test-Filter", "seen")
        self.record("accept")
        return Milter.CONTINUE

    def abort(self):
        return Milter.CONTINUE

    def close(self):
        return Milter.CONTINUE


def announce():
    """Prints the listening line once the port accepts connections (at most 10 s)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
            print(f"listening on 127.0.0.1:{PORT}", flush=True)
            return
        except OSError:
            time.sleep(0.05)
    print("never listened", flush=True)


def main():
    Milter.factory = TestFilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.QUARANTINE)
    threading.Thread(target=announce, daemon=True).start()
    Milter.runmilter("relais-test-filter", f"inet:{PORT}@127.0.0.1", 60)


if __name__ == "__main__":
    main()
