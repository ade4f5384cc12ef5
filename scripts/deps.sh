#!/usr/bin/env bash
# Installs the system tools the tests and the benchmark use, when they are missing:
#   swaks        (tests: a second, independent SMTP client)
#   python3      (tests: smtplib scripts; bench: idle connections)
#   postfix      (tests: a real SMTP peer for delivery; bench: smtp-source, smtp-sink and a
#                private Postfix to compare with)
#   libnet-ssleay-perl (swaks' STARTTLS and TLS-on-connect)
#   dovecot-core, dovecot-lmtpd (tests: a real LMTP server for local delivery)
#   python3-pip + aiosmtpd (tests: a Python SMTP server with STARTTLS and AUTH)
#   dkimpy, pynacl, dnspython, authres, cryptography (pip; tests: DKIM and ARC interop with
#                the reference Python implementation)
#   prometheus   (tests: promtool checks the /metrics output; the service is not started)
#   chromium, chromium-driver (tests: the status page in headless Chromium, driven by
#                chromedriver over WebDriver; nothing is downloaded at test time)
#   redis-server (tests: the Redis backend of the shared state; each test starts its own on a
#                free port, the system service is not started)
#   rspamd       (tests: a real content filter in milter mode, started by the test on a free
#                port with its DNS at a dead loopback port; the system service is not started)
#   python3-milter (tests: a filter on Sendmail's own libmilter, for /usr/bin/python3)
#   clamav-daemon, clamav-milter (tests: ClamAV as a milter, with a one-signature database of
#                the test's own; nothing is downloaded, the services are not started)
#   passwd       (tests: useradd and userdel make and remove the system users of home mailboxes)
#   g++          (scripts/fuzz.sh: libFuzzer is C++, built by cargo-fuzz's libfuzzer-sys)
#   ldnsutils, nsd, openssl (tests: a DNSSEC zone signed at test time for DANE, served by a
#                private NSD on a free port; TLSA digests of test certificates)
# Usage: scripts/deps.sh            # source it or run it; it is a no-op when all are there
# Never prompts. Needs root (or password-less sudo) only when something must be installed.
set -euo pipefail

relais_deps_missing() {
    local missing=()
    command -v swaks >/dev/null 2>&1 || missing+=(swaks)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    if ! command -v smtp-source >/dev/null 2>&1 || ! command -v smtp-sink >/dev/null 2>&1 ||
        ! command -v postfix >/dev/null 2>&1; then
        missing+=(postfix)
    fi
    perl -MNet::SSLeay -e1 >/dev/null 2>&1 || missing+=(libnet-ssleay-perl)
    { command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; } || missing+=(dovecot-core)
    [ -e /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
    python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v rspamd >/dev/null 2>&1 || missing+=(rspamd)
    { command -v useradd >/dev/null 2>&1 || [ -x /usr/sbin/useradd ]; } || missing+=(passwd)
    command -v ldns-signzone >/dev/null 2>&1 || missing+=(ldnsutils)
    { command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ]; } || missing+=(nsd)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v c++ >/dev/null 2>&1 || missing+=(g++)
    /usr/bin/python3 -c "import Milter" >/dev/null 2>&1 || missing+=(python3-milter)
    [ -x /usr/sbin/clamd ] || missing+=(clamav-daemon)
    [ -x /usr/sbin/clamav-milter ] || missing+=(clamav-milter)
    echo "${missing[@]}"
}

# Python modules the tests use, from PyPI.
relais_install_python_deps() {
    if python3 -c "import aiosmtpd, dkim, nacl, dns.resolver, authres, cryptography" >/dev/null 2>&1; then
        return 0
    fi
    local modules=(aiosmtpd dkimpy pynacl dnspython authres cryptography)
    echo "deps: installing ${modules[*]} (pip)" >&2
    python3 -m pip install -q "${modules[@]}" 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "${modules[@]}"
}

relais_install_deps() {
    local missing
    missing=$(relais_deps_missing)
    if [ -z "$missing" ]; then
        relais_install_python_deps
        return
    fi
    echo "deps: installing: $missing" >&2
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo -n)
        else
            echo "deps: need root to install: $missing" >&2
            return 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Postfix asks which kind of mail setup to write; answer "none" so it configures nothing and
    # never touches port 25 (the benchmark runs its own instance from a temporary directory).
    echo "postfix postfix/main_mailer_type select No configuration" | "${sudo[@]}" debconf-set-selections
    "${sudo[@]}" apt-get update -q
    # Packages that ship a service (Postfix, Dovecot, Prometheus, Redis, rspamd, ClamAV) must not start it: only the
    # programs are wanted. policy-rc.d says so to invoke-rc.d while the packages install.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        made_policy=1
    fi
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    "${sudo[@]}" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing
    [ -n "$made_policy" ] && "${sudo[@]}" rm -f "$policy"
    missing=$(relais_deps_missing)
    if [ -n "$missing" ]; then
        echo "deps: still missing after install: $missing" >&2
        return 1
    fi
    relais_install_python_deps
}

# Run directly: install.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    relais_install_deps
fi
