//! `relais sink` (issue 17, item 6): each fault seen by real clients — `relais send`, swaks
//! and Python's smtplib — with the reply or error they report, and the capture store's JSON
//! API. Every sink runs on 127.0.0.1 with free ports and is stopped by its PID. Run with
//! `cargo test -p relais --test sink`.

#[path = "common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::RELAIS;
use common::process::{Daemon, Run, require, run};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// A running sink with these rules (and extra arguments).
struct Sink {
    daemon: Daemon,
}

impl Sink {
    fn start(faults: &[&str], extra: &[&str]) -> Sink {
        let mut cmd = Command::new(RELAIS);
        cmd.args(["sink", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
        for f in faults {
            cmd.args(["--fault", f]);
        }
        cmd.args(extra);
        Sink {
            daemon: Daemon::start("relais sink", cmd, 2, Duration::from_secs(20)),
        }
    }

    fn smtp(&self) -> String {
        self.daemon.port("smtp").to_string()
    }

    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.smtp())
    }

    /// `relais send --server SINK ARGS`.
    fn send(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(RELAIS);
        cmd.args(["send", "--server", &self.server()])
            .args(["--from", "app@sender.test", "--ehlo", "client.test"])
            .args(timeout(args))
            .args(args);
        run(cmd, None, LIMIT)
    }

    /// `swaks --server SINK ARGS`.
    fn swaks(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new("swaks");
        cmd.args(["--server", &self.server()])
            .args(["--from", "app@sender.test", "--helo", "client.test"])
            .args(timeout(args))
            .args(args);
        run(cmd, None, LIMIT)
    }

    /// `GET PATH` (or another method) on the JSON API: (status, body).
    fn http(&self, method: &str, path: &str) -> (u16, String) {
        let addr = SocketAddr::new([127, 0, 0, 1].into(), self.daemon.port("http"));
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "{method} {path} HTTP/1.1\r\nHost: sink\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, body.to_string())
    }

