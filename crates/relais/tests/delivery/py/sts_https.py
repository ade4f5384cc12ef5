"""An HTTPS server for relais' MTA-STS tests: the policy hosts mta-sts.DOMAIN.

Usage: sts_https.py --root DIR --cert FILE --key FILE

Serves DIR/HOST/PATH for the Host header of each request (no redirects, text/plain), 404 for
anything else, on a free port of 127.0.0.1; each request is logged on stderr as
`GET HOST PATH STATUS`. `listening on 127.0.0.1:PORT` is printed on stderr once connections
are accepted. Stop it with SIGTERM.
"""

import argparse
import http.server
import os
import signal
import ssl
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    args = ap.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            host = (self.headers.get("Host") or "").split(":")[0].lower()
            path = os.path.normpath(os.path.join(args.root, host, self.path.lstrip("/")))
            if path.startswith(os.path.abspath(args.root) + os.sep) and os.path.isfile(path):
                with open(path, "rb") as f:
                    body = f.read()
                status = 200
            else:
                body, status = b"not here\n", 404
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            print(f"GET {host} {self.path} {status}", file=sys.stderr, flush=True)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on 127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
