//! Envelope addresses from the wild (issue 15, item 5), side by side with Postfix 3.x
//! (`strict_rfc821_envelopes = no`, its default): each MAIL FROM line goes to a private Postfix
//! and to relais; both answers are checked against the table, so a Postfix that changed its
//! mind fails the test too. Then swaks sends messages with such senders to both, and the
//! `Return-Path` each one delivered must be the same canonical address.

use crate::common::postfix::{Postfix, Setup as PostfixSetup};
use crate::common::wait::free_port;
use crate::support::{Client, LOCAL, Server, Setup, output_text, swaks};
use std::net::{Ipv4Addr, SocketAddrV4};

/// What a server answers to one MAIL FROM line: the reply code and enhanced status.
fn mail_answer(port: u16, line: &str) -> String {
    let mut c = Client::connect(port);
    c.greeting();
    c.ehlo();
    let r = c.cmd(line);
    let last = r.lines.last().cloned().unwrap_or_default();
    let _ = c.cmd("QUIT");
    last.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

fn postfix() -> Postfix {
    Postfix::start(&PostfixSetup {
        listen: SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_port()),
        domain: LOCAL,
        mynetworks: "192.0.2.0/24",
        users: None,
        tls: None,
        prefix: "relais-wild-postfix-",
    })
}

#[test]
fn mail_from_lines_are_answered_as_postfix_answers_them() {
    let server = Server::start(Setup::new(&["mx"]));
    let pf = postfix();
    // (line, Postfix's answer, relais's answer)
    let table: &[(&str, &str, &str)] = &[
        // RFC 822 comments, phrases, spaces: both accept.
        (
            "MAIL FROM:anne(comment)@example.com",
            "250 2.1.0",
            "250 2.1.0",
        ),
        (
            "MAIL FROM:<anne(comment)@example.com>",
            "250 2.1.0",
            "250 2.1.0",
        ),
        (
            "MAIL FROM:<(c)anne@example(c).com>",
            "250 2.1.0",
            "250 2.1.0",
        ),
        (
            "MAIL FROM:<anne@example.com (Anne)>",
            "250 2.1.0",
            "250 2.1.0",
        ),
        (
            "MAIL FROM:<Anne <anne@example.com>>",
            "250 2.1.0",
            "250 2.1.0",
        ),
        (
            "MAIL FROM:<\"Anne Smith\" <anne@example.com>>",
            "250 2.1.0",
            "250 2.1.0",
        ),
        ("MAIL FROM:<anne @ example.com>", "250 2.1.0", "250 2.1.0"),
        // Quoted local parts with spaces and escapes, mixed local parts, long local parts.
        ("MAIL FROM:<\" \"@example.com>", "250 2.1.0", "250 2.1.0"),
        ("MAIL FROM:\" \"@example.com", "250 2.1.0", "250 2.1.0"),
        (
            "MAIL FROM:<much.\"more\\ unusual\"@example.com>",
            "250 2.1.0",
            "250 2.1.0",
        ),
        (
            "MAIL FROM:<\"a\\\"b\"@example.com>",
            "250 2.1.0",
            "250 2.1.0",
        ),
        (
            "MAIL FROM:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com>",
            "250 2.1.0",
            "250 2.1.0",
        ),
        ("MAIL FROM:<()>", "250 2.1.0", "250 2.1.0"),
        // Outside the brackets, a comment or phrase is an unknown parameter for both.
        (
            "MAIL FROM:<anne@example.com> (Anne)",
            "555 5.5.4",
            "555 5.5.4",
        ),
        // Refused by both.
        ("MAIL FROM:<<a@b.com> <c@d.com>>", "501 5.1.7", "501 5.1.7"),
        ("MAIL FROM:<anne;x@example.com>", "501 5.1.7", "501 5.1.7"),
        ("MAIL FROM:<ann e@example.com>", "501 5.1.7", "501 5.1.7"),
        ("MAIL FROM:<anne@example.com", "501 5.1.7", "501 5.1.7"),
        // Postfix takes these; relais keeps refusing them (relay tricks, empty atoms, a phrase
        // that is an address): see crates/proto/src/address/rfc822.rs.
        ("MAIL FROM:<a@b@example.com>", "250 2.1.0", "501 5.1.7"),
        ("MAIL FROM:<a\\@b@example.com>", "250 2.1.0", "501 5.1.7"),
        ("MAIL FROM:<a..b@example.com>", "250 2.1.0", "501 5.1.7"),
        (
            "MAIL FROM:<evil@other.com <anne@example.com>>",
            "250 2.1.0",
            "501 5.1.7",
        ),
    ];
    let mut wrong = Vec::new();
    for (line, want_pf, want_relais) in table {
        let got_pf = mail_answer(pf.port, line);
        let got_relais = mail_answer(server.port("mx"), line);
        if got_pf != *want_pf || got_relais != *want_relais {
            wrong.push(format!(
                "{line}\n  Postfix {got_pf} (table {want_pf}), relais {got_relais} (table {want_relais})"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn swaks_wild_senders_are_kept_in_postfix_canonical_form() {
    let server = Server::start(Setup::new(&["mx"]));
    let pf = postfix();
    let senders = [
        "anne(comment)@example.com",
        "Anne Smith <anne@example.com>",
        "much.\"more\\ unusual\"@example.com",
        "\" \"@example.com",
    ];
    for (i, from) in senders.iter().enumerate() {
        for addr in [format!("127.0.0.1:{}", server.port("mx")), pf.addr()] {
            let out = swaks(&[
                "--server",
                &addr,
                "--from",
                from,
                "--to",
                &format!("bob@{LOCAL}"),
                "--header",
                &format!("Subject: wild {i}"),
            ]);
            assert!(
                out.status.success(),
                "{from} to {addr}: {}",
                output_text(&out)
            );
        }
    }
    let return_paths = |messages: Vec<String>| {
        let mut v: Vec<(String, String)> = messages
            .iter()
            .map(|m| {
                let field = |name: &str| {
                    m.lines()
                        .find(|l| l.starts_with(name))
                        .unwrap_or_default()
                        .to_string()
                };
                (field("Subject: wild"), field("Return-Path:"))
            })
            .collect();
        v.sort();
        v
    };
    let ours = return_paths(server.wait_mail("bob", senders.len()));
    let theirs = return_paths(pf.wait_delivered(senders.len()));
    assert_eq!(ours, theirs);
    assert_eq!(
        ours.iter().map(|(_, rp)| rp.as_str()).collect::<Vec<_>>(),
        [
            "Return-Path: <anne@example.com>",
            "Return-Path: <anne@example.com>",
            "Return-Path: <\"much.more unusual\"@example.com>",
            "Return-Path: <\" \"@example.com>",
        ]
    );
}
