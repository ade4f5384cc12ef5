//! Targets: a domain (its MX hosts) or one server, expanded into the addresses to probe, and
//! the fan-out that probes them several at a time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use relais_dns::mx::{MailRoute, RouteKind};
use relais_dns::{Addresses, Outcome};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::progress::Event;
use super::report::{HostReport, Level, ProbeReport, Verdict, exit_code};
use super::{Context, exit};

/// What was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// A mail domain, and the port of its MX hosts.
    Domain { domain: String, port: u16 },
    /// One server.
    Host { host: String, port: u16 },
}

/// One address to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Job {
    pub(super) host: String,
    pub(super) preference: Option<u16>,
    pub(super) address: SocketAddr,
}

/// The route to the addresses: text lines, verdicts, and the addresses themselves.
#[derive(Debug, Default)]
pub(super) struct Route {
    /// The MX hosts (or the host's addresses) as text lines.
    pub(super) lines: Vec<String>,
    /// What is wrong with the route (no MX, a host without address, ...).
    pub(super) verdicts: Vec<Verdict>,
    /// The addresses to probe, MX hosts in preference order.
    pub(super) jobs: Vec<Job>,
    /// The MX lookup as JSON (null in host mode).
    pub(super) json: serde_json::Value,
}

impl Target {
    /// `example.org` → a domain; `mx.example.org:2525`, `192.0.2.1`, `[2001:db8::1]:25` → a
    /// host (any name too with `force_host`).
    pub(super) fn parse(text: &str, default_port: u16, force_host: bool) -> Target {
        let text = text.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Target::Host {
                host: addr.ip().to_string(),
                port: addr.port(),
            };
        }
        let bare = text.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Target::Host {
                host: ip.to_string(),
                port: default_port,
            };
        }
        if let Some((host, port)) = text.rsplit_once(':')
            && let Ok(port) = port.parse::<u16>()
        {
            return Target::Host {
                host: host.to_string(),
                port,
            };
        }
        if force_host {
            Target::Host {
                host: text.to_string(),
                port: default_port,
            }
        } else {
            Target::Domain {
                domain: text.trim_end_matches('.').to_string(),
                port: default_port,
            }
        }
    }

    /// The domain postmaster@ and a random local part are tried at: the target domain, or in
    /// host mode the recipient's domain (none: those probes are skipped).
    pub(super) fn domain(&self, rcpt: Option<&str>) -> Option<String> {
        match self {
            Target::Domain { domain, .. } => Some(domain.clone()),
            Target::Host { .. } => rcpt
                .and_then(|r| r.rsplit_once('@'))
                .map(|(_, d)| d.to_string()),
        }
    }

    /// The domain or host name, without a port.
    pub(super) fn name(&self) -> &str {
        match self {
            Target::Domain { domain, .. } => domain,
            Target::Host { host, .. } => host,
        }
    }

    pub(super) fn text(&self) -> String {
        match self {
            Target::Domain { domain, .. } => domain.clone(),
            Target::Host { host, port } => format!("{host}:{port}"),
        }
    }
}

/// The addresses a target stands for: a domain's MX hosts' (with the MX lookup as JSON), a
/// host name's, or the address itself.
pub(super) async fn expand(context: &Context, target: &Target) -> Route {
    match target {
        Target::Domain { domain, port } => {
            let mail_route = context.resolver.mail_route(domain).await;
            Route {
                json: serde_json::to_value(&mail_route).unwrap_or_default(),
                ..expand_route(domain, *port, &mail_route)
            }
        }
        Target::Host { host, port } => match host.parse::<IpAddr>() {
            Ok(ip) => Route {
                jobs: vec![job(host, None, ip, *port)],
                ..Route::default()
            },
            Err(_) => expand_host(host, *port, &context.resolver.addresses(host).await),
        },
    }
}

