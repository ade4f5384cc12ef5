//! ClamAV, Debian's `clamd` and `clamav-milter`: the EICAR test string is refused. No virus
//! database can be downloaded here, so clamd loads one of the test's own: a single body
//! signature for the EICAR string (`.ndb`), enough to start in a second.

use std::fs;
use std::path::Path;

use crate::common::process::{Daemon, require};
use crate::common::wait::{free_port, tempdir};
use crate::milter_support;
use crate::support::{Client, Server, Setup};

/// The EICAR anti-virus test string: harmless, recognised by every scanner.
const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// clamd on a unix socket in `dir`, with the one-signature database.
fn clamd(dir: &Path) -> Daemon {
    require(
        "clamd",
        &["--version"],
        "apt-get install clamav-daemon (scripts/deps.sh does)",
    );
    let db = dir.join("db");
    fs::create_dir_all(&db).expect("database directory");
    let hex: String = EICAR.bytes().map(|b| format!("{b:02x}")).collect();
    fs::write(
        db.join("relais-test.ndb"),
        format!("Relais-Test-EICAR:0:*:{hex}\n"),
    )
    .expect("signature");
    let socket = dir.join("clamd.sock");
    let conf = dir.join("clamd.conf");
    fs::write(
        &conf,
        format!(
            "DatabaseDirectory {}\nLocalSocket {}\nForeground yes\nLogFile {}\n\
             PidFile {}\nTemporaryDirectory {}\nUser root\n",
            db.display(),
            socket.display(),
            dir.join("clamd.log").display(),
            dir.join("clamd.pid").display(),
            dir.display()
        ),
    )
    .expect("clamd.conf");
    let args = ["-c".to_string(), conf.display().to_string()];
    milter_support::on_socket("clamd", "clamd", &args, &socket)
}

/// clamav-milter on 127.0.0.1:`port`, asking the clamd of `dir`; infected mail refused.
fn clamav_milter(dir: &Path, port: u16) -> Daemon {
    require(
        "clamav-milter",
        &["--version"],
        "apt-get install clamav-milter (scripts/deps.sh does)",
    );
    let conf = dir.join("clamav-milter.conf");
    fs::write(
        &conf,
        format!(
            "MilterSocket inet:{port}@127.0.0.1\nClamdSocket unix:{}\nForeground yes\n\
             LogFile {}\nLogInfected Full\nOnInfected Reject\nRejectMsg \"Virus found: %v\"\n\
             AddHeader Replace\n\
             User root\nPidFile {}\n",
            dir.join("clamd.sock").display(),
            dir.join("milter.log").display(),
            dir.join("milter.pid").display()
        ),
    )
    .expect("clamav-milter.conf");
    let args = ["-c".to_string(), conf.display().to_string()];
    milter_support::on_port("clamav-milter", "clamav-milter", &args, port)
}

#[test]
fn clamav_refuses_eicar_and_marks_a_clean_message_scanned() {
    let dir = tempdir("relais-clamav-");
    let _clamd = clamd(dir.path());
    let port = free_port();
    let _milter = clamav_milter(dir.path(), port);
    let server = Server::start(Setup::new(&["mx"]).without_tls().top(&format!(
        "[[milter]]\naddress = \"inet:127.0.0.1:{port}\"\ncontent_timeout = \"30s\""
    )));
    let mut c = Client::ready(server.port("mx"), None);
    c.expect("MAIL FROM:<sender@other.test>", "250 ");
    c.expect("RCPT TO:<kate@local.test>", "250 ");
    c.expect("DATA", "354 ");
    let r = c.cmd(&format!(
        "From: <sender@other.test>\r\nSubject: test file\r\n\r\n{EICAR}\r\n."
    ));
    assert!(r.is("550 5.7.1"), "{r}");
    assert!(r.mentions("Relais-Test-EICAR"), "{r}");
    c.expect("MAIL FROM:<sender@other.test>", "250 ");
    c.expect("RCPT TO:<kate@local.test>", "250 ");
    c.expect("DATA", "354 ");
    let r = c.cmd("From: <sender@other.test>\r\nSubject: clean\r\n\r\nnothing to see\r\n.");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    let mail = &server.wait_mail("kate", 1)[0];
    assert!(mail.contains("X-Virus-Scanned: clamav-milter "), "{mail}");
    assert!(mail.contains("X-Virus-Status: Clean"), "{mail}");
    server.assert_logged("milter-reject: END-OF-MESSAGE from ");
}
