//! `relais sendmail` from a script (server running: through the control socket; server
//! stopped: into the spool, delivered at the next start) and `relais queue` while the server
//! runs: list, show, hold, release, flush, delete, with `--json` checked.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::support::{
    FaultPeer, RELAIS, Relais, Script, Setup, WAIT, Zone, dns, header_value, message, queue,
    relais, run, tempdir, wait_until,
};

/// A directory with `sendmail` and `mailq` links to the relais binary.
fn links(dir: &Path) {
    for name in ["sendmail", "mailq"] {
        std::os::unix::fs::symlink(RELAIS, dir.join(name)).expect("link");
    }
}

/// The queue id in `sendmail: queued as ID…`.
fn queued_as(stderr: &str) -> String {
    let at = stderr
        .find("queued as ")
        .unwrap_or_else(|| panic!("no `queued as` in {stderr:?}"))
        + "queued as ".len();
    stderr[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

#[test]
fn sendmail_from_a_script_delivers_locally_and_remotely() {
    let peer = FaultPeer::local(Script::default());
    let dns = dns(Zone::new().a("mx.remote.test", "127.0.0.1"));
    let dir = tempdir("relais-sendmail-");
    let relais = Relais::start(
        "relais",
        dir.path(),
        &Setup::sender(&dns).route("remote.test", &peer.hop("mx.remote.test")),
    );
    let bin = tempdir("relais-bin-");
    links(bin.path());
    // What a cron job does: -t takes the recipients from the headers (Bcc removed), -i keeps
    // a lone dot as content.
    let script = bin.path().join("nightly.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         sendmail -t -i -f robot@relais.test -F 'Cron Robot' <<'EOF'\n\
         To: alice@relais.test\n\
         Cc: Carol <carol@remote.test>\n\
         Bcc: dave@relais.test\n\
         Subject: nightly report\n\
         \n\
         All jobs ran.\n\
         .\n\
         This line follows a lone dot.\n\
         EOF\n",
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.arg(&script);
    let out = run(
        cmd,
        b"",
        &[
            ("PATH", &path),
            ("RELAIS_CONFIG", relais.config.to_str().unwrap()),
        ],
    )
    .expect(0);
    let id = queued_as(&out.stderr);
    assert!(!out.stderr.contains("no server running"), "{}", out.stderr);
    relais.wait_log(
        &[
            &id,
            "queued: from=<robot@relais.test>",
            "nrcpt=3",
            "local submission",
        ],
        1,
    );

    for who in ["alice", "dave"] {
        let got = relais.wait_mail(who, 1);
        let text = String::from_utf8_lossy(&got[0]);
        assert_eq!(
            header_value(&got[0], "Return-Path").as_deref(),
            Some("<robot@relais.test>"),
            "{text}"
        );
        assert!(
            text.contains("From: Cron Robot <robot@relais.test>"),
            "{text}"
        );
        assert!(text.contains("Subject: nightly report"), "{text}");
        assert!(
            text.contains("\r\n.\r\nThis line follows a lone dot.\r\n"),
            "{text}"
        );
        assert!(!text.contains("Bcc:"), "{text}");
    }
    let taken = peer.wait_taken(1);
    assert!(taken[0].mail.starts_with("MAIL FROM:<robot@relais.test>"));
    assert_eq!(taken[0].rcpts, ["RCPT TO:<carol@remote.test>"]);
    assert!(String::from_utf8_lossy(&taken[0].data).contains("This line follows a lone dot."));
    relais.wait_log(&[&format!("{id}: removed")], 1);

    // Without -i a lone dot ends the message; recipients on the command line.
    let out = relais_sendmail(
        &relais.config,
        &["-f", "robot@relais.test", "erin@relais.test"],
        b"Subject: dot\n\nbefore\n.\nafter\n",
    );
    let _ = queued_as(&out.stderr);
    let got = relais.wait_mail("erin", 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("before"), "{text}");
    assert!(!text.contains("after"), "{text}");
}

/// `relais sendmail -C CONFIG ARGS…` with `stdin`; must succeed.
fn relais_sendmail(config: &Path, args: &[&str], stdin: &[u8]) -> crate::support::Run {
    let mut all = vec!["sendmail", "-C", config.to_str().unwrap()];
    all.extend_from_slice(args);
    relais(&all, stdin, &[]).expect(0)
}

#[test]
fn sendmail_without_a_server_spools_and_the_next_start_delivers() {
    let peer = FaultPeer::local(Script::default());
    let dns = dns(Zone::new().a("mx.remote.test", "127.0.0.1"));
    let dir = tempdir("relais-spooled-");
    let setup = Setup::sender(&dns).route("remote.test", &peer.hop("mx.remote.test"));
    let config = setup.write(dir.path());

    // No server: straight into the spool.
    let out = relais(
        &[
            "sendmail",
            "-i",
            "-f",
            "sender@relais.test",
            "alice@relais.test",
            "carol@remote.test",
        ],
        b"Subject: while stopped\n\nSpooled without a server.\n",
        &[("RELAIS_CONFIG", config.to_str().unwrap())],
    )
    .expect(0);
    assert!(out.stderr.contains("no server running"), "{}", out.stderr);
    let first = queued_as(&out.stderr);
    let out = relais_sendmail(
        &config,
        &["-t", "-i"],
        b"To: bob@relais.test\nSubject: held\n\nHeld while stopped.\n",
    );
    let held = queued_as(&out.stderr);

    // The queue, read from the spool.
    let list = queue(&config, &["list", "--json"]).expect(0).json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(
        ids.contains(&first.as_str()) && ids.contains(&held.as_str()),
        "{list}"
    );
    for e in list.as_array().unwrap() {
        for r in e["recipients"].as_array().unwrap() {
            assert_eq!(r["status"], "pending", "{e}");
        }
    }
    // Held on the spool, no server running.
    queue(&config, &["hold", &held]).expect(0);
    let e = queue(&config, &["show", &held, "--json"]).expect(0).json();
    assert_eq!(e["entry"]["held"], true, "{e}");
    assert!(
        e["client"].as_str().unwrap_or("").contains("local user"),
        "{e}"
    );
    // flush needs the server.
    let run = queue(&config, &["flush"]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(
        run.stderr.contains("no server is running"),
        "{}",
        run.stderr
    );

    // The server starts and delivers what was spooled, except what is held.
    let relais = Relais::start("relais", dir.path(), &setup);
    let got = relais.wait_mail("alice", 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("Spooled without a server."));
    let taken = peer.wait_taken(1);
    assert_eq!(taken[0].rcpts, ["RCPT TO:<carol@remote.test>"]);
    relais.wait_log(&[&format!("{first}: removed")], 1);
    let list = relais.queue_json();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], held.as_str());
    assert_eq!(list[0]["held"], true);
    assert!(relais.mail("bob").is_empty());

    // Released through the server: delivered.
    relais.queue(&["release", &held]).expect(0);
    let got = relais.wait_mail("bob", 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("Held while stopped."));
    wait_until("an empty queue", WAIT, || {
        relais.queue_json().is_empty().then_some(())
    });
}

/// The queue entry of `id`.
fn entry<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {list:?}"))
}

#[test]
fn queue_commands_while_the_server_runs() {
    let accept = Arc::new(AtomicBool::new(false));
    let switch = accept.clone();
    let peer = FaultPeer::local(Script {
        rcpt: Box::new(move |_, _| {
            if switch.load(Ordering::SeqCst) {
                "250 2.1.5 Ok".into()
            } else {
                "451 4.7.1 Greylisted, come back later".into()
            }
        }),
        ..Script::default()
    });
    let dns = dns(Zone::new().a("mx.queue.test", "127.0.0.1"));
    let dir = tempdir("relais-queue-");
    let relais = Relais::start(
        "relais",
        dir.path(),
        &Setup::sender(&dns).route("queue.test", &peer.hop("mx.queue.test")),
    );
    let mut c = relais.smtp();
    let ids: Vec<String> = (1..=4)
        .map(|n| {
            c.send(
                "<sender@relais.test>",
                &[&format!("<r{n}@queue.test>")],
                &message(&format!("queue {n}"), &format!("queue-{n}")),
            )
        })
        .collect();
    c.quit();
    let (m1, m2, m3, m4) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let list = wait_until("four deferred messages", WAIT, || {
        let l = relais.queue_json();
        (l.len() == 4 && l.iter().all(|e| e["attempts"] == 1)).then_some(l)
    });

    // list --json: everything mailq shows, and the reason.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (n, id) in ids.iter().enumerate() {
        let e = entry(&list, id);
        assert_eq!(e["sender"], "sender@relais.test", "{e}");
        assert_eq!(e["held"], false, "{e}");
        assert!(e["size"].as_u64().unwrap_or(0) > 100, "{e}");
        let arrival = e["arrival"].as_u64().unwrap_or(0);
        assert!(arrival <= now && arrival + 120 > now, "{e}");
        assert!(e["next_attempt"].as_u64().unwrap_or(0) > now + 3000, "{e}");
        let r = &e["recipients"][0];
        assert_eq!(r["address"], format!("r{}@queue.test", n + 1), "{e}");
        assert_eq!(r["status"], "deferred", "{e}");
        assert!(
            r["reason"]
                .as_str()
                .unwrap_or("")
                .contains("451 4.7.1 Greylisted"),
            "{e}"
        );
    }
    // The mailq-style list, also as `mailq`.
    let text = relais.queue(&["list"]).expect(0).stdout;
    for id in &ids {
        assert!(text.contains(id.as_str()), "{text}");
    }
    assert!(text.contains("Greylisted, come back later"), "{text}");
    assert!(text.contains("r3@queue.test"), "{text}");
    assert!(text.contains("in 4 Requests."), "{text}");
    let bin = tempdir("relais-bin-");
    links(bin.path());
    let mailq = Command::new(bin.path().join("mailq"));
    let out = run(
        mailq,
        b"",
        &[("RELAIS_CONFIG", relais.config.to_str().unwrap())],
    )
    .expect(0);
    assert_eq!(out.stdout, text);

    // show: envelope, headers, per-recipient status.
    let d = relais.queue(&["show", m1, "--json"]).expect(0).json();
    assert_eq!(d["entry"]["id"], m1.as_str(), "{d}");
    let envelope = d["envelope"].as_str().unwrap_or("");
    assert!(envelope.contains("MAIL FROM:<sender@relais.test>"), "{d}");
    assert!(envelope.contains("RCPT TO:<r1@queue.test>"), "{d}");
    let headers = d["headers"].as_str().unwrap_or("");
    assert!(headers.contains("Subject: queue 1"), "{d}");
    assert!(headers.contains("Received: from client.test"), "{d}");
    assert!(!headers.contains("Body of queue-1."), "{d}");
    assert!(
        d["client"].as_str().unwrap_or("").contains("127.0.0.1"),
        "{d}"
    );
    let text = relais.queue(&["show", m1]).expect(0).stdout;
    assert!(text.contains(&format!("Queue ID:  {m1}")), "{text}");
    assert!(text.contains("<r1@queue.test>: deferred (4.7.1"), "{text}");
    assert!(text.contains("Subject: queue 1"), "{text}");
    let run_missing = relais.queue(&["show", "NOSUCHID0"]);
    assert_eq!(run_missing.code, 5, "{run_missing:?}");

    // hold m2: marked in both listings.
    relais.queue(&["hold", m2]).expect(0);
    assert_eq!(entry(&relais.queue_json(), m2)["held"], true);
    let text = relais.queue(&["list"]).expect(0).stdout;
    assert!(text.contains(&format!("{m2}!")), "{text}");

    // delete m3: gone, and nobody is told.
    let out = relais.queue(&["delete", m3]).expect(0);
    assert!(
        out.stderr.contains(&format!("{m3}: deleted")),
        "{}",
        out.stderr
    );
    relais.wait_log(
        &[&format!("{m3}: removed (deleted by the administrator)")],
        1,
    );
    let list = relais.queue_json();
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list.iter().all(|e| e["id"] != m3.as_str()));

    // The peer now accepts. flush ID tries that message only.
    accept.store(true, Ordering::SeqCst);
    relais.queue(&["flush", m1]).expect(0);
    relais.wait_log(&[m1, "to=<r1@queue.test>", "status=sent"], 1);
    relais.wait_log(&[&format!("{m1}: removed")], 1);
    assert!(relais.lines(&[m4, "status=sent"]).is_empty());

    // flush (all) tries m4 but not the held m2.
    relais.queue(&["flush"]).expect(0);
    relais.wait_log(&[m4, "to=<r4@queue.test>", "status=sent"], 1);
    relais.wait_log(&[&format!("{m4}: removed")], 1);
    let list = relais.queue_json();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], m2.as_str());
    let tries = |rcpt: &str| {
        peer.rcpts()
            .iter()
            .filter(|(_, line, _)| line.contains(rcpt))
            .count()
    };
    assert_eq!(tries("<r2@queue.test>"), 1, "a held message is not tried");

    // release m2: tried at once.
    relais.queue(&["release", m2]).expect(0);
    relais.wait_log(&[m2, "to=<r2@queue.test>", "status=sent"], 1);
    wait_until("an empty queue", WAIT, || {
        relais.queue_json().is_empty().then_some(())
    });
    let text = relais.queue(&["list"]).expect(0).stdout;
    assert!(text.contains("Mail queue is empty"), "{text}");

    // What reached the peer: m1, m4, m2; never the deleted m3 after its first try.
    let taken: Vec<String> = peer.taken().iter().flat_map(|t| t.rcpts.clone()).collect();
    assert_eq!(
        taken,
        [
            "RCPT TO:<r1@queue.test>",
            "RCPT TO:<r4@queue.test>",
            "RCPT TO:<r2@queue.test>"
        ]
    );
    assert_eq!(tries("<r3@queue.test>"), 1);
    // Deleting or deferring sends no report.
    assert!(relais.mail("sender").is_empty());
    // delete --all: two more deferred messages, gone at once, nobody told.
    accept.store(false, Ordering::SeqCst);
    let mut c = relais.smtp();
    for n in 5..=6 {
        c.send(
            "<sender@relais.test>",
            &[&format!("<r{n}@queue.test>")],
            &message(&format!("queue {n}"), &format!("queue-{n}")),
        );
    }
    c.quit();
    wait_until("two deferred messages", WAIT, || {
        let l = relais.queue_json();
        (l.len() == 2 && l.iter().all(|e| e["attempts"] == 1)).then_some(())
    });
    relais.queue(&["delete", "--all"]).expect(0);
    assert_eq!(relais.queue_json(), Vec::<Value>::new());
    relais.wait_log(&["removed (deleted by the administrator)"], 3);
    // Unknown ids are errors.
    assert_ne!(relais.queue(&["hold", "NOSUCHID0"]).code, 0);
    assert_ne!(relais.queue(&["release", "not-an-id"]).code, 0);
    assert_ne!(relais.queue(&["delete", "NOSUCHID0"]).code, 0);
}

#[test]
fn sendmail_works_for_a_local_user_other_than_the_servers() {
    // Needs root, to run sendmail as nobody (cron jobs, web applications).
    let dns = dns(Zone::new());
    let dir = tempdir("relais-sendmail-user-");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let relais = Relais::start("relais", dir.path(), &Setup::sender(&dns));
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "nobody", "--", RELAIS, "sendmail", "-C"])
        .arg(&relais.config)
        .arg("alice@relais.test");
    let out = run(cmd, b"Subject: from nobody\n\nHello.\n", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let got = relais.wait_mail("alice", 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("from userid nobody"));
    // Another user may submit, not steer the queue.
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "nobody", "--", RELAIS, "queue", "-c"])
        .arg(&relais.config)
        .arg("list");
    let out = run(cmd, b"", &[]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(format!("{out:?}").contains("permission denied"), "{out:?}");
}
