//! `relais probe HOST --ports 25,26,465,587,2525`: which mail ports of a host (or of each of a
//! domain's MX addresses) answer, all checked at once. Seed 001's way of finding the blocked
//! port, in one run.
//!
//! Each port is tried in clear text first and, when it stays silent or answers with something
//! that is not SMTP, with TLS from the first byte; port 465 the other way round (TLS first).
//! What the attempts saw ([`Seen`]) is judged by [`judge`], a pure function tested as a table:
//! `open` (a 220 greeting in clear text), `tls-only` (a 220 greeting under TLS on connect),
//! `refused`, `filtered` (no answer to the connection), `unreachable`, `silent` (connected, no
//! greeting), `closed`, `not-smtp`, `refusing` (a greeting other than 220), `tls-failed`; each
//! failure with the Outlook error number a mail client shows for it.
//!
//! Exit code: 0 when every address has a port that greets with 220; otherwise the code of the
//! first such address's first failing port (2 no connection, 6 closed, 21 no or a refusing
//! greeting, 29 TLS), or the route's (3) when there is no address at all.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relais_client::{ClientError, SmtpClient, Stage};
use relais_proto::Reply;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use super::report::{Level, Verdict};
use super::target::{self, Job};
use super::{Context, ProbeOptions, exit};

/// The port that speaks TLS from the first byte (RFC 8314 submissions).
const IMPLICIT_TLS: u16 = 465;
/// At most this many ports in one run.
pub const MAX_PORTS: usize = 32;

/// What one attempt on a port saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// A greeting came (in clear text or under TLS, as the attempt was).
    Greeting(Reply),
    /// The connection was refused (RST): nothing listens, or a firewall rejects.
    Refused,
    /// No answer to the connection in time: a firewall drops the packets.
    Filtered,
    /// No route to the host, or another error before the connection.
    Unreachable(String),
    /// Connected, but no greeting came in time.
    Silent,
    /// Connected, but the server closed or reset the connection.
    Closed,
    /// Connected, but what came is not an SMTP reply.
    NotSmtp(String),
    /// Connected, but the TLS handshake failed.
    TlsFailed(String),
}

impl Seen {
    fn from_error(e: &ClientError) -> Seen {
        match e {
            ClientError::Refused { .. } => Seen::Refused,
            ClientError::TimedOut {
                stage: Stage::Connect,
                ..
            } => Seen::Filtered,
            ClientError::TimedOut { .. } => Seen::Silent,
            ClientError::Closed { .. } | ClientError::Reset { .. } => Seen::Closed,
            ClientError::Tls { message, .. } => Seen::TlsFailed(message.clone()),
            ClientError::Protocol { error, .. } => Seen::NotSmtp(error.to_string()),
            other => Seen::Unreachable(other.to_string()),
        }
    }

    /// Whether the other kind of attempt (clear text, TLS) may tell more.
    fn worth_the_other_try(&self) -> bool {
        matches!(
            self,
            Seen::Silent | Seen::Closed | Seen::NotSmtp(_) | Seen::TlsFailed(_)
        )
    }
}

/// How one port fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum State {
    Open,
    TlsOnly,
    Refused,
    Filtered,
    Unreachable,
    Silent,
    Closed,
    NotSmtp,
    Refusing,
    TlsFailed,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::TlsOnly => "tls-only",
            State::Refused => "refused",
            State::Filtered => "filtered",
            State::Unreachable => "unreachable",
            State::Silent => "silent",
            State::Closed => "closed",
            State::NotSmtp => "not-smtp",
            State::Refusing => "refusing",
            State::TlsFailed => "tls-failed",
        }
    }
}

/// One port's line of the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PortReport {
    pub(crate) port: u16,
    pub(crate) state: State,
    /// How long the deciding attempt took (connection and greeting).
    pub(crate) ms: f64,
    /// The Outlook error number a mail client shows for this failure (`0x800CCC0E`).
    pub(crate) outlook: Option<String>,
    #[serde(flatten)]
    pub(crate) verdict: Verdict,
}

/// One address and its ports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AddressPorts {
    pub(crate) host: String,
    pub(crate) address: String,
    pub(crate) ports: Vec<PortReport>,
}

/// The whole port check.
#[derive(Debug, Clone)]
pub struct PortsReport {
    exit: u8,
    target: String,
    route: Vec<String>,
    route_verdicts: Vec<Verdict>,
    route_json: serde_json::Value,
    addresses: Vec<AddressPorts>,
}

