//! Through a smarthost that requires AUTH (issue 16, item 4): a second `relais serve` with a
//! submission listener (STARTTLS, then AUTH) and a submissions one (TLS from the first byte),
//! its certificate from a test CA that the sender trusts for `tls = "verify"`. Credentials are
//! per next hop; wrong ones bounce with the smarthost's own words.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::common::certs::Certs;
use crate::common::users::password_hash;
use crate::support::{
    Daemon, Relais, Setup, WAIT, Zone, dns, message, serve_command, tempdir, wait_files,
};

/// The smarthost: mail for ok587.test, ok465.test and bad.test into its Maildirs, from
/// `relay-user` only.
fn smarthost(dir: &Path, certs: &Certs) -> Daemon {
    let config = dir.join("smarthost.toml");
    fs::write(
        &config,
        format!(
            "hostname = \"smarthost.test\"\ndata_dir = {:?}\n\
             local_domains = [\"ok587.test\", \"ok465.test\", \"bad.test\"]\nworkers = 1\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\nrole = \"submission\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\nrole = \"submissions\"\n\
             [tls]\ncert = {:?}\nkey = {:?}\n\
             [auth]\nfailure_delay = 0\n\
             users = [{{ name = \"relay-user\", hash = {:?} }}]\n",
            dir.join("data").display().to_string(),
            certs.chain.display().to_string(),
            certs.key.display().to_string(),
            password_hash("relay-user", "s3cret"),
        ),
    )
    .unwrap();
    Daemon::start(
        "smarthost",
        serve_command(&config, dir),
        2,
        Duration::from_secs(20),
    )
}

#[test]
fn a_smarthost_requiring_auth_on_587_and_465_gets_the_mail() {
    let certs = Certs::signed_by("Smarthost Test CA", "smarthost.test", &[]);
    let work = tempdir("relais-smarthost-");
    let host = smarthost(work.path(), &certs);
    let (p587, p465) = (host.port("submission"), host.port("submissions"));
    fs::write(work.path().join("good.pw"), "s3cret\n").unwrap();
    fs::write(work.path().join("bad.pw"), "guessed\n").unwrap();
    let pw = |f: &str| work.path().join(f).display().to_string();

    let dns = dns(Zone::new()
        .a("smarthost.test", "127.0.0.1")
        .a("alias.smarthost.test", "127.0.0.1"));
    let dir = tempdir("relais-sender-");
    let mut setup = Setup::sender(&dns)
        .route("ok587.test", &format!("[smarthost.test]:{p587}"))
        .route("ok465.test", &format!("[smarthost.test]:{p465}"))
        .route("bad.test", &format!("[alias.smarthost.test]:{p587}"));
    setup.delivery.extend([
        format!("tls_ca_file = {:?}", certs.ca.display().to_string()),
        format!("tls_policy = {{ \"[smarthost.test]:{p587}\" = \"verify\" }}"),
        format!(
            "[delivery.hop.\"[smarthost.test]:{p587}\"]\nuser = \"relay-user\"\n\
             password_file = {:?}",
            pw("good.pw")
        ),
        format!(
            "[delivery.hop.\"[smarthost.test]:{p465}\"]\nuser = \"relay-user\"\n\
             password_file = {:?}\ntls_on_connect = true",
            pw("good.pw")
        ),
        format!(
            "[delivery.hop.\"[alias.smarthost.test]:{p587}\"]\nuser = \"relay-user\"\n\
             password_file = {:?}",
            pw("bad.pw")
        ),
    ]);
    let relais = Relais::start("relais", dir.path(), &setup);
    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<carol@ok587.test>", "<dave@ok465.test>", "<erin@bad.test>"],
        &message("via the smarthost", "smarthost"),
    );
    c.quit();

    let data = work.path().join("data/mail");
    for who in ["carol", "dave"] {
        let got = wait_files(&data.join(who).join("new"), 1, WAIT);
        let text = fs::read_to_string(&got[0]).unwrap();
        assert!(text.contains("Body of smarthost."), "{text}");
        // The smarthost says who authenticated, and that it came over TLS.
        assert!(text.contains("ESMTPSA"), "{text}");
    }
    relais.wait_log(&[&id, "to=<carol@ok587.test>", "status=sent"], 1);
    relais.wait_log(&[&id, "to=<dave@ok465.test>", "status=sent"], 1);

    // Wrong credentials: bounced at once, with the smarthost's reply in the text.
    let bounced = relais.wait_log(&[&id, "to=<erin@bad.test>", "status=bounced"], 1);
    assert!(
        bounced[0].contains(&format!(
            "SASL authentication failed; server alias.smarthost.test[127.0.0.1]:{p587} said: 535 5.7.8"
        )),
        "{bounced:?}"
    );
    let report = relais.wait_mail("sender", 1);
    let text = String::from_utf8_lossy(&report[0]);
    assert!(text.contains("SASL authentication failed"), "{text}");
    assert!(!data.join("erin").exists());
}
