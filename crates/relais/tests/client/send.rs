//! `relais send` against `relais serve`.

use std::fs;

use crate::support::{Relais, closed_port, relais, send, tempdir};

#[test]
fn a_built_message_is_delivered_with_its_headers() {
    let server = Relais::start(&[]);
    let run = send(
        &server.addr(),
        &[
            "--from",
            "alice@client.example",
            "--to",
            "bob@test.example",
            "--subject",
            "Réunion demain",
            "--header",
            "X-Probe: 42",
            "--body",
            "Bonjour,\nà demain.\n",
            "--ehlo",
            "client.example",
        ],
    );
    run.expect_code(0)
        .expect_out("=== Trying 127.0.0.1:")
        .expect_out("<-  220 mx.test.example")
        .expect_out(" -> EHLO client.example")
        .expect_out(" -> MAIL FROM:<alice@client.example>")
        .expect_out(" -> RCPT TO:<bob@test.example>")
        .expect_out("<-  354 ")
        .expect_out("<-  250 2.0.0 Ok: queued as ")
        .expect_out("<-  221 ");
    let mail = server.mailbox("bob", 1);
    let m = &mail[0];
    for header in [
        "From: <alice@client.example>",
        "To: <bob@test.example>",
        "Subject: =?utf-8?",
        "X-Probe: 42",
        "Message-ID: <",
        "Date: ",
        "MIME-Version: 1.0",
    ] {
        assert!(m.contains(header), "{header:?} missing in\n{m}");
    }
    // Every transcript line starts with the elapsed seconds.
    for line in run.stdout.lines() {
        let secs = line.split_whitespace().next().unwrap_or("");
        assert!(secs.parse::<f64>().is_ok(), "no time on {line:?}");
    }
}

#[test]
fn pipelining_dsn_and_dot_stuffing() {
    let server = Relais::start(&[]);
    let run = send(
        &server.addr(),
        &[
            "--from",
            "alice@client.example",
            "--to",
            "bob@test.example,carol@test.example",
            "--pipeline",
            "--dsn-notify",
            "SUCCESS,FAILURE",
            "--dsn-ret",
            "HDRS",
            "--envid",
            "QQ 314159",
            "--body",
            "first line\n.leading dot\n.\nlast\n",
        ],
    );
    run.expect_code(0)
        .expect_out("MAIL FROM:<alice@client.example> SIZE=")
        .expect_out("RET=HDRS ENVID=QQ+20314159")
        .expect_out("RCPT TO:<carol@test.example> NOTIFY=SUCCESS,FAILURE")
        .expect_out(" -> ..leading dot");
    // The three commands went out before the first reply came back.
    let lines: Vec<&str> = run.stdout.lines().collect();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in\n{}", run.stdout))
    };
    assert!(pos(" -> DATA") < pos("<-  250 2.1.0"), "{}", run.stdout);
    for user in ["bob", "carol"] {
        let m = &server.mailbox(user, 1)[0];
        assert!(m.contains("\r\n.leading dot\r\n.\r\nlast"), "{m}");
    }
}

#[test]
fn bdat_chunks_carry_an_attachment() {
    let server = Relais::start(&[]);
    let dir = tempdir();
    let file = dir.path().join("report.txt");
    fs::write(
        &file,
        "attached text, long enough to need a few chunks\n".repeat(20),
    )
    .unwrap();
    let run = send(
        &server.addr(),
        &[
            "--from",
            "alice@client.example",
            "--to",
            "bob@test.example",
            "--bdat",
            "--bdat-chunk-size",
            "300",
            "--attach",
            file.to_str().unwrap(),
        ],
    );
    run.expect_code(0).expect_out(" LAST");
    let chunks = run.stdout.matches(" -> BDAT ").count();
    assert!(chunks > 2, "{chunks} chunks\n{}", run.stdout);
    assert!(!run.stdout.contains(" -> DATA"), "{}", run.stdout);
    let m = &server.mailbox("bob", 1)[0];
    assert!(m.contains("multipart/mixed"), "{m}");
    assert!(m.contains("filename=\"report.txt\""), "{m}");
}

#[test]
fn data_from_a_file_is_sent_as_is() {
    let server = Relais::start(&[]);
    let dir = tempdir();
    let file = dir.path().join("message.eml");
    let message = "From: a@client.example\r\nTo: bob@test.example\r\nSubject: as is\r\n\r\n\
                   A lone dot follows:\r\n.\r\n..two dots\r\nend\r\n";
    fs::write(&file, message).unwrap();
    let data = format!("@{}", file.display());
    send(
        &server.addr(),
        &[
            "--from",
            "a@client.example",
            "--to",
            "bob@test.example",
            "--data",
            &data,
        ],
    )
    .expect_code(0)
    .expect_out(" -> ..\n")
    .expect_out(" -> ...two dots");
    let m = &server.mailbox("bob", 1)[0];
    assert!(m.ends_with(message), "{m}");
}

