//! DKIM, ARC and DMARC of received messages through `relais serve`, with messages signed and
//! sealed by Python's dkimpy and sent with smtplib.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::wait::tempdir;
use crate::common::{Dns, Zone};
use crate::support::Server;
use crate::zone::{dkim_tool, header, headers, server, start_dns};

/// A key pair made by dkimpy's side: the private key file and the `p=` value.
struct Key {
    file: PathBuf,
    public: String,
    kind: &'static str,
}

impl Key {
    fn new(dir: &Path, kind: &'static str) -> Key {
        let file = dir.join(format!("{kind}.key"));
        let out = dkim_tool(&["keygen", kind, file.to_str().unwrap()]);
        Key {
            file,
            public: String::from_utf8(out.stdout).unwrap().trim().to_string(),
            kind,
        }
    }

    /// The TXT record to publish.
    fn record(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.kind, self.public)
    }

    /// `--sign` of dkim_tool.py.
    fn sign(&self, domain: &str, selector: &str, canon: &str) -> String {
        format!(
            "{domain}:{selector}:{}:{}:{canon}",
            self.file.display(),
            self.kind
        )
    }
}

/// Two keys and a zone publishing them for `signed.test` (selectors `rsa` and `ed`), with
/// SPF and DMARC records for the DMARC cases.
struct Fixture {
    _dir: tempfile::TempDir,
    rsa: Key,
    ed: Key,
    dns: Dns,
}

fn fixture() -> Fixture {
    let dir = tempdir("relais-dkim-");
    let rsa = Key::new(dir.path(), "rsa");
    let ed = Key::new(dir.path(), "ed25519");
    let zone = Zone::new()
        .txt("rsa._domainkey.signed.test", &rsa.record())
        .txt("ed._domainkey.signed.test", &ed.record())
        .txt("signed.test", "v=spf1 -all")
        .txt("rsa._domainkey.reject.test", &rsa.record())
        .txt("reject.test", "v=spf1 -all")
        .txt("_dmarc.reject.test", "v=DMARC1; p=reject")
        .txt("quarantine.test", "v=spf1 -all")
        .txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
        .txt("aligned.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc.aligned.test", "v=DMARC1; p=reject")
        .txt("arc._domainkey.forwarder.test", &rsa.record());
    Fixture {
        dns: start_dns(zone),
        _dir: dir,
        rsa,
        ed,
    }
}

/// Sends a message with dkim_tool.py: the final reply, `CODE TEXT`.
fn send(server: &Server, from: &str, to: &str, options: &[&str]) -> String {
    let port = server.port("mx").to_string();
    let mut args = vec!["send", &port, from, to];
    args.extend_from_slice(options);
    let out = dkim_tool(&args);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The `Authentication-Results` header of ours in a delivered message.
fn our_results(message: &str) -> String {
    let ours: Vec<String> = headers(message, "Authentication-Results")
        .into_iter()
        .filter(|h| h.starts_with("mx.local.test;"))
        .collect();
    assert_eq!(ours.len(), 1, "{message}");
    ours[0].clone()
}

#[test]
fn dkimpy_signatures_verify_rsa_and_ed25519_in_both_canonicalizations() {
    let f = fixture();
    let s = server(&f.dns, &["dkim = \"tag\""]);
    // (recipient, signing options, what our Authentication-Results must say)
    let rsa_relaxed = f.rsa.sign("signed.test", "rsa", "relaxed/relaxed");
    let rsa_simple = f.rsa.sign("signed.test", "rsa", "simple/simple");
    let ed_relaxed = f.ed.sign("signed.test", "ed", "relaxed/simple");
    let ed_simple = f.ed.sign("signed.test", "ed", "simple/relaxed");
    let gone = f.rsa.sign("signed.test", "gone", "relaxed/relaxed");
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "c1",
            vec!["--sign", &rsa_relaxed],
            vec!["dkim=pass header.i=@signed.test header.s=rsa"],
        ),
        (
            "c2",
            vec!["--sign", &rsa_simple],
            vec!["dkim=pass header.i=@signed.test header.s=rsa"],
        ),
        (
            "c3",
            vec!["--sign", &ed_relaxed],
            vec!["dkim=pass header.i=@signed.test header.s=ed"],
        ),
        (
            "c4",
            vec!["--sign", &ed_simple],
            vec!["dkim=pass header.i=@signed.test header.s=ed"],
        ),
        (
            "c5",
            vec!["--sign", &rsa_relaxed, "--sign", &ed_relaxed],
            vec![
                "dkim=pass header.i=@signed.test header.s=rsa",
                "dkim=pass header.i=@signed.test header.s=ed",
            ],
        ),
        (
            "c6",
            vec!["--sign", &rsa_relaxed, "--tamper"],
            vec!["dkim=fail", "header.s=rsa"],
        ),
        (
            "c7",
            vec!["--sign", &gone],
            vec!["dkim=permerror", "header.s=gone"],
        ),
        ("c8", vec![], vec!["dkim=none"]),
    ];
    for (rcpt, options, expected) in &cases {
        let to = format!("{rcpt}@local.test");
        let reply = send(&s, "alice@signed.test", &to, options);
        assert!(reply.starts_with("250 2.0.0"), "{rcpt}: {reply}");
        let mail = s.wait_mail(rcpt, 1).remove(0);
        let ar = our_results(&mail);
        for e in expected {
            assert!(ar.contains(e), "{rcpt}: {ar} lacks {e:?}");
        }
        // the content reached the mailbox as signed (the tampered one as tampered)
        assert!(mail.contains("Line 0 of a message"), "{mail}");
    }
    s.assert_logged("dkim=pass header.i=@signed.test header.s=rsa");
}

