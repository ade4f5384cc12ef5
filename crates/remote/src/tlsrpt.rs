//! TLS-RPT (RFC 8460): the result of every TLS session to a domain delivered by MX, counted per
//! day and policy domain, and the day's report written as JSON to a directory
//! (`[delivery] tls_rpt_dir`; sending it to the domain's `rua` is not done).
//!
//! A report file is named as RFC 8460 §5.3 names an attachment,
//! `OUR-HOST!POLICY-DOMAIN!BEGIN!END.json` (Unix seconds of the UTC day), and written again
//! (a new file renamed over the old) after each result, so it always holds the day so far and
//! is complete once the day is over. What a failure's text means ([`result_type`]) and the
//! report itself ([`report_json`]) are pure, tested as tables.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use relais_proto::date::DateTime;
use serde_json::{Value, json};

use crate::sts::Policy;

/// Seconds in a day.
const DAY: u64 = 86_400;

/// The results of one policy domain on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayResults {
    /// The policy in force at the last result (`None`: no policy found).
    pub policy: Option<Policy>,
    /// Sessions that met the policy.
    pub successes: u64,
    /// Failed sessions by (result type, receiving MX host, its address).
    pub failures: BTreeMap<(String, String, Option<IpAddr>), u64>,
}

/// One session's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// TLS as the policy asks.
    Success,
    /// Not: why (an RFC 8460 result type), with the MX host and address.
    Failure {
        /// `starttls-not-supported`, `certificate-host-mismatch`, …
        result_type: &'static str,
        /// The MX host's name.
        mx: String,
        /// Its address, when one was reached.
        ip: Option<IpAddr>,
    },
}

/// The collector: results by (day, policy domain), written to `dir`.
#[derive(Debug)]
pub struct TlsReports {
    /// Where the reports go.
    dir: PathBuf,
    /// Our host name: the reporting organization and the file names' first part.
    hostname: String,
    /// Results by (first second of the day, policy domain).
    days: Mutex<HashMap<(u64, String), DayResults>>,
}

impl TlsReports {
    /// A collector writing to `dir` (created when missing) in the name of `hostname`.
    pub fn new(dir: PathBuf, hostname: &str) -> TlsReports {
        TlsReports {
            dir,
            hostname: hostname.to_string(),
            days: Mutex::default(),
        }
    }

    /// Counts one session to `domain` at `now` (Unix seconds) under `policy`, and writes the
    /// day's report again. Days before today are dropped from memory (their files stay).
    pub fn record(&self, now: u64, domain: &str, policy: Option<&Policy>, session: Session) {
        let day = now - now % DAY;
        let results = {
            let mut days = self.days.lock().unwrap_or_else(|e| e.into_inner());
            days.retain(|(d, _), _| *d >= day);
            let r = days.entry((day, domain.to_string())).or_default();
            r.policy = policy.cloned();
            match session {
                Session::Success => r.successes += 1,
                Session::Failure {
                    result_type,
                    mx,
                    ip,
                } => *r.failures.entry((result_type.into(), mx, ip)).or_default() += 1,
            }
            r.clone()
        };
        let name = format!("{}!{domain}!{day}!{}.json", self.hostname, day + DAY - 1);
        let text = report_json(&self.hostname, domain, day, &results).to_string();
        if let Err(e) = write_atomically(&self.dir, &name, text.as_bytes()) {
            tracing::warn!("TLS report {name}: {e}");
        }
    }
}

fn write_atomically(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(name))
}

/// The RFC 8460 §4.4 report of one policy domain for the day starting at `day`.
pub fn report_json(hostname: &str, domain: &str, day: u64, r: &DayResults) -> Value {
    let stamp = |secs: u64| {
        let d = DateTime::from_unix(secs as i64);
        format!("{}T{}Z", d.iso_date(), d.clock())
    };
    let policy = match &r.policy {
        Some(p) => json!({
            "policy-type": "sts",
            "policy-string": p.lines(),
            "policy-domain": domain,
            "mx-host": p.mx,
        }),
        None => json!({"policy-type": "no-policy-found", "policy-domain": domain}),
    };
    let failures: Vec<Value> = r
        .failures
        .iter()
        .map(|((kind, mx, ip), n)| {
            let mut f = json!({
                "result-type": kind,
                "receiving-mx-hostname": mx,
                "failed-session-count": n,
            });
            if let Some(ip) = ip {
                f["receiving-ip"] = json!(ip.to_string());
            }
            f
        })
        .collect();
    json!({
        "organization-name": hostname,
        "date-range": {
            "start-datetime": stamp(day),
            "end-datetime": stamp(day + DAY - 1),
        },
        "contact-info": format!("postmaster@{hostname}"),
        "report-id": format!("{day}.{domain}@{hostname}"),
        "policies": [{
            "policy": policy,
            "summary": {
                "total-successful-session-count": r.successes,
                "total-failure-session-count": r.failures.values().sum::<u64>(),
            },
            "failure-details": failures,
        }],
    })
}

