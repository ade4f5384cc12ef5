#!/usr/bin/env python3
"""A real client for the front-door tests: Python's smtplib against a relais listener.

Connects (clear text then STARTTLS, or implicit TLS), optionally logs in, optionally sends one
message, and prints what happened as `key=value` lines on stdout, which the Rust test reads:

    tls=TLSv1.3           the negotiated version, once encrypted
    ehlo_auth=PLAIN LOGIN what EHLO advertised for AUTH (empty when not offered)
    auth=235              the AUTH result code (or the error code smtplib got)
    sent=250 ...          the final reply to the message
    refused=CODE ADDR     a refused recipient

Exit status: 0 when everything asked for worked, 1 otherwise. The certificate is self-signed,
so it is not verified.
"""

import argparse
import smtplib
import ssl
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=["starttls", "implicit", "plain"], default="starttls")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--mech", choices=["PLAIN", "LOGIN", "auto"], default="auto")
    p.add_argument("--mail-from")
    p.add_argument("--rcpt", action="append", default=[])
    args = p.parse_args()

    context = ssl._create_unverified_context()
    if args.mode == "implicit":
        smtp = smtplib.SMTP_SSL("127.0.0.1", args.port, local_hostname="client.test",
                                context=context, timeout=10)
        smtp.ehlo()
    else:
        smtp = smtplib.SMTP("127.0.0.1", args.port, local_hostname="client.test", timeout=10)
        smtp.ehlo()
        if args.mode == "starttls":
            code, _ = smtp.starttls(context=context)
            print(f"starttls={code}")
            smtp.ehlo()
    if hasattr(smtp.sock, "version") and smtp.sock.version():
        print(f"tls={smtp.sock.version()}")
    print(f"ehlo_auth={smtp.esmtp_features.get('auth', '').strip()}")

    ok = True
    if args.user is not None:
        try:
            if args.mech == "auto":
                code, _ = smtp.login(args.user, args.password)
            else:
                smtp.user, smtp.password = args.user, args.password
                method = smtp.auth_plain if args.mech == "PLAIN" else smtp.auth_login
                code, _ = smtp.auth(args.mech, method, initial_response_ok=args.mech == "PLAIN")
            print(f"auth={code}")
        except smtplib.SMTPAuthenticationError as e:
            print(f"auth={e.smtp_code} {e.smtp_error.decode(errors='replace')}")
            ok = False
        except smtplib.SMTPException as e:
            print(f"auth=error {e}")
            ok = False

    if ok and args.mail_from is not None:
        msg = (f"From: <{args.mail_from}>\r\nTo: <{args.rcpt[0]}>\r\n"
               "Subject: smtplib front door\r\n\r\nsent by Python smtplib\r\n")
        try:
            code, text = smtp.mail(args.mail_from)
            if code != 250:
                print(f"mail={code} {text.decode(errors='replace')}")
                ok = False
            else:
                accepted = 0
                for rcpt in args.rcpt:
                    code, text = smtp.rcpt(rcpt)
                    if code == 250:
                        accepted += 1
                    else:
                        print(f"refused={code} {rcpt}")
                        ok = False
                if accepted:
                    code, text = smtp.data(msg)
                    print(f"sent={code} {text.decode(errors='replace')}")
                    ok = ok and code == 250
        except smtplib.SMTPResponseException as e:
            print(f"error={e.smtp_code} {e.smtp_error.decode(errors='replace')}")
            ok = False
    try:
        smtp.quit()
    except smtplib.SMTPException:
        pass
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
