//! `relais check DOMAIN`: MXToolbox's domain health report in one run. The probe of every MX
//! address (banner, PTR and FCrDNS, STARTTLS and certificate, open relay, postmaster@) with
//! the domain's SPF (evaluated for each MX address), DMARC and DKIM keys, as `relais probe`
//! does them; beside them the records the probe does not look at ([`records`]): MTA-STS,
//! TLS-RPT, BIMI, every MX host's DANE TLSA records matched against the certificate its
//! addresses offered ([`dane`]), and every MX address on the DNS block lists. Text with a
//! timing waterfall per address (its last stage, `dane`, the TLSA lookups), JSON, or a
//! self-contained HTML page ([`html`]).
//!
//! Exit codes, by the worst verdict, as monitoring plugins (Nagios) have them: 0 all ok, 1 a
//! warning, 2 a failure, 3 nothing could be checked (the options).

mod dane;
mod html;
pub(crate) mod records;

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use relais_dns::{Resolver, ResolverOptions};
use relais_remote::sts::StsCache;
use serde_json::{Value, json};

use crate::probe::render::{render_body, render_sender_auth, render_verdict, render_waterfall};
use crate::probe::report::{HostReport, Level, Verdict};
use crate::probe::{self, ProbeOptions, ProbeReport};

/// Exit codes of `relais check`.
pub mod exit {
    /// Every verdict is ok.
    pub const OK: u8 = 0;
    /// The worst verdict is a warning.
    pub const WARN: u8 = 1;
    /// The worst verdict is a failure.
    pub const FAIL: u8 = 2;
    /// Nothing could be checked: the options do not make sense.
    pub const UNKNOWN: u8 = 3;
}

/// What to check: the probe's options (a domain target), and the block lists.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The probe of the MX hosts; its target is the domain.
    pub probe: ProbeOptions,
    /// The DNS block lists every MX address is looked up on.
    pub dnsbl_zones: Vec<String>,
    /// The HTTPS port of the MTA-STS policy host (443; another one only in tests).
    pub sts_port: u16,
    /// The DNSKEY records DNSSEC validation of the TLSA records starts from (none: the
    /// root's keys).
    pub dnssec_trust_anchor: Option<std::path::PathBuf>,
}

/// What the records beyond the probe's are looked up with.
struct RecordQuery {
    resolver: ResolverOptions,
    /// The same, validating with DNSSEC (for DANE).
    validating: ResolverOptions,
    zones: Vec<String>,
    sts_port: u16,
    ca_file: Option<std::path::PathBuf>,
}

/// The records beyond the probe's, with their lines and verdicts.
#[derive(Debug, Clone, Default)]
struct Records {
    elapsed: Duration,
    lines: Vec<String>,
    verdicts: Vec<Verdict>,
    json: Value,
}

/// The whole check.
#[derive(Debug, Clone)]
pub struct CheckReport {
    domain: String,
    probe: ProbeReport,
    records: Records,
    exit: u8,
}

