//! DKIM signing of what our users send, checked by dkimpy: keys made by `relais dkim keygen`
//! (RSA and Ed25519), mail from an authenticated submission and from `relais sendmail`
//! signed with the key of its `From:` domain, a missing `Date` and `Message-ID` added (and
//! signed).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::process::{Run, run};
use crate::common::wait::tempdir;
use crate::common::{Dns, RELAIS, Zone};
use crate::support::{Client, PASSWORD, Server, Setup, USER};
use crate::zone::{dkim_tool, header, start_dns};

/// `relais ARGS` in `dir`.
fn relais(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(RELAIS);
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1");
    run(cmd, stdin, Duration::from_secs(60))
}

/// `relais dkim keygen`: the key file and the TXT record it prints.
fn keygen(dir: &Path, domain: &str, selector: &str, algorithm: &str) -> (String, String) {
    let out = relais(
        dir,
        &[
            "dkim",
            "keygen",
            "--domain",
            domain,
            "--selector",
            selector,
            "--algorithm",
            algorithm,
        ],
        None,
    )
    .expect(0);
    let record_line = out
        .stdout
        .lines()
        .find(|l| l.contains("._domainkey."))
        .expect("a TXT record line")
        .to_string();
    // `sel._domainkey.d. IN TXT "v=DKIM1; …"` or `( "…" "…" )`
    let value: String = record_line
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat();
    let key = dir.join(format!("{selector}.{domain}.pem"));
    assert!(
        out.stdout
            .contains(&format!("key = {:?}", key.display().to_string())),
        "{out}"
    );
    (key.display().to_string(), value)
}

struct Signing {
    dir: tempfile::TempDir,
    dns: Dns,
    server: Server,
}

/// A server signing for local.test (RSA) and ed.test (Ed25519), keys from `relais dkim
/// keygen`, published in the fixture DNS.
fn signing_server() -> Signing {
    let dir = tempdir("relais-signing-");
    let (rsa_key, rsa_record) = keygen(dir.path(), "local.test", "s1", "rsa");
    let (ed_key, ed_record) = keygen(dir.path(), "ed.test", "s2", "ed25519");
    let dns = start_dns(
        Zone::new()
            .txt("s1._domainkey.local.test", &rsa_record)
            .txt("s2._domainkey.ed.test", &ed_record),
    );
    let server = Server::start(
        Setup::new(&["mx"])
            .without_tls()
            .auth("allow_plaintext = true")
            .top(&format!("resolver = \"{}\"", dns.addr()))
            .top(&format!(
                "[[dkim]]\ndomain = \"local.test\"\nselector = \"s1\"\nkey = {rsa_key:?}\n\
                 [[dkim]]\ndomain = \"ed.test\"\nselector = \"s2\"\nkey = {ed_key:?}"
            )),
    );
    Signing { dir, dns, server }
}

/// dkimpy's verdict on a delivered message.
fn dkimpy_verifies(s: &Signing, mail: &str) -> bool {
    let file = s.dir.path().join("check.eml");
    fs::write(&file, mail).unwrap();
    let port = s.dns.addr().port().to_string();
    dkim_tool(&["verify", file.to_str().unwrap(), &port])
        .status
        .success()
}

