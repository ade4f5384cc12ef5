//! The fixture zone and server of the sender authentication tests.

use std::path::Path;
use std::process::Output;

use crate::common::{Dns, Zone, dns};
use crate::support::{Server, Setup, output_text, run};

/// A server for local.test that checks senders with these `[policy]` lines, every lookup
/// going to `dns`.
pub fn server(dns: &Dns, policy: &[&str]) -> Server {
    Server::start(setup(dns, policy))
}

/// The setup of [`server`], for a test to add to.
pub fn setup(dns: &Dns, policy: &[&str]) -> Setup {
    let mut block = String::from("[policy]");
    for l in policy {
        block.push('\n');
        block.push_str(l);
    }
    Setup::new(&["mx"])
        .without_tls()
        .top(&format!("resolver = \"{}\"", dns.addr()))
        .top(&block)
}

/// Stops `server` (SIGTERM) and starts it again on the same configuration and data: what it
/// kept on disk is there, its ports are new.
pub fn restart(server: &mut Server) {
    server.process.stop();
    let cmd = crate::common::serve_command(&server.config, server.dir.path());
    server.process =
        crate::common::process::Daemon::start("relais", cmd, 1, std::time::Duration::from_secs(20));
}

/// SPF records of every case: the client is always 127.0.0.1.
pub fn spf_zone() -> Zone {
    Zone::new()
        .txt("pass.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("fail.test", "v=spf1 ip4:192.0.2.1 -all")
        .txt("exp.test", "v=spf1 ip4:192.0.2.1 -all exp=why.exp.test")
        .txt("why.exp.test", "%{i} may not send mail for %{d}")
        .txt("soft.test", "v=spf1 ip4:192.0.2.1 ~all")
        .txt("neutral.test", "v=spf1 ?all")
        .txt("broken.test", "v=spf1 ip4:192.0.2.1 bogus:x -all")
        .txt("helo-fail.test", "v=spf1 -all")
        .txt("helo-pass.test", "v=spf1 ip4:127.0.0.0/8 -all")
        .fault("servfail.test", relais_dns::fixture::Fault::ServFail)
}

/// Starts the fixture DNS server with `zone`.
pub fn start_dns(zone: Zone) -> Dns {
    dns(zone)
}

/// Runs the dkimpy helper script with these arguments.
pub fn dkim_tool(args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sender_auth/py/dkim_tool.py");
    let mut all = vec![script.display().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let out = run("python3", &all);
    assert!(
        out.status.success()
            || args.first() == Some(&"verify")
            || args.first() == Some(&"arc-verify"),
        "dkim_tool {args:?}: {}",
        output_text(&out)
    );
    out
}

/// The value of the first header `name` of `message`, unfolded.
pub fn header(message: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut lines = message.lines();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return None;
        }
        if line.to_ascii_lowercase().starts_with(&prefix) {
            let mut value = line[prefix.len()..].trim().to_string();
            for more in lines.by_ref() {
                if !more.starts_with([' ', '\t']) {
                    break;
                }
                value.push(' ');
                value.push_str(more.trim());
            }
            return Some(value);
        }
    }
    None
}

/// Every header `name` of `message` (unfolded values).
pub fn headers(message: &str, name: &str) -> Vec<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in message.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(c) = current.as_mut() {
                c.push(' ');
                c.push_str(line.trim());
            }
            continue;
        }
        out.extend(current.take());
        if line.to_ascii_lowercase().starts_with(&prefix) {
            current = Some(line[prefix.len()..].trim().to_string());
        }
    }
    out.extend(current);
    out
}
