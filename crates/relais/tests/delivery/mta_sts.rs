//! MTA-STS (RFC 8461), TLS-RPT (RFC 8460) and `verify` with a match list (issue 16, item 3):
//! policies fetched over HTTPS from a Python server on 127.0.0.1 with a test CA's certificate
//! (the policy hosts `mta-sts.DOMAIN` resolve to it through the fixture DNS), MX hosts on port
//! 25 of their own 127.0.0.x: a relais peer with a certificate for `mx.good.test`, and a
//! scripted peer without TLS.
//!
//! - `enforce`, an unlisted MX first: it is skipped, the listed one gets the mail over TLS;
//! - `enforce`, a listed MX whose certificate is for another name: deferred;
//! - `testing`, the same MX: delivered, logged, and counted as a failure in the report;
//! - `verify` with `tls_match`: a certificate for a listed name is taken;
//! - the day's TLS-RPT report of each policy domain in `tls_rpt_dir`.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::certs::Certs;
use crate::common::sts::{https, publish};
use crate::support::{
    FaultPeer, Relais, Script, Setup, WAIT, Zone, dns, loopback_25, message, tempdir, tls_peer,
    wait_files,
};

/// The report of `domain` in `dir`, once there is one.
fn report(dir: &Path, domain: &str) -> Value {
    let needle = format!("!{domain}!");
    let files = crate::support::wait_until(&format!("a TLS report of {domain}"), WAIT, || {
        let found: Vec<_> = crate::support::list_files(dir)
            .into_iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().contains(&needle))
            .collect();
        (!found.is_empty()).then_some(found)
    });
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("relais.test!{domain}!")) && name.ends_with(".json"),
        "{name}"
    );
    serde_json::from_slice(&fs::read(&files[0]).unwrap()).unwrap()
}