    fn messages(&self) -> Value {
        let (status, body) = self.http("GET", "/api/messages");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// `--timeout 5` unless the arguments give one.
fn timeout(args: &[&str]) -> &'static [&'static str] {
    if args.contains(&"--timeout") {
        &[]
    } else {
        &["--timeout", "5"]
    }
}

fn tools() {
    require(
        "swaks",
        &["--version"],
        "apt-get install swaks (scripts/deps.sh)",
    );
    require(
        "python3",
        &["-c", "import smtplib"],
        "python3 (scripts/deps.sh)",
    );
}

#[test]
fn mail_is_captured_and_served_as_json() {
    tools();
    let sink = Sink::start(&[], &[]);
    sink.send(&["--to", "bob@example.test", "--subject", "from relais"])
        .expect(0)
        .expect_out("250 2.0.0 Ok: queued as SINK1");
    sink.swaks(&[
        "--to",
        "carol@example.test",
        "--header",
        "Subject: from swaks",
    ])
    .expect(0);
    let script = format!(
        r#"
import smtplib
with smtplib.SMTP("127.0.0.1", {port}, timeout=10) as s:
    s.login("anyone", "anything")
    s.sendmail("py@sender.test", ["dave@example.test", "erin@example.test"],
               "Subject: from smtplib\r\n\r\nhello from python\r\n")
"#,
        port = sink.smtp()
    );
    run(
        {
            let mut c = Command::new("python3");
            c.args(["-c", &script]);
            c
        },
        None,
        LIMIT,
    )
    .expect(0);
    let list = sink.messages();
    assert_eq!(list["total"], 3, "{list}");
    let m = &list["messages"];
    let subjects: Vec<&str> = (0..3).map(|i| m[i]["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["from relais", "from swaks", "from smtplib"]);
    assert_eq!(m[0]["to"], serde_json::json!(["bob@example.test"]));
    assert_eq!(m[2]["from"], "py@sender.test");
    assert_eq!(m[2]["to"].as_array().unwrap().len(), 2);
    assert_eq!(m[0]["helo"], "client.test");
    assert!(m[0].get("raw").is_none());
    let (status, one) = sink.http("GET", "/api/messages/3");
    assert_eq!(status, 200);
    let one: Value = serde_json::from_str(&one).unwrap();
    assert!(
        one["raw"].as_str().unwrap().contains("hello from python"),
        "{one}"
    );
    let (status, raw) = sink.http("GET", "/api/messages/3/raw");
    assert!(
        status == 200 && raw.starts_with("Subject: from smtplib\r\n"),
        "{raw}"
    );
    assert_eq!(sink.http("GET", "/api/messages/9").0, 404);
    // the same for a browser: a page listing them (newest first), one page each
    let (status, html) = sink.http("GET", "/");
    assert_eq!(status, 200, "{html}");
    let order: Vec<usize> = ["from smtplib", "from swaks", "from relais"]
        .iter()
        .map(|s| html.find(s).unwrap_or_else(|| panic!("{s} not in\n{html}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{html}");
    assert!(html.contains("<a href=\"/messages/3\">3</a>"), "{html}");
    let (status, page) = sink.http("GET", "/messages/3");
    assert_eq!(status, 200);
    assert!(page.contains("hello from python"), "{page}");
    assert!(page.contains("&lt;py@sender.test&gt;"), "{page}");
    assert_eq!(sink.http("GET", "/messages/9").0, 404);
    assert_eq!(sink.http("DELETE", "/api/messages").0, 204);
    assert_eq!(sink.messages()["total"], 0);
    assert!(
        sink.daemon
            .log()
            .contains("captured message 1 from <app@sender.test>")
    );
}

#[test]
fn each_fault_is_what_the_clients_see() {
    tools();
    // (rule, relais send's arguments, its exit code, words in its output, words in swaks')
    type Row = (
        &'static str,
        &'static [&'static str],
        i32,
        &'static str,
        &'static str,
    );
    let table: &[Row] = &[
        (
            "rcpt:*@full.test=452 4.2.2 Mailbox full",
            &["--to", "a@full.test"],
            24,
            "452 4.2.2 Mailbox full",
            "452 4.2.2 Mailbox full",
        ),
        (
            "rcpt:nobody@*=550 5.1.1 No such user",
            &["--to", "nobody@x.test"],
            24,
            "550 5.1.1 No such user",
            "550 5.1.1 No such user",
        ),
        (
            "mail:app@*=554 5.7.1 Sender refused",
            &["--to", "a@x.test"],
            23,
            "554 5.7.1 Sender refused",
            "554 5.7.1 Sender refused",
        ),
        (
            "connect=421 4.3.2 Try again later",
            &["--to", "a@x.test"],
            21,
            "421 4.3.2 Try again later",
            "421 4.3.2 Try again later",
        ),
        (
            "connect=554 5.7.1 No SMTP service here",
            &["--to", "a@x.test"],
            21,
            "554 5.7.1 No SMTP service here",
            "554 5.7.1 No SMTP service here",
        ),
        (
            "helo:client.test=421 4.7.0 Go away",
            &["--to", "a@x.test"],
            22,
            "421 4.7.0 Go away",
            "421 4.7.0 Go away",
        ),
        (
            "data=451 4.3.0 Not now",
            &["--to", "a@x.test"],
            25,
            "451 4.3.0 Not now",
            "451 4.3.0 Not now",
        ),
        (
            "dot:*@spam.test=554 5.7.1 Message refused",
            &["--to", "a@spam.test"],
            26,
            "554 5.7.1 Message refused",
            "554 5.7.1 Message refused",
        ),
        (
            "connect=close",
            &["--to", "a@x.test"],
            6,
            "",
            "closed connection",
        ),
        (
            "content=disconnect 10",
            &["--to", "a@x.test"],
            6,
            "",
            "closed connection",
        ),
        (
            "starttls=tls-fail",
            &["--to", "a@x.test", "--tls"],
            29,
            "",
            "TLS",
        ),
        (
            "connect=silent",
            &["--to", "a@x.test", "--timeout", "1"],
            21,
            "",
            "Timeout",
        ),
        (
            "banner=delay 3",
            &["--to", "a@x.test", "--timeout", "1"],
            21,
            "",
            "Timeout",
        ),
    ];
    for (rule, args, code, send_words, swaks_words) in table {
        let sink = Sink::start(&[rule], &[]);
        let sent = sink.send(args);
        assert_eq!(sent.code, *code, "{rule}: {sent}");
        assert!(sent.stdout.contains(send_words), "{rule}: {sent}");
        let mut swaks_args: Vec<&str> = vec!["--to", args[1]];
        if rule.starts_with("starttls") {
            swaks_args.push("--tls");
        }
        if rule.contains("silent") || rule.contains("delay") {
            swaks_args.extend(["--timeout", "1"]);
        }
        let sw = sink.swaks(&swaks_args);
        assert_ne!(sw.code, 0, "{rule}: swaks succeeded\n{sw}");
        let all = format!("{}{}", sw.stdout, sw.stderr);
        assert!(all.contains(swaks_words), "{rule}: swaks\n{all}");
        // Nothing got through a fault.
        assert_eq!(sink.messages()["total"], 0, "{rule}");
    }
}

#[test]
fn greylisting_passes_the_second_try() {
    tools();
    let sink = Sink::start(&["rcpt:*@grey.test=greylist"], &[]);
    let first = sink.send(&["--to", "a@grey.test"]);
    assert_eq!(first.code, 24, "{first}");
    assert!(
        first
            .stdout
            .contains("450 4.2.0 <a@grey.test>: Recipient address rejected: Greylisted")
    );
    sink.send(&["--to", "a@grey.test"]).expect(0);
    // Another recipient is new again; another domain is not greylisted.
    assert_eq!(sink.send(&["--to", "b@grey.test"]).code, 24);
    sink.send(&["--to", "a@white.test"]).expect(0);
    assert_eq!(sink.messages()["total"], 2);
}

#[test]
fn a_rate_limit_and_a_rules_file() {
    tools();
    let dir = common::wait::tempdir("relais-sink-");
    let file = dir.path().join("faults.toml");
    std::fs::write(
        &file,
        "[[fault]]\nstage = \"connect\"\naction = \"rate 2/60\"\n\n\
         [[fault]]\nstage = \"auth\"\nmatch = \"mallory\"\naction = \"535 5.7.8 Authentication failed\"\n",
    )
    .unwrap();
    let sink = Sink::start(&[], &["--rules", file.to_str().unwrap()]);
    let auth = sink.send(&["--to", "a@x.test", "--user", "mallory", "--password", "x"]);
    assert_eq!(auth.code, 28, "{auth}");
    assert!(
        auth.stdout.contains("535 5.7.8 Authentication failed"),
        "{auth}"
    );
    sink.send(&["--to", "a@x.test", "--user", "alice", "--password", "x"])
        .expect(0);
    let third = sink.swaks(&["--to", "a@x.test"]);
    assert_ne!(third.code, 0);
    assert!(
        third
            .stdout
            .contains("421 4.7.0 sink.relais.test Error: too many connections from 127.0.0.1"),
        "{third}"
    );
    // A bad rule is refused before anything listens.
    let bad = run(
        {
            let mut c = Command::new(RELAIS);
            c.args([
                "sink",
                "--listen",
                "127.0.0.1:0",
                "--fault",
                "rcpt=tls-fail",
            ]);
            c
        },
        None,
        LIMIT,
    );
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("rcpt=tls-fail"), "{bad}");
}

#[test]
fn dsn_and_smtputf8_parameters_as_the_server_receives_them() {
    tools();
    let sink = Sink::start(&[], &[]);
    // --orcpt alone: each recipient's own address; with a value: that address.
    sink.send(&["--to", "a@x.test", "--to", "b@x.test", "--orcpt"])
        .expect(0)
        .expect_out("RCPT TO:<a@x.test> ORCPT=rfc822;a@x.test");
    sink.send(&[
        "--to",
        "c@x.test",
        "--orcpt",
        "list@lists.test",
        "--dsn-notify",
        "FAILURE",
    ])
    .expect(0);
    // A non-ASCII recipient declares SMTPUTF8 by itself; --smtputf8 declares it anyway.
    sink.send(&["--to", "jöran@x.test"]).expect(0);
    sink.send(&["--to", "d@x.test", "--smtputf8"]).expect(0);
    sink.send(&["--to", "e@x.test"]).expect(0);
    let list = sink.messages();
    let m = &list["messages"];
    assert_eq!(
        m[0]["rcpt_params"],
        serde_json::json!(["ORCPT=rfc822;a@x.test", "ORCPT=rfc822;b@x.test"]),
        "{list}"
    );
    assert_eq!(
        m[1]["rcpt_params"],
        serde_json::json!(["NOTIFY=FAILURE ORCPT=rfc822;list@lists.test"]),
        "{list}"
    );
    assert_eq!(m[2]["to"], serde_json::json!(["jöran@x.test"]));
    for (i, utf8) in [(2, true), (3, true), (4, false)] {
        let params = m[i]["mail_params"].as_str().unwrap();
        assert_eq!(params.contains("SMTPUTF8"), utf8, "{i}: {params}");
    }
    // An ORCPT that is no address is refused before anything is sent.
    let bad = sink.send(&["--to", "a@x.test", "--orcpt", "not an address"]);
    assert_eq!(bad.code, 1, "{bad}");
}
