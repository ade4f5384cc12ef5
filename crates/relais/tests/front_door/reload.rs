//! Reloading the configuration while the server works: SIGHUP and `relais reload` under load
//! lose nothing and change what new sessions see; a configuration that does not load is
//! refused and the old one stays; a renewed certificate is served without a reload.

use std::fs;
use std::process::Command;
use std::thread;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::support::{Client, LOCAL, Server, Setup};
use crate::common::RELAIS;
use crate::common::certs::Certs;
use crate::common::process::require;

/// `relais reload --config FILE`: (exit code, stdout, stderr).
fn relais_reload(server: &Server) -> (Option<i32>, String, String) {
    let out = Command::new(RELAIS)
        .arg("reload")
        .arg("--config")
        .arg(&server.config)
        .env_remove("RELAIS_CONFIG")
        .output()
        .expect("run relais reload");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The greeting a new session gets.
fn greeting(port: u16) -> String {
    let mut c = Client::connect(port);
    let g = c.greeting().to_string();
    c.quit();
    g
}

#[test]
fn sighup_under_load_loses_nothing_and_new_sessions_see_the_new_settings() {
    require(
        "sh",
        &["-c", "command -v smtp-source"],
        "apt-get install postfix",
    );
    let server = Server::start(Setup::new(&["mx"]).banner("before-reload"));
    let port = server.port("mx");
    assert!(greeting(port).contains("before-reload"));
    const MESSAGES: usize = 1000;
    let to = format!("alice@{LOCAL}");
    let source = thread::spawn(move || {
        Command::new("smtp-source")
            .args(["-s", "5", "-m", &MESSAGES.to_string(), "-l", "512"])
            .args(["-f", "sender@other.test", "-t", &to])
            .arg(format!("127.0.0.1:{port}"))
            .output()
            .expect("run smtp-source")
    });
    // While it sends: a new banner and one more listener, and three SIGHUPs.
    server.rewrite_config(&Setup::new(&["mx", "submission"]).banner("after-reload"));
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(100));
        server.signal(libc::SIGHUP);
    }
    let out = source.join().expect("the smtp-source thread");
    assert!(
        out.status.success(),
        "smtp-source: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    server.assert_logged("reloaded the configuration from");
    // The reloads came while mail was coming in: messages were queued before and after.
    let log = server.log();
    let at = log.find("reloaded the configuration from").unwrap();
    assert!(log[..at].contains(": queued: "), "{log}");
    assert!(log[at..].contains(": queued: "), "{log}");
    // Every message sent through the reloads is delivered, once.
    let mail = server.wait_mail("alice", MESSAGES);
    assert_eq!(mail.len(), MESSAGES);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(server.mail_count("alice"), MESSAGES);
    // New sessions see the new banner, on the old listener and on the new one.
    assert!(greeting(port).contains("after-reload"), "{}", server.log());
    let submission = server
        .last_port("submission")
        .expect("a submission listener");
    assert_ne!(submission, port);
    assert!(greeting(submission).contains("after-reload"));
    // Nothing was refused or dropped.
    let log = server.log();
    assert!(!log.contains("not queued"), "{log}");
    assert!(!log.contains("reload refused"), "{log}");
}

#[test]
fn a_configuration_that_does_not_load_is_refused_and_the_old_one_stays() {
    let server = Server::start(Setup::new(&["mx"]).banner("first"));
    let port = server.port("mx");
    // Not even TOML that makes sense: SIGHUP is refused, and so is `relais reload`.
    fs::write(
        &server.config,
        "hostname = \"mx.local.test\"\n[limits]\nmax_message_size = \"big\"\n",
    )
    .unwrap();
    server.signal(libc::SIGHUP);
    server.assert_logged("reload refused (SIGHUP)");
    assert!(
        server.log().contains("max_message_size"),
        "{}",
        server.log()
    );
    assert!(greeting(port).contains("first"));
    let (code, _, err) = relais_reload(&server);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("line 3") && err.contains("max_message_size"),
        "{err}"
    );

    // A file that parses but cannot work (no such certificate): the server refuses it.
    let missing = server.data_dir.join("no-such-cert.pem");
    server.rewrite_config(
        &Setup::new(&["mx"])
            .banner("second")
            .tls_files(&missing, &missing),
    );
    let (code, _, err) = relais_reload(&server);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("refused") && err.contains("no-such-cert.pem"),
        "{err}"
    );
    assert!(greeting(port).contains("first"));

    // And a good one is taken.
    server.rewrite_config(&Setup::new(&["mx"]).banner("second"));
    let (code, out, err) = relais_reload(&server);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("reloaded"), "{out}");
    assert!(greeting(port).contains("second"));
    server.assert_logged("(relais reload)");
}

#[test]
fn a_new_user_is_known_to_the_door_and_to_delivery_after_a_reload() {
    let server = Server::start(Setup::new(&["mx"]).users(&["alice"]));
    let port = server.port("mx");
    let mut c = Client::ready(port, None);
    c.expect("MAIL FROM:<s@other.test>", "250");
    c.expect(&format!("RCPT TO:<carol@{LOCAL}>"), "550 5.1.1");
    c.quit();
    server.rewrite_config(&Setup::new(&["mx"]).users(&["alice", "carol"]));
    let (code, _, err) = relais_reload(&server);
    assert_eq!(code, Some(0), "{err}");
    server.assert_logged("queue manager: new settings in force");
    let mut c = Client::ready(port, None);
    let r = c.send_mail(
        "s@other.test",
        &[&format!("carol@{LOCAL}")],
        "after the reload",
    );
    assert!(r.is("250 2.0.0"), "{r}");
    c.quit();
    // The queue manager routes with the new users too: carol gets it, nothing bounces.
    let mail = server.wait_mail("carol", 1);
    assert!(mail[0].contains("after the reload"));
    assert!(!server.log().contains("status=bounced"), "{}", server.log());
}

