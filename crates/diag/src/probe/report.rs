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
    /// Whether EHLO offered STARTTLS (`None`: the session never got that far), for `relais
    /// check`'s DANE item; the stages and verdicts say it in the JSON.
    #[serde(skip)]
    pub(crate) starttls_offered: Option<bool>,
    /// The certificate chain the server sent (end-entity first, DER), for `relais check` to
    /// match against the host's TLSA records; `tls` describes it in the JSON.
    #[serde(skip)]
    pub(crate) peer_chain: Vec<Vec<u8>>,
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
}

/// A domain's sender authentication records (SPF, DMARC, DKIM keys), with one verdict each.
#[derive(Debug, Clone)]
pub(crate) struct SenderAuth {
    /// The domain whose records these are.
    pub(crate) domain: String,
    /// All the lookups together (they run side by side).
    pub(crate) elapsed: Duration,
    /// The records (and what SPF says of each MX address) as text lines.
    pub(crate) lines: Vec<String>,
    /// The same as JSON: `spf`, `mx_spf`, `dmarc`, `dkim`.
    pub(crate) records: Value,
    /// SPF, DMARC, then one per DKIM selector.
    pub(crate) verdicts: Vec<Verdict>,
}

/// The whole probe: the route (MX hosts or the host's addresses), every address's report, and
/// the domain's sender authentication records.
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
    /// The domain's SPF, DMARC and DKIM records (none in host mode).
    pub(crate) sender_auth: Option<SenderAuth>,
}

/// The exit code of a probe: with no address to probe, the route's failure; else the first
/// failing address's (hosts in MX order), then the route's, then the sender authentication
/// records' (see [`exit`]).
pub(crate) fn exit_code(route: &[Verdict], hosts: &[HostReport], sender_auth: &[Verdict]) -> u8 {
    let first = |verdicts: &[Verdict]| {
        verdicts
            .iter()
            .find(|v| v.level == Level::Fail)
            .map(|v| v.exit)
    };
    let route = first(route);
    if hosts.is_empty()
        && let Some(code) = route
    {
        return code;
    }
    hosts
        .iter()
        .map(|h| h.exit)
        .find(|&e| e != exit::OK)
        .or(route)
        .or_else(|| first(sender_auth))
        .unwrap_or(exit::OK)
}

impl ProbeReport {
    /// The exit code: the first failing stage's, hosts in MX order (see [`exit`]).
    pub fn exit(&self) -> u8 {
        self.exit
    }

    /// All verdicts: the route's, the sender authentication records', then each address's.
    pub(crate) fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.route_verdicts
            .iter()
            .chain(self.sender_auth.iter().flat_map(|a| a.verdicts.iter()))
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
            "sender_auth": self.sender_auth.as_ref().map(SenderAuth::to_json),
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
        super::render::render(self, transcript, false)
    }

    /// What is left to print after the live progress showed the route and each address's
    /// section as they came: the sender authentication records and the summary.
    pub fn to_text_after_progress(&self) -> String {
        super::render::render(self, false, true)
    }

    /// The worst verdict of all.
    pub(crate) fn worst(&self) -> Level {
        self.verdicts().map(|v| v.level).max().unwrap_or(Level::Ok)
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
        let worst = |r: &HostReport| r.verdicts.iter().map(|v| v.level).max();
        assert_eq!((r.exit, worst(&r)), (exit::OK, Some(Level::Warn)));
        r.add(Verdict::fail(exit::MAIL, "mail", "refused".into(), "x"));
        r.add(Verdict::fail(exit::RCPT, "rcpt", "refused".into(), "y"));
        assert_eq!((r.exit, worst(&r)), (exit::MAIL, Some(Level::Fail)));
    }

    #[test]
    fn exit_codes_follow_the_first_failure() {
        let fail = |code| Verdict::fail(code, "x", "r".into(), "a");
        let warn = || Verdict::warn("x", "r".into(), "a");
        let host = |verdicts: Vec<Verdict>| {
            let mut h = HostReport::default();
            verdicts.into_iter().for_each(|v| h.add(v));
            h
        };
        let auth = exit::SENDER_AUTH;
        // (route, hosts, sender authentication, exit)
        type Row = (Vec<Verdict>, Vec<HostReport>, Vec<Verdict>, u8);
        let table: Vec<Row> = vec![
            (vec![], vec![host(vec![])], vec![], exit::OK),
            (
                vec![warn()],
                vec![host(vec![warn()])],
                vec![warn()],
                exit::OK,
            ),
            (vec![], vec![host(vec![])], vec![warn(), fail(auth)], auth),
            (
                vec![],
                vec![host(vec![])],
                vec![fail(exit::DNS), fail(auth)],
                exit::DNS,
            ),
            (
                vec![],
                vec![host(vec![]), host(vec![fail(exit::TLS)])],
                vec![fail(auth)],
                exit::TLS,
            ),
            (
                vec![fail(exit::DNS)],
                vec![host(vec![])],
                vec![fail(auth)],
                exit::DNS,
            ),
            (
                vec![fail(exit::DNS)],
                vec![host(vec![fail(exit::RCPT)])],
                vec![],
                exit::RCPT,
            ),
            (vec![fail(exit::DNS)], vec![], vec![fail(auth)], exit::DNS),
            (vec![], vec![], vec![fail(auth)], auth),
        ];
        for (i, (route, hosts, sender_auth, want)) in table.iter().enumerate() {
            assert_eq!(exit_code(route, hosts, sender_auth), *want, "row {i}");
        }
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