/// The verdict on what the attempts on `port` saw: `first` is the first attempt (TLS for 465,
/// clear text otherwise), `second` the other kind, when the first called for it. Pure.
pub(crate) fn judge(
    port: u16,
    first: &Seen,
    second: Option<&Seen>,
) -> (State, Verdict, Option<u32>) {
    let tls_first = port == IMPLICIT_TLS;
    let (plain, tls) = if tls_first {
        (second, Some(first))
    } else {
        (Some(first), second)
    };
    if let Some(Seen::Greeting(r)) = plain
        && r.code == 220
    {
        if tls_first {
            return (
                State::Open,
                Verdict::warn(
                    "port",
                    format!("port {port} speaks clear text, not TLS on connect: {r}"),
                    "port 465 is for TLS from the first byte (RFC 8314); clients set to SSL/TLS there fail (Outlook 0x800CCC1A)",
                ),
                None,
            );
        }
        return (State::Open, Verdict::ok("port", format!("open: {r}")), None);
    }
    if let Some(Seen::Greeting(r)) = tls
        && r.code == 220
    {
        if tls_first {
            return (
                State::TlsOnly,
                Verdict::ok("port", format!("TLS on connect: {r}")),
                None,
            );
        }
        return (
            State::TlsOnly,
            Verdict::warn(
                "port",
                format!("port {port} speaks TLS from the first byte, like 465: {r}"),
                "clients set to STARTTLS or no encryption wait for a greeting and time out (Outlook 0x800CCC19); set them to SSL/TLS, or serve STARTTLS here",
            ),
            None,
        );
    }
    // No usable greeting: a refusing greeting from the other try, else the expected try's
    // failure (the other kind was a guess; its failure says little).
    match second {
        Some(refusing @ Seen::Greeting(_)) => failure(refusing),
        _ => failure(first),
    }
}

/// The verdict on a port with no 220 greeting.
fn failure(seen: &Seen) -> (State, Verdict, Option<u32>) {
    const CANNOT_CONNECT: u32 = 0x800C_CC0E;
    let (state, code, reason, advice, outlook) = match seen {
        Seen::Refused => (
            State::Refused,
            exit::CONNECT,
            "connection refused: nothing listens, or a firewall rejects".to_string(),
            "check that the server listens on this port, and the firewalls",
            Some(CANNOT_CONNECT),
        ),
        Seen::Filtered => (
            State::Filtered,
            exit::CONNECT,
            "no answer to the connection: a firewall drops it, or the host is down".to_string(),
            "many ISPs block outgoing port 25; try 587 or 465, or ask the network's owner",
            Some(CANNOT_CONNECT),
        ),
        Seen::Unreachable(why) => (
            State::Unreachable,
            exit::CONNECT,
            format!("cannot connect: {why}"),
            "check the network route to the host",
            Some(CANNOT_CONNECT),
        ),
        Seen::Silent => (
            State::Silent,
            exit::BANNER,
            "connected, but no greeting came (in clear text or under TLS)".to_string(),
            "a tarpit, a stuck server, or something other than SMTP listens here",
            Some(0x800C_CC19),
        ),
        Seen::Closed => (
            State::Closed,
            exit::CLOSED,
            "connected, but the server closed the connection without a greeting".to_string(),
            "read the server's log: a connection limit, or a block of this address",
            Some(0x800C_CC0F),
        ),
        Seen::NotSmtp(what) => (
            State::NotSmtp,
            exit::BANNER,
            format!("something other than SMTP answers: {what}"),
            "another service listens on this port",
            Some(0x800C_CC61),
        ),
        Seen::TlsFailed(why) => (
            State::TlsFailed,
            exit::TLS,
            format!("the TLS handshake failed: {why}"),
            "check the server's certificate and TLS settings on this port",
            Some(0x800C_CC1A),
        ),
        Seen::Greeting(r) => (
            State::Refusing,
            exit::BANNER,
            format!("open, but the greeting refuses the session: {r}"),
            "the server turns this client away; `relais explain` explains the reply",
            crate::explain::outlook_for_reply(r.code).or(Some(0x800C_CC60)),
        ),
    };
    (state, Verdict::fail(code, "port", reason, advice), outlook)
}

/// Runs the port check on a runtime of its own (see the module documentation). An error means
/// nothing was checked: the options' fault.
pub fn run(options: ProbeOptions) -> Result<PortsReport, String> {
    let mut ports = options.ports.clone();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() || ports.len() > MAX_PORTS || ports.contains(&0) {
        return Err(format!("--ports: 1 to {MAX_PORTS} ports from 1 to 65535"));
    }
    let runtime = relais_client::current_thread_runtime()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let (context, target) = super::context(options)?;
        let route = target::expand(&context, &target).await;
        let context = Arc::new(context);
        let mut tasks = JoinSet::new();
        for (index, job) in route.jobs.iter().enumerate() {
            for &port in &ports {
                let context = context.clone();
                let address = SocketAddr::new(job.address.ip(), port);
                let host = job.host.clone();
                tasks.spawn(async move { (index, check_port(&context, &host, address).await) });
            }
        }
        let mut addresses: Vec<AddressPorts> = route.jobs.iter().map(address_of).collect();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((index, report)) = joined {
                addresses[index].ports.push(report);
            }
        }
        for a in &mut addresses {
            a.ports.sort_by_key(|p| p.port);
        }
        Ok(PortsReport {
            exit: exit_code(&route.verdicts, &addresses),
            target: target.name().to_string(),
            route: route.lines,
            route_verdicts: route.verdicts,
            route_json: route.json,
            addresses,
        })
    })
}