/// Runs the check. An error means nothing was checked (exit [`exit::UNKNOWN`]).
pub fn run(options: CheckOptions) -> Result<CheckReport, String> {
    let domain = options
        .probe
        .target
        .trim()
        .trim_end_matches('.')
        .to_string();
    if domain.is_empty()
        || domain.contains([':', '/', '@', ' '])
        || domain.parse::<IpAddr>().is_ok()
    {
        return Err(format!("{domain:?} is not a domain name"));
    }
    let query = RecordQuery {
        resolver: options.probe.resolver.clone(),
        validating: ResolverOptions {
            dnssec: Some(options.dnssec_trust_anchor.clone()),
            ..options.probe.resolver.clone()
        },
        zones: options.dnsbl_zones.clone(),
        sts_port: options.sts_port,
        ca_file: options.probe.ca_file.clone(),
    };
    let mut probe_options = options.probe;
    probe_options.host = false;
    let progress = probe_options.progress.take().map(|mut p| {
        p.waterfall = true;
        p.command = "check";
        p
    });
    probe_options.progress = progress.clone();
    let mut probe = probe::run(probe_options)?;
    if let Some(p) = &progress {
        p.emit(probe::progress::Event::Step {
            what: "MTA-STS, TLS-RPT, BIMI, DANE and the DNS block lists",
        });
    }
    let addresses = mx_addresses(&probe.hosts);
    let mut mx_hosts: Vec<String> = Vec::new();
    for h in &probe.hosts {
        if h.preference.is_some() && !mx_hosts.contains(&h.host) {
            mx_hosts.push(h.host.clone());
        }
    }
    let records = lookup_records(&query, &domain, &addresses, &mx_hosts, &mut probe.hosts)?;
    let worst = probe
        .verdicts()
        .chain(records.verdicts.iter())
        .map(|v| v.level)
        .max()
        .unwrap_or(Level::Ok);
    Ok(CheckReport {
        domain,
        probe,
        records,
        exit: match worst {
            Level::Ok => exit::OK,
            Level::Warn => exit::WARN,
            Level::Fail => exit::FAIL,
        },
    })
}

/// The MX addresses the probe reached for, each once.
fn mx_addresses(hosts: &[HostReport]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for h in hosts {
        if let Ok(a) = h.address.parse::<SocketAddr>()
            && !out.contains(&a.ip())
        {
            out.push(a.ip());
        }
    }
    out
}

/// MTA-STS, TLS-RPT, BIMI, DANE (a `dane` stage added to each address) and the block lists,
/// all at once.
fn lookup_records(
    query: &RecordQuery,
    domain: &str,
    addresses: &[IpAddr],
    mx_hosts: &[String],
    hosts: &mut [HostReport],
) -> Result<Records, String> {
    let zones = &query.zones;
    let runtime = relais_client::current_thread_runtime()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let resolver = Resolver::new(&query.resolver).map_err(|e| e.to_string())?;
        let validating = Resolver::new(&query.validating).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mta_sts_name = format!("_mta-sts.{domain}");
        let tls_rpt_name = format!("_smtp._tls.{domain}");
        let bimi_name = format!("default._bimi.{domain}");
        let lists = async {
            let mut all = Vec::new();
            for ip in addresses {
                all.push(resolver.dnsbl(*ip, zones).await);
            }
            all
        };
        let (mta_sts, tls_rpt, bimi, lists, dane) = tokio::join!(
            resolver.txt(&mta_sts_name),
            resolver.txt(&tls_rpt_name),
            resolver.txt(&bimi_name),
            lists,
            dane::check(&resolver, &validating, domain, hosts)
        );
        let mut r = Records {
            elapsed: started.elapsed(),
            ..Records::default()
        };
        for (label, lookup, verdict) in [
            ("MTA-STS", &mta_sts, records::mta_sts(&mta_sts)),
            ("TLS-RPT", &tls_rpt, records::tls_rpt(&tls_rpt)),
            ("BIMI", &bimi, records::bimi(&bimi)),
        ] {
            let shown = match lookup.records() {
                [] => "none".to_string(),
                some => some.join(" | "),
            };
            r.lines
                .push(format!("  {label:<8} {}: {shown}", lookup.name));
            r.verdicts.push(verdict);
        }
        // With a record, the policy file itself, fetched as a sender fetches it.
        let policy = if records::mta_sts(&mta_sts).level == Level::Ok {
            let cache = StsCache::new(query.sts_port, query.ca_file.clone(), None);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let lookup = cache.lookup(&resolver, domain, now).await;
            r.lines.push(format!(
                "  MTA-STS  policy: {}",
                match (&lookup.policy, &lookup.fetch_error) {
                    (Some(p), _) => p.lines().join("; "),
                    (None, Some(e)) => format!("not usable: {e}"),
                    (None, None) => "none".into(),
                }
            ));
            r.verdicts
                .extend(records::mta_sts_policy(domain, &lookup, mx_hosts));
            Some(lookup)
        } else {
            None
        };
        r.elapsed = started.elapsed();
        r.lines.extend(dane.lines);
        r.verdicts.extend(dane.verdicts);
        for checks in &lists {
            r.verdicts.extend(records::dnsbl(checks));
        }
        if !zones.is_empty() {
            r.lines.push(format!(
                "  DNSBL    {} address(es) on {}",
                addresses.len(),
                zones.join(", ")
            ));
        }
        r.json = json!({
            "mta_sts": mta_sts.records(),
            "mta_sts_policy": policy.map(|l| json!({
                "policy": l.policy.map(|p| p.lines()),
                "error": l.fetch_error,
            })),
            "tls_rpt": tls_rpt.records(),
            "bimi": bimi.records(),
            "dane": dane.json,
            "dnsbl": lists.iter().flatten().map(|c| json!({
                "ip": c.ip, "zone": c.zone, "status": c.status.as_str(),
            })).collect::<Vec<_>>(),
        });
        Ok(r)
    })
}

