"""An aiosmtpd peer for relais' delivery tests: the receiving MTA of a remote domain.

Usage: peer.py --listen IP:PORT --outdir DIR [--cert FILE --key FILE]

Each transaction is written to DIR/N.eml (the content as received) and DIR/N.json (MAIL FROM,
its parameters, the RCPT addresses and parameters, whether the session used TLS), N counting
from 1; the .json is renamed into place last, so a reader that sees it sees both. With a
certificate and key, STARTTLS is offered. `listening on IP:PORT` is printed on stderr once
connections are accepted. Recipients whose local part is `nobody` are refused with
`550 5.1.1 No such person at this address`. Stop it with SIGTERM.
"""

import argparse
import asyncio
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Recorder:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@", 1)[0].lower() == "nobody":
            return "550 5.1.1 No such person at this address"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient ok"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.outdir, str(self.count))
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        record = {
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "rcpt_options": envelope.rcpt_options,
            "tls": session.ssl is not None,
            "helo": session.host_name,
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(record, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Ok: queued as py%d" % self.count


async def serve(host, port, outdir, context):
    recorder = Recorder(outdir)
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(
            recorder,
            hostname="mx.py.test",
            tls_context=context,
            require_starttls=False,
            decode_data=False,
        )

    server = await loop.create_server(factory, host=host, port=port)
    bound = server.sockets[0].getsockname()
    print("listening on %s:%d" % (bound[0], bound[1]), file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    a = p.parse_args()
    host, port = a.listen.rsplit(":", 1)
    context = None
    if a.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)
    asyncio.run(serve(host, int(port), a.outdir, context))


if __name__ == "__main__":
    main()