fn address_of(job: &Job) -> AddressPorts {
    AddressPorts {
        host: job.host.clone(),
        address: job.address.ip().to_string(),
        ports: Vec::new(),
    }
}

/// One port: the first attempt, the other kind when the first calls for it, the verdict.
async fn check_port(context: &Context, host: &str, address: SocketAddr) -> PortReport {
    let tls_first = address.port() == IMPLICIT_TLS;
    let (first, took) = attempt(context, host, address, tls_first).await;
    let (second, took) = if first.worth_the_other_try() {
        let (seen, t) = attempt(context, host, address, !tls_first).await;
        (Some(seen), took + t)
    } else {
        (None, took)
    };
    let (state, verdict, outlook) = judge(address.port(), &first, second.as_ref());
    PortReport {
        port: address.port(),
        state,
        ms: relais_proto::date::millis(took),
        outlook: outlook.map(|c| format!("0x{c:08X}")),
        verdict,
    }
}

/// Connects (with TLS from the first byte when `tls`), reads the greeting, says QUIT.
async fn attempt(
    context: &Context,
    host: &str,
    address: SocketAddr,
    tls: bool,
) -> (Seen, Duration) {
    let config = super::session::client_config(context);
    let mut client = SmtpClient::new(config);
    let started = Instant::now();
    let result = if tls {
        let name = if host.parse::<std::net::IpAddr>().is_ok() {
            "localhost"
        } else {
            host
        };
        client.connect_tls(address, name).await
    } else {
        client.connect(address).await
    };
    let took = started.elapsed();
    let seen = match result {
        Ok(reply) => {
            let _ = client.quit().await;
            Seen::Greeting(reply)
        }
        Err(e) => Seen::from_error(&e),
    };
    client.close().await;
    (seen, took)
}

/// 0 when every address has a port that greets; else the first such address's first failure;
/// with no address, the route's failure.
fn exit_code(route: &[Verdict], addresses: &[AddressPorts]) -> u8 {
    if addresses.is_empty() {
        return route
            .iter()
            .find(|v| v.level == Level::Fail)
            .map_or(exit::DNS, |v| v.exit);
    }
    addresses
        .iter()
        .filter(|a| {
            !a.ports
                .iter()
                .any(|p| matches!(p.state, State::Open | State::TlsOnly))
        })
        .flat_map(|a| a.ports.iter().map(|p| p.verdict.exit))
        .find(|&e| e != exit::OK)
        .unwrap_or(exit::OK)
}

impl PortsReport {
    /// The exit code (see the module documentation).
    pub fn exit(&self) -> u8 {
        self.exit
    }

    /// The report as pretty-printed JSON, with a final newline.
    pub fn to_json(&self) -> String {
        let value = json!({
            "target": self.target,
            "exit": self.exit,
            "route": self.route_json,
            "route_verdicts": self.route_verdicts,
            "addresses": self.addresses,
        });
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    }