impl CheckReport {
    /// The exit code, by the worst verdict (see [`exit`]).
    pub fn exit(&self) -> u8 {
        self.exit
    }

    /// Every verdict: the probe's, then the records'.
    fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.probe.verdicts().chain(self.records.verdicts.iter())
    }

    fn counts(&self) -> (usize, usize, usize) {
        let count = |l| self.verdicts().filter(|v| v.level == l).count();
        (count(Level::Ok), count(Level::Warn), count(Level::Fail))
    }

    fn worst(&self) -> Level {
        self.verdicts().map(|v| v.level).max().unwrap_or(Level::Ok)
    }

    /// The report as pretty-printed JSON: the probe's report under `probe`, the other records
    /// with their verdicts under `records`, and a summary.
    pub fn to_json(&self) -> String {
        let probe: Value = serde_json::from_str(&self.probe.to_json()).unwrap_or_default();
        let (ok, warn, fail) = self.counts();
        let value = json!({
            "domain": self.domain,
            "exit": self.exit,
            "probe": probe,
            "records": {
                "records": self.records.json,
                "verdicts": self.records.verdicts,
                "ms": relais_proto::date::millis(self.records.elapsed),
            },
            "summary": {"ok": ok, "warn": warn, "fail": fail, "worst": self.worst()},
        });
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    }

    /// The report as text: the probe's sections, a timing waterfall per address, the other
    /// records, then a summary line.
    pub fn to_text(&self, transcript: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "relais check {}", self.domain);
        render_body(&mut out, &self.probe, transcript);
        for host in &self.probe.hosts {
            render_waterfall(&mut out, host);
        }
        self.render_rest(&mut out);
        out
    }

    /// What is left to print after the live progress showed the route and each address's
    /// section (with its waterfall) as they came: the sender authentication records, the
    /// other records and the summary.
    pub fn to_text_after_progress(&self) -> String {
        let mut out = String::new();
        render_sender_auth(&mut out, &self.probe);
        self.render_rest(&mut out);
        out
    }

    fn render_rest(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nOther records of {} ({}):",
            self.domain,
            crate::ms(self.records.elapsed)
        );
        for line in &self.records.lines {
            let _ = writeln!(out, "{line}");
        }
        for v in &self.records.verdicts {
            render_verdict(out, v);
        }
        let (ok, warn, fail) = self.counts();
        let _ = writeln!(
            out,
            "\nsummary: {} address(es) probed; {ok} ok, {warn} warn, {fail} fail; overall {}; exit {}",
            self.probe.hosts.len(),
            self.worst().as_str().to_uppercase(),
            self.exit
        );
    }

    /// The report as one self-contained HTML page (no script, no outside file).
    pub fn to_html(&self) -> String {
        html::page(self)
    }
}
