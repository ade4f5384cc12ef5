#!/usr/bin/env bash
# relais benchmark: accept rate against smtp-sink (the ceiling) and a private Postfix, side by side
# in one run on 127.0.0.1; end-to-end rates (smtp-source to the Maildir, and relayed on to a
# remote smtp-sink) for Postfix and relais; relais' resident memory with many idle connections.
#
# Usage: scripts/bench.sh
# Environment (all optional):
#   BENCH_TARGETS="sink relais accept postfix policy http screen state"  which targets to drive,
#                                        in order (default: all eight; relais before Postfix, so that neither pays for
#                                        the other's deleted files: ext4 skips recently freed
#                                        inodes). `accept` is relais with delivery paused: the
#                                        accept path alone, without the Maildir writes that share
#                                        the CPUs in the `relais` runs. `policy` is relais again with SPF, DKIM, DMARC
#                                        and ARC on, every lookup answered by a fixture DNS
#                                        server on 127.0.0.1 (crates/dns/examples/bench_dns.rs);
#                                        `http` is relais with its HTTP listener on and
#                                        /metrics scraped every 200 ms during the runs; `screen`
#                                        is relais with reverse DNS, two DNS lists and
#                                        greylisting (pre-passed) for strangers; `state` is the
#                                        embedded state store's memory and file with 10,000
#                                        greylisting entries and 100,000 rate counters
#                                        `bigmsg` (not in the default targets) is one message of
#                                        BENCH_BIG octets delivered to each delivery agent, with
#                                        relais' peak memory growth (scripts/bench_bigmsg.sh)
#   BENCH_BIG=100000000                  octets of the `bigmsg` message
#   BENCH_MESSAGES=20000                 messages in the parallel run
#   BENCH_BACKLOG=100000                 messages in each half of the `backlog` run (not in the
#                                        default targets: it takes minutes)
#   BENCH_SESSIONS=20                    sessions in the parallel run
#   BENCH_SERIAL_MESSAGES=2000           messages in the one-session run
#   BENCH_SIZE=1024                      payload octets per message
#   BENCH_IDLE=1000                      idle connections held for the memory measurement
#   BENCH_TIMEOUT=600                    seconds any one smtp-source run may take
#   BENCH_NO_BUILD=1                     use the existing target/release/relais
#   BENCH_KEEP=1                         keep the temporary directory (logs, Maildirs)
#
# Besides the rates it prints relais' CPU time per message (user and system) over the parallel
# run, the CPU seconds per 1,000 messages of relais and of the whole Postfix instance (every
# process of its session), and the latency of the final 250 (p50, p99) as a client that times
# each message sees it (crates/client/examples/latency.rs), for both: CPU per message is the
# steadier figure on a shared machine.
#
# Not run in CI. Only 127.0.0.1 and free ports are used; every process started here is stopped
# by its PID (or with `postfix -c DIR stop` for the private Postfix) on exit, error or Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/deps.sh
. "$ROOT/scripts/deps.sh"

TARGETS=${BENCH_TARGETS:-sink relais accept postfix policy http screen state}
MESSAGES=${BENCH_MESSAGES:-20000}
BACKLOG=${BENCH_BACKLOG:-100000}
SESSIONS=${BENCH_SESSIONS:-20}
SERIAL_MESSAGES=${BENCH_SERIAL_MESSAGES:-2000}
SIZE=${BENCH_SIZE:-1024}
IDLE=${BENCH_IDLE:-1000}
RUN_TIMEOUT=${BENCH_TIMEOUT:-600}