#[test]
fn keygen_writes_a_private_key_for_our_eyes_only_and_never_overwrites() {
    let dir = tempdir("relais-keygen-");
    let (key, record) = keygen(dir.path(), "example.org", "2026", "ed25519");
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(record.starts_with("v=DKIM1; k=ed25519; p="), "{record}");
    assert!(
        fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let again = relais(
        dir.path(),
        &[
            "dkim",
            "keygen",
            "--domain",
            "example.org",
            "--selector",
            "2026",
        ],
        None,
    );
    again.expect_code(2);
    assert!(again.stderr.contains("cannot write"), "{again}");
    let bad = relais(
        dir.path(),
        &[
            "dkim",
            "keygen",
            "--domain",
            "not a domain",
            "--selector",
            "s",
        ],
        None,
    );
    bad.expect_code(4);
}

#[test]
fn authenticated_submissions_are_signed_with_their_from_domain_key() {
    let s = signing_server();
    // (From: domain, recipient, selector expected)
    for (from, rcpt, d, sel) in [
        ("alice@local.test", "bob", "local.test", "s1"),
        ("alice@ed.test", "carol", "ed.test", "s2"),
        ("alice@sub.local.test", "dave", "local.test", "s1"),
    ] {
        let mut c = Client::ready(s.server.port("mx"), None);
        assert!(c.auth_plain(USER, PASSWORD).is("235 "));
        let r = c.send_mail(from, &[&format!("{rcpt}@local.test")], "signed");
        assert!(r.is("250 2.0.0"), "{r}");
        let mail = s.server.wait_mail(rcpt, 1).remove(0);
        let sig = header(&mail, "DKIM-Signature").expect("a DKIM-Signature");
        assert!(sig.contains(&format!("d={d};")), "{sig}");
        assert!(sig.contains(&format!("s={sel};")), "{sig}");
        assert!(sig.contains("c=relaxed/relaxed"), "{sig}");
        // the message had neither: both added, and signed
        let date = header(&mail, "Date").expect("a Date added");
        assert!(date.contains(" +0000"), "{date}");
        let id = header(&mail, "Message-ID").expect("a Message-ID added");
        assert!(id.ends_with("@mx.local.test>"), "{id}");
        assert!(
            dkimpy_verifies(&s, &mail),
            "dkimpy does not verify:\n{mail}"
        );
    }
    s.server.assert_logged("DKIM-signed d=local.test s=s1");
    s.server.assert_logged("DKIM-signed d=ed.test s=s2");

    // a From: domain without a key: not signed, and the log says why
    let mut c = Client::ready(s.server.port("mx"), None);
    assert!(c.auth_plain(USER, PASSWORD).is("235 "));
    assert!(
        c.send_mail("alice@elsewhere.test", &["erin@local.test"], "unsigned")
            .is("250 ")
    );
    let mail = s.server.wait_mail("erin", 1).remove(0);
    assert_eq!(header(&mail, "DKIM-Signature"), None);
    s.server
        .assert_logged("not DKIM-signed: no DKIM key for the From: domain \"elsewhere.test\"");

    // strangers' mail is not ours to sign
    let mut c = Client::ready(s.server.port("mx"), None);
    assert!(
        c.send_mail("alice@local.test", &["frank@local.test"], "stranger")
            .is("250 ")
    );
    let mail = s.server.wait_mail("frank", 1).remove(0);
    assert_eq!(header(&mail, "DKIM-Signature"), None);
    assert_eq!(header(&mail, "Message-ID"), None, "nor to complete");
}

#[test]
fn sendmail_submissions_are_signed() {
    let s = signing_server();
    let config = s.server.config.display().to_string();
    let out = relais(
        s.dir.path(),
        &["sendmail", "-C", &config, "-f", "alice@local.test", "bob@local.test"],
        Some(b"From: Alice <alice@local.test>\nTo: bob@local.test\nSubject: from cron\nDate: Sat, 05 Dec 2026 10:00:00 +0000\n\nA line.\n"),
    );
    out.expect_code(0);
    let mail = s.server.wait_mail("bob", 1).remove(0);
    let sig = header(&mail, "DKIM-Signature").expect("a DKIM-Signature");
    assert!(sig.contains("d=local.test;"), "{sig}");
    assert_eq!(
        header(&mail, "Date").as_deref(),
        Some("Sat, 05 Dec 2026 10:00:00 +0000"),
        "a Date it has is kept"
    );
    assert!(header(&mail, "Message-ID").is_some());
    assert!(
        dkimpy_verifies(&s, &mail),
        "dkimpy does not verify:\n{mail}"
    );
}

#[test]
fn dns_dkim_shows_the_published_key_and_whether_it_is_ours() {
    let dir = tempdir("relais-dns-dkim-");
    let (rsa_key, rsa_record) = keygen(dir.path(), "example.test", "s1", "rsa");
    let (ed_key, ed_record) = keygen(dir.path(), "example.test", "s2", "ed25519");
    let dns = start_dns(
        Zone::new()
            .txt("s1._domainkey.example.test", &rsa_record)
            .txt("s2._domainkey.example.test", &ed_record)
            .txt("old._domainkey.example.test", "v=DKIM1; k=rsa; p="),
    );
    let resolver = dns.addr().to_string();
    let dkim = |name: &str, key: Option<&str>| {
        let mut args = vec!["dns", "dkim", name, "--resolver", &resolver];
        if let Some(k) = key {
            args.extend(["--key", k]);
        }
        relais(dir.path(), &args, None)
    };
    let out = dkim("s1._domainkey.example.test", Some(&rsa_key)).expect(0);
    assert!(out.stdout.contains("k  rsa"), "{out}");
    assert!(
        out.stdout
            .contains("usable: verifiers can check signatures"),
        "{out}"
    );
    assert!(out.stdout.contains("matches the published key"), "{out}");
    dkim("s2._domainkey.example.test", Some(&ed_key))
        .expect(0)
        .shows(&["Ed25519 key (RFC 8463)", "matches the published key"]);
    dkim("s2._domainkey.example.test", Some(&rsa_key))
        .expect(1)
        .shows(&["DOES NOT MATCH the published key"]);
    dkim("old._domainkey.example.test", None)
        .expect(1)
        .shows(&["UNUSABLE: the key is revoked"]);
    dkim("gone._domainkey.example.test", None)
        .expect(1)
        .shows(&["does not exist (NXDOMAIN)"]);
    let bad = dkim("example.test", None);
    bad.expect_code(4);
    assert!(bad.stderr.contains("SELECTOR._domainkey.DOMAIN"), "{bad}");
}

/// An SMTP server of dkimpy's side (aiosmtpd) keeping what it receives in a directory.
struct Sink {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Sink {
    fn start(dir: &Path) -> Sink {
        use std::io::BufRead;
        fs::create_dir_all(dir).unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sender_auth/py/dkim_tool.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["sink", dir.to_str().unwrap()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the aiosmtpd sink");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the sink's port");
        Sink {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// The first message received and its envelope sender.
    fn wait_first(&self) -> (String, String) {
        crate::common::wait::wait_until("a message at the sink", Duration::from_secs(15), || {
            let mail = fs::read_to_string(self.dir.join("0.eml")).ok()?;
            let from = fs::read_to_string(self.dir.join("0.from")).ok()?;
            Some((from, mail))
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn forwarded_mail_is_arc_sealed_and_dkimpy_verifies_the_chain() {
    let dir = tempdir("relais-arc-seal-");
    let (key, record) = keygen(dir.path(), "local.test", "s1", "rsa");
    // the original message is signed by its author's domain, with dkimpy
    let author_key = dir.path().join("author.key");
    let out = dkim_tool(&["keygen", "rsa", author_key.to_str().unwrap()]);
    let author_public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let dns = start_dns(
        Zone::new()
            .txt("s1._domainkey.local.test", &record)
            .txt(
                "rsa._domainkey.author.test",
                &format!("v=DKIM1; k=rsa; p={author_public}"),
            )
            .txt("author.test", "v=spf1 ip4:127.0.0.1 -all")
            .txt("_dmarc.author.test", "v=DMARC1; p=reject"),
    );
    let sink = Sink::start(&dir.path().join("sink"));
    let aliases = dir.path().join("aliases");
    fs::write(&aliases, "list: friend@remote.test\n").unwrap();
    let server = Server::start(
        Setup::new(&["mx"])
            .without_tls()
            .top(&format!("resolver = \"{}\"", dns.addr()))
            .top("[policy]\nspf = \"tag\"\ndkim = \"tag\"\ndmarc = \"tag\"\narc = \"tag\"")
            .top(&format!(
                "[[dkim]]\ndomain = \"local.test\"\nselector = \"s1\"\nkey = {key:?}"
            ))
            .top(&format!(
                "[local]\naliases = {:?}",
                aliases.display().to_string()
            ))
            .top(&format!(
                "[delivery]\nroutes = {{ \"remote.test\" = \"[127.0.0.1]:{}\" }}",
                sink.port
            )),
    );
    let sig = format!(
        "author.test:rsa:{}:rsa:relaxed/relaxed",
        author_key.display()
    );
    let port = server.port("mx").to_string();
    let out = dkim_tool(&[
        "send",
        &port,
        "alice@author.test",
        "list@local.test",
        "--sign",
        &sig,
    ]);
    let reply = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let (from, mail) = sink.wait_first();
    // the sender is rewritten (SRS) and the set sealed by local.test
    assert!(from.starts_with("SRS0="), "{from}");
    let seal = header(&mail, "ARC-Seal").expect("an ARC-Seal");
    assert!(
        seal.contains("i=1;") && seal.contains("cv=none") && seal.contains("d=local.test;"),
        "{seal}"
    );
    let aar = header(&mail, "ARC-Authentication-Results").expect("an AAR");
    assert!(
        aar.contains("dkim=pass") && aar.contains("dmarc=pass"),
        "{aar}"
    );
    server.assert_logged("ARC-sealed d=local.test");
    // dkimpy verifies the chain as it reached the next hop
    let file = dir.path().join("forwarded.eml");
    fs::write(&file, &mail).unwrap();
    let dns_port = dns.addr().port().to_string();
    let out = dkim_tool(&["arc-verify", file.to_str().unwrap(), &dns_port]);
    assert!(
        out.status.success(),
        "dkimpy: {}\n{mail}",
        String::from_utf8_lossy(&out.stdout)
    );
    // and the author's DKIM signature still verifies too
    let out = dkim_tool(&["verify", file.to_str().unwrap(), &dns_port]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