/// Expands the target, probes every address (`concurrency` at a time), gathers the report.
pub(super) async fn probe(
    context: Arc<Context>,
    target: Target,
    concurrency: usize,
) -> ProbeReport {
    let route = expand(&context, &target).await;
    if let Some(progress) = &context.progress {
        let mut text = format!("relais {} {}\n", progress.command, target.text());
        super::render::render_route(&mut text, &route.lines, &route.verdicts);
        let addresses: Vec<String> = route
            .jobs
            .iter()
            .map(|j| format!("{} [{}]", j.host, j.address))
            .collect();
        progress.emit(Event::Route {
            text: &text,
            addresses: &addresses,
        });
    }
    // The sender authentication records are looked up while the addresses are probed.
    let mx: Vec<(String, IpAddr)> = route
        .jobs
        .iter()
        .map(|j| (j.host.clone(), j.address.ip()))
        .collect();
    let sender_auth = async {
        match &target {
            Target::Domain { domain, .. } => Some(
                super::sender_auth::check(&context.resolver, domain, &context.dkim_selectors, &mx)
                    .await,
            ),
            Target::Host { .. } => None,
        }
    };
    let (hosts, sender_auth) =
        tokio::join!(fan_out(&context, route.jobs, concurrency), sender_auth);
    let exit = exit_code(
        &route.verdicts,
        &hosts,
        sender_auth.as_ref().map_or(&[], |a| &a.verdicts),
    );
    ProbeReport {
        exit,
        target: target.text(),
        route_json: route.json,
        route: route.lines,
        route_verdicts: route.verdicts,
        hosts,
        sender_auth,
    }
}

/// Probes the jobs, at most `concurrency` at once; the reports come back in the jobs' order.
async fn fan_out(context: &Arc<Context>, jobs: Vec<Job>, concurrency: usize) -> Vec<HostReport> {
    let semaphore = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let count = jobs.len();
    for (index, job) in jobs.into_iter().enumerate() {
        let context = context.clone();
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let report = super::session::probe_address(&context, job, index).await;
            if let Some(progress) = &context.progress {
                let worst = report.verdicts.iter().map(|v| v.level).max();
                progress.emit(Event::Done {
                    index,
                    section: &super::render::host_section(&report, progress),
                    worst: worst.unwrap_or(Level::Ok).as_str(),
                });
            }
            (index, report)
        });
    }
    let mut hosts: Vec<Option<HostReport>> = vec![None; count];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, report)) = joined {
            hosts[index] = Some(report);
        }
    }
    hosts.into_iter().flatten().collect()
}

fn job(host: &str, preference: Option<u16>, ip: IpAddr, port: u16) -> Job {
    Job {
        host: host.to_string(),
        preference,
        address: SocketAddr::new(ip, port),
    }
}

/// A domain's mail route as lines, verdicts and addresses to probe.
fn expand_route(domain: &str, port: u16, route: &MailRoute) -> Route {
    let mut out = Route::default();
    let took = crate::ms(route.elapsed);
    let (reason, advice) = match &route.kind {
        RouteKind::Mx | RouteKind::Implicit => {
            if route.kind == RouteKind::Implicit {
                out.lines.push(format!(
                    "{domain} has no MX records: the implicit MX is the domain itself ({took})"
                ));
                out.verdicts.push(Verdict::warn(
                    "dns",
                    format!("{domain} has no MX record; senders fall back to its A/AAAA address"),
                    "publish an MX record naming the mail host",
                ));
            } else {
                out.lines.push(format!("MX of {domain} ({took}):"));
            }
            for host in &route.hosts {
                expand_mx_host(&mut out, host, port);
            }
            if route.null_mx_with_others {
                out.verdicts.push(Verdict::warn(
                    "dns",
                    "a null MX (\".\") is listed next to real MX hosts".into(),
                    "RFC 7505 forbids mixing them: remove the null MX",
                ));
            }
            return out;
        }
        RouteKind::NullMx => (
            format!("{domain} publishes a null MX (RFC 7505): it accepts no mail"),
            "if the domain should receive mail, replace the null MX with real MX records",
        ),
        RouteKind::NoSuchDomain => (
            format!("{domain} does not exist (NXDOMAIN): host not found (Outlook 0x800CCC0D)"),
            "check the spelling; check that the domain is registered and delegated",
        ),
        RouteKind::NoMailHost => (
            format!("{domain} has neither MX nor A/AAAA records: no host receives its mail"),
            "publish an MX record",
        ),
        RouteKind::Failed(f) => (
            format!("the MX lookup of {domain} failed: {f}"),
            "check the domain's nameservers (SERVFAIL, lame delegation) and the resolver",
        ),
    };
    out.lines.push(format!("MX of {domain}: {reason} ({took})"));
    out.verdicts
        .push(Verdict::fail(exit::DNS, "dns", reason, advice));
    out
}