WORK=$(mktemp -d /tmp/relais-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
POSTFIX_DIR=""
POSTFIX_RUNNING=""

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
    local rc=$?
    set +e
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    if [ -n "$POSTFIX_RUNNING" ]; then
        postfix -c "$POSTFIX_DIR/etc" stop >/dev/null 2>&1
        # master.pid names the master; if `stop` did not end it, end it by that PID.
        local mpid
        mpid=$(tr -d ' \n' <"$POSTFIX_DIR/queue/pid/master.pid" 2>/dev/null)
        for _ in $(seq 1 50); do
            if [ -z "$mpid" ] || ! kill -0 "$mpid" 2>/dev/null; then break; fi
            sleep 0.1
        done
        [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null && kill -KILL "$mpid" 2>/dev/null
    fi
    if [ -n "${BENCH_KEEP:-}" ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT SECONDS: until something accepts on 127.0.0.1:PORT.
wait_port() {
    local port=$1 deadline=$((SECONDS + $2))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1).close()' \
            "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    log "nothing listens on 127.0.0.1:$port after $2 s"
    return 1
}

# count_files DIR: regular files under DIR (0 if it does not exist).
count_files() {
    if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi
}

# wait_files DIR N SECONDS: until DIR holds N files or time runs out; prints the count.
wait_files() {
    local dir=$1 want=$2 deadline=$((SECONDS + $3)) n=0
    while [ "$SECONDS" -lt "$deadline" ]; do
        n=$(count_files "$dir")
        [ "$n" -ge "$want" ] && break
        sleep 0.5
    done
    count_files "$dir"
}

declare -A RATE
declare -A DELIVERED
declare -A START
declare -A E2E

# source_run KEY PORT RCPT SESSIONS MESSAGES: drives smtp-source, records msg/s in RATE[KEY].
source_run() {
    local key=$1 port=$2 rcpt=$3 sessions=$4 count=$5 start end rc
    log "$key: smtp-source -s $sessions -m $count -l $SIZE -t $rcpt 127.0.0.1:$port"
    start=$(date +%s.%N)
    START[$key]=$start
    rc=0
    timeout "$RUN_TIMEOUT" smtp-source -s "$sessions" -m "$count" -l "$SIZE" -M bench.example.org \
        -f bench@example.org -t "$rcpt" "127.0.0.1:$port" >"$WORK/$key.source.log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    if [ "$rc" != 0 ]; then
        log "$key: smtp-source failed (exit $rc):"
        tail -5 "$WORK/$key.source.log" >&2
        RATE[$key]="FAIL"
        return 0
    fi
    RATE[$key]=$(awk -v n="$count" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
    log "$key: ${RATE[$key]} msg/s ($(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') s)"
}

# e2e_wait KEY COUNT-COMMAND N SECONDS: polls COUNT-COMMAND until it reports N, then records in
# E2E[KEY] the end-to-end rate: N messages from the start of smtp-source run KEY to the last one
# delivered.
e2e_wait() {
    local key=$1 cmd=$2 want=$3 deadline=$((SECONDS + $4)) n=0 end
    while [ "$SECONDS" -lt "$deadline" ]; do
        n=$(eval "$cmd")
        [ "$n" -ge "$want" ] && break
        sleep 0.2
    done
    end=$(date +%s.%N)
    if [ "$n" -lt "$want" ] || [ -z "${START[$key]:-}" ]; then
        log "$key: only $n of $want delivered in time"
        E2E[$key]="FAIL($n)"
        return 0
    fi
    E2E[$key]=$(awk -v n="$want" -v a="${START[$key]}" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
    log "$key: end to end ${E2E[$key]} msg/s"
}

# A second smtp-sink stands for a remote domain's MX in the relay runs.
REMOTE_SINK_PORT=""
remote_sink_start() {
    [ -n "$REMOTE_SINK_PORT" ] && return 0
    REMOTE_SINK_PORT=$(free_port)
    smtp-sink -u nobody -4 "127.0.0.1:$REMOTE_SINK_PORT" 1024 >"$WORK/remote-sink.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$REMOTE_SINK_PORT" 10
}

# ---------------------------------------------------------------- (a) smtp-sink: the ceiling
bench_sink() {
    local port pid
    port=$(free_port)
    smtp-sink -u nobody -4 "127.0.0.1:$port" 1024 >"$WORK/sink.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" 10
    source_run sink_par "$port" bench@example.org "$SESSIONS" "$MESSAGES"
    source_run sink_one "$port" bench@example.org 1 "$SERIAL_MESSAGES"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- (b) a private Postfix
# Everything lives under $WORK/postfix: etc/ (main.cf, master.cf), queue/, data/, vmail/, maillog.
# Mail for bench.test goes through the virtual(8) agent into one Maildir, vmail/bench/, as nobody.
postfix_setup() {
    local port=$1 dir=$WORK/postfix
    POSTFIX_DIR=$dir
    mkdir -p "$dir/etc" "$dir/queue" "$dir/data" "$dir/vmail"
    chmod 755 "$dir" "$dir/etc" "$dir/queue"
    chown postfix "$dir/data"
    chown nobody:nogroup "$dir/vmail"
    cat >"$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = postfix.bench.example
mydomain = bench.example
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains = sink.test
relayhost =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtpd_banner = \$myhostname ESMTP
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = bench.test
virtual_mailbox_base = $dir/vmail
virtual_mailbox_maps = static:bench/
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(id -g nobody)
virtual_minimum_uid = 1
default_process_limit = 100
transport_maps = inline:{sink.test=smtp:[127.0.0.1]:$REMOTE_SINK_PORT}
smtp_tls_security_level = none
EOF
    # chroot off everywhere (column 5 "n"): the instance needs no copy of /etc in its queue.
    cat >"$dir/etc/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
smtp      unix  - - n - - smtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

bench_postfix() {
    local port
    port=$(free_port)
    postfix_setup "$port"
    log "postfix: private instance in $POSTFIX_DIR on 127.0.0.1:$port"
    POSTFIX_RUNNING=1
    if ! postfix -c "$POSTFIX_DIR/etc" start >"$WORK/postfix.start.log" 2>&1; then
        log "postfix: start failed:"
        cat "$WORK/postfix.start.log" >&2
        tail -20 "$POSTFIX_DIR/maillog" >&2 2>/dev/null || true
        RATE[postfix_par]=FAIL
        RATE[postfix_one]=FAIL
        return 0
    fi
    wait_port "$port" 20
    local master t0 t1
    master=$(head -1 "$POSTFIX_DIR"/*/pid/master.pid 2>/dev/null | tr -d ' ' || true)
    [ -n "$master" ] && t0=$(group_ticks "$master")
    source_run postfix_par "$port" bench@bench.test "$SESSIONS" "$MESSAGES"
    e2e_wait postfix_par "count_files $POSTFIX_DIR/vmail/bench/new" "$MESSAGES" 300
    if [ -n "$master" ]; then
        t1=$(group_ticks "$master")
        POSTFIX_CPU=$(cpu_per_1000 $((t1 - t0)) "$MESSAGES")
    fi
    source_run postfix_one "$port" bench@bench.test 1 "$SERIAL_MESSAGES"
    DELIVERED[postfix]=$(wait_files "$POSTFIX_DIR/vmail/bench/new" $((MESSAGES + SERIAL_MESSAGES)) 120)
    latency_run postfix "$port" bench@bench.test
    source_run postfix_relay "$port" bench@sink.test "$SESSIONS" "$MESSAGES"
    e2e_wait postfix_relay "grep -c 'relay=127.0.0.1.*status=sent' $POSTFIX_DIR/maillog || true" "$MESSAGES" 300
    postfix -c "$POSTFIX_DIR/etc" stop >/dev/null 2>&1 || true
    POSTFIX_RUNNING=""
}

# ---------------------------------------------------------------- (c) relais
RELAIS_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/relais
RELAIS_PID=""
RELAIS_PORT=""

# relais_serve NAME: starts `relais serve` on the configuration already in $WORK/NAME; sets
# RELAIS_PID and RELAIS_PORT.
relais_serve() {
    local dir=$WORK/$1 deadline=$((SECONDS + 60)) before
    # Counted before the start: the new process may log before the loop looks.
    before=$(grep -c 'listening on' "$dir/stderr.log" || true)
    NO_COLOR=1 "$RELAIS_BIN" serve --config "$dir/relais.toml" >"$dir/stdout.log" 2>>"$dir/stderr.log" &
    RELAIS_PID=$!
    PIDS+=("$RELAIS_PID")
    while [ "$SECONDS" -lt "$deadline" ]; do
        if [ "$(grep -c 'listening on' "$dir/stderr.log" || true)" -gt "$before" ]; then
            RELAIS_PORT=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/stderr.log" |
                grep -o 'listening on 127\.0\.0\.1:[0-9]*' | tail -1 | sed 's/.*://')
            return 0
        fi
        kill -0 "$RELAIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "relais did not start again; its log:"
    tail -20 "$dir/stderr.log" >&2
    return 1
}

# relais_start NAME [EXTRA]: a relais in $WORK/NAME; EXTRA is TOML put before the tables (the
# default trusts 127.0.0.0/8 as relay networks; EXTRA may set its own).
relais_start() {
    local name=${1:-relais} extra=${2:-relay_networks = [\"127.0.0.0/8\"]}
    local dir=$WORK/$name
    mkdir -p "$dir/data"
    cat >"$dir/relais.toml" <<EOF
hostname = "relais.bench.example"
data_dir = "$dir/data"
local_domains = ["localhost", "bench.test"]
$(printf '%b' "$extra")

[[listener]]
address = "127.0.0.1:0"

[limits]
max_message_size = 10240000
max_recipients = 1000
max_connections = $((IDLE + 2000))
# Every benchmark client comes from 127.0.0.1: no per-address limits.
max_connections_per_ip = 0
connection_rate_per_ip = 0

[local]
users = []

[delivery]
routes = { "sink.test" = "[127.0.0.1]:$REMOTE_SINK_PORT" }
paused = ${RELAIS_PAUSED:-false}
EOF
    NO_COLOR=1 "$RELAIS_BIN" serve --config "$dir/relais.toml" >"$dir/stdout.log" 2>"$dir/stderr.log" &
    RELAIS_PID=$!
    PIDS+=("$RELAIS_PID")
    local deadline=$((SECONDS + 20))
    while [ "$SECONDS" -lt "$deadline" ]; do
        RELAIS_PORT=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/stderr.log" |
            grep -o 'listening on 127\.0\.0\.1:[0-9]*' | head -1 | sed 's/.*://') || true
        [ -n "$RELAIS_PORT" ] && return 0
        kill -0 "$RELAIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "relais did not say 'listening on 127.0.0.1:PORT'; its log:"
    tail -20 "$dir/stderr.log" >&2
    return 1
}

# User and system CPU ticks of a process so far (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
    awk '{ print $14, $15 }' "/proc/$1/stat"
}

# group_ticks PID: CPU ticks (user + system) of PID's session: every live process in it and
# the children it has reaped (a Postfix instance: master, smtpd, cleanup, qmgr, virtual, …).
group_ticks() {
    local sid
    sid=$(awk '{ print $6 }' "/proc/$1/stat")
    cat /proc/[0-9]*/stat 2>/dev/null |
        awk -v sid="$sid" -v pid="$1" '$6 == sid { t += $14 + $15 } $1 == pid { t += $16 + $17 } END { print t + 0 }'
}

# cpu_per_1000 TICKS MESSAGES: CPU seconds per 1,000 messages.
cpu_per_1000() {
    awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz / n * 1000 }'
}

# latency_run KEY PORT RCPT: the final 250's latency with $SESSIONS sessions and with one
# (crates/client/examples/latency.rs), into LATENCY[KEY_par] and LATENCY[KEY_one].
LATENCY_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/latency
declare -A LATENCY
latency_run() {
    local key=$1 port=$2 rcpt=$3 out
    [ -x "$LATENCY_BIN" ] || return 0
    out=$("$LATENCY_BIN" "127.0.0.1:$port" "$SESSIONS" $((MESSAGES / 4)) "$SIZE" "$rcpt" 2>&1) || out="FAIL $out"
    log "$key latency, $SESSIONS sessions: $out"
    LATENCY[${key}_par]=$(echo "$out" | sed -n 's/.*p50 \([0-9.]*\) ms p99 \([0-9.]*\) ms.*/\1 \2/p')
    out=$("$LATENCY_BIN" "127.0.0.1:$port" 1 "$SERIAL_MESSAGES" "$SIZE" "$rcpt" 2>&1) || out="FAIL $out"
    log "$key latency, 1 session: $out"
    LATENCY[${key}_one]=$(echo "$out" | sed -n 's/.*p50 \([0-9.]*\) ms p99 \([0-9.]*\) ms.*/\1 \2/p')
}

# parallel_run KEY NAME: the parallel accept run of the relais in $WORK/NAME, to its Maildir,
# with the server's CPU time per message in CPU_RUN_USER_US and CPU_RUN_SYS_US.
parallel_run() {
    local key=$1 name=$2 u0 s0 u1 s1 tck
    read -r u0 s0 < <(cpu_ticks "$RELAIS_PID")
    source_run "$key" "$RELAIS_PORT" bench@localhost "$SESSIONS" "$MESSAGES"
    e2e_wait "$key" "count_files $WORK/$name/data/mail/bench/new" "$MESSAGES" 300
    read -r u1 s1 < <(cpu_ticks "$RELAIS_PID")
    tck=$(getconf CLK_TCK)
    CPU_RUN_USER_US=$(((u1 - u0) * 1000000 / tck / MESSAGES))
    CPU_RUN_SYS_US=$(((s1 - s0) * 1000000 / tck / MESSAGES))
}

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

bench_relais() {
    if [ -z "${BENCH_NO_BUILD:-}" ]; then
        log "relais: cargo build --release -p relais"
        (cd "$ROOT" && cargo build --release -p relais &&
            cargo build --release -p relais-client --example latency)
    fi
    if ! relais_start; then
        RATE[relais_par]=FAIL
        RATE[relais_one]=FAIL
        return 0
    fi
    log "relais: pid $RELAIS_PID on 127.0.0.1:$RELAIS_PORT"
    RSS_START=$(rss_kb "$RELAIS_PID")
    parallel_run relais_par relais
    CPU_USER_US=$CPU_RUN_USER_US
    CPU_SYS_US=$CPU_RUN_SYS_US
    RELAIS_CPU=$(awk -v u="$CPU_USER_US" -v s="$CPU_SYS_US" 'BEGIN { printf "%.3f", (u + s) / 1000 }')
    source_run relais_one "$RELAIS_PORT" bench@localhost 1 "$SERIAL_MESSAGES"
    DELIVERED[relais]=$(wait_files "$WORK/relais/data/mail/bench/new" $((MESSAGES + SERIAL_MESSAGES)) 120)
    latency_run relais "$RELAIS_PORT" bench@localhost
    source_run relais_relay "$RELAIS_PORT" bench@sink.test "$SESSIONS" "$MESSAGES"
    e2e_wait relais_relay "grep -c 'relay=127.0.0.1.*status=sent' $WORK/relais/stderr.log || true" "$MESSAGES" 300
    RSS_LOADED=$(rss_kb "$RELAIS_PID")

    # Idle connections: a Python script opens them, reads each banner, signals, then holds them.
    log "relais: holding $IDLE idle connections"
    local fifo=$WORK/idle.ready
    mkfifo "$fifo"
    python3 - "$RELAIS_PORT" "$IDLE" "$fifo" >"$WORK/idle.log" 2>&1 <<'EOF' &
import socket, sys, time
port, count, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conns, banners = [], 0
deadline = time.monotonic() + 120
try:
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        conns.append(s)
        first = s.recv(512)
        if first.startswith(b"220"):
            banners += 1
        elif len(conns) - banners <= 3:
            print("idle: connection", len(conns), "got", first[:80], file=sys.stderr)
except OSError as e:
    print("idle: error after", len(conns), "connections:", e, file=sys.stderr)
with open(ready, "w") as f:
    f.write(f"{len(conns)} {banners}\n")
time.sleep(120)  # held until the parent has measured and ends us
EOF
    local idle_pid=$!
    PIDS+=("$idle_pid")
    local ready
    ready=$(timeout 150 cat "$fifo" || echo "0 0")
    IDLE_OPEN=${ready% *}
    IDLE_BANNERS=${ready#* }
    if [ "$IDLE_BANNERS" != "$IDLE" ]; then
        log "relais: only $IDLE_BANNERS of $IDLE idle connections were greeted:"
        cat "$WORK/idle.log" >&2
    fi
    sleep 1
    RSS_IDLE=$(rss_kb "$RELAIS_PID")
    kill -TERM "$idle_pid" 2>/dev/null || true
    wait "$idle_pid" 2>/dev/null || true
    kill -TERM "$RELAIS_PID" 2>/dev/null || true
    wait "$RELAIS_PID" 2>/dev/null || true
}

# bench_dns_start: the fixture DNS of the checks runs (crates/dns/examples/bench_dns.rs), once;
# its address in BENCH_DNS. Its standard input stays open (a fifo nobody writes) until exit.
BENCH_DNS=""
bench_dns_start() {
    [ -n "$BENCH_DNS" ] && return 0
    local dns_out=$WORK/bench_dns.addr
    log "cargo build --release -p relais-dns --features fixture --example bench_dns"
    (cd "$ROOT" && cargo build -q --release -p relais-dns --features fixture --example bench_dns)
    mkfifo "$WORK/bench_dns.stdin"
    "$ROOT/target/release/examples/bench_dns" <"$WORK/bench_dns.stdin" >"$dns_out" 2>&1 &
    PIDS+=("$!")
    exec 7<>"$WORK/bench_dns.stdin"
    local deadline=$((SECONDS + 10))
    while [ ! -s "$dns_out" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    BENCH_DNS=$(head -1 "$dns_out")
    [ -n "$BENCH_DNS" ] || return 1
    log "fixture DNS on $BENCH_DNS"
}

# ---------------------------------------------------------------- (c') relais, accepting only
# The same runs with delivery paused: what the accept path costs (the SMTP dialogue, the spool
# record and its fdatasync before each 250) without the Maildir writes of the `relais` runs.
bench_accept() {
    if ! RELAIS_PAUSED=true relais_start relais-accept; then
        RATE[accept_par]=FAIL
        RATE[accept_one]=FAIL
        return 0
    fi
    log "accept: relais pid $RELAIS_PID on 127.0.0.1:$RELAIS_PORT, delivery paused"
    local u0 s0 u1 s1 tck
    read -r u0 s0 < <(cpu_ticks "$RELAIS_PID")
    source_run accept_par "$RELAIS_PORT" bench@localhost "$SESSIONS" "$MESSAGES"
    read -r u1 s1 < <(cpu_ticks "$RELAIS_PID")
    tck=$(getconf CLK_TCK)
    ACCEPT_CPU_USER_US=$(((u1 - u0) * 1000000 / tck / MESSAGES))
    ACCEPT_CPU_SYS_US=$(((s1 - s0) * 1000000 / tck / MESSAGES))
    source_run accept_one "$RELAIS_PORT" bench@localhost 1 "$SERIAL_MESSAGES"
    kill -TERM "$RELAIS_PID" 2>/dev/null || true
    wait "$RELAIS_PID" 2>/dev/null || true
}

# ---------------------------------------------------------------- (d) relais, sender checks on
# The same accept runs with [policy] spf = "reject", dkim = "tag", dmarc = "enforce" and
# arc = "tag" for clients that are strangers (no relay networks): SPF through an include, the
# DMARC record and (smtp-source messages carry no signature) a DKIM and ARC parse per message.
# checked_run KEY EXTRA: relais in $WORK/relais-KEY with the TOML EXTRA (and the fixture DNS
# as its resolver), its parallel and one-session runs as KEY_par and KEY_one, its CPU per
# message in CPU_RUN_USER_US and CPU_RUN_SYS_US. Leaves the server running (RELAIS_PID).
checked_run() {
    local key=$1 extra=$2
    if ! bench_dns_start; then
        RATE[${key}_par]=FAIL
        RATE[${key}_one]=FAIL
        return 1
    fi
    if [ -z "${BENCH_NO_BUILD:-}" ]; then
        (cd "$ROOT" && cargo build -q --release -p relais)
    fi
    if ! relais_start "relais-$key" "relay_networks = []\nresolver = \"$BENCH_DNS\"\n$extra"; then
        RATE[${key}_par]=FAIL
        RATE[${key}_one]=FAIL
        return 1
    fi
    log "$key: relais pid $RELAIS_PID on 127.0.0.1:$RELAIS_PORT"
    parallel_run "${key}_par" "relais-$key"
    source_run "${key}_one" "$RELAIS_PORT" bench@localhost 1 "$SERIAL_MESSAGES"
}

bench_policy() {
    checked_run policy '[policy]\nspf = "reject"\ndkim = "tag"\ndmarc = "enforce"\narc = "tag"\n' || return 0
    POLICY_CPU_USER_US=$CPU_RUN_USER_US
    POLICY_CPU_SYS_US=$CPU_RUN_SYS_US
    POLICY_PASSED=$(grep -c 'spf=pass (mailfrom example.org' "$WORK/relais-policy/stderr.log" || true)
    POLICY_DMARC=$(find "$WORK/relais-policy/data/mail/bench/new" -type f -print0 | head -z -n 1 |
        xargs -0 grep -o 'dmarc=pass[^;]*' 2>/dev/null | head -1 || true)
    kill -TERM "$RELAIS_PID" 2>/dev/null || true
    wait "$RELAIS_PID" 2>/dev/null || true
}

# ---------------------------------------------------------------- (e) relais, metrics scraped
# The relais runs again with [http] on and /metrics fetched every 200 ms (five times what a
# Prometheus scraping every second would cost): what the metrics and the listener cost.
bench_http() {
    if [ -z "${BENCH_NO_BUILD:-}" ]; then
        (cd "$ROOT" && cargo build -q --release -p relais)
    fi
    local http_port
    http_port=$(free_port)
    if ! relais_start relais-http "relay_networks = [\"127.0.0.0/8\"]\n[http]\naddress = \"127.0.0.1:$http_port\"\n"; then
        RATE[http_par]=FAIL
        RATE[http_one]=FAIL
        return 0
    fi
    log "http: relais pid $RELAIS_PID on 127.0.0.1:$RELAIS_PORT, /metrics on $http_port"
    python3 - "$http_port" >"$WORK/scrape.log" 2>&1 <<'EOF' &
import sys, time, urllib.request
port, n, ok = sys.argv[1], 0, 0
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            r.read()
            ok += 1
    except OSError:
        pass
    n += 1
    print(n, ok, flush=True)
    time.sleep(0.2)
EOF
    local scraper=$!
    PIDS+=("$scraper")
    parallel_run http_par relais-http
    HTTP_CPU_USER_US=$CPU_RUN_USER_US
    HTTP_CPU_SYS_US=$CPU_RUN_SYS_US
    source_run http_one "$RELAIS_PORT" bench@localhost 1 "$SERIAL_MESSAGES"
    kill -TERM "$scraper" 2>/dev/null || true
    wait "$scraper" 2>/dev/null || true
    HTTP_SCRAPES=$(tail -1 "$WORK/scrape.log" | awk '{ print $2 " of " $1 }')
    kill -TERM "$RELAIS_PID" 2>/dev/null || true
    wait "$RELAIS_PID" 2>/dev/null || true
}

# ---------------------------------------------------------------- (f) relais, client checks on
# The same accept runs with reverse DNS, two DNS lists (the client is on neither) and
# greylisting (pre-passed: no delay) for strangers: per connection a PTR and its forward
# lookup, two list queries, a greylisting read in the state store.
# A backlog after a crash: BACKLOG messages delivered to a mailbox (the normal end-to-end rate),
# then BACKLOG more accepted with delivery paused, the server killed with SIGKILL, restarted
# with delivery on: the rate at which the recovered backlog drains into the mailbox that
# already holds BACKLOG messages (each recovered copy is checked against the Maildir, so that
# one made before the crash is not made twice).
bench_backlog() {
    local name=relais-backlog dir=$WORK/relais-backlog start end
    if ! relais_start "$name"; then
        RATE[backlog_fill]=FAIL
        return 0
    fi
    log "backlog: filling the mailbox with $BACKLOG messages"
    source_run backlog_fill "$RELAIS_PORT" bench@localhost "$SESSIONS" "$BACKLOG"
    e2e_wait backlog_fill "count_files $dir/data/mail/bench/new" "$BACKLOG" 600
    kill -TERM "$RELAIS_PID" 2>/dev/null || true
    wait "$RELAIS_PID" 2>/dev/null || true
    sed -i 's/^paused = false$/paused = true/' "$dir/relais.toml"
    relais_serve "$name" || return 0
    log "backlog: $BACKLOG more into the spool, delivery paused"
    source_run backlog_spool "$RELAIS_PORT" bench@localhost "$SESSIONS" "$BACKLOG"
    kill -KILL "$RELAIS_PID" 2>/dev/null || true
    wait "$RELAIS_PID" 2>/dev/null || true
    sed -i 's/^paused = true$/paused = false/' "$dir/relais.toml"
    start=$(date +%s.%N)
    START[backlog_drain]=$start
    relais_serve "$name" || return 0
    log "backlog: restarted after SIGKILL, draining"
    e2e_wait backlog_drain "count_files $dir/data/mail/bench/new" $((2 * BACKLOG)) 900
    BACKLOG_DELIVERED=$(count_files "$dir/data/mail/bench/new")
    E2E[backlog_drain]=$(awk -v n="$BACKLOG" -v a="$start" -v b="$(date +%s.%N)" -v e="${E2E[backlog_drain]}" \
        'BEGIN { if (e ~ /^FAIL/) print e; else printf "%.0f", n / (b - a) }')
    kill -TERM "$RELAIS_PID" 2>/dev/null || true
    wait "$RELAIS_PID" 2>/dev/null || true
}

# The embedded state store with 10,000 greylisting triplets and 100,000 rate counters: its
# memory and file size (crates/state/examples/state_memory.rs).
bench_state() {
    if [ -z "${BENCH_NO_BUILD:-}" ]; then
        (cd "$ROOT" && cargo build -q --release -p relais-state --example state_memory)
    fi
    STATE_LINE=$("$ROOT/target/release/examples/state_memory") || STATE_LINE="state store: FAIL"
    log "$STATE_LINE"
}

bench_screen() {
    checked_run screen '[policy]\nreverse_dns = true\ndnsbl = ["zen.example*3", "bl.example*2"]\ndnsbl_threshold = 3\ngreylist = true\ngreylist_delay = "0s"\n' || return 0
    SCREEN_CPU_USER_US=$CPU_RUN_USER_US
    SCREEN_CPU_SYS_US=$CPU_RUN_SYS_US
    SCREEN_NAMED=$(grep -c 'client=bench-client.example.org\[127.0.0.1\]' "$WORK/relais-screen/stderr.log" || true)
    kill -TERM "$RELAIS_PID" 2>/dev/null || true
    wait "$RELAIS_PID" 2>/dev/null || true
}

# ---------------------------------------------------------------- (g) one big message
# shellcheck source=scripts/bench_bigmsg.sh
. "$ROOT/scripts/bench_bigmsg.sh"

# ---------------------------------------------------------------- main
relais_install_deps
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 1000)) ]; then
    log "warning: ulimit -n is $(ulimit -n); $IDLE idle connections may not fit"
fi
log "work dir $WORK; targets: $TARGETS; $(nproc) CPUs"

remote_sink_start
for t in $TARGETS; do
    case $t in
    sink) bench_sink ;;
    postfix) bench_postfix ;;
    relais) bench_relais ;;
    accept) bench_accept ;;
    policy) bench_policy ;;
    http) bench_http ;;
    screen) bench_screen ;;
    state) bench_state ;;
    backlog) bench_backlog ;;
    bigmsg) bench_bigmsg ;;
    *) log "unknown target $t" && exit 2 ;;
    esac
