//! Who the server runs as: started as root with `user = "nobody"`, it binds, gives its data
//! directory away and runs as nobody, and mail is still delivered; started as root with a
//! listener off loopback and no `user`, it refuses to start. These tests need root, as CI has.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use super::support::{Client, LOCAL, Server, Setup};
use crate::common::RELAIS;

fn assert_root() {
    // SAFETY: geteuid has no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests start relais as root: run them as root (CI does)"
    );
}

/// (uid line, gid line, groups line) of `/proc/PID/status`, each without its label.
fn ids(pid: libc::pid_t) -> (String, String, String) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

#[test]
fn started_as_root_it_runs_as_the_user_and_still_delivers() {
    assert_root();
    let (uid, gid) = (65534u32, 65534u32); // nobody, nogroup on Debian
    let server = Server::start(Setup::new(&["mx"]).top("user = \"nobody\""));
    server.assert_logged("running as nobody (uid 65534");
    let (u, g, groups) = ids(server.pid());
    assert_eq!(u, "65534 65534 65534 65534");
    assert_eq!(g, "65534 65534 65534 65534");
    assert_eq!(groups, "");
    // Every thread, not only the main one.
    for task in fs::read_dir(format!("/proc/{}/task", server.pid())).unwrap() {
        let status = fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        assert!(
            status.contains("Uid:\t65534\t65534\t65534\t65534"),
            "{status}"
        );
    }
    let mut c = Client::ready(server.port("mx"), None);
    let r = c.send_mail("s@other.test", &[&format!("alice@{LOCAL}")], "as nobody");
    assert!(r.is("250 2.0.0"), "{r}");
    c.quit();
    let mail = server.wait_mail("alice", 1);
    assert!(mail[0].contains("as nobody"));
    let dir = server.data_dir.join("mail/alice/new");
    for f in fs::read_dir(&dir).unwrap() {
        let m = f.unwrap().metadata().unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid));
    }
    assert_eq!(
        fs::metadata(server.data_dir.join("spool")).unwrap().uid(),
        uid
    );
    // The administrator (root) still steers the queue through the control socket.
    let out = Command::new(RELAIS)
        .args(["queue", "list", "--config"])
        .arg(&server.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Mail queue is empty"));
}

#[test]
fn root_with_a_public_listener_and_no_user_refuses_to_start() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    // Never bound: the check comes before any socket is opened.
    let config = dir.path().join("relais.toml");
    fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[[listener]]\naddress = \"0.0.0.0:0\"\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(RELAIS)
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("RELAIS_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("refusing to run as root with a listener on 0.0.0.0:0"),
        "{err}"
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
}
