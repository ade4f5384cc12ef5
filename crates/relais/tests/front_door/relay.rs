//! Relay control: address forms that try to make the server relay. From a client that may not
//! relay (neither authenticated nor in `relay_networks`) every foreign destination is refused
//! with `554 5.7.1`; from an authenticated client or a relay network the same destinations
//! are accepted; and no form at a local domain ever turns into a relay, for anybody.

use std::net::Ipv4Addr;

use crate::support::{Client, PASSWORD, Server, Setup, USER, lo};

/// What an address form is, and so what it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Another host's mail: `554 5.7.1` unless the client may relay, then `250 2.1.5`
    /// and the log says `relay to DOMAIN`.
    Foreign(&'static str),
    /// At a local domain, with a local part that names another host (`%`, `!`, `@`, routes):
    /// no such mailbox, `550 5.1.1`, for everybody.
    LocalTrick,
    /// Not an address at all: `501`, for everybody.
    Malformed,
    /// UTF-8 without `SMTPUTF8` on MAIL: `553 5.6.7`, for everybody.
    Undeclared,
    /// Really a local mailbox (by this name): `250 2.1.5` for everybody, never relayed.
    Local(&'static str),
}

use Kind::*;

/// (RCPT TO argument, SMTPUTF8 on MAIL, what it is).
const FORMS: &[(&str, bool, Kind)] = &[
    // plain foreign destinations, written in every way
    ("<user@other.test>", false, Foreign("other.test")),
    ("user@other.test", false, Foreign("other.test")),
    ("<USER@OTHER.TEST>", false, Foreign("other.test")),
    ("<user@oTHer.TeSt>", false, Foreign("other.test")),
    ("<\"user\"@other.test>", false, Foreign("other.test")),
    ("<user+local.test@other.test>", false, Foreign("other.test")),
    ("<postmaster@other.test>", false, Foreign("other.test")),
    (
        "<user@other.test> NOTIFY=SUCCESS,FAILURE",
        false,
        Foreign("other.test"),
    ),
    (
        "<user@other.test> ORCPT=rfc822;user@local.test",
        false,
        Foreign("other.test"),
    ),
    // RFC 822 white space and comments in the path, taken as Postfix takes them (issue 15)
    ("<user@other.test >", false, Foreign("other.test")),
    (
        "<user (local.test) @ other.test>",
        false,
        Foreign("other.test"),
    ),
    (
        "<Local User <user@other.test>>",
        false,
        Foreign("other.test"),
    ),
    // domains that merely look like ours
    (
        "<user@local.test.other.test>",
        false,
        Foreign("local.test.other.test"),
    ),
    ("<user@sub.local.test>", false, Foreign("sub.local.test")),
    ("<user@Local.Test.evil>", false, Foreign("local.test.evil")),
    ("<user@notlocal.test>", false, Foreign("notlocal.test")),
    (
        "<user@other-local.test>",
        false,
        Foreign("other-local.test"),
    ),
    ("<user@localhost>", false, Foreign("localhost")),
    ("<user@mx.local.test>", false, Foreign("mx.local.test")),
    ("<user@local>", false, Foreign("local")),
    ("<user@local-test>", false, Foreign("local-test")),
    // address literals, even our own address
    ("<user@[127.0.0.1]>", false, Foreign("[127.0.0.1]")),
    ("<user@[192.0.2.1]>", false, Foreign("[192.0.2.1]")),
    ("<user@[IPv6:::1]>", false, Foreign("[ipv6:::1]")),
    (
        "<user@[IPv6:::ffff:127.0.0.1]>",
        false,
        Foreign("[ipv6:::ffff:127.0.0.1]"),
    ),
    // source routes, the local hop first or not: the route is ignored, the mailbox decides
    (
        "<@local.test:user@other.test>",
        false,
        Foreign("other.test"),
    ),
    (
        "<@a.test,@b.test:user@other.test>",
        false,
        Foreign("other.test"),
    ),
    (
        "<@local.test,@local.test:user@other.test>",
        false,
        Foreign("other.test"),
    ),
    // local-looking local parts at a foreign domain
    (
        "<\"user@local.test\"@other.test>",
        false,
        Foreign("other.test"),
    ),
    ("<user%local.test@other.test>", false, Foreign("other.test")),
    (
        "<\"user%local.test\"@other.test>",
        false,
        Foreign("other.test"),
    ),
    ("<USER%LOCAL.TEST@OTHER.TEST>", false, Foreign("other.test")),
    ("<local.test!user@other.test>", false, Foreign("other.test")),
    // internationalized domains
    (
        "<user@xn--exmple-cua.test>",
        false,
        Foreign("xn--exmple-cua.test"),
    ),
    ("<user@exämple.test>", true, Foreign("exämple.test")),
    ("<üser@other.test>", true, Foreign("other.test")),
    // at our domain, hiding another host in the local part
    ("<user%other.test@local.test>", false, LocalTrick),
    ("<user%other.test@LOCAL.TEST>", false, LocalTrick),
    ("<other.test!user@local.test>", false, LocalTrick),
    ("<\"user@other.test\"@local.test>", false, LocalTrick),
    ("<\"user@other.test\"@LoCaL.tEsT>", false, LocalTrick),
    ("<\"user%other.test\"@local.test>", false, LocalTrick),
    ("<\"other.test!user\"@local.test>", false, LocalTrick),
    (
        "<\"@other.test:user@other.test\"@local.test>",
        false,
        LocalTrick,
    ),
    ("<\"user\\@other.test\"@local.test>", false, LocalTrick),
    ("<user%40other.test@local.test>", false, LocalTrick),
    ("<user%2540other.test@local.test>", false, LocalTrick),
    ("<üser@local.test>", true, LocalTrick),
    // not addresses
    ("<user@@local.test>", false, Malformed),
    ("<user@other.test@local.test>", false, Malformed),
    ("<user@local.test@other.test>", false, Malformed),
    ("user@local.test@other.test", false, Malformed),
    ("<user@local.test.>", false, Malformed),
    ("<user@other.test.>", false, Malformed),
    ("<user@.local.test>", false, Malformed),
    ("<user@local..test>", false, Malformed),
    ("<user@other.test%local.test>", false, Malformed),
    ("<user@local.test%other.test>", false, Malformed),
    ("<user@[local.test]>", false, Malformed),
    ("<user@local.test:other.test>", false, Malformed),
    ("<user@other.test,user@local.test>", false, Malformed),
    ("<user\\@other.test@local.test>", false, Malformed),
    ("<user@other.test", false, Malformed),
    ("<@local.test:user@other.test@local.test>", false, Malformed),
    // UTF-8 not declared
    ("<user@exämple.test>", false, Undeclared),
    ("<üser@local.test>", false, Undeclared),
    // really local, however written: accepted as local mail, never relayed
    ("<user@local.test>", false, Local("user")),
    ("<USER@LOCAL.TEST>", false, Local("user")),
    ("<@other.test:ivan@local.test>", false, Local("ivan")),
    (
        "<@other.test,@third.test:judy@LOCAL.test>",
        false,
        Local("judy"),
    ),
    ("postmaster", false, Local("postmaster")),
    ("<Postmaster>", false, Local("postmaster")),
    ("<user(other.test)@local.test>", false, Local("user")),
    ("<\"other.test\" <user@local.test>>", false, Local("user")),
];

/// The reply a form must get, as a prefix of the last line.
fn expected(kind: Kind, may_relay: bool) -> &'static [&'static str] {
    match kind {
        Foreign(_) if may_relay => &["250 2.1.5"],
        Foreign(_) => &["554 5.7.1"],
        LocalTrick => &["550 5.1.1"],
        Malformed => &["501 5.1.3"],
        Undeclared => &["553 5.6.7"],
        Local(_) => &["250 2.1.5"],
    }
}

