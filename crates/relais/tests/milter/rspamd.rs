//! rspamd, Debian's package, in milter mode: the filter the seeds' administrators reach for.

use std::fs;
use std::path::Path;

use crate::common::process::{Daemon, require};
use crate::common::wait::{free_port, tempdir};
use crate::milter_support;
use crate::support::{Client, Server, Setup};

/// GTUBE: the test string every anti-spam filter refuses.
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// rspamd's proxy worker in milter mode on 127.0.0.1:`port`, scanning itself, with its
/// configuration, databases and log in `dir`: DNS at a dead loopback port (nothing leaves the
/// machine: its maps and DNS lists fail at once), no controller, no other worker.
fn rspamd(dir: &Path, port: u16) -> Daemon {
    require(
        "rspamd",
        &["--version"],
        "apt-get install rspamd (scripts/deps.sh does)",
    );
    let local = dir.join("local.d");
    for d in ["local.d", "db", "run", "log"] {
        fs::create_dir_all(dir.join(d)).expect("rspamd directories");
    }
    let files = [
        (
            "worker-proxy.inc",
            format!(
                "bind_socket = \"127.0.0.1:{port}\";\nmilter = yes;\ntimeout = 60s;\n\
                 count = 1;\nupstream \"local\" {{ default = yes; self_scan = yes; }}\n"
            ),
        ),
        ("worker-normal.inc", "enabled = false;\n".into()),
        ("worker-controller.inc", "enabled = false;\n".into()),
        ("worker-fuzzy.inc", "enabled = false;\n".into()),
        (
            "logging.inc",
            format!(
                "type = \"file\";\nfilename = \"{}\";\nlevel = \"info\";\n",
                dir.join("log/rspamd.log").display()
            ),
        ),
        (
            "options.inc",
            "dns { nameserver = [\"127.0.0.1:9\"]; timeout = 1s; retransmits = 1; }\n".into(),
        ),
        (
            "milter_headers.conf",
            "use = [\"x-spamd-result\", \"x-rspamd-server\", \"x-rspamd-queue-id\"];\n\
             extended_spam_headers = true;\nskip_local = false;\nskip_authenticated = false;\n"
                .into(),
        ),
    ];
    for (name, text) in files {
        fs::write(local.join(name), text).expect("rspamd configuration");
    }
    let args = [
        "-f".to_string(),
        "-i".into(),
        "-c".into(),
        "/etc/rspamd/rspamd.conf".into(),
        format!("--var=LOCAL_CONFDIR={}", dir.display()),
        format!("--var=DBDIR={}", dir.join("db").display()),
        format!("--var=RUNDIR={}", dir.join("run").display()),
        format!("--var=LOGDIR={}", dir.join("log").display()),
    ];
    milter_support::on_port("rspamd", "rspamd", &args, port)
}

#[test]
fn rspamd_refuses_gtube_and_tags_a_clean_message() {
    let dir = tempdir("relais-rspamd-");
    let port = free_port();
    let _rspamd = rspamd(dir.path(), port);
    let server = Server::start(Setup::new(&["mx"]).without_tls().top(&format!(
        "[[milter]]\naddress = \"inet:127.0.0.1:{port}\"\ncontent_timeout = \"60s\""
    )));
    let mut c = Client::ready(server.port("mx"), None);
    c.expect("MAIL FROM:<sender@other.test>", "250 ");
    c.expect("RCPT TO:<kate@local.test>", "250 ");
    c.expect("DATA", "354 ");
    let r = c.cmd(&format!(
        "From: <sender@other.test>\r\nTo: <kate@local.test>\r\nSubject: spam\r\n\
         Message-ID: <gtube@other.test>\r\n\r\n{GTUBE}\r\n."
    ));
    assert!(r.is("554 5.7.1"), "{r}");
    // the session goes on: a clean message is accepted, with rspamd's headers
    c.expect("MAIL FROM:<sender@other.test>", "250 ");
    c.expect("RCPT TO:<kate@local.test>", "250 ");
    c.expect("DATA", "354 ");
    let r = c.cmd(
        "From: <sender@other.test>\r\nTo: <kate@local.test>\r\nSubject: lunch\r\n\
         Message-ID: <clean@other.test>\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n\r\n\
         Shall we meet at noon?\r\n.",
    );
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    let mail = &server.wait_mail("kate", 1)[0];
    assert!(mail.contains("X-Spamd-Result: default:"), "{mail}");
    assert!(mail.contains("X-Rspamd-Queue-Id: "), "{mail}");
    assert!(mail.contains("Shall we meet at noon?"), "{mail}");
    server.assert_logged("milter-reject: END-OF-MESSAGE from ");
}
