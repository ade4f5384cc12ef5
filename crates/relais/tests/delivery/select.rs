//! `relais queue … --from --to --older-than --state` (issue 16, item 6): the seeds'
//! spam-filled queue cleaned in one command, on the spool with no server and through the
//! running server; `requeue` of what a selection picks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::support::{
    FaultPeer, Relais, Script, Setup, WAIT, Zone, dns, queue, relais, tempdir, wait_until,
};

/// The ids a `queue list --json` with these options gives.
fn ids(config: &std::path::Path, options: &[&str]) -> Vec<String> {
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(options);
    match queue(config, &args).expect(0).json() {
        Value::Array(a) => a
            .iter()
            .filter_map(|e| e["id"].as_str().map(String::from))
            .collect(),
        other => panic!("{other}"),
    }
}

/// Spools a message from `from` to `to` with `relais sendmail` (no server: into the spool).
fn spool(config: &std::path::Path, from: &str, to: &str) {
    let out = relais(
        &[
            "sendmail",
            "-C",
            config.to_str().unwrap(),
            "-i",
            "-f",
            from,
            to,
        ],
        format!("Subject: from {from}\n\nHello.\n").as_bytes(),
        &[],
    )
    .expect(0);
    assert!(out.stderr.contains("queued as"), "{}", out.stderr);
}

#[test]
fn a_spam_filled_queue_is_cleaned_in_one_command() {
    let dns = dns(Zone::new());
    let dir = tempdir("relais-select-");
    let setup = Setup::sender(&dns);
    let config = setup.write(dir.path());
    for n in 0..5 {
        spool(
            &config,
            &format!("pills{n}@Spam.example"),
            "alice@relais.test",
        );
    }
    spool(&config, "friend@good.test", "bob@relais.test");
    spool(&config, "friend@good.test", "carol@relais.test");
    assert_eq!(ids(&config, &[]).len(), 7);

    let spam = ids(&config, &["--from", "*@spam.example"]);
    assert_eq!(spam.len(), 5);
    assert_eq!(ids(&config, &["--to", "bob@*", "--state", "new"]).len(), 1);
    assert!(ids(&config, &["--older-than", "1d"]).is_empty());
    assert!(ids(&config, &["--state", "deferred"]).is_empty());
    // Nothing is that old: nothing deleted.
    let out = queue(&config, &["delete", "--older-than", "2d"]).expect(0);
    assert!(out.stderr.contains("no message selected"), "{}", out.stderr);
    // Names and a selection together are refused; so is a bad state or age.
    assert_eq!(queue(&config, &["delete", &spam[0], "--from", "x"]).code, 5);
    assert_ne!(queue(&config, &["list", "--state", "sideways"]).code, 0);
    assert_ne!(queue(&config, &["list", "--older-than", "soon"]).code, 0);

    // Held and deleted on the spool, with no server.
    queue(&config, &["hold", "--to", "carol@relais.test"]).expect(0);
    assert_eq!(ids(&config, &["--state", "held"]).len(), 1);
    let out = queue(&config, &["delete", "--from", "*@SPAM.example"]).expect(0);
    for id in &spam {
        assert!(
            out.stderr.contains(&format!("{id}: deleted")),
            "{}",
            out.stderr
        );
    }
    assert_eq!(ids(&config, &[]).len(), 2);

    // The server delivers what is left, except what is held; the release goes through it.
    let relais = Relais::start("relais", dir.path(), &setup);
    relais.wait_mail("bob", 1);
    relais.queue(&["release", "--state", "held"]).expect(0);
    relais.wait_mail("carol", 1);
    wait_until("an empty queue", WAIT, || {
        relais.queue_json().is_empty().then_some(())
    });
    assert!(relais.mail("alice").is_empty());
}

#[test]
fn requeue_tries_the_selected_deferred_messages_now() {
    let accept = Arc::new(AtomicBool::new(false));
    let switch = accept.clone();
    let peer = FaultPeer::local(Script {
        rcpt: Box::new(move |_, _| {
            if switch.load(Ordering::SeqCst) {
                "250 2.1.5 Ok".into()
            } else {
                "451 4.7.1 Try again later".into()
            }
        }),
        ..Script::default()
    });
    let dns = dns(Zone::new()
        .a("mx.slow.test", "127.0.0.1")
        .a("mx.other.test", "127.0.0.1"));
    let dir = tempdir("relais-requeue-");
    let relais = Relais::start(
        "relais",
        dir.path(),
        &Setup::sender(&dns)
            .route("slow.test", &peer.hop("mx.slow.test"))
            .route("other.test", &peer.hop("mx.other.test")),
    );
    let mut c = relais.smtp();
    let slow = c.send(
        "<sender@relais.test>",
        &["<a@slow.test>"],
        &crate::support::message("slow", "slow-1"),
    );
    let other = c.send(
        "<sender@relais.test>",
        &["<b@other.test>"],
        &crate::support::message("other", "other-1"),
    );
    c.quit();
    wait_until("two deferred messages", WAIT, || {
        let ids = ids(&relais.config, &["--state", "deferred"]);
        (ids.len() == 2).then_some(())
    });
    accept.store(true, Ordering::SeqCst);
    let out = relais
        .queue(&["requeue", "--to", "*@slow.test", "--state", "deferred"])
        .expect(0);
    assert!(
        out.stderr.contains(&format!("{slow}: requeued")),
        "{}",
        out.stderr
    );
    relais.wait_log(&[&slow, "to=<a@slow.test>", "status=sent"], 1);
    // The other one waits for its retry time.
    assert_eq!(ids(&relais.config, &[]), std::slice::from_ref(&other));
    assert!(relais.lines(&[&other, "status=sent"]).is_empty());
}