done

ratio() {
    local a=${RATE[$1]:-} b=${RATE[$2]:-}
    if [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ && $b != 0 ]]; then
        awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
    else
        echo "-"
    fi
}

echo
echo "=== relais benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, ${SIZE}-octet messages, 127.0.0.1 ==="
printf '%-34s %14s %14s\n' "target" "-s $SESSIONS -m $MESSAGES" "-s 1 -m $SERIAL_MESSAGES"
printf '%-34s %14s %14s\n' "smtp-sink (stores nothing)" "${RATE[sink_par]:--}" "${RATE[sink_one]:--}"
printf '%-34s %14s %14s\n' "postfix $(postconf -d -h mail_version 2>/dev/null) (virtual, Maildir)" \
    "${RATE[postfix_par]:--}" "${RATE[postfix_one]:--}"
printf '%-34s %14s %14s\n' "relais (release, Maildir)" "${RATE[relais_par]:--}" "${RATE[relais_one]:--}"
[ -n "${RATE[accept_par]:-}" ] &&
    printf '%-34s %14s %14s\n' "relais, delivery paused" "${RATE[accept_par]:--}" "${RATE[accept_one]:--}"
echo "(messages per second, accept rate measured by smtp-source wall time)"
printf '%-34s %14s %14s\n' "relais / postfix" "$(ratio relais_par postfix_par)" "$(ratio relais_one postfix_one)"
printf '%-34s %14s %14s\n' "relais / smtp-sink" "$(ratio relais_par sink_par)" "$(ratio relais_one sink_one)"
[ -n "${RATE[accept_par]:-}" ] &&
    printf '%-34s %14s %14s\n' "relais, delivery paused / smtp-sink" "$(ratio accept_par sink_par)" "$(ratio accept_one sink_one)"