/// The RFC 8460 result type of a failed session, from the words of its failure.
pub fn result_type(why: &str) -> &'static str {
    let w = why.to_ascii_lowercase();
    if w.contains("not offered") || w.contains("starttls refused") {
        "starttls-not-supported"
    } else if w.contains("notvalidforname") || w.contains("not valid for name") {
        "certificate-host-mismatch"
    } else if w.contains("expired") {
        "certificate-expired"
    } else if w.contains("unknownissuer") || w.contains("unknown issuer") {
        "certificate-not-trusted"
    } else {
        "validation-failure"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sts::Mode;

    #[test]
    fn result_types() {
        let cases = [
            (
                "mx[127.0.0.1]:25: TLS is required, but was not offered (tls = verify)",
                "starttls-not-supported",
            ),
            (
                "STARTTLS failed: invalid peer certificate: NotValidForName",
                "certificate-host-mismatch",
            ),
            ("invalid peer certificate: Expired", "certificate-expired"),
            (
                "invalid peer certificate: UnknownIssuer",
                "certificate-not-trusted",
            ),
            ("handshake failure", "validation-failure"),
        ];
        for (why, want) in cases {
            assert_eq!(result_type(why), want, "{why}");
        }
    }

    #[test]
    fn reports() {
        let mut r = DayResults {
            policy: Some(Policy {
                mode: Mode::Testing,
                mx: vec!["*.example.net".into()],
                max_age: 86400,
            }),
            successes: 3,
            ..DayResults::default()
        };
        r.failures.insert(
            (
                "certificate-host-mismatch".into(),
                "mx.example.net".into(),
                Some("127.0.0.1".parse().unwrap()),
            ),
            2,
        );
        let v = report_json("mx.local.test", "example.net", 1_764_892_800, &r);
        assert_eq!(v["organization-name"], "mx.local.test");
        assert_eq!(v["date-range"]["start-datetime"], "2025-12-05T00:00:00Z");
        assert_eq!(v["date-range"]["end-datetime"], "2025-12-05T23:59:59Z");
        let p = &v["policies"][0];
        assert_eq!(p["policy"]["policy-type"], "sts");
        assert_eq!(p["policy"]["policy-string"][1], "mode: testing");
        assert_eq!(p["policy"]["mx-host"][0], "*.example.net");
        assert_eq!(p["summary"]["total-successful-session-count"], 3);
        assert_eq!(p["summary"]["total-failure-session-count"], 2);
        assert_eq!(
            p["failure-details"][0]["result-type"],
            "certificate-host-mismatch"
        );
        assert_eq!(p["failure-details"][0]["receiving-ip"], "127.0.0.1");
        let none = report_json("h", "d.example", 0, &DayResults::default());
        assert_eq!(
            none["policies"][0]["policy"]["policy-type"],
            "no-policy-found"
        );
        assert_eq!(none["date-range"]["start-datetime"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn each_day_has_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let reports = TlsReports::new(dir.path().join("tls-rpt"), "mx.local.test");
        let day = 1_764_892_800;
        reports.record(day + 10, "example.net", None, Session::Success);
        reports.record(
            day + 20,
            "example.net",
            None,
            Session::Failure {
                result_type: "starttls-not-supported",
                mx: "mx.example.net".into(),
                ip: None,
            },
        );
        reports.record(day + DAY + 5, "example.net", None, Session::Success);
        let first = dir.path().join(format!(
            "tls-rpt/mx.local.test!example.net!{day}!{}.json",
            day + DAY - 1
        ));
        let v: Value = serde_json::from_slice(&std::fs::read(first).unwrap()).unwrap();
        assert_eq!(
            v["policies"][0]["summary"]["total-successful-session-count"],
            1
        );
        assert_eq!(
            v["policies"][0]["summary"]["total-failure-session-count"],
            1
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("tls-rpt"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
