//! Logs for machines: `log_format = "json"` writes one object per line with fixed field names,
//! so that selecting a queue id tells a message's story (client, recipient, queued with its
//! Message-ID, delivered, removed); `log_file` is reopened on SIGUSR1 after logrotate moved it.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{Client, LOCAL, Setup};
use crate::common::RELAIS;

/// A `relais serve` that logs to a file (its standard error says nothing), stopped when dropped.
struct Logged(Child);

impl Drop for Logged {
    fn drop(&mut self) {
        // SAFETY: kill with the PID of a child we started and have not reaped.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Every line of the file as JSON (each must be one object).
fn objects(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits until some object of the file satisfies `want`; returns all of them then.
fn wait_for(path: &Path, want: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = objects(path);
        if all.iter().any(&want) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "never logged; the file has:\n{all:#?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends one message with this Message-ID; returns its queue id.
fn send(port: u16, message_id: &str) -> String {
    let mut c = Client::ready(port, None);
    c.expect("MAIL FROM:<s@other.test>", "250 ");
    c.expect(&format!("RCPT TO:<alice@{LOCAL}>"), "250 ");
    c.expect("DATA", "354 ");
    let r = c.cmd(&format!(
        "Message-ID: {message_id}\r\nSubject: json\r\n\r\nlogged as JSON\r\n."
    ));
    assert!(r.is("250 2.0.0 Ok: queued as "), "{r}");
    c.quit();
    r.lines
        .last()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn json_lines_in_a_file_tell_a_message_story_and_the_file_is_reopened_on_sigusr1() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("relais.log");
    let config = Setup::new(&["mx"])
        .top("log_format = \"json\"")
        .top(&format!("log_file = {:?}", log.display().to_string()))
        .write_config(dir.path());
    let server = Logged(
        Command::new(RELAIS)
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("RELAIS_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start relais serve"),
    );
    let listening = |v: &Value| {
        v["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("listening on"))
    };
    let started = wait_for(&log, listening);
    let msg = started.iter().find(|v| listening(v)).unwrap()["msg"]
        .as_str()
        .unwrap()
        .to_string();
    let port: u16 = msg
        .split(':')
        .nth(1)
        .and_then(|p| p.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {msg:?}"));

    let id = send(port, "<first@local.test>");
    let all = wait_for(&log, |v| {
        v["event"] == "removed" && v["queue_id"] == id.as_str()
    });
    // `jq 'select(.queue_id == ID)'`: the story in order.
    let story: Vec<&Value> = all
        .iter()
        .filter(|v| v["queue_id"] == id.as_str())
        .collect();
    let events: Vec<&str> = story.iter().filter_map(|v| v["event"].as_str()).collect();
    assert_eq!(
        events,
        ["client", "rcpt", "queued", "sent", "removed"],
        "{story:#?}"
    );
    let client = story[0];
    assert!(
        client["client"]
            .as_str()
            .unwrap()
            .starts_with("unknown[127.0.0.1]:")
    );
    assert_eq!(client["from"], "s@other.test");
    assert!(
        client.get("sasl_username").is_none(),
        "no AUTH, no field: {client}"
    );
    let queued = story[2];
    assert_eq!(queued["message_id"], "<first@local.test>");
    assert_eq!(queued["nrcpt"], 1);
    assert!(queued["size"].as_u64().unwrap() > 0);
    let sent = story[3];
    assert_eq!(sent["to"], format!("alice@{LOCAL}"));
    assert_eq!(sent["relay"], "local");
    assert_eq!(
        (&sent["status"], &sent["dsn"]),
        (&Value::from("sent"), &Value::from("2.0.0"))
    );
    assert!(sent["delay"].is_number());
    for v in &all {
        assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
        assert!(v["level"].is_string() && v["event"].is_string(), "{v}");
    }

    // logrotate: the file is moved away, then SIGUSR1; the next lines go to a new file.
    let rotated = dir.path().join("relais.log.1");
    fs::rename(&log, &rotated).unwrap();
    // SAFETY: kill with the PID of a child we started and have not reaped.
    unsafe { libc::kill(server.0.id() as libc::pid_t, libc::SIGUSR1) };
    thread::sleep(Duration::from_millis(100));
    let second = send(port, "<second@local.test>");
    wait_for(&log, |v| {
        v["event"] == "removed" && v["queue_id"] == second.as_str()
    });
    let old = objects(&rotated);
    assert!(old.iter().all(|v| v["queue_id"] != second.as_str()));
    assert!(old.iter().any(|v| v["queue_id"] == id.as_str()));
}
