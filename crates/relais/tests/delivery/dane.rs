//! DANE (RFC 7672, issue 16 item 3): zones signed at test time with `ldns-signzone` (ED25519
//! keys from `ldns-keygen`: `test.`, delegating with a DS record to `dane.test` and without
//! one to the unsigned `plain.test`), served by a private NSD on 127.0.0.1, validated by relais
//! from a trust-anchor file of `test.`'s keys. The MX hosts all lead to one relais peer on port 25 of
//! a 127.0.0.x, whose certificate a test CA signed:
//!
//! - `ee.dane.test`: TLSA 3 1 1 (the server's public key): delivered over TLS;
//! - `ta.dane.test`: TLSA 2 0 1 (the CA in the chain it sends), the name checked: delivered;
//! - `bad.dane.test`: a TLSA record that matches nothing: deferred, never sent in clear;
//! - `none.dane.test`: no TLSA record: as `may`, delivered;
//! - `plain.test`, an unsigned zone whose MX is `bad`'s host: its TLSA records do not count;
//! - and from a relais whose trust anchor is another key, nothing validates: deferred.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::certs::Certs;
use crate::common::wait::free_port;
use crate::support::{Relais, Setup, WAIT, loopback_25, message, tempdir, tls_peer, wait_files};

/// A private NSD serving one zone file, stopped by its PID when dropped.
struct Nsd {
    child: Child,
    addr: SocketAddr,
}

impl Nsd {
    /// Serves `zones` (name, file in `dir`) on a free port of 127.0.0.1.
    fn start(dir: &Path, zones: &[(&str, &str)]) -> Nsd {
        let port = free_port();
        let d = dir.display();
        let conf = dir.join("nsd.conf");
        fs::write(
            &conf,
            format!(
                "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  \
                 chroot: \"\"\n  zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  \
                 database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  \
                 xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  logfile: \"{d}/nsd.log\"\n  \
                 server-count: 1\n  verbosity: 1\n\
                 remote-control:\n  control-enable: no\n{}",
                zones
                    .iter()
                    .map(|(zone, file)| format!("zone:\n  name: {zone}\n  zonefile: {file}\n"))
                    .collect::<String>()
            ),
        )
        .unwrap();
        let child = Command::new("nsd")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("nsd.err")).unwrap())
            .spawn()
            .expect("nsd (scripts/deps.sh: nsd)");
        let nsd = Nsd {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        nsd.wait_answering(zones[0].0, dir);
        nsd
    }

    /// Waits until a query for the zone's SOA is answered.
    fn wait_answering(&self, zone: &str, dir: &Path) {
        let mut query = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in zone.split('.') {
            query.push(label.len() as u8);
            query.extend_from_slice(label.as_bytes());
        }
        query.extend_from_slice(&[0, 0, 6, 0, 1]);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 512];
        loop {
            socket.send_to(&query, self.addr).unwrap();
            if socket.recv(&mut buf).is_ok_and(|n| n > 12) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nsd never answered:\n{}{}",
                fs::read_to_string(dir.join("nsd.err")).unwrap_or_default(),
                fs::read_to_string(dir.join("nsd.log")).unwrap_or_default()
            );
        }
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// Runs a command in `dir`, its standard output as text.
fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/deps.sh: ldnsutils, openssl)"));
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// SHA-256 (hex) of what a shell pipeline prints.
fn sha256_of(dir: &Path, pipeline: &str) -> String {
    let out = run(dir, "sh", &["-c", &format!("{pipeline} | sha256sum")]);
    out.split_whitespace().next().unwrap().to_string()
}

/// Keys for `zone` (a KSK and a ZSK, ED25519) made in `dir`: their file names' bases.
fn keys(dir: &Path, zone: &str) -> [String; 2] {
    let ksk = run(dir, "ldns-keygen", &["-a", "ED25519", "-k", zone]);
    let zsk = run(dir, "ldns-keygen", &["-a", "ED25519", zone]);
    [ksk.trim().to_string(), zsk.trim().to_string()]
}

