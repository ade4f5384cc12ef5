//! A real `relais serve` is a clean server: the probe raises no warning.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::zoo::{HOST, Pki, dns, probe};

struct Serve {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(pki: &Pki) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relais.toml");
    std::fs::write(
        &config,
        format!(
            r#"hostname = "{HOST}"
data_dir = {data:?}
local_domains = ["zoo.test"]

[[listener]]
address = "127.0.0.1:0"

[tls]
cert = {cert:?}
key = {key:?}

[local]
users = ["alice", "postmaster"]
"#,
            data = dir.path().join("data").display().to_string(),
            cert = pki.good_chain.display().to_string(),
            key = pki.good_key.display().to_string(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start relais serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.push_str(&line);
            log.push('\n');
            if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(port) = digits.parse::<u16>() {
                    let _ = tx.send(Ok(port));
                }
            }
        }
        let _ = tx.send(Err(log));
    });
    let port = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(port)) => port,
        other => {
            let _ = child.kill();
            panic!("relais serve did not say where it listens: {other:?}");
        }
    };
    Serve {
        child,
        port,
        _dir: dir,
    }
}

#[test]
fn relais_serve_raises_no_warning() {
    let pki = Pki::new();
    let dns = dns();
    let server = serve(&pki);
    let port = server.port.to_string();
    let p = probe(
        &dns,
        &pki,
        "zoo.test",
        &["--port", &port, "--rcpt", "alice@zoo.test"],
    );
    assert_eq!(p.code, 0, "{}\n{}", p.stdout, p.stderr);
    assert_eq!(p.problems(), vec![], "{}", p.stdout);
    let json = p.json();
    assert_eq!(json["hosts"][0]["tls"]["verified"], true, "{}", p.stdout);
}