printf '%-34s %14s %14s\n' "postfix / smtp-sink" "$(ratio postfix_par sink_par)" "$(ratio postfix_one sink_one)"
echo
printf '%-34s %14s %14s\n' "end to end, -s $SESSIONS -m $MESSAGES" "to Maildir" "relayed to sink"
printf '%-34s %14s %14s\n' "postfix" "${E2E[postfix_par]:--}" "${E2E[postfix_relay]:--}"
printf '%-34s %14s %14s\n' "relais" "${E2E[relais_par]:--}" "${E2E[relais_relay]:--}"
e2e_ratio() {
    local a=${E2E[$1]:-} b=${E2E[$2]:-}
    if [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ && $b != 0 ]]; then
        awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
    else
        echo "-"
    fi
}
printf '%-34s %14s %14s\n' "relais / postfix" "$(e2e_ratio relais_par postfix_par)" "$(e2e_ratio relais_relay postfix_relay)"
echo "(messages per second from the start of smtp-source to the last message delivered)"
total=$((MESSAGES + SERIAL_MESSAGES))
[ -n "${DELIVERED[postfix]:-}" ] && echo "postfix delivered ${DELIVERED[postfix]} of $total to its Maildir"
[ -n "${DELIVERED[relais]:-}" ] && echo "relais delivered ${DELIVERED[relais]} of $total to its Maildir"
if [ -n "${ACCEPT_CPU_USER_US:-}" ]; then
    echo "relais CPU per message (-s $SESSIONS, accepted only, delivery paused): user ${ACCEPT_CPU_USER_US} us," \
        "system ${ACCEPT_CPU_SYS_US} us"