    /// The report as text: the route, then a table of ports per address.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "relais probe {} (ports)", self.target);
        for line in &self.route {
            let _ = writeln!(out, "{line}");
        }
        for v in &self.route_verdicts {
            let _ = writeln!(out, "  {}  {}", v.level.as_str().to_uppercase(), v.reason);
        }
        for a in &self.addresses {
            let _ = writeln!(out, "\n== {} [{}]", a.host, a.address);
            let _ = writeln!(
                out,
                "  {:<6} {:<11} {:>10}  detail",
                "port", "state", "time"
            );
            for p in &a.ports {
                let outlook = p
                    .outlook
                    .as_ref()
                    .map(|o| format!(" (Outlook {o})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {:<6} {:<11} {:>7.1} ms  {}{outlook}",
                    p.port,
                    p.state.as_str(),
                    p.ms,
                    p.verdict.reason
                );
                if !p.verdict.advice.is_empty() {
                    let _ = writeln!(out, "  {:<31} -> {}", "", p.verdict.advice);
                }
            }
        }
        let usable = self
            .addresses
            .iter()
            .flat_map(|a| &a.ports)
            .filter(|p| matches!(p.state, State::Open | State::TlsOnly))
            .count();
        let total: usize = self.addresses.iter().map(|a| a.ports.len()).sum();
        let _ = writeln!(
            out,
            "\nsummary: {usable} of {total} port(s) greet; exit {}",
            self.exit
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting(code: u16) -> Seen {
        Seen::Greeting(Reply::new(code, None, "mx.test ESMTP"))
    }

    #[test]
    fn what_the_attempts_saw_decides_the_state() {
        let tls_err = || Seen::TlsFailed("bad record".into());
        // (port, first attempt, second attempt, state, level, Outlook number)
        type Row = (u16, Seen, Option<Seen>, State, Level, Option<u32>);
        let table: Vec<Row> = vec![
            (25, greeting(220), None, State::Open, Level::Ok, None),
            (
                587,
                Seen::Silent,
                Some(greeting(220)),
                State::TlsOnly,
                Level::Warn,
                None,
            ),
            (465, greeting(220), None, State::TlsOnly, Level::Ok, None),
            (
                465,
                tls_err(),
                Some(greeting(220)),
                State::Open,
                Level::Warn,
                None,
            ),
            (
                25,
                Seen::Refused,
                None,
                State::Refused,
                Level::Fail,
                Some(0x800C_CC0E),
            ),
            (
                26,
                Seen::Filtered,
                None,
                State::Filtered,
                Level::Fail,
                Some(0x800C_CC0E),
            ),
            (
                465,
                Seen::Filtered,
                None,
                State::Filtered,
                Level::Fail,
                Some(0x800C_CC0E),
            ),
            (
                25,
                Seen::Unreachable("no route".into()),
                None,
                State::Unreachable,
                Level::Fail,
                Some(0x800C_CC0E),
            ),
            (
                25,
                Seen::Silent,
                Some(Seen::Silent),
                State::Silent,
                Level::Fail,
                Some(0x800C_CC19),
            ),
            (
                25,
                Seen::Silent,
                Some(tls_err()),
                State::Silent,
                Level::Fail,
                Some(0x800C_CC19),
            ),
            (
                465,
                tls_err(),
                Some(Seen::Silent),
                State::TlsFailed,
                Level::Fail,
                Some(0x800C_CC1A),
            ),
            (
                25,
                Seen::Closed,
                Some(Seen::Closed),
                State::Closed,
                Level::Fail,
                Some(0x800C_CC0F),
            ),
            (
                25,
                Seen::NotSmtp("SSH-2.0".into()),
                Some(tls_err()),
                State::NotSmtp,
                Level::Fail,
                Some(0x800C_CC61),
            ),
            (
                25,
                greeting(421),
                None,
                State::Refusing,
                Level::Fail,
                Some(0x800C_CC67),
            ),
            (
                25,
                greeting(554),
                None,
                State::Refusing,
                Level::Fail,
                Some(0x800C_CC6F),
            ),
            (
                25,
                Seen::Silent,
                Some(greeting(421)),
                State::Refusing,
                Level::Fail,
                Some(0x800C_CC67),
            ),
        ];
        for (port, first, second, state, level, outlook) in table {
            let (got, verdict, number) = judge(port, &first, second.as_ref());
            assert_eq!(
                (got, verdict.level, number),
                (state, level, outlook),
                "{port} {first:?} {second:?}"
            );
        }
    }

    #[test]
    fn only_a_silence_or_a_stranger_calls_for_the_other_try() {
        assert!(Seen::Silent.worth_the_other_try());
        assert!(Seen::TlsFailed("x".into()).worth_the_other_try());
        assert!(!Seen::Refused.worth_the_other_try());
        assert!(!Seen::Filtered.worth_the_other_try());
        assert!(!greeting(554).worth_the_other_try());
    }

    #[test]
    fn exit_code_wants_one_greeting_port_per_address() {
        let port = |n: u16, seen: Seen| {
            let (state, verdict, _) = judge(n, &seen, None);
            PortReport {
                port: n,
                state,
                ms: 1.0,
                outlook: None,
                verdict,
            }
        };
        let address = |ports| AddressPorts {
            host: "mx.test".into(),
            address: "127.0.0.1".into(),
            ports,
        };
        let table: Vec<(Vec<AddressPorts>, u8)> = vec![
            (
                vec![address(vec![
                    port(25, Seen::Refused),
                    port(587, greeting(220)),
                ])],
                exit::OK,
            ),
            (
                vec![address(vec![
                    port(25, Seen::Filtered),
                    port(587, greeting(421)),
                ])],
                exit::CONNECT,
            ),
            (
                vec![
                    address(vec![port(25, greeting(220))]),
                    address(vec![port(25, greeting(554))]),
                ],
                exit::BANNER,
            ),
            (vec![], exit::DNS),
        ];
        for (addresses, want) in table {
            assert_eq!(exit_code(&[], &addresses), want, "{addresses:?}");
        }
    }
}
