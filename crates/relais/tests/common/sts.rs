//! MTA-STS policy hosts for the tests: the Python HTTPS server of `tests/delivery/py/
//! sts_https.py` on a free port of 127.0.0.1, serving `ROOT/HOST/PATH` by the Host header,
//! with a test certificate ([`crate::common::certs::Certs`]).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::certs::Certs;
use crate::common::process::Daemon;

/// The HTTPS server of the policy hosts, serving `root/HOST/...` with `certs`.
pub fn https(root: &Path, certs: &Certs) -> Daemon {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/delivery/py/sts_https.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg("--root")
        .arg(root)
        .arg("--cert")
        .arg(&certs.chain)
        .arg("--key")
        .arg(&certs.key);
    Daemon::start("https", cmd, 1, Duration::from_secs(20))
}

/// Publishes `policy` for `domain` under `root` (at `mta-sts.DOMAIN/.well-known/mta-sts.txt`).
pub fn publish(root: &Path, domain: &str, policy: &str) {
    let dir = root.join(format!("mta-sts.{domain}/.well-known"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mta-sts.txt"), policy).unwrap();
}