fi
if [ -n "${CPU_USER_US:-}" ]; then
    echo "relais CPU per message (-s $SESSIONS, accepted and delivered to Maildir): user ${CPU_USER_US} us," \
        "system ${CPU_SYS_US} us (system time varies run to run: ext4 is slow to allocate inodes" \
        "right after many files were deleted)"
fi
if [ -n "${RATE[policy_par]:-}" ]; then
    echo
    printf '%-34s %14s %14s\n' "sender checks (SPF, DKIM, DMARC, ARC)" "-s $SESSIONS -m $MESSAGES" "-s 1 -m $SERIAL_MESSAGES"
    printf '%-34s %14s %14s\n' "relais, checks off (trusted)" "${RATE[relais_par]:--}" "${RATE[relais_one]:--}"
    printf '%-34s %14s %14s\n' "relais, checks on" "${RATE[policy_par]:--}" "${RATE[policy_one]:--}"
    printf '%-34s %14s %14s\n' "on / off" "$(ratio policy_par relais_par)" "$(ratio policy_one relais_one)"
    echo "relais CPU per message with checks on: user ${POLICY_CPU_USER_US:-?} us, system ${POLICY_CPU_SYS_US:-?} us;" \
        "SPF passes logged: ${POLICY_PASSED:-?}; a delivered copy says: ${POLICY_DMARC:-?}"