#[test]
fn policies_are_fetched_enforced_and_reported() {
    let certs = Certs::signed_for(
        "MTA-STS Test CA",
        &[
            "mx.good.test",
            "mta-sts.enforce.test",
            "mta-sts.enforce2.test",
            "mta-sts.testing.test",
            "mta-sts.broken.test",
        ],
    );
    let root = tempdir("relais-sts-www-");
    publish(
        root.path(),
        "enforce.test",
        "version: STSv1\r\nmode: enforce\r\nmx: mx.good.test\r\nmax_age: 86400\r\n",
    );
    publish(
        root.path(),
        "enforce2.test",
        "version: STSv1\nmode: enforce\nmx: *.wrongname.test\nmax_age: 86400\n",
    );
    publish(
        root.path(),
        "testing.test",
        "version: STSv1\nmode: testing\nmx: mx1.wrongname.test\nmax_age: 86400\n",
    );
    let server = https(root.path(), &certs);
    let (good, bad) = (loopback_25(), loopback_25());
    let work = tempdir("relais-sts-peer-");
    let domains = [
        "enforce.test",
        "enforce2.test",
        "testing.test",
        "match.test",
        "broken.test",
    ];
    let peer = tls_peer(work.path(), &format!("{good}:25"), &domains, &certs);
    let plain = FaultPeer::start((bad, 25).into(), Script::default());
    let (good, bad) = (good.to_string(), bad.to_string());
    let dns = dns(Zone::new()
        .mx("enforce.test", 10, "mx.bad.test")
        .mx("enforce.test", 20, "mx.good.test")
        .mx("enforce2.test", 10, "mx1.wrongname.test")
        .mx("testing.test", 10, "mx1.wrongname.test")
        .mx("match.test", 10, "mx1.wrongname.test")
        .mx("broken.test", 10, "mx.good.test")
        .txt("_mta-sts.broken.test", "v=STSv1; id=1")
        .a("mta-sts.broken.test", "127.0.0.1")
        .a("mx.bad.test", &bad)
        .a("mx.good.test", &good)
        .a("mx1.wrongname.test", &good)
        .txt("_mta-sts.enforce.test", "v=STSv1; id=20261205T1")
        .txt("_mta-sts.enforce2.test", "v=STSv1; id=1")
        .txt("_mta-sts.testing.test", "v=STSv1; id=1")
        .a("mta-sts.enforce.test", "127.0.0.1")
        .a("mta-sts.enforce2.test", "127.0.0.1")
        .a("mta-sts.testing.test", "127.0.0.1"));
    let dir = tempdir("relais-sts-");
    let reports = dir.path().join("tls-rpt");
    let mut setup = Setup::sender(&dns);
    setup.delivery.extend([
        format!("tls_ca_file = {:?}", certs.ca.display().to_string()),
        format!("tls_rpt_dir = {:?}", reports.display().to_string()),
        "tls_policy = { \"match.test\" = \"verify\" }".to_string(),
        "tls_match = { \"match.test\" = [\"mx.good.test\"] }".to_string(),
        "[delivery.mta_sts]".to_string(),
        "enabled = true".to_string(),
        format!("https_port = {}", server.addr().port()),
    ]);
    let relais = Relais::start("relais", dir.path(), &setup);
    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &[
            "<a@enforce.test>",
            "<b@enforce2.test>",
            "<c@testing.test>",
            "<d@match.test>",
            "<f@broken.test>",
        ],
        &message("mta-sts", "mta-sts"),
    );
    c.quit();

    // enforce: mx.bad.test is not in the policy and is never tried; mx.good.test is, over TLS.
    relais.wait_log(
        &[
            &id,
            "to=<a@enforce.test>",
            "status=sent",
            &format!("relay=mx.good.test[{good}]:25"),
        ],
        1,
    );
    assert!(
        relais.log().contains("does not list this MX host"),
        "{}",
        relais.log()
    );
    assert_eq!(plain.connections(), 0, "the unlisted MX host was tried");
    let got = wait_files(&work.path().join("data/mail/a/new"), 1, WAIT);
    let text = fs::read_to_string(&got[0]).unwrap();
    assert!(text.contains("with ESMTPS"), "{text}");
    // enforce, a listed host with a certificate for another name: deferred, not sent.
    let deferred = relais.wait_log(&[&id, "to=<b@enforce2.test>", "status=deferred"], 1);
    assert!(deferred[0].contains("certificate"), "{deferred:?}");
    assert!(!work.path().join("data/mail/b").exists());
    // testing: the same host takes it, and the log says what enforce would have refused.
    relais.wait_log(&[&id, "to=<c@testing.test>", "status=sent"], 1);
    relais.wait_log(
        &[
            "testing.test: MTA-STS policy in testing mode",
            "mx1.wrongname.test",
        ],
        1,
    );
    // verify with a match list: the certificate of mx.good.test does for match.test.
    relais.wait_log(&[&id, "to=<d@match.test>", "status=sent"], 1);
    // broken.test has a record but no policy file: no policy, delivered as usual.
    relais.wait_log(&[&id, "to=<f@broken.test>", "status=sent"], 1);
    // The policies were fetched from their hosts.
    for d in ["enforce.test", "enforce2.test", "testing.test"] {
        assert!(
            server
                .log()
                .contains(&format!("GET mta-sts.{d} /.well-known/mta-sts.txt 200")),
            "{}",
            server.log()
        );
    }

    // TLS-RPT: each policy domain's day so far.
    let r = report(&reports, "testing.test");
    let p = &r["policies"][0];
    assert_eq!(p["policy"]["policy-type"], "sts", "{r}");
    assert_eq!(p["policy"]["policy-string"][1], "mode: testing", "{r}");
    assert_eq!(p["summary"]["total-failure-session-count"], 1, "{r}");
    assert_eq!(
        p["failure-details"][0]["result-type"], "certificate-host-mismatch",
        "{r}"
    );
    assert_eq!(
        p["failure-details"][0]["receiving-mx-hostname"], "mx1.wrongname.test",
        "{r}"
    );
    let r = report(&reports, "enforce.test");
    let p = &r["policies"][0];
    assert_eq!(p["summary"]["total-successful-session-count"], 1, "{r}");
    assert_eq!(
        p["failure-details"][0]["receiving-mx-hostname"], "mx.bad.test",
        "{r}"
    );
    // The fetch that failed is reported, and the session that followed.
    let r = report(&reports, "broken.test");
    let p = &r["policies"][0];
    assert_eq!(p["policy"]["policy-type"], "no-policy-found", "{r}");
    assert_eq!(
        p["failure-details"][0]["result-type"], "sts-policy-fetch-error",
        "{r}"
    );
    assert_eq!(p["summary"]["total-successful-session-count"], 1, "{r}");
    let r = report(&reports, "enforce2.test");
    assert_eq!(
        r["policies"][0]["failure-details"][0]["result-type"], "certificate-host-mismatch",
        "{r}"
    );

    // The policies outlive a restart: with the policy server gone, enforce still holds.
    assert!(dir.path().join("data/mta-sts/enforce.test").is_file());
    drop(server);
    drop(relais);
    let relais = Relais::start("relais again", dir.path(), &setup);
    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<e@enforce.test>"],
        &message("mta-sts again", "mta-sts-again"),
    );
    c.quit();
    relais.wait_log(
        &[
            &id,
            "to=<e@enforce.test>",
            "status=sent",
            &format!("relay=mx.good.test[{good}]:25"),
        ],
        1,
    );
    assert!(
        relais.log().contains("does not list this MX host"),
        "{}",
        relais.log()
    );
    assert_eq!(plain.connections(), 0, "the unlisted MX host was tried");
    drop(peer);
}
