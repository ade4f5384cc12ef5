//! Real SMTP peers of the delivery tests: aiosmtpd ([`PyPeer`]) and a private Postfix
//! ([`postfix`]).

use super::*;

/// An aiosmtpd server (`tests/delivery/py/peer.py`) writing what it receives to a directory:
/// `N.eml` (the content) and `N.json` (envelope, TLS), one pair per transaction.
pub struct PyPeer {
    _process: Daemon,
    /// Where the messages go.
    pub outdir: PathBuf,
}

impl PyPeer {
    /// Starts it on `addr`, with STARTTLS when a certificate and key are given.
    pub fn start(addr: SocketAddr, outdir: &Path, tls: Option<(&Path, &Path)>) -> PyPeer {
        let check = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status();
        assert!(
            check.is_ok_and(|s| s.success()),
            "python3 with aiosmtpd is needed: pip install aiosmtpd"
        );
        fs::create_dir_all(outdir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/delivery/py/peer.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--outdir")
            .arg(outdir)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        if let Some((cert, key)) = tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let process = Daemon::start("aiosmtpd peer", cmd, 1, START_TIMEOUT);
        PyPeer {
            _process: process,
            outdir: outdir.to_path_buf(),
        }
    }

    /// The transactions so far: (envelope JSON, content).
    pub fn messages(&self) -> Vec<(serde_json::Value, Vec<u8>)> {
        let mut out = Vec::new();
        for n in 1.. {
            let json = self.outdir.join(format!("{n}.json"));
            let eml = self.outdir.join(format!("{n}.eml"));
            let (Ok(j), Ok(m)) = (fs::read(&json), fs::read(&eml)) else {
                break;
            };
            out.push((serde_json::from_slice(&j).expect("envelope JSON"), m));
        }
        out
    }

    /// Waits for `n` transactions.
    #[track_caller]
    pub fn wait_messages(&self, n: usize) -> Vec<(serde_json::Value, Vec<u8>)> {
        wait_until(&format!("{n} message(s) at aiosmtpd"), WAIT, || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }
}

/// A self-signed certificate for `name`, written to `dir` as (cert.pem, key.pem).
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    fs::write(&cert, ck.cert.pem()).unwrap();
    fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

pub use crate::common::postfix::Postfix;

/// A private Postfix instance (see PERFORMANCE.md "Running the peers"): smtpd on port 25 of
/// one 127.0.0.x (an MX record names no port), mail for one virtual domain into one Maildir,
/// `vmail/box/`, as nobody; 127.0.0.0/8 may relay.
pub fn postfix(ip: Ipv4Addr, domain: &str) -> Postfix {
    Postfix::start(&crate::common::postfix::Setup {
        listen: SocketAddrV4::new(ip, 25),
        domain,
        mynetworks: "127.0.0.0/8",
        users: None,
        tls: None,
        prefix: "relais-postfix-",
    })
}
