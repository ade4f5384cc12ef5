//! The probe report as text: the route, the sender authentication records, then per address
//! the stage table, the capabilities, the verdicts (and the transcript when asked), then a
//! summary line.

use std::fmt::Write as _;

use super::report::{HostReport, Level, ProbeReport, Verdict};

pub(super) fn render(report: &ProbeReport, transcript: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "relais probe {}", report.target);
    render_body(&mut out, report, transcript);
    let (ok, warn, fail) = report.counts();
    let worst = report.worst();
    let _ = writeln!(
        out,
        "\nsummary: {} address(es) probed; {ok} ok, {warn} warn, {fail} fail; overall {}; exit {}",
        report.hosts.len(),
        worst.as_str().to_uppercase(),
        report.exit
    );
    out
}

/// The route, the sender authentication records and every address, without a title or a
/// summary: what `relais check` shows of the probe too.
pub(crate) fn render_body(out: &mut String, report: &ProbeReport, transcript: bool) {
    for line in &report.route {
        let _ = writeln!(out, "{line}");
    }
    for v in &report.route_verdicts {
        render_verdict(out, v);
    }
    if let Some(auth) = &report.sender_auth {
        let _ = writeln!(
            out,
            "\nSender authentication of {} ({}):",
            auth.domain,
            crate::ms(auth.elapsed)
        );
        for line in &auth.lines {
            let _ = writeln!(out, "{line}");
        }
        for v in &auth.verdicts {
            render_verdict(out, v);
        }
    }
    for host in &report.hosts {
        render_host(out, host, transcript);
    }
}

fn render_host(out: &mut String, host: &HostReport, transcript: bool) {
    let pref = host
        .preference
        .map(|p| format!(" (MX {p})"))
        .unwrap_or_default();
    let _ = writeln!(out, "\n== {} [{}]{pref}", host.host, host.address);
    for stage in &host.stages {
        let ms = stage
            .ms
            .map(|ms| format!("{ms:>9.1} ms"))
            .unwrap_or_else(|| " ".repeat(12));
        let _ = writeln!(out, "  {:<12}{ms}  {}", stage.stage, stage.result);
    }
    if !host.capabilities.is_empty() {
        let _ = writeln!(out, "  capabilities:");
        for c in &host.capabilities {
            let keyword = format!("{} {}", c.keyword, c.params.join(" "));
            let _ = writeln!(out, "    {:<28} {}", keyword.trim(), c.meaning);
        }
    }
    let _ = writeln!(out, "  verdicts:");
    for v in &host.verdicts {
        render_verdict(out, v);
    }
    if transcript {
        let _ = writeln!(out, "  transcript:");
        for line in &host.transcript {
            let _ = writeln!(out, "    {line}");
        }
    }
}

/// One verdict as a line (and its advice on the next), as every diagnostic report shows it.
pub(crate) fn render_verdict(out: &mut String, v: &Verdict) {
    let tag = match v.level {
        Level::Ok => "  ok ",
        Level::Warn => " WARN",
        Level::Fail => " FAIL",
    };
    let _ = writeln!(out, "  {tag}  {:<22} {}", v.check, v.reason);
    if !v.advice.is_empty() {
        let _ = writeln!(out, "  {:<5}  {:<22} -> {}", "", "", v.advice);
    }
}

#[cfg(test)]
mod tests {
    use super::super::report::{Capability, SenderAuth, Verdict};
    use super::*;

    #[test]
    fn text_layout() {
        let mut host = HostReport {
            host: "mx.example.test".into(),
            preference: Some(10),
            address: "192.0.2.1:25".into(),
            ..HostReport::default()
        };
        host.stage(
            "connect",
            Some(std::time::Duration::from_micros(1_250)),
            "connected",
        );
        host.stage("starttls", None, "not offered");
        host.capabilities.push(Capability {
            keyword: "SIZE".into(),
            params: vec!["1000".into()],
            meaning: "the largest message",
        });
        host.add(Verdict::warn("starttls", "not offered".into(), "enable it"));
        host.transcript.push("   0.001 <-  220 hi".into());
        let report = ProbeReport {
            exit: 0,
            target: "example.test".into(),
            route_json: serde_json::Value::Null,
            route: vec!["MX of example.test (1.0 ms):".into()],
            route_verdicts: Vec::new(),
            hosts: vec![host],
            sender_auth: Some(SenderAuth {
                domain: "example.test".into(),
                elapsed: std::time::Duration::from_millis(2),
                lines: vec!["  SPF    example.test: v=spf1 mx -all".into()],
                records: serde_json::Value::Null,
                verdicts: vec![Verdict::ok("spf", "ending in -all".into())],
            }),
        };
        let text = render(&report, true);
        let want = "\
relais probe example.test
MX of example.test (1.0 ms):

Sender authentication of example.test (2.0 ms):
  SPF    example.test: v=spf1 mx -all
    ok   spf                    ending in -all

== mx.example.test [192.0.2.1:25] (MX 10)
  connect           1.3 ms  connected
  starttls                  not offered
  capabilities:
    SIZE 1000                    the largest message
  verdicts:
   WARN  starttls               not offered
         ...
";
        let want = want.replace(
            "         ...\n",
            &format!("  {:<5}  {:<22} -> enable it\n", "", ""),
        ) + "  transcript:\n       0.001 <-  220 hi\n\nsummary: 1 address(es) probed; 1 ok, 1 warn, 0 fail; overall WARN; exit 0\n";
        assert_eq!(text, want);
        assert!(!render(&report, false).contains("transcript:"));
        let host_mode = ProbeReport {
            sender_auth: None,
            ..report
        };
        assert!(!render(&host_mode, false).contains("Sender authentication"));
    }
}