/// One MX host: its line, its addresses as jobs, a failing verdict when it has none.
fn expand_mx_host(out: &mut Route, host: &relais_dns::mx::MailHost, port: u16) {
    let ips = host.addresses.ips();
    let shown = if ips.is_empty() {
        "no address".to_string()
    } else {
        ips.iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.lines
        .push(format!("  {:>5}  {}  {shown}", host.preference, host.name));
    if ips.is_empty() {
        let why = match host.addresses.outcome() {
            Outcome::Failed(f) => format!("its address lookup failed: {f}"),
            _ => "it has no A/AAAA record".to_string(),
        };
        out.verdicts.push(Verdict::fail(
            exit::DNS,
            "dns",
            format!("MX host {} cannot be reached: {why}", host.name),
            "give the MX host an A/AAAA record, or fix the MX record",
        ));
    }
    for ip in ips {
        out.jobs
            .push(job(&host.name, Some(host.preference), ip, port));
    }
}

/// A host name's addresses as jobs, or a failing verdict.
fn expand_host(host: &str, port: u16, addresses: &Addresses) -> Route {
    let mut out = Route::default();
    match addresses.outcome() {
        Outcome::Found(ips) => {
            out.jobs = ips
                .into_iter()
                .map(|ip| job(host, None, ip, port))
                .collect();
        }
        other => {
            let reason = match other {
                Outcome::Failed(f) => format!("the address lookup of {host} failed: {f}"),
                _ => format!("{host} has no address: host not found (Outlook 0x800CCC0D)"),
            };
            out.verdicts.push(Verdict::fail(
                exit::DNS,
                "dns",
                reason,
                "check the host name and its A/AAAA records",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use relais_dns::Failure;
    use relais_dns::mx::MailHost;

    use super::super::fixtures::{addresses, lookup};
    use super::super::report::Level;
    use super::*;

    #[test]
    fn targets() {
        let host = |h: &str, port| Target::Host {
            host: h.into(),
            port,
        };
        let domain = |d: &str| Target::Domain {
            domain: d.into(),
            port: 25,
        };
        // (text, --host, target)
        let table: &[(&str, bool, Target)] = &[
            ("example.org", false, domain("example.org")),
            ("example.org.", false, domain("example.org")),
            (" example.org ", false, domain("example.org")),
            ("example.org", true, host("example.org", 25)),
            ("mx.example.org:2525", false, host("mx.example.org", 2525)),
            ("192.0.2.1", false, host("192.0.2.1", 25)),
            ("192.0.2.1:587", false, host("192.0.2.1", 587)),
            ("[2001:db8::1]:26", false, host("2001:db8::1", 26)),
            ("2001:db8::1", false, host("2001:db8::1", 25)),
            ("[2001:db8::1]", false, host("2001:db8::1", 25)),
        ];
        for (text, force, want) in table {
            assert_eq!(&Target::parse(text, 25, *force), want, "{text}");
        }
        assert_eq!(
            host("h", 25).domain(Some("bob@example.test")),
            Some("example.test".into())
        );
        assert_eq!(host("h", 25).domain(None), None);
        assert_eq!(
            domain("d.test").domain(Some("bob@x.test")),
            Some("d.test".into())
        );
    }

    fn route(kind: RouteKind, hosts: Vec<MailHost>, null_mx_with_others: bool) -> MailRoute {
        MailRoute {
            domain: "example.test".into(),
            mx: lookup("example.test", "MX", Outcome::NoData),
            kind,
            hosts,
            null_mx_with_others,
            elapsed: Duration::from_millis(2),
        }
    }

    #[test]
    fn route_verdicts() {
        let ip = Ipv4Addr::new(192, 0, 2, 1);
        let reachable = MailHost {
            preference: 10,
            name: "mx.example.test".into(),
            addresses: addresses("mx.example.test", Outcome::Found(vec![ip])),
        };
        let unreachable = MailHost {
            preference: 20,
            name: "mx2.example.test".into(),
            addresses: addresses("mx2.example.test", Outcome::NxDomain),
        };
        let failed = Failure::Timeout;
        // (route, jobs, verdicts as (level, check, exit))
        type Row = (MailRoute, usize, Vec<(Level, u8)>);
        let table: Vec<Row> = vec![
            (
                route(RouteKind::Mx, vec![reachable.clone()], false),
                1,
                vec![],
            ),
            (
                route(RouteKind::Implicit, vec![reachable.clone()], false),
                1,
                vec![(Level::Warn, exit::OK)],
            ),
            (
                route(RouteKind::Mx, vec![reachable.clone(), unreachable], true),
                1,
                vec![(Level::Fail, exit::DNS), (Level::Warn, exit::OK)],
            ),
            (
                route(RouteKind::NullMx, vec![], false),
                0,
                vec![(Level::Fail, exit::DNS)],
            ),
            (
                route(RouteKind::NoSuchDomain, vec![], false),
                0,
                vec![(Level::Fail, exit::DNS)],
            ),
            (
                route(RouteKind::NoMailHost, vec![], false),
                0,
                vec![(Level::Fail, exit::DNS)],
            ),
            (
                route(RouteKind::Failed(failed), vec![], false),
                0,
                vec![(Level::Fail, exit::DNS)],
            ),
        ];
        for (route, jobs, verdicts) in table {
            let out = expand_route("example.test", 25, &route);
            assert_eq!(out.jobs.len(), jobs, "{:?}", route.kind);
            let got: Vec<(Level, u8)> = out.verdicts.iter().map(|v| (v.level, v.exit)).collect();
            assert_eq!(got, verdicts, "{:?}", route.kind);
            assert!(out.verdicts.iter().all(|v| v.check == "dns"));
        }
        let out = expand_route(
            "example.test",
            2525,
            &route(RouteKind::Mx, vec![reachable], false),
        );
        assert_eq!(out.lines[1], "     10  mx.example.test  192.0.2.1");
        assert_eq!(out.jobs[0].address, "192.0.2.1:2525".parse().unwrap());
        assert_eq!(out.jobs[0].preference, Some(10));
    }

    #[test]
    fn host_addresses() {
        let ip = Ipv4Addr::new(192, 0, 2, 7);
        // (A outcome, jobs, failing)
        let table: &[(Outcome<Ipv4Addr>, usize, bool)] = &[
            (Outcome::Found(vec![ip]), 1, false),
            (Outcome::NoData, 0, true),
            (Outcome::NxDomain, 0, true),
            (Outcome::Failed(Failure::Timeout), 0, true),
        ];
        for (a, jobs, failing) in table {
            let out = expand_host("mx.test", 25, &addresses("mx.test", a.clone()));
            assert_eq!(out.jobs.len(), *jobs, "{a:?}");
            assert_eq!(
                out.verdicts
                    .iter()
                    .any(|v| v.level == Level::Fail && v.exit == exit::DNS),
                *failing,
                "{a:?}"
            );
        }
    }
}