/// Tries every form in `c` (ready for MAIL), one transaction each; returns what went wrong.
fn try_forms(c: &mut Client, sender: &str, may_relay: bool, who: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    for &(rcpt, utf8, kind) in FORMS {
        c.expect("RSET", "250 ");
        let mail = format!(
            "MAIL FROM:<{sender}>{}",
            if utf8 { " SMTPUTF8" } else { "" }
        );
        c.expect(&mail, "250 2.1.0");
        let r = c.cmd(&format!("RCPT TO:{rcpt}"));
        let want = expected(kind, may_relay);
        if !want.iter().any(|w| r.is(w)) {
            wrong.push(format!(
                "{who}: RCPT TO:{rcpt} ({kind:?}): got {r}, want {want:?}"
            ));
        }
    }
    c.expect("RSET", "250 ");
    wrong
}

fn assert_none(wrong: Vec<String>) {
    assert!(
        wrong.is_empty(),
        "{} form(s) answered wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn relay_server() -> Server {
    Server::start(
        Setup::new(&["mx", "submission"])
            .relay_networks(&["127.0.0.2/32"])
            .limit("max_errors = 1000"),
    )
}

#[test]
fn at_least_thirty_tricks() {
    let foreign = FORMS.iter().filter(|f| matches!(f.2, Foreign(_))).count();
    let local_or_bad = FORMS
        .iter()
        .filter(|f| matches!(f.2, LocalTrick | Malformed | Undeclared))
        .count();
    assert!(foreign >= 30, "{foreign} foreign forms");
    assert!(
        local_or_bad >= 30,
        "{local_or_bad} local or malformed forms"
    );
}

/// Every form from an unauthenticated client at `from`: refused; the log shows no relaying.
fn refused_from(server: &Server, from: Option<Ipv4Addr>) {
    let mut c = Client::ready(server.port("mx"), from);
    let wrong = try_forms(&mut c, "sender@other.test", false, &format!("{from:?}"));
    c.quit();
    assert_none(wrong);
    // The session's last line is in the log: so is everything the session logged.
    server.assert_logged("disconnect from");
    let log = server.log();
    assert!(!log.contains("(relay to"), "relayed:\n{log}");
}

#[test]
fn unauthenticated_clients_relay_nothing() {
    let server = relay_server();
    refused_from(&server, None);
    // 127.0.0.3 is as local as 127.0.0.2, but not in relay_networks
    refused_from(&server, lo(3));
    for &(_, _, kind) in FORMS {
        if let Local(name) = kind {
            server.assert_logged(&format!("accepted (local mailbox {name})"));
        }
    }
    // and with no relay_networks at all (the default), 127.0.0.2 relays nothing either
    let plain = Server::start(Setup::new(&["mx"]).limit("max_errors = 1000"));
    refused_from(&plain, lo(2));
}

/// Every form from a client that may relay; foreign ones are accepted, logged as relaying.
fn accepted_from(server: &Server, c: &mut Client, who: &str) {
    let wrong = try_forms(c, "alice@local.test", true, who);
    assert_none(wrong);
    for &(_, _, kind) in FORMS {
        match kind {
            Foreign(domain) => server.assert_logged(&format!("accepted (relay to {domain})")),
            Local(name) => server.assert_logged(&format!("accepted (local mailbox {name})")),
            _ => {}
        }
    }
    // and a whole relayed message is queued
    let r = c.send_mail("alice@local.test", &["friend@other.test"], "relayed");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{who}: {r}");
    c.quit();
}

#[test]
fn relay_network_relays_foreign_and_keeps_local_local() {
    let server = relay_server();
    let mut c = Client::ready(server.port("mx"), lo(2));
    accepted_from(&server, &mut c, "127.0.0.2");
    server.assert_logged("client=unknown[127.0.0.2]");
}

#[test]
fn authenticated_client_relays_foreign_and_keeps_local_local() {
    let server = relay_server();
    let mut c = Client::ready(server.port("submission"), None);
    c.starttls();
    let r = c.auth_plain(USER, PASSWORD);
    assert!(r.is("235 2.7.0"), "{r}");
    accepted_from(&server, &mut c, "alice on submission");
    server.assert_logged("sasl_username=alice");
}

/// `relais send --local-address`: the same command relays from a trusted address and is
/// refused from another, as the server sees the client's address.
#[test]
fn relais_send_from_a_chosen_local_address() {
    let server = relay_server();
    let target = format!("127.0.0.1:{}", server.port("mx"));
    let send = |from: Option<&str>| {
        let mut cmd = std::process::Command::new(crate::common::RELAIS);
        cmd.args(["send", "--server", &target, "--from", "a@other.test"])
            .args(["--to", "b@elsewhere.test", "--quit-after", "rcpt"]);
        if let Some(ip) = from {
            cmd.args(["--local-address", ip]);
        }
        let out = cmd.output().expect("run relais send");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = send(Some("127.0.0.2"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("250 2.1.5"), "{out}");
    let (code, out) = send(None);
    assert_eq!(code, Some(24), "{out}");
    assert!(out.contains("554 5.7.1"), "{out}");
    server.assert_logged("unknown[127.0.0.2]");
}
