# shellcheck shell=bash
# The `bigmsg` target of scripts/bench.sh, which sources this file (it uses its log,
# relais_serve, wait_port and PIDS): one message of BENCH_BIG octets (default 100,000,000, lines
# that need dot-stuffing) accepted by a release `relais serve` and delivered to each delivery
# agent in turn: a Maildir, a pipe command, an mbox file, a remote relais over SMTP with DATA,
# then (a second relais, `[delivery] chunking = true` and `[local] lmtp`) an LMTP server and the
# remote relais with BDAT. For each: the peak resident memory growth of the delivering relais
# (its peak reset through /proc/PID/clear_refs before the message, VmHWM after its delivery,
# minus VmRSS before), PASS under 32 MB, and the delivered copy checked byte for byte
# (scripts/bigmsg.py check).

BIG=${BENCH_BIG:-100000000}
BIG_LIMIT_KB=$((32 * 1024))
BIG_ORDER=()
declare -A BIG_GROWTH BIG_SECONDS BIG_CHECK

# status_kb PID FIELD: VmRSS, VmHWM… of PID in kB.
status_kb() {
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}

# big_relais NAME LOCAL DELIVERY: `relais serve` in $WORK/NAME taking mail for bench.test (or
# peer.test for the peer), messages up to BIG + 10 MB; LOCAL and DELIVERY are more lines of
# [local] and [delivery]. Sets RELAIS_PID and RELAIS_PORT.
big_relais() {
    local name=$1 dir=$WORK/$1 domain=bench.test
    [ "$name" = bigpeer ] && domain=peer.test
    mkdir -p "$dir/data"
    touch "$dir/stderr.log"
    cat >"$dir/relais.toml" <<EOF
hostname = "$name.bench.example"
data_dir = "$dir/data"
local_domains = ["$domain"]
relay_networks = ["127.0.0.0/8"]

[[listener]]
address = "127.0.0.1:0"

[limits]
max_message_size = $((BIG + 10000000))
max_connections_per_ip = 0
connection_rate_per_ip = 0

[local]
$2

[delivery]
$3
EOF
    relais_serve "$name"
}

# delivered WHERE: WHERE if it is a file, else the first file in the directory WHERE.
delivered() {
    if [ -d "$1" ]; then find "$1" -type f | head -1; else echo "$1"; fi
}