/// The first record of type `kind` in a file of ldns-keygen (`.key`, `.ds`), comment cut.
fn record_in(dir: &Path, file: &str, kind: &str) -> String {
    let text = fs::read_to_string(dir.join(file)).unwrap();
    let line = text.lines().find(|l| l.contains(kind)).unwrap();
    line.split(';').next().unwrap().trim().to_string()
}

/// The zones, signed with `ldns-signzone`: `test.` (its keys are the trust anchors, written
/// to `anchors.keys`) delegates to `dane.test` (signed, with its DS) and to `plain.test`
/// (unsigned, no DS). Every MX host of dane.test is at `ip`; TLSA records as the module says.
/// Returns the (zone, file) pairs to serve.
fn signed_zones(dir: &Path, ip: Ipv4Addr, certs: &Certs) -> Vec<(String, String)> {
    let leaf = certs.chain.display().to_string();
    let ca = certs.ca.display().to_string();
    let ee = sha256_of(
        dir,
        &format!("openssl x509 -in {leaf} -pubkey -noout | openssl pkey -pubin -outform DER"),
    );
    let ta = sha256_of(dir, &format!("openssl x509 -in {ca} -outform DER"));
    let soa = "IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300";
    let zone = format!(
        "$ORIGIN dane.test.\n$TTL 300\n@ {soa}\n@ IN NS ns.test.\n\
         ee IN MX 10 mx1.dane.test.\nta IN MX 10 mx2.dane.test.\n\
         bad IN MX 10 mx3.dane.test.\nnone IN MX 10 mx4.dane.test.\n\
         mx1 IN A {ip}\nmx2 IN A {ip}\nmx3 IN A {ip}\nmx4 IN A {ip}\n\
         _25._tcp.mx1 IN TLSA 3 1 1 {ee}\n\
         _25._tcp.mx2 IN TLSA 2 0 1 {ta}\n\
         _25._tcp.mx3 IN TLSA 3 1 1 {}\n",
        "ab".repeat(32)
    );
    fs::write(dir.join("dane.test.zone"), zone).unwrap();
    let [ksk, zsk] = keys(dir, "dane.test");
    run(dir, "ldns-signzone", &["-n", "dane.test.zone", &ksk, &zsk]);
    let ds = record_in(dir, &format!("{ksk}.ds"), "DS");
    // plain.test is not signed: its MX host is bad's, whose TLSA records must not count.
    let plain = format!(
        "$ORIGIN plain.test.\n$TTL 300\n@ {soa}\n@ IN NS ns.test.\n@ IN MX 10 mx3.dane.test.\n"
    );
    fs::write(dir.join("plain.test.zone"), plain).unwrap();
    let parent = format!(
        "$ORIGIN test.\n$TTL 300\n@ {soa}\n@ IN NS ns.test.\nns IN A 127.0.0.1\n\
         dane IN NS ns.test.\n{ds}\nplain IN NS ns.test.\n"
    );
    fs::write(dir.join("test.zone"), parent).unwrap();
    let [pksk, pzsk] = keys(dir, "test");
    run(dir, "ldns-signzone", &["-n", "test.zone", &pksk, &pzsk]);
    // Both keys of test. are anchors: nothing above it vouches for them.
    let anchors: Vec<String> = [&pksk, &pzsk]
        .iter()
        .map(|k| record_in(dir, &format!("{k}.key"), "DNSKEY"))
        .collect();
    fs::write(dir.join("anchors.keys"), anchors.join("\n") + "\n").unwrap();
    [
        ("test", "test.zone.signed"),
        ("dane.test", "dane.test.zone.signed"),
        ("plain.test", "plain.test.zone"),
    ]
    .map(|(z, f)| (z.to_string(), f.to_string()))
    .to_vec()
}

