"""A small aiosmtpd server for relais' client tests: a second, independent SMTP server.

It listens on 127.0.0.1 on a free port and prints `listening on 127.0.0.1:PORT` on stderr once
it accepts connections. Options:
  --outdir DIR          every accepted message is written to DIR/N.eml, its envelope to DIR/N.json
  --cert FILE --key FILE
                        offer STARTTLS with this certificate chain and key
  --implicit-tls        TLS from the first byte (port 465 style) with --cert/--key, no STARTTLS
  --auth USER:PASSWORD  offer AUTH PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 (the password is the
                        bearer token) for this one user
  --auth-in-clear       offer AUTH without TLS too (aiosmtpd offers it only under TLS by default)

Recipients whose local part is `nobody` are refused with `550 5.1.1 No such person at this
address`, as in the seeds. Stop it with SIGTERM.
"""

import argparse
import asyncio
import base64
import hmac
import json
import os
import signal
import ssl
import sys
import time

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@", 1)[0].lower() == "nobody":
            return "550 5.1.1 No such person at this address"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.outdir, str(self.count))
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json", "w") as f:
            json.dump(
                {
                    "mail_from": envelope.mail_from,
                    "mail_options": envelope.mail_options,
                    "rcpt_tos": envelope.rcpt_tos,
                    "rcpt_options": envelope.rcpt_options,
                    "tls": session.ssl is not None,
                    "authenticated": session.authenticated,
                },
                f,
            )
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 OK: queued as test%d" % self.count


class AuthHandler(Handler):
    """Handler with the mechanisms aiosmtpd does not have built in: CRAM-MD5 (RFC 2195) and
    XOAUTH2 (Google's and Microsoft's SASL for OAuth 2.0 bearer tokens)."""

    def __init__(self, outdir, user, password):
        super().__init__(outdir)
        self.user = user
        self.password = password

    async def auth_CRAM__MD5(self, server, args):
        challenge = ("<%d.%d@aiosmtpd.test>" % (os.getpid(), time.time_ns())).encode()
        response = await server.challenge_auth(challenge)
        if response is MISSING:
            return AuthResult(success=False, handled=True)
        user, _, digest = response.decode(errors="replace").rpartition(" ")
        want = hmac.new(self.password.encode(), challenge, "md5").hexdigest()
        ok = user == self.user and hmac.compare_digest(digest, want)
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(user.encode(), b""))

    async def auth_XOAUTH2(self, server, args):
        if len(args) > 1:
            blob = base64.b64decode(args[1])
        else:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        fields = dict(
            part.split("=", 1) for part in blob.decode(errors="replace").split("\x01") if "=" in part
        )
        ok = fields.get("user") == self.user and fields.get("auth") == "Bearer " + self.password
        if not ok:
            error = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"})
            if await server.challenge_auth(error) is MISSING:
                return AuthResult(success=False, handled=True)
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(self.user.encode(), b""))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--outdir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--auth")
    p.add_argument("--auth-in-clear", action="store_true")
    a = p.parse_args()

    context = None
    if a.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)

    authenticator = None
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login == user.encode()
                and auth_data.password == password.encode()
            )
            # handled=False: aiosmtpd then answers 535 itself.
            return AuthResult(success=ok, handled=False)

    handler = AuthHandler(a.outdir, *a.auth.split(":", 1)) if a.auth else Handler(a.outdir)

    def factory():
        return SMTP(
            handler,
            hostname="aiosmtpd.test",
            ident="aiosmtpd test server",
            tls_context=None if a.implicit_tls else context,
            require_starttls=False,
            authenticator=authenticator,
            auth_required=False,
            auth_require_tls=not a.auth_in_clear,
            enable_SMTPUTF8=True,
        )

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory,
            host="127.0.0.1",
            port=0,
            ssl=context if a.implicit_tls else None,
        )
        port = server.sockets[0].getsockname()[1]
        print("listening on 127.0.0.1:%d" % port, file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
