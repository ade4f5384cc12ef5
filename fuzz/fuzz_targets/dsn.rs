//! Bounces that arrive (`relais explain --file`): any bytes read as a whole message, as a
//! delivery status body and as bounce text, never a panic; and a report relais writes itself
//! (the queue manager's DSN builder, on recipients, statuses, diagnostics and remote hosts the
//! fuzzer picks) reads back recipient by recipient as it was written.
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use relais_diag::explain::bounce;
use relais_proto::{Envelope, MailParams, Mailbox, ReversePath};
use relais_qmgr::dsn::{self, RecipientReport};

const ACTIONS: [&str; 5] = ["failed", "delayed", "delivered", "relayed", "expanded"];

#[derive(Debug, Arbitrary)]
struct Rcpt {
    local: String,
    action: u8,
    status: (u8, u8, u8),
    diagnostic: Option<(bool, String)>,
    remote: Option<String>,
}

/// Text as a report carries it: printable ASCII on one line, no space at either end.
fn one_line(s: &str) -> Option<String> {
    let ok = !s.is_empty() && s.bytes().all(|b| (b' '..=b'~').contains(&b)) && s.trim() == s;
    ok.then(|| s.to_string())
}

fn round_trip(rcpts: &[Rcpt]) {
    let mut reports = Vec::new();
    for r in rcpts.iter().take(20) {
        let Ok(mailbox) = Mailbox::parse(&format!("{}@example.com", r.local)) else {
            continue;
        };
        let (c, s, d) = r.status;
        let diagnostic = match &r.diagnostic {
            Some((said, text)) => match one_line(text) {
                Some(t) if *said => Some(format!("host mx.example.com[192.0.2.1] said: {t}")),
                Some(t) => Some(t),
                None => continue,
            },
            None => None,
        };
        let remote_mta = match &r.remote {
            Some(h) => match one_line(h).filter(|h| !h.contains('[')) {
                Some(h) => Some(format!("{h}[192.0.2.1]:25")),
                None => continue,
            },
            None => None,
        };
        reports.push(RecipientReport {
            recipient: mailbox.to_string(),
            original: None,
            action: ACTIONS[usize::from(r.action) % ACTIONS.len()],
            status: format!("{}.{}.{}", 2 + c % 4, s % 10, d % 10),
            diagnostic,
            remote_mta,
        });
    }
    if reports.is_empty() {
        return;
    }
    let envelope = Envelope {
        helo: "client.example.org".into(),
        esmtp: true,
        from: ReversePath::Mailbox(Mailbox::parse("sender@example.org").expect("a mailbox")),
        mail_params: MailParams::default(),
        recipients: Vec::new(),
        size: 0,
        chunked: false,
        bare_lf: false,
    };
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let built = dsn::build(&dsn::Report {
        hostname: "mx.relais.test",
        queue_id: "QID",
        envelope: &envelope,
        arrival: when,
        recipients: reports.clone(),
        original_header: b"Subject: hi\r\n\r\n",
        original_full: Some(b"Subject: hi\r\n\r\nbody\r\n"),
        now: when,
    });
    let read = bounce::read(&built).expect("relais's own report has a delivery status part");
    assert_eq!(read.reporting_mta.as_deref(), Some("mx.relais.test"));
    assert_eq!(read.recipients.len(), reports.len(), "{read:?}");
    for (want, got) in reports.iter().zip(&read.recipients) {
        assert_eq!(got.recipient, want.recipient);
        assert_eq!(got.action, want.action);
        assert_eq!(got.status, want.status);
        let diagnostic = want.diagnostic.as_ref().map(|d| match d.split_once(" said: ") {
            Some((_, reply)) => ("smtp".to_string(), reply.trim().to_string()),
            None => ("X-Relais".to_string(), d.trim().to_string()),
        });
        assert_eq!(got.diagnostic, diagnostic);
        let remote = want.remote_mta.as_ref().map(|m| m.split('[').next().unwrap_or(m).trim());
        assert_eq!(got.remote_mta.as_deref(), remote);
        let _ = bounce::explain_recipient(got);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(b) = bounce::read(data) {
        for r in &b.recipients {
            let _ = bounce::explain_recipient(r);
        }
    }
    let text = String::from_utf8_lossy(data);
    let b = bounce::read_fields(&text);
    for r in b.recipients.iter().take(50) {
        let _ = bounce::explain_recipient(r);
    }
    let _ = bounce::quoted_replies(&text);
    if let Ok(rcpts) = Vec::<Rcpt>::arbitrary_take_rest(Unstructured::new(data)) {
        round_trip(&rcpts);
    }
});