#[test]
fn each_failing_stage_has_its_exit_code() {
    let server = Relais::start(&["bob"]);
    let addr = server.addr();
    // Relaying refused: RCPT, 24.
    send(
        &addr,
        &["--from", "a@client.example", "--to", "x@elsewhere.example"],
    )
    .expect_code(24)
    .expect_out("<-  554 5.7.1")
    .expect_out("*** RCPT TO refused: 554 5.7.1");
    // Unknown local user: RCPT, 24.
    send(
        &addr,
        &["--from", "a@client.example", "--to", "nobody@test.example"],
    )
    .expect_code(24)
    .expect_out("<-  550 5.1.1");
    // One good recipient among bad ones is enough.
    send(
        &addr,
        &[
            "--from",
            "a@client.example",
            "--to",
            "nobody@test.example,bob@test.example",
        ],
    )
    .expect_code(0);
    // Nothing listens: connect, 2.
    send(
        &format!("127.0.0.1:{}", closed_port()),
        &["--to", "bob@test.example"],
    )
    .expect_code(2)
    .expect_out("*** connection to 127.0.0.1:")
    .expect_out("refused");
    // A name that does not resolve: connect, 2.
    send("no-such-host.invalid", &["--to", "bob@test.example"]).expect_code(2);
    // Bad options: 1, before any connection.
    let bad = send(&addr, &["--to", "not an address"]);
    bad.expect_code(1);
    assert!(bad.stderr.contains("--to"), "{}", bad.stderr);
    assert!(bad.stdout.is_empty(), "{}", bad.stdout);
}

#[test]
fn quit_after_each_stage() {
    let server = Relais::start(&[]);
    let addr = server.addr();
    let base = ["--from", "a@client.example", "--to", "bob@test.example"];
    let cases: &[(&str, &str, &str)] = &[
        // (stage, last thing that must be there, first thing that must not)
        ("connect", "=== Connected to", "<-  220"),
        ("banner", "<-  220", " -> EHLO"),
        ("ehlo", "<-  250 HELP", " -> MAIL"),
        ("mail", "<-  250 2.1.0", " -> RCPT"),
        ("rcpt", "<-  250 2.1.5", " -> DATA"),
        ("data", "<-  354", " -> From:"),
    ];
    for (stage, present, absent) in cases {
        let mut args = base.to_vec();
        args.extend(["--quit-after", stage]);
        let run = send(&addr, &args);
        run.expect_code(0).expect_out(present);
        assert!(
            !run.stdout.contains(absent),
            "--quit-after {stage}: {absent:?} found\n{}",
            run.stdout
        );
    }
    // Nothing was delivered by any of them.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !server.data_dir.join("mail/bob/new").exists() || {
            std::fs::read_dir(server.data_dir.join("mail/bob/new"))
                .unwrap()
                .count()
                == 0
        }
    );
}

#[test]
fn json_report() {
    let server = Relais::start(&[]);
    let run = send(
        &server.addr(),
        &[
            "--from",
            "a@client.example",
            "--to",
            "bob@test.example",
            "--json",
        ],
    );
    run.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON object");
    assert_eq!(v["ok"], true);
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["failed_stage"], serde_json::Value::Null);
    let stages: Vec<&str> = v["timings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["stage"].as_str().unwrap())
        .collect();
    for s in [
        "connect", "banner", "ehlo", "mail", "rcpt", "data", "message",
    ] {
        assert!(stages.contains(&s), "{s} not in {stages:?}");
    }
    let transcript = v["transcript"].as_array().unwrap();
    assert!(
        transcript
            .iter()
            .any(|e| e["dir"] == "sent" && e["text"] == "DATA")
    );
    assert!(transcript.iter().any(|e| {
        e["dir"] == "received"
            && e["text"]
                .as_str()
                .unwrap()
                .starts_with("250 2.0.0 Ok: queued")
    }));

    let refused = send(
        &server.addr(),
        &[
            "--from",
            "a@client.example",
            "--to",
            "x@elsewhere.example",
            "--json",
        ],
    );
    refused.expect_code(24);
    let v: serde_json::Value = serde_json::from_str(&refused.stdout).unwrap();
    assert_eq!(v["failed_stage"], "rcpt");
    assert_eq!(v["reply"]["code"], 554);
    assert_eq!(v["reply"]["status"], "5.7.1");
}

#[test]
fn starttls_against_relais_and_its_self_signed_certificate() {
    let server = Relais::start(&[]);
    let base = [
        "--from",
        "a@client.example",
        "--to",
        "bob@test.example",
        "--tls",
    ];
    send(&server.addr(), &base)
        .expect_code(0)
        .expect_out(" -> STARTTLS")
        .expect_out("=== TLS started with TLSv1.")
        .expect_out("=== Certificate NOT verified")
        .expect_out(" ~> EHLO")
        .expect_out("<~  250 2.0.0 Ok: queued as");
    let mut verify = base.to_vec();
    verify.push("--tls-verify");
    send(&server.addr(), &verify)
        .expect_code(29)
        .expect_out("*** TLS error");
    server.mailbox("bob", 1);
}

#[test]
fn help_documents_the_exit_codes() {
    let run = relais(&["send", "--help"]);
    run.expect_code(0)
        .expect_out("Exit codes")
        .expect_out("24  no recipient accepted")
        .expect_out("29  TLS failed")
        .expect_out("(code 64, EX_USAGE)");
    // And it is so.
    relais(&["send", "--no-such-option"]).expect_code(64);
}

#[test]
fn long_content_is_cut_short_in_the_transcript_only() {
    let server = Relais::start(&[]);
    let body: String = (1..=1500).map(|i| format!("line {i}\n")).collect();
    let run = send(
        &server.addr(),
        &[
            "--from",
            "a@client.example",
            "--to",
            "bob@test.example",
            "--body",
            &body,
        ],
    );
    run.expect_code(0)
        .expect_out(" -> line 900\n")
        .expect_out("more lines of content not shown)");
    assert!(!run.stdout.contains(" -> line 1500"), "{}", run.stdout);
    let m = &server.mailbox("bob", 1)[0];
    assert!(m.contains("line 1500"), "the message itself is whole");
}
