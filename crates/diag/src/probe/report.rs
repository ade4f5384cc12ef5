//! The report model: verdicts, stage rows, one report per address, and the whole probe's
//! report with its JSON form.

use std::time::Duration;

use relais_proto::date::millis;
use serde::Serialize;
use serde_json::{Value, json};

use super::exit;

/// `ok`, `warn` or `fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Verdict {
    pub(crate) level: Level,
    /// A stable name: `connect`, `banner`, `banner-delay`, `reverse-dns`, `ehlo`, `starttls`,
    /// `tls` (with `tls_on_connect`), `certificate`, `auth-cleartext`, `auth`, `mail`, `rcpt`,
    /// `postmaster`, `recipient-verification`, `open-relay`, `greylisting`, `vrfy`, `expn`,
    /// `data`, `dns`.
    pub(crate) check: &'static str,
    pub(crate) reason: String,
    /// What to look at; empty for `ok`.
    pub(crate) advice: String,
    /// The exit code a failing verdict gives (0 for the others); not part of the JSON.
    #[serde(skip)]
    pub(crate) exit: u8,
}

impl Verdict {
    pub(crate) fn ok(check: &'static str, reason: String) -> Verdict {
        Verdict {
            level: Level::Ok,
            check,
            reason,
            advice: String::new(),
            exit: exit::OK,
        }
    }

    pub(crate) fn warn(check: &'static str, reason: String, advice: &str) -> Verdict {
        Verdict {
            level: Level::Warn,
            check,
            reason,
            advice: advice.to_string(),
            exit: exit::OK,
        }
    }

    /// A failing verdict; `code` is the exit code it gives.
    pub(crate) fn fail(code: u8, check: &'static str, reason: String, advice: &str) -> Verdict {
        Verdict {
            level: Level::Fail,
            check,
            reason,
            advice: advice.to_string(),
            exit: code,
        }
    }
}

/// One stage's timing and result, for the table.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StageRow {
    /// `connect`, `tls` (with `tls_on_connect`), `banner`, `reverse-dns`, `ehlo`, `starttls`,
    /// `ehlo-tls`, `auth`, `mail`, `rcpt`, `data`, `vrfy`, `expn`, `rset`, `quit`.
    pub(crate) stage: &'static str,
    pub(crate) ms: Option<f64>,
    pub(crate) result: String,
}

/// An EHLO keyword with its parameters and a one-line meaning.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Capability {
    pub(crate) keyword: String,
    pub(crate) params: Vec<String>,
    pub(crate) meaning: &'static str,
}

/// Everything found about one address.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct HostReport {
    pub(crate) host: String,
    pub(crate) preference: Option<u16>,
    pub(crate) address: String,
    pub(crate) stages: Vec<StageRow>,
    pub(crate) verdicts: Vec<Verdict>,
    pub(crate) banner: Option<String>,
    pub(crate) capabilities: Vec<Capability>,
    pub(crate) tls: Option<Value>,
    pub(crate) reverse: Option<Value>,
    pub(crate) exit: u8,
    pub(crate) transcript: Vec<String>,
}

impl HostReport {
    pub(crate) fn stage(
        &mut self,
        stage: &'static str,
        took: Option<Duration>,
        result: impl Into<String>,
    ) {
        self.stages.push(StageRow {
            stage,
            ms: took.map(millis),
            result: result.into(),
        });
    }

    /// Records a verdict; the first failing one decides the exit code.
    pub(crate) fn add(&mut self, verdict: Verdict) {
        if verdict.level == Level::Fail && self.exit == exit::OK {
            self.exit = verdict.exit;
        }
        self.verdicts.push(verdict);
    }

    pub(crate) fn worst(&self) -> Level {
        self.verdicts
            .iter()
            .map(|v| v.level)
            .max()
            .unwrap_or(Level::Ok)
    }
}

/// The whole probe: the route (MX hosts or the host's addresses) and every address's report.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub(crate) exit: u8,
    pub(crate) target: String,
    /// The MX lookup as JSON (null in host mode).
    pub(crate) route_json: Value,
    /// The route as text lines.
    pub(crate) route: Vec<String>,
    pub(crate) route_verdicts: Vec<Verdict>,
    pub(crate) hosts: Vec<HostReport>,
}

impl ProbeReport {
    /// The exit code: the first failing stage's, hosts in MX order (see [`exit`]).
    pub fn exit(&self) -> u8 {
        self.exit
    }

    /// All verdicts: the route's, then each address's.
    pub(crate) fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.route_verdicts
            .iter()
            .chain(self.hosts.iter().flat_map(|h| h.verdicts.iter()))
    }

    fn count(&self, level: Level) -> usize {
        self.verdicts().filter(|v| v.level == level).count()
    }

    /// The report as pretty-printed JSON, with a final newline.
    pub fn to_json(&self) -> String {
        let value = json!({
            "target": self.target,
            "exit": self.exit,
            "route": self.route_json,
            "route_verdicts": self.route_verdicts,
            "hosts": self.hosts,
            "summary": {
                "addresses": self.hosts.len(),
                "ok": self.count(Level::Ok),
                "warn": self.count(Level::Warn),
                "fail": self.count(Level::Fail),
            },
        });
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    }

    /// The report as text; `transcript` adds each address's SMTP dialogue.
    pub fn to_text(&self, transcript: bool) -> String {
        super::render::render(self, transcript)
    }

    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (
            self.count(Level::Ok),
            self.count(Level::Warn),
            self.count(Level::Fail),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_decides_the_exit_code() {
        let mut r = HostReport::default();
        r.add(Verdict::ok("connect", "connected".into()));
        r.add(Verdict::warn("starttls", "not offered".into(), "enable it"));
        assert_eq!((r.exit, r.worst()), (exit::OK, Level::Warn));
        r.add(Verdict::fail(exit::MAIL, "mail", "refused".into(), "x"));
        r.add(Verdict::fail(exit::RCPT, "rcpt", "refused".into(), "y"));
        assert_eq!((r.exit, r.worst()), (exit::MAIL, Level::Fail));
    }

    #[test]
    fn verdicts_serialize_without_their_exit_code() {
        let v =
            serde_json::to_value(Verdict::fail(exit::TLS, "starttls", "r".into(), "a")).unwrap();
        assert_eq!(
            v,
            json!({"level": "fail", "check": "starttls", "reason": "r", "advice": "a"})
        );
    }
}