#[test]
fn tlsa_records_decide_and_a_mismatch_defers() {
    let ip = loopback_25();
    let certs = Certs::signed_for("DANE Test CA", &["mx1.dane.test", "mx2.dane.test"]);
    let zone_dir = tempdir("relais-dane-zone-");
    let zones = signed_zones(zone_dir.path(), ip, &certs);
    let zones: Vec<(&str, &str)> = zones
        .iter()
        .map(|(z, f)| (z.as_str(), f.as_str()))
        .collect();
    let nsd = Nsd::start(zone_dir.path(), &zones);
    let work = tempdir("relais-dane-peer-");
    let domains = [
        "ee.dane.test",
        "ta.dane.test",
        "bad.dane.test",
        "none.dane.test",
        "plain.test",
    ];
    let peer = tls_peer(work.path(), &format!("{ip}:25"), &domains, &certs);

    let dir = tempdir("relais-dane-");
    let dns = crate::support::dns(crate::support::Zone::new());
    let mut setup = Setup::sender(&dns);
    setup.resolver = Some(nsd.addr);
    setup.delivery.extend([
        "tls = \"dane\"".to_string(),
        format!(
            "dnssec_trust_anchor = {:?}",
            zone_dir.path().join("anchors.keys").display().to_string()
        ),
    ]);
    let relais = Relais::start("relais", dir.path(), &setup);
    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &[
            "<a@ee.dane.test>",
            "<b@ta.dane.test>",
            "<c@bad.dane.test>",
            "<d@none.dane.test>",
            "<g@plain.test>",
        ],
        &message("dane", "dane"),
    );
    c.quit();

    relais.wait_log(&[&id, "to=<a@ee.dane.test>", "status=sent"], 1);
    relais.wait_log(&[&id, "to=<b@ta.dane.test>", "status=sent"], 1);
    let deferred = relais.wait_log(&[&id, "to=<c@bad.dane.test>", "status=deferred"], 1);
    assert!(deferred[0].contains("TLSA"), "{deferred:?}");
    relais.wait_log(&[&id, "to=<d@none.dane.test>", "status=sent"], 1);
    // An MX record DNSSEC does not prove: no DANE, so mx3's mismatching TLSA does not count.
    relais.wait_log(&[&id, "to=<g@plain.test>", "status=sent"], 1);
    for local in ["a", "b", "d"] {
        let got = wait_files(&work.path().join(format!("data/mail/{local}/new")), 1, WAIT);
        let text = fs::read_to_string(&got[0]).unwrap();
        assert!(text.contains("with ESMTPS"), "{local}: {text}");
    }
    assert!(!work.path().join("data/mail/c").exists());

    // A trust anchor the zone was not signed with: every answer is bogus, nothing leaves.
    let [other, _] = keys(zone_dir.path(), "test");
    let wrong = zone_dir.path().join("wrong.keys");
    let record = record_in(zone_dir.path(), &format!("{other}.key"), "DNSKEY");
    fs::write(&wrong, format!("{record}\n")).unwrap();
    let dir2 = tempdir("relais-dane-bogus-");
    let mut setup2 = Setup::sender(&dns);
    setup2.resolver = Some(nsd.addr);
    setup2.delivery.extend([
        "tls = \"dane\"".to_string(),
        format!("dnssec_trust_anchor = {:?}", wrong.display().to_string()),
    ]);
    let relais2 = Relais::start("relais (wrong anchor)", dir2.path(), &setup2);
    let mut c = relais2.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<e@ee.dane.test>", "<f@none.dane.test>"],
        &message("dane bogus", "dane-bogus"),
    );
    c.quit();
    for to in ["to=<e@ee.dane.test>", "to=<f@none.dane.test>"] {
        let deferred = relais2.wait_log(&[&id, to, "status=deferred"], 1);
        assert!(
            deferred[0].contains("DNSSEC validation failed"),
            "{deferred:?}"
        );
    }
    assert!(!work.path().join("data/mail/e").exists());
    assert!(!work.path().join("data/mail/f").exists());
    drop(peer);
}