# big_run KEY NAME RCPT WHERE [mbox]: sends the message to RCPT through the relais NAME
# (running as RELAIS_PID on RELAIS_PORT), waits until it is removed from the queue and its copy
# is in WHERE (a file, or a Maildir's new/), records the memory growth, the seconds taken and
# the check of the copy.
big_run() {
    local key=$1 name=$2 rcpt=$3 where=$4 mode=${5:-} pid=$RELAIS_PID rss id start deadline file
    BIG_ORDER+=("$key")
    # Writing 5 resets the peak resident set size (VmHWM) to the current one (Linux 4.0).
    echo 5 >"/proc/$pid/clear_refs" 2>/dev/null ||
        log "bigmsg: cannot reset the peak of $pid: growth is counted from its start"
    rss=$(status_kb "$pid" VmRSS)
    start=$SECONDS
    log "bigmsg $key: $BIG octets to $rcpt"
    if ! id=$(python3 "$ROOT/scripts/bigmsg.py" send "$RELAIS_PORT" "$rcpt" "$WORK/big.eml"); then
        BIG_CHECK[$key]="not accepted"
        return 0
    fi
    deadline=$((SECONDS + RUN_TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        file=$(delivered "$where")
        if grep -q "$id: removed" "$WORK/$name/stderr.log" && [ -s "$file" ]; then
            break
        fi
        sleep 0.2
    done
    BIG_SECONDS[$key]=$((SECONDS - start))
    BIG_GROWTH[$key]=$(($(status_kb "$pid" VmHWM) - rss))
    if [ -s "$file" ]; then
        sleep 0.5 # the LMTP server and the command write their copy as they take it
        BIG_CHECK[$key]=$(python3 "$ROOT/scripts/bigmsg.py" check "$WORK/big.eml" "$file" $mode) || true
    else
        BIG_CHECK[$key]="not delivered within ${RUN_TIMEOUT}s"
    fi
}

# big_failed NAME: the relais NAME did not start; the report says so.
big_failed() {
    BIG_ORDER+=("$1")
    BIG_CHECK[$1]="relais $1 did not start (see $WORK/$1/stderr.log)"
}

bench_bigmsg() {
    if [ -z "${BENCH_NO_BUILD:-}" ]; then
        log "bigmsg: cargo build --release -p relais"
        (cd "$ROOT" && cargo build --release -p relais)
    fi
    local out=$WORK/bigout lmtp_port peer_port lmtp_pid
    mkdir -p "$out/lmtp"
    chmod 1777 "$out" # alias commands and files run as nobody
    python3 "$ROOT/scripts/bigmsg.py" make "$WORK/big.eml" "$BIG"
    python3 "$ROOT/scripts/bigmsg.py" lmtp "$out/lmtp.port" "$out/lmtp" &
    lmtp_pid=$!
    PIDS+=("$lmtp_pid")
    for _ in $(seq 1 50); do [ -s "$out/lmtp.port" ] && break; sleep 0.1; done
    lmtp_port=$(cat "$out/lmtp.port")

    big_relais bigpeer "" "" || { big_failed bigpeer; return 0; }
    peer_port=$RELAIS_PORT
    local route="routes = { \"peer.test\" = \"[127.0.0.1]:$peer_port\" }"
    mkdir -p "$WORK/bigmsg"
    printf 'bigpipe: "|cat > %s/pipe.eml"\nbigmbox: %s/big.mbox\n' "$out" "$out" >"$WORK/bigmsg/aliases"
    big_relais bigmsg "aliases = \"$WORK/bigmsg/aliases\"" "$route" || { big_failed bigmsg; return 0; }
    log "bigmsg: relais $RELAIS_PID on $RELAIS_PORT, VmRSS $(status_kb "$RELAIS_PID" VmRSS) kB at start"
    local box=$WORK/bigmsg/data/mail/big/new peerbox=$WORK/bigpeer/data/mail
    big_run maildir bigmsg big@bench.test "$box"
    big_run pipe bigmsg bigpipe@bench.test "$out/pipe.eml"
    big_run mbox bigmsg bigmbox@bench.test "$out/big.mbox" mbox
    big_run smtp-data bigmsg data@peer.test "$peerbox/data/new"
    big_relais bigbdat "lmtp = \"127.0.0.1:$lmtp_port\"" "$route
chunking = true" || { big_failed bigbdat; return 0; }
    big_run lmtp bigbdat lmtp@bench.test "$out/lmtp/1.eml"
    big_run smtp-bdat bigbdat bdat@peer.test "$peerbox/bdat/new"
}

# Prints the table of the bigmsg runs.
bigmsg_report() {
    [ "${#BIG_ORDER[@]}" -gt 0 ] || return 0
    echo
    echo "one $BIG-octet message accepted and delivered, per agent (peak resident growth of relais," \
        "limit $((BIG_LIMIT_KB / 1024)) MB):"
    printf '%-12s %10s %8s %6s  %s\n' "agent" "growth MB" "seconds" "" "delivered copy"
    local k g verdict
    for k in "${BIG_ORDER[@]}"; do
        g=${BIG_GROWTH[$k]:-}
        verdict=FAIL
        [[ $g =~ ^-?[0-9]+$ ]] && [ "$g" -lt "$BIG_LIMIT_KB" ] && [[ ${BIG_CHECK[$k]:-} == exact* ]] &&
            verdict=PASS
        printf '%-12s %10s %8s %6s  %s\n' "$k" \
            "$(awk -v g="${g:-0}" 'BEGIN { printf "%.1f", g / 1024 }')" "${BIG_SECONDS[$k]:--}" \
            "$verdict" "${BIG_CHECK[$k]:--}"
    done
}
