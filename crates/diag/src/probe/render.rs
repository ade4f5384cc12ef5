//! The probe report as text: the route, the sender authentication records, then per address
//! the stage table, the capabilities, the verdicts (and the transcript when asked), then a
//! summary line.

use std::fmt::Write as _;

use super::progress::Progress;
use super::report::{HostReport, Level, ProbeReport, Verdict};

/// The whole report; `streamed`: the route and the addresses' sections were shown already, as
/// the probe went (on a terminal), so only the rest is written.
pub(super) fn render(report: &ProbeReport, transcript: bool, streamed: bool) -> String {
    let mut out = String::new();
    if streamed {
        render_sender_auth(&mut out, report);
    } else {
        let _ = writeln!(out, "relais probe {}", report.target);
        render_body(&mut out, report, transcript);
    }
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
    render_route(out, &report.route, &report.route_verdicts);
    render_sender_auth(out, report);
    for host in &report.hosts {
        render_host(out, host, transcript);
    }
}

/// The route: the MX hosts (or the host's addresses) and what is wrong with them.
pub(crate) fn render_route(out: &mut String, lines: &[String], verdicts: &[Verdict]) {
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    for v in verdicts {
        render_verdict(out, v);
    }
}

/// The domain's SPF, DMARC and DKIM records (nothing in host mode).
pub(crate) fn render_sender_auth(out: &mut String, report: &ProbeReport) {
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
}

/// One address's section as the live progress prints it when the address is done: its
/// stages, capabilities and verdicts (the dialogue and the waterfall when `progress` says).
pub(crate) fn host_section(host: &HostReport, progress: &Progress) -> String {
    let mut out = String::new();
    render_host(&mut out, host, progress.transcript);
    if progress.waterfall {
        render_waterfall(&mut out, host);
    }
    out
}

/// The timing waterfall of one address (`relais check`).
pub(crate) fn render_waterfall(out: &mut String, host: &HostReport) {
    let _ = writeln!(out, "\nWaterfall of {} [{}]:", host.host, host.address);
    for (stage, start, ms, bar) in waterfall(host, 40) {
        let _ = writeln!(out, "  {stage:<12} {start:>8.1} ms |{bar:<40}| {ms:.1} ms");
    }
}

/// The stages of one address laid end to end: (stage, start in ms, length in ms, bar of at
/// most `width` characters, `#` where the stage ran).
pub(crate) fn waterfall(host: &HostReport, width: usize) -> Vec<(&'static str, f64, f64, String)> {
    let total: f64 = host.stages.iter().filter_map(|s| s.ms).sum();
    let scale = if total > 0.0 {
        width as f64 / total
    } else {
        0.0
    };
    let mut at = 0.0;
    let mut out = Vec::new();
    for s in &host.stages {
        let Some(ms) = s.ms else { continue };
        let width = width.max(1);
        let from = ((at * scale).round() as usize).min(width - 1);
        let to = (((at + ms) * scale).round() as usize)
            .max(from + 1)
            .min(width);
        let bar = format!("{}{}", " ".repeat(from), "#".repeat(to - from));
        out.push((s.stage, at, ms, bar));
        at += ms;
    }
    out
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
    use std::time::Duration;

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
        let text = render(&report, true, false);
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
        assert!(!render(&report, false, false).contains("transcript:"));
        // Streamed on a terminal: the route and the address were shown already.
        let rest = render(&report, true, true);
        assert!(rest.starts_with("\nSender authentication"), "{rest}");
        assert!(!rest.contains("== mx.example.test") && !rest.contains("MX of"));
        assert!(rest.ends_with("overall WARN; exit 0\n"));
        let host_mode = ProbeReport {
            sender_auth: None,
            ..report
        };
        assert!(!render(&host_mode, false, false).contains("Sender authentication"));
    }

    #[test]
    fn the_waterfall_lays_the_stages_end_to_end() {
        let mut host = HostReport::default();
        host.stage("connect", Some(Duration::from_millis(10)), "connected");
        host.stage("banner", Some(Duration::from_millis(30)), "220");
        host.stage("starttls", None, "not offered");
        host.stage("ehlo", Some(Duration::from_millis(0)), "250");
        let rows = waterfall(&host, 20);
        let got: Vec<(&str, f64, &str)> = rows
            .iter()
            .map(|(s, at, _, bar)| (*s, *at, bar.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("connect", 0.0, "#####"),
                ("banner", 10.0, "     ###############"),
                ("ehlo", 40.0, "                   #"),
            ]
        );
    }
}