#[test]
fn a_listener_taken_out_is_closed_and_its_open_session_finishes() {
    let server = Server::start(Setup::new(&["mx", "submission"]));
    let (mx, submission) = (server.port("mx"), server.port("submission"));
    let mut open = Client::ready(submission, None);
    server.rewrite_config(&Setup::new(&["mx"]));
    let (code, _, err) = relais_reload(&server);
    assert_eq!(code, Some(0), "{err}");
    server.assert_logged("closed the listener on");
    // No new connection on it (the workers close it at once; allow them a moment).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", submission)).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        thread::sleep(Duration::from_millis(20));
    }
    // The session opened before goes on, and the mx listener is untouched.
    open.expect("NOOP", "250");
    open.quit();
    assert!(greeting(mx).starts_with("220"));
}

/// `relais user VERB ARGS --file FILE` with `stdin`: (exit code, stdout, stderr).
fn relais_user(
    args: &[&str],
    file: &std::path::Path,
    stdin: &str,
) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = Command::new(RELAIS)
        .arg("user")
        .args(args)
        .arg("--file")
        .arg(file)
        .stdin(if stdin.is_empty() {
            std::process::Stdio::null()
        } else {
            std::process::Stdio::piped()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run relais user");
    if let Some(mut input) = child.stdin.take() {
        // A command that refuses before reading closes its end: that is its answer.
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn users_managed_with_relais_user_are_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    assert_eq!(
        relais_user(&["add", "carol"], &users, "carol-pw-1\n").0,
        Some(0)
    );
    let server = Server::start(
        Setup::new(&["mx"])
            .auth("allow_plaintext = true")
            .auth(&format!("users_file = {:?}", users.display().to_string())),
    );
    let port = server.port("mx");
    let auth = |user: &str, password: &str| {
        let mut c = Client::ready(port, None);
        let r = c.auth_plain(user, password);
        c.quit();
        r.is("235")
    };
    // Each change of the file is one reload; wait for the n-th.
    let changes = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while server.log().matches("(the users file changed)").count() < n {
            assert!(std::time::Instant::now() < deadline, "{}", server.log());
            thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(auth("carol", "carol-pw-1"));
    assert!(!auth("dave", "dave-pw-1"));

    let (code, out, err) = relais_user(&["add", "dave"], &users, "dave-pw-1\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("dave:$argon2id$"), "{out}");
    changes(1);
    assert!(auth("dave", "dave-pw-1"));
    // Adding a user twice is refused; passwd changes the password.
    assert_eq!(relais_user(&["add", "dave"], &users, "x\n").0, Some(4));
    thread::sleep(Duration::from_millis(20));
    assert_eq!(
        relais_user(&["passwd", "dave"], &users, "dave-pw-2\n").0,
        Some(0)
    );
    changes(2);
    assert!(!auth("dave", "dave-pw-1"));
    assert!(auth("dave", "dave-pw-2"));
    let (code, out, _) = relais_user(&["list"], &users, "");
    assert_eq!((code, out.as_str()), (Some(0), "carol\ndave\n"));
    thread::sleep(Duration::from_millis(20));
    assert_eq!(relais_user(&["delete", "dave"], &users, "").0, Some(0));
    changes(3);
    assert!(!auth("dave", "dave-pw-2"));
    assert!(auth("carol", "carol-pw-1"));
    assert_eq!(relais_user(&["delete", "dave"], &users, "").0, Some(4));
    assert_eq!(relais_user(&["passwd", "nobody"], &users, "x\n").0, Some(4));
}

#[test]
fn relais_reload_without_a_server_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new(&["mx"]).write_config(dir.path());
    let out = Command::new(RELAIS)
        .arg("reload")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run relais reload");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server is running"));
}

#[test]
fn a_renewed_certificate_is_served_to_the_next_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let install = |certs: &Certs| {
        // As certbot does: new files, then renamed over the old ones.
        fs::copy(&certs.chain, dir.path().join("cert.new")).unwrap();
        fs::copy(&certs.key, dir.path().join("key.new")).unwrap();
        fs::rename(dir.path().join("key.new"), &key).unwrap();
        fs::rename(dir.path().join("cert.new"), &cert).unwrap();
        CertificateDer::from_pem_file(&certs.chain)
            .expect("a PEM certificate")
            .as_ref()
            .to_vec()
    };
    let first = install(&Certs::self_signed("mx.local.test"));
    let server = Server::start(Setup::new(&["mx"]).tls_files(&cert, &key));
    let port = server.port("mx");
    let served = |port: u16| {
        let mut c = Client::ready(port, None);
        c.starttls();
        let der = c.peer_certificate();
        c.quit();
        der
    };
    assert_eq!(served(port).as_deref(), Some(first.as_slice()));

    // Renewed in place, no reload asked for: the next STARTTLS gets the new certificate.
    thread::sleep(Duration::from_millis(20));
    let second = install(&Certs::self_signed("mx.local.test"));
    assert_ne!(first, second);
    server.assert_logged("(a new TLS certificate)");
    assert_eq!(served(port).as_deref(), Some(second.as_slice()));
}
