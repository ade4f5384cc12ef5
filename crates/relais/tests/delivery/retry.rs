//! Retries: a peer that answers `451` twice then accepts. Retries are an hour apart in the
//! test configuration, so every retry here is one the test asked for with
//! `relais queue flush`: the clock is driven, never waited for.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    Dsn, FaultPeer, Relais, Script, Setup, WAIT, Zone, dns, field, message, tempdir, wait_until,
};

/// Waits until the queue holds `id` after `attempts` attempts; returns its entry.
fn entry_after(relais: &Relais, id: &str, attempts: u64) -> Value {
    wait_until(
        &format!("{id} in the queue after {attempts} attempt(s)"),
        WAIT,
        || {
            relais
                .queue_json()
                .into_iter()
                .find(|e| e["id"] == id && e["attempts"] == attempts)
        },
    )
}

#[test]
fn peer_answering_451_twice_gets_the_message_on_the_third_try() {
    // First connection: 451 to RCPT. Second: 451 after the content. Third: accepted.
    let peer = FaultPeer::local(Script {
        rcpt: Box::new(|conn, _| match conn {
            1 => "451 4.3.0 Try again later (first)".into(),
            _ => "250 2.1.5 Ok".into(),
        }),
        data: Box::new(|conn| match conn {
            2 => "451 4.3.0 Try again later (second)".into(),
            n => format!("250 2.0.0 Ok: queued as FAULT{n}"),
        }),
        ..Script::default()
    });
    let dns = dns(Zone::new().a("mx.flaky.test", "127.0.0.1"));
    let dir = tempdir("relais-retry-");
    let relais = Relais::start(
        "relais",
        dir.path(),
        &Setup::sender(&dns).route("flaky.test", &peer.hop("mx.flaky.test")),
    );
    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<u@flaky.test>"],
        &message("retry", "retry-1"),
    );
    c.quit();

    // Attempt 1: deferred, and the queue says why.
    let e = entry_after(&relais, &id, 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(e["recipients"][0]["address"], "u@flaky.test", "{e}");
    assert_eq!(e["recipients"][0]["status"], "deferred", "{e}");
    let reason = e["recipients"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("451 4.3.0 Try again later (first)"), "{e}");
    assert!(e["next_attempt"].as_u64().unwrap_or(0) >= now + 3000, "{e}");
    let text = relais.queue(&["list"]).expect(0).stdout;
    assert!(text.contains(&id), "{text}");
    assert!(text.contains("Try again later (first)"), "{text}");
    assert!(text.contains("u@flaky.test"), "{text}");
    assert_eq!(
        relais
            .lines(&[&id, "to=<u@flaky.test>", "status=deferred"])
            .len(),
        1
    );
    // Nothing happens on its own: the next try is an hour away.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(peer.transactions(), 1);

    // Attempt 2, asked for: deferred after the content.
    relais.queue(&["flush"]).expect(0);
    let e = entry_after(&relais, &id, 2);
    assert_eq!(peer.transactions(), 2);
    assert_eq!(e["recipients"][0]["status"], "deferred", "{e}");
    let reason = e["recipients"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Try again later (second)"), "{e}");
    let show = relais.queue(&["show", &id]).expect(0).stdout;
    assert!(show.contains("Attempts:  2"), "{show}");
    assert!(show.contains("Try again later (second)"), "{show}");

    // Attempt 3, asked for by id: delivered.
    relais.queue(&["flush", &id]).expect(0);
    relais.wait_log(&[&id, "to=<u@flaky.test>", "status=sent"], 1);
    relais.wait_log(&[&format!("{id}: removed")], 1);
    assert_eq!(peer.transactions(), 3);
    let taken = peer.taken();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].conn, 3);
    assert!(String::from_utf8_lossy(&taken[0].data).contains("Body of retry-1."));
    assert_eq!(
        relais
            .lines(&[&id, "to=<u@flaky.test>", "status=deferred"])
            .len(),
        2
    );
    assert_eq!(relais.queue_json(), Vec::<Value>::new());
    let text = relais.queue(&["list"]).expect(0).stdout;
    assert!(text.contains("Mail queue is empty"), "{text}");
    // Deferrals tell the sender nothing (no NOTIFY=DELAY, no delay warning configured).
    assert!(relais.mail("sender").is_empty());
}

#[test]
fn delay_warning_once_then_the_bounce_at_expiry() {
    // Warn after 1 s, give up after 3 s: short enough to wait for, the only waiting here.
    let peer = FaultPeer::local(Script {
        rcpt: Box::new(|_, _| "451 4.3.0 Not today".into()),
        ..Script::default()
    });
    let dns = dns(Zone::new().a("mx.late.test", "127.0.0.1"));
    let dir = tempdir("relais-expiry-");
    let mut setup = Setup::sender(&dns).route("late.test", &peer.hop("mx.late.test"));
    setup.delivery = vec!["delay_warning = 1".into(), "lifetime = 3".into()];
    let relais = Relais::start("relais", dir.path(), &setup);
    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<slow@late.test> NOTIFY=DELAY,FAILURE"],
        &message("late", "late-1"),
    );
    // The message arrived (was committed) before the reply: its age is at least this.
    let arrived = std::time::Instant::now();
    c.quit();
    entry_after(&relais, &id, 1);
    assert!(
        relais.mail("sender").is_empty(),
        "a warning before delay_warning"
    );

    // After the warning time: one warning, with the deferral reason.
    std::thread::sleep(Duration::from_millis(1300).saturating_sub(arrived.elapsed()));
    relais.queue(&["flush"]).expect(0);
    let got = relais.wait_mail("sender", 1);
    entry_after(&relais, &id, 2);
    let d = Dsn::parse(&got[0]);
    assert_eq!(d.subject, "Delayed Mail (still being retried)");
    assert_eq!(d.queue_id(), id);
    let r = d.recipient("slow@late.test");
    assert_eq!(field(r, "Action"), Some("delayed"), "{r:?}");
    assert_eq!(field(r, "Status"), Some("4.3.0"), "{r:?}");
    assert_eq!(
        field(r, "Diagnostic-Code"),
        Some("smtp; 451 4.3.0 Not today"),
        "{r:?}"
    );
    assert_eq!(d.returned_type, "text/rfc822-headers");
    // Only once.
    relais.queue(&["flush"]).expect(0);
    entry_after(&relais, &id, 3);
    assert_eq!(relais.mail("sender").len(), 1);

    // After the lifetime: the next attempt that fails bounces.
    std::thread::sleep(Duration::from_millis(3300).saturating_sub(arrived.elapsed()));
    relais.queue(&["flush"]).expect(0);
    relais.wait_log(&[&format!("{id}: removed")], 1);
    let got = relais.wait_mail("sender", 2);
    let bounce = got
        .iter()
        .map(|raw| Dsn::parse(raw))
        .find(|d| d.subject == "Undelivered Mail Returned to Sender")
        .expect("a bounce");
    let r = bounce.recipient("slow@late.test");
    assert_eq!(field(r, "Action"), Some("failed"), "{r:?}");
    assert_eq!(field(r, "Status"), Some("5.4.7"), "{r:?}");
    assert!(
        field(r, "Diagnostic-Code").is_some_and(|v| v.contains("451 4.3.0 Not today")),
        "{r:?}"
    );
    assert_eq!(field(r, "Remote-MTA"), Some("dns; mx.late.test"), "{r:?}");
    assert_eq!(bounce.returned_type, "message/rfc822");
    assert_eq!(peer.transactions(), 4);
}
