//! Crash: `relais serve` killed with SIGKILL while it delivers a burst (to local Maildirs and
//! to a slow peer), twice, then started again. Every message a client saw accepted is
//! delivered, and delivered once to each local Maildir; the peer may get a message twice (a
//! transaction cut after the content was sent is repeated: a duplicate is better than a loss)
//! but misses none.
//!
//! While the server is down, a mail reader moves alice's messages from `new/` to `cur/` (as
//! IMAP servers and mail clients do): a repeated delivery can then not just overwrite the file
//! of the same name in `new/`, and only the queue's check for copies delivered before the
//! crash keeps alice from getting a message twice. Bob's Maildir is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::{
    FaultPeer, Relais, Script, Setup, Smtp, Zone, dns, header_value, list_files, message, tempdir,
    wait_until,
};

/// Messages in the burst.
const TOTAL: usize = 200;

/// Sends messages `from..TOTAL` on one connection until one fails (the server died); returns
/// the numbers accepted and the first number not attempted.
fn burst(addr: SocketAddr, from: usize) -> JoinHandle<(Vec<usize>, usize)> {
    thread::spawn(move || {
        let mut accepted = Vec::new();
        let mut c = Smtp::connect(addr);
        let mut n = from;
        while n < TOTAL {
            let sent = c.try_send(
                "<sender@relais.test>",
                &[
                    "<alice@relais.test>",
                    "<bob@relais.test>",
                    "<carol@slow.test>",
                ],
                &message("burst", &format!("crash-{n}")),
            );
            n += 1;
            match sent {
                Ok(_) => accepted.push(n - 1),
                Err(_) => break,
            }
        }
        (accepted, n)
    })
}

/// The burst number in `Message-ID: <crash-N@client.test>`.
fn number(content: &[u8]) -> usize {
    header_value(content, "Message-ID")
        .and_then(|v| {
            v.trim_matches(['<', '>'])
                .strip_prefix("crash-")?
                .split('@')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no burst number in {}", String::from_utf8_lossy(content)))
}

/// A mail reader: moves every message of `local` from `new/` to `cur/`, flagged as seen.
fn read_mail(relais: &Relais, local: &str) {
    let cur = relais.data.join("mail").join(local).join("cur");
    for f in relais.mail(local) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::rename(&f, cur.join(format!("{name}:2,S"))).expect("move to cur/");
    }
}

/// How many copies of each message a local Maildir holds, in `new/` and `cur/`.
fn copies(relais: &Relais, local: &str) -> BTreeMap<usize, usize> {
    let mut out = BTreeMap::new();
    let cur = list_files(&relais.data.join("mail").join(local).join("cur"));
    for f in relais.mail(local).into_iter().chain(cur) {
        let content = std::fs::read(&f).expect("read");
        *out.entry(number(&content)).or_insert(0) += 1;
    }
    out
}

/// Waits until `local` holds `n` messages or `limit` passes.
fn until_local(relais: &Relais, local: &str, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while relais.mail(local).len() < n && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn sigkill_during_a_burst_loses_nothing_and_repeats_no_local_delivery() {
    let peer = FaultPeer::local(Script {
        data_delay: Duration::from_millis(40),
        ..Script::default()
    });
    let dns = dns(Zone::new().a("mx.slow.test", "127.0.0.1"));
    let dir = tempdir("relais-crash-");
    let setup = Setup::sender(&dns).route("slow.test", &peer.hop("mx.slow.test"));
    let mut accepted = BTreeSet::new();

    // Round 1: killed once some local deliveries are done, while the burst goes on.
    let mut relais = Relais::start("relais (1)", dir.path(), &setup);
    let sender = burst(relais.addr, 0);
    until_local(&relais, "alice", 60, Duration::from_secs(30));
    relais.kill();
    let (got, next) = sender.join().expect("burst");
    accepted.extend(got);
    let after_first = relais.mail("alice").len();
    read_mail(&relais, "alice");

    // Round 2: restarted, more of the burst, killed again while delivering.
    let mut relais = Relais::start("relais (2)", dir.path(), &setup);
    let sender = burst(relais.addr, next);
    until_local(&relais, "alice", 60, Duration::from_secs(30));
    relais.kill();
    let (got, next) = sender.join().expect("burst");
    accepted.extend(got);
    let after_second = after_first + relais.mail("alice").len();
    read_mail(&relais, "alice");

    // Round 3: the rest of the burst, and everything runs to the end.
    let relais = Relais::start("relais (3)", dir.path(), &setup);
    let (got, attempted) = burst(relais.addr, next).join().expect("burst");
    accepted.extend(got);
    wait_until("an empty queue", Duration::from_secs(120), || {
        relais.queue_json().is_empty().then_some(())
    });
    eprintln!(
        "crash test: {} of {attempted} messages accepted; {after_first} then {after_second} in \
         alice's Maildir at the kills",
        accepted.len()
    );
    assert!(
        accepted.len() >= TOTAL - 2,
        "messages refused after a restart"
    );
    assert!(
        after_first < TOTAL && after_second < TOTAL,
        "the kills came after the deliveries: the test proved nothing"
    );

    for local in ["alice", "bob"] {
        let got = copies(&relais, local);
        let twice: Vec<(&usize, &usize)> = got.iter().filter(|(_, c)| **c > 1).collect();
        assert!(
            twice.is_empty(),
            "{local}: delivered more than once: {twice:?}"
        );
        let missing: Vec<&usize> = accepted.iter().filter(|n| !got.contains_key(n)).collect();
        assert!(
            missing.is_empty(),
            "{local}: accepted but lost: {missing:?}"
        );
        // A message whose 250 the kill cut off may be delivered too, but nothing never sent.
        assert!(got.keys().all(|n| *n < attempted), "{local}: {got:?}");
    }
    let mut remote: BTreeMap<usize, usize> = BTreeMap::new();
    for t in peer.taken() {
        *remote.entry(number(&t.data)).or_insert(0) += 1;
    }
    let missing: Vec<&usize> = accepted
        .iter()
        .filter(|n| !remote.contains_key(n))
        .collect();
    assert!(missing.is_empty(), "peer: accepted but lost: {missing:?}");
    let repeated = remote.values().filter(|c| **c > 1).count();
    eprintln!("crash test: the peer got {repeated} message(s) twice");
}
