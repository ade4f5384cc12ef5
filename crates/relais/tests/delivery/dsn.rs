//! Delivery status notifications: a bounce for the recipient a peer refuses (RET=FULL and
//! RET=HDRS), success receipts (delivered locally, relayed to a peer without DSN, none when the
//! peer does DSN itself), and no report for NOTIFY=NEVER or the null sender. Every report is
//! read from the sender's Maildir and parsed with mail-parser.

use crate::support::{
    Dsn, FaultPeer, Relais, Script, Setup, Zone, dns, field, header_value, message, tempdir,
};

/// A peer that refuses `nobody@` and takes everyone else.
fn refusing_nobody() -> Script {
    Script {
        rcpt: Box::new(|_, addr| {
            if addr.starts_with("nobody@") {
                "550 5.1.1 No such person at this address".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Script::default()
    }
}

/// Parses every report in the sender's Maildir once there are `n`.
fn reports(relais: &Relais, n: usize) -> Vec<(Vec<u8>, Dsn)> {
    relais
        .wait_mail("sender", n)
        .into_iter()
        .map(|raw| {
            let d = Dsn::parse(&raw);
            (raw, d)
        })
        .collect()
}

/// The report about queue id `id`.
#[track_caller]
fn about<'a>(reports: &'a [(Vec<u8>, Dsn)], id: &str) -> &'a (Vec<u8>, Dsn) {
    reports
        .iter()
        .find(|(_, d)| d.queue_id() == id)
        .unwrap_or_else(|| panic!("no report about {id}: {reports:?}"))
}

/// Asserts that `id` is finished and that no report was sent about it.
#[track_caller]
fn no_report_about(relais: &Relais, id: &str) {
    // The report is queued before the message is removed, so once "removed" is logged any
    // report would have been logged too.
    relais.wait_log(&[&format!("{id}: removed")], 1);
    let notes = relais.lines(&[&format!("{id}: sender delivery status notification")]);
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn one_recipient_refused_bounces_with_full_message_or_headers_only() {
    let peer = FaultPeer::local(refusing_nobody());
    let dns = dns(Zone::new().a("mx.dsn.test", "127.0.0.1"));
    let dir = tempdir("relais-dsn-");
    let relais = Relais::start(
        "relais",
        dir.path(),
        &Setup::sender(&dns).route("dsn.test", &peer.hop("mx.dsn.test")),
    );
    let mut c = relais.smtp();
    let full = c.send(
        "<sender@relais.test>",
        &["<ok@dsn.test>", "<nobody@dsn.test>"],
        &message("bounce me", "full-1"),
    );
    let hdrs = c.send(
        "<sender@relais.test> RET=HDRS ENVID=env-hdrs-2",
        &[
            "<ok@dsn.test>",
            "<nobody@dsn.test> NOTIFY=FAILURE ORCPT=rfc822;nobody@dsn.test",
        ],
        &message("bounce my headers", "hdrs-2"),
    );
    c.quit();

    // One delivered, one refused, in each message.
    let taken = peer.wait_taken(2);
    for t in &taken {
        assert_eq!(t.rcpts, ["RCPT TO:<ok@dsn.test>"], "{t:?}");
    }
    for id in [&full, &hdrs] {
        relais.wait_log(&[id, "to=<ok@dsn.test>", "status=sent"], 1);
        relais.wait_log(&[id, "to=<nobody@dsn.test>", "status=bounced"], 1);
        relais.wait_log(
            &[
                &format!("{id}: sender delivery status notification"),
                "(failed)",
            ],
            1,
        );
    }

    let all = reports(&relais, 2);
    assert_eq!(all.len(), 2);
    for (raw, d) in &all {
        let text = String::from_utf8_lossy(raw);
        // Delivered from the null sender, by the mailer daemon.
        assert_eq!(
            header_value(raw, "Return-Path").as_deref(),
            Some("<>"),
            "{text}"
        );
        assert!(
            header_value(raw, "From").is_some_and(|f| f.contains("MAILER-DAEMON@relais.test")),
            "{text}"
        );
        assert_eq!(d.content_type, "multipart/report", "{text}");
        assert_eq!(d.report_type, "delivery-status", "{text}");
        assert_eq!(d.subject, "Undelivered Mail Returned to Sender");
        assert_eq!(
            field(&d.message_fields, "Reporting-MTA"),
            Some("dns; relais.test")
        );
        assert!(field(&d.message_fields, "Arrival-Date").is_some(), "{d:?}");
        // Only the refused recipient is reported.
        assert_eq!(d.recipients.len(), 1, "{d:?}");
        let r = d.recipient("nobody@dsn.test");
        assert_eq!(field(r, "Action"), Some("failed"), "{r:?}");
        assert_eq!(field(r, "Status"), Some("5.1.1"), "{r:?}");
        assert_eq!(
            field(r, "Diagnostic-Code"),
            Some("smtp; 550 5.1.1 No such person at this address"),
            "{r:?}"
        );
        assert_eq!(field(r, "Remote-MTA"), Some("dns; mx.dsn.test"), "{r:?}");
        assert!(
            d.notification.contains("nobody@dsn.test"),
            "{}",
            d.notification
        );
    }

    // Default (RET=FULL): the whole message comes back.
    let (_, d) = about(&all, &full);
    assert_eq!(d.returned_type, "message/rfc822");
    assert!(d.returned.contains("Subject: bounce me"), "{}", d.returned);
    assert!(d.returned.contains("Body of full-1."), "{}", d.returned);
    assert_eq!(field(&d.message_fields, "Original-Envelope-Id"), None);

    // RET=HDRS: headers only; ENVID and ORCPT carried.
    let (_, d) = about(&all, &hdrs);
    assert_eq!(d.returned_type, "text/rfc822-headers");
    assert!(
        d.returned.contains("Subject: bounce my headers"),
        "{}",
        d.returned
    );
    assert!(!d.returned.contains("Body of hdrs-2."), "{}", d.returned);
    assert_eq!(
        field(&d.message_fields, "Original-Envelope-Id"),
        Some("env-hdrs-2")
    );
    let r = d.recipient("nobody@dsn.test");
    assert_eq!(
        field(r, "Original-Recipient"),
        Some("rfc822; nobody@dsn.test"),
        "{r:?}"
    );

    // The bounce as its reader gets it, handed to `relais explain --file`.
    let (raw, _) = about(&all, &full);
    let file = dir.path().join("bounce.eml");
    std::fs::write(&file, raw).unwrap();
    let mut cmd = std::process::Command::new(crate::common::RELAIS);
    cmd.args(["explain", "--file"]).arg(&file);
    let out = crate::common::process::run(cmd, None, std::time::Duration::from_secs(20)).expect(0);
    for words in [
        "Delivery status report from relais.test: 1 recipient",
        "nobody@dsn.test: failed (5.1.1)",
        "mx.dsn.test said: 550 5.1.1 No such person at this address",
        "Permanent failure",
    ] {
        out.expect_out(words);
    }
    out.expect_no_out("ok@dsn.test");
}

#[test]
fn notify_success_gives_a_receipt_when_delivered_or_relayed() {
    let plain = FaultPeer::local(Script::default());
    let with_dsn = FaultPeer::local(Script {
        extensions: vec!["DSN".into()],
        ..Script::default()
    });
    let dns = dns(Zone::new()
        .a("mx.plain.test", "127.0.0.1")
        .a("mx.dsnpeer.test", "127.0.0.1"));
    let dir = tempdir("relais-receipt-");
    let relais = Relais::start(
        "relais",
        dir.path(),
        &Setup::sender(&dns)
            .route("plain.test", &plain.hop("mx.plain.test"))
            .route("dsnpeer.test", &with_dsn.hop("mx.dsnpeer.test")),
    );
    let mut c = relais.smtp();
    let local = c.send(
        "<sender@relais.test>",
        &["<bob@relais.test> NOTIFY=SUCCESS"],
        &message("local receipt", "receipt-local"),
    );
    let relayed = c.send(
        "<sender@relais.test>",
        &["<carol@plain.test> NOTIFY=SUCCESS,FAILURE"],
        &message("relayed receipt", "receipt-relayed"),
    );
    let passed_on = c.send(
        "<sender@relais.test> RET=HDRS ENVID=track-3",
        &["<dave@dsnpeer.test> NOTIFY=SUCCESS ORCPT=rfc822;dave@dsnpeer.test"],
        &message("the next hop reports", "receipt-passed"),
    );
    c.quit();

    assert_eq!(relais.wait_mail("bob", 1).len(), 1);
    let all = reports(&relais, 2);

    let (_, d) = about(&all, &local);
    assert_eq!(d.content_type, "multipart/report");
    assert_eq!(d.subject, "Successful Mail Delivery Report");
    let r = d.recipient("bob@relais.test");
    assert_eq!(field(r, "Action"), Some("delivered"), "{r:?}");
    assert_eq!(field(r, "Status"), Some("2.0.0"), "{r:?}");
    assert_eq!(field(r, "Remote-MTA"), None, "{r:?}");
    // A receipt returns the headers only.
    assert_eq!(d.returned_type, "text/rfc822-headers");
    assert!(
        d.returned.contains("Subject: local receipt"),
        "{}",
        d.returned
    );
    assert!(!d.returned.contains("Body of receipt-local."));

    let (_, d) = about(&all, &relayed);
    let r = d.recipient("carol@plain.test");
    assert_eq!(field(r, "Action"), Some("relayed"), "{r:?}");
    assert_eq!(field(r, "Status"), Some("2.0.0"), "{r:?}");
    assert_eq!(field(r, "Remote-MTA"), Some("dns; mx.plain.test"), "{r:?}");
    // The peer without DSN got no DSN parameters.
    let t = plain.wait_taken(1);
    assert_eq!(t[0].rcpts, ["RCPT TO:<carol@plain.test>"]);

    // A next hop that does DSN gets the parameters and reports itself: no receipt from us.
    let t = with_dsn.wait_taken(1);
    assert!(t[0].mail.contains("RET=HDRS"), "{}", t[0].mail);
    assert!(t[0].mail.contains("ENVID=track-3"), "{}", t[0].mail);
    assert_eq!(
        t[0].rcpts,
        ["RCPT TO:<dave@dsnpeer.test> NOTIFY=SUCCESS ORCPT=rfc822;dave@dsnpeer.test"]
    );
    no_report_about(&relais, &passed_on);
    assert_eq!(relais.mail("sender").len(), 2);
}

#[test]
fn notify_never_and_the_null_sender_get_no_bounce() {
    let peer = FaultPeer::local(refusing_nobody());
    let dns = dns(Zone::new().a("mx.fail.test", "127.0.0.1"));
    let dir = tempdir("relais-nobounce-");
    let relais = Relais::start(
        "relais",
        dir.path(),
        &Setup::sender(&dns).route("fail.test", &peer.hop("mx.fail.test")),
    );
    let mut c = relais.smtp();
    let never = c.send(
        "<sender@relais.test>",
        &["<nobody@fail.test> NOTIFY=NEVER"],
        &message("never tell me", "never"),
    );
    let null = c.send("<>", &["<nobody@fail.test>"], &message("a report", "null"));
    for id in [&never, &null] {
        relais.wait_log(&[id, "to=<nobody@fail.test>", "status=bounced"], 1);
        no_report_about(&relais, id);
    }
    // The same failure with the default NOTIFY is reported: the two above were not by choice.
    let told = c.send(
        "<sender@relais.test>",
        &["<nobody@fail.test>"],
        &message("tell me", "told"),
    );
    c.quit();
    let all = reports(&relais, 1);
    relais.wait_log(&[&format!("{told}: removed")], 1);
    assert_eq!(relais.mail("sender").len(), 1);
    let (_, d) = about(&all, &told);
    assert_eq!(
        field(d.recipient("nobody@fail.test"), "Action"),
        Some("failed")
    );
    // Nothing else was delivered anywhere.
    let boxes: Vec<String> = std::fs::read_dir(relais.data.join("mail"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(boxes, ["sender"]);
}

#[test]
fn null_mx_fails_at_once() {
    let dns = dns(Zone::new().mx("nullmx.test", 0, "."));
    let dir = tempdir("relais-nullmx-");
    let relais = Relais::start("relais", dir.path(), &Setup::sender(&dns));
    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<x@nullmx.test>"],
        &message("null mx", "nullmx"),
    );
    c.quit();
    let all = reports(&relais, 1);
    let (_, d) = about(&all, &id);
    let r = d.recipient("x@nullmx.test");
    assert_eq!(field(r, "Action"), Some("failed"), "{r:?}");
    assert_eq!(field(r, "Status"), Some("5.1.10"), "{r:?}");
    // Our own reason, not an SMTP reply: not of type `smtp` (RFC 3464 §2.3.6).
    assert!(
        field(r, "Diagnostic-Code")
            .is_some_and(|v| v.starts_with("X-Relais; ") && v.contains("null MX")),
        "{r:?}"
    );
    assert_eq!(field(r, "Remote-MTA"), None, "{r:?}");
    // Failed on the first attempt: no retry was scheduled.
    assert_eq!(relais.lines(&[&id, "status=deferred"]).len(), 0);
}
