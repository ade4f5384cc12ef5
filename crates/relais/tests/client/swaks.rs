//! `relais send` and swaks side by side: against the same servers, both must succeed or fail,
//! and fail at the same stage (same exit code: relais send's table follows swaks').

use crate::support::{Certs, PyOptions, PyServer, Relais, closed_port, send, swaks};

/// One scenario: the server, the options for each tool, and the exit code both must give.
struct Case<'a> {
    name: &'a str,
    server: String,
    relais: Vec<&'a str>,
    swaks: Vec<&'a str>,
    code: i32,
}

fn check(cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let ours = send(&case.server, &case.relais);
        let theirs = swaks(&case.server, &case.swaks);
        if ours.code != case.code || theirs.code != case.code {
            failures.push(format!(
                "{}: expected {}, relais send gave {}, swaks gave {}\n\
                 --- relais send ---\n{}{}\n--- swaks ---\n{}{}",
                case.name,
                case.code,
                ours.code,
                theirs.code,
                ours.stdout,
                ours.stderr,
                theirs.stdout,
                theirs.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn same_outcome_as_swaks_against_relais() {
    let server = Relais::start(&["bob"]);
    let addr = server.addr();
    let envelope = |to: &'static str| vec!["--from", "a@client.example", "--to", to];
    let plus = |mut v: Vec<&'static str>, extra: &[&'static str]| {
        v.extend_from_slice(extra);
        v
    };
    let cases = [
        Case {
            name: "good send",
            server: addr.clone(),
            relais: envelope("bob@test.example"),
            swaks: envelope("bob@test.example"),
            code: 0,
        },
        Case {
            name: "relaying denied",
            server: addr.clone(),
            relais: envelope("x@elsewhere.example"),
            swaks: envelope("x@elsewhere.example"),
            code: 24,
        },
        Case {
            name: "unknown local user",
            server: addr.clone(),
            relais: envelope("nobody@test.example"),
            swaks: envelope("nobody@test.example"),
            code: 24,
        },
        Case {
            name: "pipelining",
            server: addr.clone(),
            relais: plus(envelope("bob@test.example"), &["--pipeline"]),
            swaks: plus(envelope("bob@test.example"), &["--pipeline"]),
            code: 0,
        },
        Case {
            name: "quit after RCPT",
            server: addr.clone(),
            relais: plus(envelope("bob@test.example"), &["--quit-after", "rcpt"]),
            swaks: plus(envelope("bob@test.example"), &["--quit-after", "RCPT"]),
            code: 0,
        },
        Case {
            name: "STARTTLS with the server's self-signed certificate",
            server: addr.clone(),
            relais: plus(envelope("bob@test.example"), &["--tls"]),
            swaks: plus(envelope("bob@test.example"), &["--tls"]),
            code: 0,
        },
        Case {
            name: "nothing listens",
            server: format!("127.0.0.1:{}", closed_port()),
            relais: envelope("bob@test.example"),
            swaks: envelope("bob@test.example"),
            code: 2,
        },
    ];
    check(&cases);
    // The three good sends arrived.
    server.mailbox("bob", 3);
}

#[test]
fn same_outcome_as_swaks_against_aiosmtpd() {
    let certs = Certs::new();
    let tls = PyServer::start(PyOptions {
        tls: Some(&certs),
        auth: Some("alice:s3cret"),
        ..PyOptions::default()
    });
    let implicit = PyServer::start(PyOptions {
        tls: Some(&certs),
        implicit_tls: true,
        ..PyOptions::default()
    });
    let plain = PyServer::start(PyOptions::default());
    let envelope = || vec!["--from", "a@client.example", "--to", "bob@py.example"];
    let plus = |extra: &[&'static str]| {
        let mut v = envelope();
        v.extend_from_slice(extra);
        v
    };
    let auth = |password: &'static str| {
        (
            plus(&[
                "--tls",
                "--auth",
                "PLAIN",
                "--user",
                "alice",
                "--password",
                password,
            ]),
            plus(&[
                "--tls",
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice",
                "--auth-password",
                password,
            ]),
        )
    };
    let (good_ours, good_theirs) = auth("s3cret");
    let (bad_ours, bad_theirs) = auth("wrong");
    let cases = [
        Case {
            name: "STARTTLS and AUTH PLAIN",
            server: tls.addr(),
            relais: good_ours,
            swaks: good_theirs,
            code: 0,
        },
        Case {
            name: "wrong password",
            server: tls.addr(),
            relais: bad_ours,
            swaks: bad_theirs,
            code: 28,
        },
        Case {
            name: "AUTH not offered in clear text",
            server: tls.addr(),
            relais: plus(&["--auth", "PLAIN", "--user", "alice", "--password", "s3cret"]),
            swaks: plus(&[
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice",
                "--auth-password",
                "s3cret",
            ]),
            code: 28,
        },
        Case {
            name: "STARTTLS required but not offered",
            server: plain.addr(),
            relais: plus(&["--tls"]),
            swaks: plus(&["--tls"]),
            code: 29,
        },
        Case {
            name: "TLS on connect",
            server: implicit.addr(),
            relais: plus(&["--tls-on-connect"]),
            swaks: plus(&["--tls-on-connect"]),
            code: 0,
        },
        Case {
            name: "No such person at this address",
            server: plain.addr(),
            relais: vec!["--from", "a@client.example", "--to", "nobody@py.example"],
            swaks: vec!["--from", "a@client.example", "--to", "nobody@py.example"],
            code: 24,
        },
    ];
    check(&cases);
}