fi
if [ -n "${RATE[http_par]:-}" ]; then
    echo
    printf '%-34s %14s %14s\n' "metrics (HTTP on, scraped 5/s)" "-s $SESSIONS -m $MESSAGES" "-s 1 -m $SERIAL_MESSAGES"
    printf '%-34s %14s %14s\n' "relais, HTTP off" "${RATE[relais_par]:--}" "${RATE[relais_one]:--}"
    printf '%-34s %14s %14s\n' "relais, HTTP on" "${RATE[http_par]:--}" "${RATE[http_one]:--}"
    printf '%-34s %14s %14s\n' "on / off" "$(ratio http_par relais_par)" "$(ratio http_one relais_one)"
    echo "relais CPU per message with HTTP on: user ${HTTP_CPU_USER_US:-?} us, system ${HTTP_CPU_SYS_US:-?} us" \
        "(off: user ${CPU_USER_US:-?} us, system ${CPU_SYS_US:-?} us); scrapes answered: ${HTTP_SCRAPES:-?}"
fi
if [ -n "${RATE[screen_par]:-}" ]; then
    echo
    printf '%-34s %14s %14s\n' "client checks (PTR, 2 lists, grey)" "-s $SESSIONS -m $MESSAGES" "-s 1 -m $SERIAL_MESSAGES"
    printf '%-34s %14s %14s\n' "relais, checks off (trusted)" "${RATE[relais_par]:--}" "${RATE[relais_one]:--}"
    printf '%-34s %14s %14s\n' "relais, checks on" "${RATE[screen_par]:--}" "${RATE[screen_one]:--}"
    printf '%-34s %14s %14s\n' "on / off" "$(ratio screen_par relais_par)" "$(ratio screen_one relais_one)"
    echo "relais CPU per message with client checks on: user ${SCREEN_CPU_USER_US:-?} us, system ${SCREEN_CPU_SYS_US:-?} us;" \
        "messages from a client named by its PTR: ${SCREEN_NAMED:-?}"
