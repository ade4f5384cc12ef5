//! Live progress (issue 17, item 1): on a terminal, `probe` and `check` show a spinner per
//! address with the stage it is at, and print each address's section when it is done; with
//! `--json` or when standard output is not a terminal, nothing of this. The terminal is a
//! pseudo-terminal made by Python's `pty` module.

use std::process::Command;
use std::time::Duration;

use crate::common::process::{require, run, strip_ansi};
use crate::zoo::{Behaviour, CertKind, HOST, Pki, Zoo, dns};

/// Runs argv[1:] on a pseudo-terminal (80 columns) and copies everything it wrote to standard
/// output; exits with its exit code.
const ON_A_PTY: &str = r#"
import os, pty, sys, fcntl, termios, struct
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
out = b""
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

struct Setup {
    pki: Pki,
    dns: relais_dns::fixture::Server,
    zoo: Zoo,
}

/// A clean zoo server whose greeting takes a second: long enough for the spinner to show
/// the address at `banner`.
fn setup() -> Setup {
    let pki = Pki::new();
    let mut behaviour = Behaviour::clean(&pki, CertKind::Good);
    behaviour.banner_delay = Duration::from_millis(1200);
    let zoo = Zoo::start(behaviour);
    Setup {
        dns: dns(),
        zoo,
        pki,
    }
}

impl Setup {
    /// `relais COMMAND TARGET` with the zoo's DNS, CA and port, and `args`.
    fn command(&self, pty: bool, words: &[&str], args: &[&str]) -> Command {
        let relais = env!("CARGO_BIN_EXE_relais");
        let mut cmd = if pty {
            let mut c = Command::new("python3");
            c.args(["-c", ON_A_PTY, relais]);
            c
        } else {
            Command::new(relais)
        };
        cmd.args(words)
            .args(["--port", &self.zoo.addr.port().to_string()])
            .args([
                "--resolver",
                &self.dns.addr().to_string(),
                "--dns-timeout",
                "1",
            ])
            .args(["--ca-file", self.pki.ca_file.to_str().unwrap()])
            .args(["--helo", "probe.test", "--timeout", "5"])
            .args(args)
            .env_remove("RELAIS_RESOLVER")
            .env("TERM", "xterm");
        cmd
    }
}

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_probe_on_a_terminal_shows_its_progress() {
    require(
        "python3",
        &["-c", "import pty"],
        "python3 (scripts/deps.sh)",
    );
    let s = setup();
    let label = format!("{HOST} [127.0.0.1:{}]", s.zoo.addr.port());
    let out = run(s.command(true, &["probe", "zoo.test"], &[]), None, LIMIT);
    out.expect_code(0);
    let raw = out.stdout.clone();
    // The spinner line: the address and the stage it waits at, redrawn in place.
    assert!(
        raw.contains('\x1b'),
        "no terminal control on a terminal:\n{raw}"
    );
    let plain = strip_ansi(&raw).replace('\r', "\n");
    assert!(plain.contains(&format!("{label} banner")), "{plain}");
    // The route first, the address's section when it was done, the summary last.
    let route = plain.find("MX of zoo.test").expect("the route");
    let section = plain
        .find(&format!("== {HOST} [127.0.0.1:"))
        .expect("the section");
    let auth = plain
        .find("Sender authentication of zoo.test")
        .expect("the records");
    let summary = plain
        .find("summary: 1 address(es) probed")
        .expect("the summary");
    assert!(
        route < section && section < auth && auth < summary,
        "{plain}"
    );
    // Each part printed once: nothing is shown again at the end.
    assert_eq!(plain.matches("== mx.zoo.test").count(), 1, "{plain}");
}

#[test]
fn a_check_on_a_terminal_shows_its_progress() {
    require(
        "python3",
        &["-c", "import pty"],
        "python3 (scripts/deps.sh)",
    );
    let s = setup();
    let label = format!("{HOST} [127.0.0.1:{}]", s.zoo.addr.port());
    let out = run(
        s.command(true, &["check", "zoo.test"], &["--dnsbl", "bl.test"]),
        None,
        LIMIT,
    );
    let plain = strip_ansi(&out.stdout).replace('\r', "\n");
    assert!(plain.contains(&format!("{label} banner")), "{plain}");
    let section = plain.find(&format!("== {HOST}")).expect("the section");
    let waterfall = plain
        .find(&format!("Waterfall of {HOST}"))
        .expect("the waterfall");
    let other = plain
        .find("Other records of zoo.test")
        .expect("the records");
    assert!(section < waterfall && waterfall < other, "{plain}");
    assert_eq!(plain.matches("Waterfall of").count(), 1, "{plain}");
    assert!(plain.contains("relais check zoo.test"), "{plain}");
}

#[test]
fn no_progress_without_a_terminal_or_with_json() {
    require(
        "python3",
        &["-c", "import pty"],
        "python3 (scripts/deps.sh)",
    );
    let s = setup();
    // Standard output a pipe: the report whole at the end, not a control character.
    let piped = run(s.command(false, &["probe", "zoo.test"], &[]), None, LIMIT);
    piped.expect_code(0);
    for text in [&piped.stdout, &piped.stderr] {
        assert!(!text.contains(['\x1b', '\r']), "{text:?}");
    }
    assert!(
        piped
            .stdout
            .starts_with("relais probe zoo.test\nMX of zoo.test")
    );
    // No spinner line (`host [address] stage`), no stage waited for.
    let label = format!("{HOST} [127.0.0.1:{}] ", s.zoo.addr.port());
    for stage in ["waiting", "connect", "banner", "ehlo", "quit"] {
        let spinner = format!("{label}{stage}");
        assert!(!piped.stdout.contains(&spinner), "{}", piped.stdout);
    }
    // --json on a terminal: JSON only.
    let json = run(
        s.command(true, &["probe", "zoo.test"], &["--json"]),
        None,
        LIMIT,
    );
    json.expect_code(0);
    assert!(!json.stdout.contains('\x1b'), "{:?}", json.stdout);
    let value: serde_json::Value = serde_json::from_str(&json.stdout.replace("\r\n", "\n"))
        .unwrap_or_else(|e| panic!("{e}: {:?}", json.stdout));
    assert_eq!(value["exit"], 0);
}
