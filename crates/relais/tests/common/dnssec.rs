//! DNSSEC-signed zones for the DANE tests (delivery with `tls = "dane"`, `relais check`'s DANE
//! item): keys made with `ldns-keygen` (ED25519), zones signed with `ldns-signzone`, served by
//! a private NSD on a free port of 127.0.0.1, and TLSA data computed from PEM certificates with
//! `openssl`. The parent zone `test.` is signed and its keys are the trust anchors (written to
//! `anchors.keys`, for `dnssec_trust_anchor` and `--dnssec-trust-anchor`); its children are
//! signed (with a DS in the parent), signed with signatures that expired long ago (bogus to a
//! validating resolver, as a zone nobody re-signed), or not signed (a bare delegation). Needs `nsd`, `ldnsutils` and
//! `openssl` (scripts/deps.sh).

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::wait::free_port;

/// The SOA of every zone.
const SOA: &str = "IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300";

/// A zone under `test.`.
pub struct Zone<'a> {
    /// Its name: `dane.test`.
    pub name: &'a str,
    /// Its records, relative to its name (SOA and NS are added).
    pub records: String,
    /// How DNSSEC vouches for it.
    pub dnssec: Dnssec,
}

/// How a [`Zone`] is signed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dnssec {
    /// Signed, with its DS in `test.`.
    Signed,
    /// Signed, with its DS in `test.`, but its signatures expired in 2020: bogus.
    Expired,
    /// An unsigned delegation.
    Unsigned,
}

/// Signed zones served by a private NSD, and the trust anchors that validate them.
pub struct SignedDns {
    /// The NSD serving them.
    pub nsd: Nsd,
    /// The DNSKEY records of `test.`, one a line.
    pub anchors: PathBuf,
    /// Where keys, zones and NSD's files are.
    pub dir: tempfile::TempDir,
}

impl SignedDns {
    /// `test.` and `zones` below it, plus `extra` zones served as they are (name, records),
    /// e.g. a reverse zone. Keys, zones and NSD's files go to a new temporary directory.
    pub fn start(zones: &[Zone<'_>], extra: &[(&str, String)]) -> SignedDns {
        let dir = super::wait::tempdir("relais-dnssec-");
        let mut served = signed_zones(dir.path(), zones);
        for (name, records) in extra {
            let file = format!("{name}.zone");
            fs::write(dir.path().join(&file), zone_text(name, records)).unwrap();
            served.push((name.to_string(), file));
        }
        let served: Vec<(&str, &str)> = served
            .iter()
            .map(|(z, f)| (z.as_str(), f.as_str()))
            .collect();
        let nsd = Nsd::start(dir.path(), &served);
        SignedDns {
            nsd,
            anchors: dir.path().join("anchors.keys"),
            dir,
        }
    }

    /// The address NSD answers on.
    pub fn addr(&self) -> SocketAddr {
        self.nsd.addr
    }
}

/// A zone file's text: origin, TTL, SOA, NS, then `records`.
fn zone_text(name: &str, records: &str) -> String {
    format!("$ORIGIN {name}.\n$TTL 300\n@ {SOA}\n@ IN NS ns.test.\n{records}")
}

/// A private NSD serving zone files, stopped by its PID when dropped.
pub struct Nsd {
    child: Child,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
}

impl Nsd {
    /// Serves `zones` (name, file in `dir`) on a free port of 127.0.0.1.
    pub fn start(dir: &Path, zones: &[(&str, &str)]) -> Nsd {
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

/// The data of a `3 1 1` (or `2 1 1`) record: the SHA-256 of the public key of the first
/// certificate of the PEM file `pem`.
pub fn spki_sha256(pem: &Path) -> String {
    let pem = pem.display();
    sha256_of(
        Path::new("/"),
        &format!("openssl x509 -in {pem} -pubkey -noout | openssl pkey -pubin -outform DER"),
    )
}

/// The data of a `2 0 1` (or `3 0 1`) record: the SHA-256 of the first certificate of the
/// PEM file `pem`.
pub fn cert_sha256(pem: &Path) -> String {
    sha256_of(
        Path::new("/"),
        &format!("openssl x509 -in {} -outform DER", pem.display()),
    )
}

/// Keys for `zone` (a KSK and a ZSK, ED25519) made in `dir`: their file names' bases.
pub fn keys(dir: &Path, zone: &str) -> [String; 2] {
    let ksk = run(dir, "ldns-keygen", &["-a", "ED25519", "-k", zone]);
    let zsk = run(dir, "ldns-keygen", &["-a", "ED25519", zone]);
    [ksk.trim().to_string(), zsk.trim().to_string()]
}

/// The first record of type `kind` in a file of ldns-keygen (`.key`, `.ds`), comment cut.
pub fn record_in(dir: &Path, file: &str, kind: &str) -> String {
    let text = fs::read_to_string(dir.join(file)).unwrap();
    let line = text.lines().find(|l| l.contains(kind)).unwrap();
    line.split(';').next().unwrap().trim().to_string()
}

/// Writes `zones` and `test.` (delegating to each, with the DS of the signed ones) to `dir`,
/// signs them with `ldns-signzone` and writes `test.`'s keys to `anchors.keys` (nothing above
/// it vouches for them). Returns the (zone, file) pairs to serve.
pub fn signed_zones(dir: &Path, zones: &[Zone<'_>]) -> Vec<(String, String)> {
    let mut served = Vec::new();
    let mut parent = "ns IN A 127.0.0.1\n".to_string();
    for zone in zones {
        let file = format!("{}.zone", zone.name);
        fs::write(dir.join(&file), zone_text(zone.name, &zone.records)).unwrap();
        let label = zone.name.strip_suffix(".test").expect("a zone under test.");
        parent.push_str(&format!("{label} IN NS ns.test.\n"));
        if zone.dnssec != Dnssec::Unsigned {
            let [ksk, zsk] = keys(dir, zone.name);
            let mut args = vec!["-n"];
            if zone.dnssec == Dnssec::Expired {
                args.extend(["-i", "20200101", "-e", "20200201"]);
            }
            args.extend([file.as_str(), ksk.as_str(), zsk.as_str()]);
            run(dir, "ldns-signzone", &args);
            parent.push_str(&record_in(dir, &format!("{ksk}.ds"), "DS"));
            parent.push('\n');
            served.push((zone.name.to_string(), format!("{file}.signed")));
        } else {
            served.push((zone.name.to_string(), file));
        }
    }
    fs::write(dir.join("test.zone"), zone_text("test", &parent)).unwrap();
    let [pksk, pzsk] = keys(dir, "test");
    run(dir, "ldns-signzone", &["-n", "test.zone", &pksk, &pzsk]);
    let anchors: Vec<String> = [&pksk, &pzsk]
        .iter()
        .map(|k| record_in(dir, &format!("{k}.key"), "DNSKEY"))
        .collect();
    fs::write(dir.join("anchors.keys"), anchors.join("\n") + "\n").unwrap();
    served.insert(0, ("test".to_string(), "test.zone.signed".to_string()));
    served
}
