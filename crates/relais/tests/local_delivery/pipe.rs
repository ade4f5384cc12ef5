//! `|command` delivery: what the program receives, and what its exit status means.

use std::fs;
use std::time::{Duration, Instant};

use relais_local::pipe::{self, Invocation};
use relais_queue::Outcome;

use crate::support::{script, tempdir};

const MESSAGE: &[u8] = b"Return-Path: <alice@example.org>\r\n\
Delivered-To: list@example.net\r\n\
Subject: piped\r\n\
\r\n\
From the first line\r\n\
.a dot\r\n";

/// A script that records its input and environment next to itself, then exits with `$1`.
fn recorder(dir: &std::path::Path) -> String {
    let path = dir.join("record.sh");
    script(
        &path,
        &format!(
            "cat > {d}/stdin\nenv | sort > {d}/env\npwd > {d}/pwd\nexit \"${{1:-0}}\"\n",
            d = dir.display()
        ),
    );
    path.display().to_string()
}

#[tokio::test]
async fn the_command_gets_the_message_and_the_envelope() {
    let dir = tempdir();
    let rec = recorder(dir.path());
    let o = pipe::run(
        &Invocation {
            command: &format!("{rec} 0"),
            sender: "alice@example.org",
            recipient: "List@Example.NET",
            original_recipient: "staff@example.net",
            user: None,
            timeout: Duration::from_secs(30),
        },
        MESSAGE,
    )
    .await;
    assert!(matches!(o, Outcome::Delivered(_)), "{o}");
    assert_eq!(fs::read(dir.path().join("stdin")).unwrap(), MESSAGE);
    let env = fs::read_to_string(dir.path().join("env")).unwrap();
    for want in [
        "SENDER=alice@example.org",
        "RECIPIENT=List@Example.NET",
        "LOCAL=List",
        "DOMAIN=Example.NET",
        "ORIGINAL_RECIPIENT=staff@example.net",
        "PATH=/usr/bin:/bin",
        "SHELL=/bin/sh",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing:\n{env}");
    }
    // Nothing of the test's own environment leaks through (the shell adds PWD, SHLVL, _).
    for line in env.lines() {
        let name = line.split('=').next().unwrap();
        assert!(
            [
                "SENDER",
                "RECIPIENT",
                "LOCAL",
                "DOMAIN",
                "ORIGINAL_RECIPIENT",
                "PATH",
                "SHELL",
                "PWD",
                "OLDPWD",
                "SHLVL",
                "_",
            ]
            .contains(&name),
            "unexpected variable {line}:\n{env}"
        );
    }
    assert_eq!(fs::read_to_string(dir.path().join("pwd")).unwrap(), "/\n");

    // The short form: ORIGINAL_RECIPIENT is the recipient; the null sender is empty.
    let o = pipe::deliver(&rec, b"x", "", "bob@example.net", Duration::from_secs(30)).await;
    assert!(matches!(o, Outcome::Delivered(_)), "{o}");
    let env = fs::read_to_string(dir.path().join("env")).unwrap();
    assert!(env.lines().any(|l| l == "SENDER="), "{env}");
    assert!(
        env.lines()
            .any(|l| l == "ORIGINAL_RECIPIENT=bob@example.net"),
        "{env}"
    );
}

#[tokio::test]
async fn exit_statuses() {
    let dir = tempdir();
    let rec = recorder(dir.path());
    let run = |code: u8| {
        let command = format!("{rec} {code}");
        async move {
            pipe::deliver(
                &command,
                MESSAGE,
                "a@example.org",
                "b@example.net",
                Duration::from_secs(30),
            )
            .await
        }
    };
    match run(75).await {
        Outcome::Deferred { status, reason } => {
            assert_eq!(status, "4.3.0");
            assert!(reason.contains("status 75"), "{reason}");
        }
        o => panic!("exit 75: {o}"),
    }
    match run(67).await {
        Outcome::Failed { status, reason } => {
            assert_eq!(status, "5.1.1");
            assert!(reason.contains("user unknown"), "{reason}");
        }
        o => panic!("exit 67: {o}"),
    }
    match run(1).await {
        Outcome::Failed { status, .. } => assert_eq!(status, "5.3.0"),
        o => panic!("exit 1: {o}"),
    }
}

#[tokio::test]
async fn a_command_that_runs_too_long_is_killed_and_deferred() {
    let dir = tempdir();
    let pidfile = dir.path().join("pid");
    let start = Instant::now();
    let o = pipe::deliver(
        &format!("echo $$ > {}; sleep 10", pidfile.display()),
        MESSAGE,
        "a@example.org",
        "b@example.net",
        Duration::from_secs(1),
    )
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    match o {
        Outcome::Deferred { status, reason } => {
            assert_eq!(status, "4.3.0");
            assert!(reason.contains("timed out"), "{reason}");
        }
        o => panic!("{o}"),
    }
    // The shell is gone (killed with its group, and reaped).
    let pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "shell {pid} still running");
}

#[tokio::test]
async fn a_command_that_closes_its_input_early() {
    let big = vec![b'z'; 8 << 20];
    let o = pipe::deliver(
        "exec 0<&-; exit 0",
        &big,
        "a@example.org",
        "b@example.net",
        Duration::from_secs(30),
    )
    .await;
    assert!(matches!(o, Outcome::Delivered(_)), "{o}");
}