#[test]
fn dmarc_enforce_refuses_reject_files_quarantine_and_passes_aligned_mail() {
    let f = fixture();
    let s = server(
        &f.dns,
        &["spf = \"tag\"", "dkim = \"tag\"", "dmarc = \"enforce\""],
    );

    let reply = send(&s, "alice@reject.test", "bob@local.test", &[]);
    assert_eq!(
        reply,
        "550 5.7.1 Message rejected: DMARC policy of reject.test (p=reject): the message fails SPF and DKIM alignment with reject.test"
    );
    s.assert_logged("reject: END-OF-MESSAGE from");

    // signed by the From: domain: DKIM aligns, DMARC passes although SPF fails
    let sig = f.rsa.sign("reject.test", "rsa", "relaxed/relaxed");
    let reply = send(&s, "alice@reject.test", "bob@local.test", &["--sign", &sig]);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let mail = s.wait_mail("bob", 1).remove(0);
    let ar = our_results(&mail);
    assert!(
        ar.contains("dmarc=pass header.from=reject.test policy.dmarc=reject"),
        "{ar}"
    );
    assert!(ar.contains("spf=fail"), "{ar}");

    // SPF passes for the From: domain: aligned
    let reply = send(&s, "alice@aligned.test", "carol@local.test", &[]);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let ar = our_results(&s.wait_mail("carol", 1).remove(0));
    assert!(ar.contains("dmarc=pass header.from=aligned.test"), "{ar}");

    // p=quarantine: accepted, filed into the Maildir++ folder .Junk
    let reply = send(&s, "alice@quarantine.test", "dave@local.test", &[]);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let junk = s.data_dir.join("mail/dave/.Junk/new");
    let files = crate::common::wait::wait_until(
        "a message in .Junk",
        std::time::Duration::from_secs(10),
        || {
            let files: Vec<PathBuf> = fs::read_dir(&junk)
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            (!files.is_empty()).then_some(files)
        },
    );
    let mail = fs::read_to_string(&files[0]).unwrap();
    assert!(our_results(&mail).contains("dmarc=fail"), "{mail}");
    assert!(
        our_results(&mail).contains("policy.dmarc=quarantine"),
        "{mail}"
    );
    assert_eq!(s.mail_count("dave"), 0, "the inbox stays empty");
    s.assert_logged("quarantine");
}

#[test]
fn dmarc_tag_refuses_nothing() {
    let f = fixture();
    let s = server(&f.dns, &["dmarc = \"tag\""]);
    let reply = send(&s, "alice@reject.test", "bob@local.test", &[]);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let ar = our_results(&s.wait_mail("bob", 1).remove(0));
    assert!(ar.contains("dmarc=fail"), "{ar}");
    assert!(ar.contains("policy.dmarc=reject"), "{ar}");
}

#[test]
fn arc_chain_sealed_by_dkimpy_verifies() {
    let f = fixture();
    let s = server(&f.dns, &["arc = \"tag\"", "dkim = \"tag\""]);
    let sig = f.rsa.sign("signed.test", "rsa", "relaxed/relaxed");
    let seal = format!("forwarder.test:arc:{}:forwarder.test", f.rsa.file.display());
    let reply = send(
        &s,
        "alice@signed.test",
        "bob@local.test",
        &["--sign", &sig, "--arc", &seal],
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let mail = s.wait_mail("bob", 1).remove(0);
    let ar = our_results(&mail);
    assert!(ar.contains("arc=pass"), "{ar}");
    assert!(ar.contains("dkim=pass"), "{ar}");
    // and dkimpy agrees on what reached the mailbox
    let file = s.data_dir.join("delivered.eml");
    fs::write(&file, &mail).unwrap();
    let port = f.dns.addr().port().to_string();
    let out = dkim_tool(&["arc-verify", file.to_str().unwrap(), &port]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn forged_results_claiming_our_name_are_removed() {
    let f = fixture();
    let s = server(&f.dns, &["dkim = \"tag\""]);
    let reply = send(
        &s,
        "alice@signed.test",
        "bob@local.test",
        &[
            "--extra",
            "Authentication-Results: mx.local.test; dkim=pass header.d=bank.test",
            "--extra",
            "Authentication-Results: other.test; spf=pass smtp.mailfrom=x@other.test",
            "--extra",
            "authentication-results: (forged) MX.LOCAL.TEST;\r\n\tdmarc=pass",
        ],
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let mail = s.wait_mail("bob", 1).remove(0);
    let all = headers(&mail, "Authentication-Results");
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].starts_with("mx.local.test; dkim=none"), "{all:?}");
    assert!(all[1].starts_with("other.test;"), "{all:?}");
    assert!(!mail.contains("bank.test"), "{mail}");
}

#[test]
fn a_message_over_verify_max_size_is_recorded_neutral_and_kept_whole() {
    let f = fixture();
    let s = server(&f.dns, &["dkim = \"tag\"", "verify_max_size = 4000"]);
    let sig = f.rsa.sign("signed.test", "rsa", "relaxed/relaxed");
    let reply = send(
        &s,
        "alice@signed.test",
        "bob@local.test",
        &["--sign", &sig, "--body-lines", "500"],
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let mail = s.wait_mail("bob", 1).remove(0);
    let ar = our_results(&mail);
    assert!(
        ar.contains("dkim=neutral reason=\"message too large to verify\""),
        "{ar}"
    );
    assert!(mail.contains("Line 499 of a message"));
    assert!(header(&mail, "DKIM-Signature").is_some());
}