fi
if [ -n "${RELAIS_CPU:-}${POSTFIX_CPU:-}" ]; then
    echo
    echo "cost per message (-s $SESSIONS -m $MESSAGES, accepted and delivered to the Maildir):"
    printf '%-50s %10s %10s %10s\n' "" "relais" "postfix" "ratio"
    printf '%-50s %10s %10s %10s\n' "CPU seconds per 1,000 messages (server processes)" \
        "${RELAIS_CPU:--}" "${POSTFIX_CPU:--}" \
        "$(awk -v a="${RELAIS_CPU:-}" -v b="${POSTFIX_CPU:-}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", b / a; else print "-" }')"
    for k in par one; do
        sessions="$SESSIONS sessions"
        [ "$k" = one ] && sessions="1 session"
        read -r rp50 rp99 <<<"${LATENCY[relais_$k]:-- -}"
        read -r pp50 pp99 <<<"${LATENCY[postfix_$k]:-- -}"
        printf '%-50s %10s %10s %10s\n' "final 250 latency p50, ms ($sessions)" "$rp50" "$pp50" \
            "$(awk -v a="$rp50" -v b="$pp50" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", b / a; else print "-" }')"
        printf '%-50s %10s %10s %10s\n' "final 250 latency p99, ms ($sessions)" "$rp99" "$pp99" \
            "$(awk -v a="$rp99" -v b="$pp99" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", b / a; else print "-" }')"
    done
    echo "(ratio: postfix / relais, higher is better for relais)"
fi
if [ -n "${E2E[backlog_fill]:-}" ]; then
    echo
    echo "backlog after a crash ($BACKLOG messages, one mailbox):"
    printf '%-50s %10s\n' "end to end into an empty mailbox (msg/s)" "${E2E[backlog_fill]:--}"
    printf '%-50s %10s\n' "recovered after SIGKILL, into $BACKLOG (msg/s)" "${E2E[backlog_drain]:--}"
    printf '%-50s %10s\n' "recovered / normal" "$(e2e_ratio backlog_drain backlog_fill)"
    echo "messages in the mailbox at the end: ${BACKLOG_DELIVERED:-?} of $((2 * BACKLOG))"
fi
bigmsg_report
if [ -n "${STATE_LINE:-}" ]; then
    echo "$STATE_LINE"
fi
if [ -n "${RSS_START:-}" ]; then
    echo "relais VmRSS: at start ${RSS_START} kB, after the runs ${RSS_LOADED:-?} kB," \
        "with ${IDLE_OPEN:-0} idle connections (${IDLE_BANNERS:-0} greeted) ${RSS_IDLE:-?} kB"
fi
