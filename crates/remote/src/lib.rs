//! `relais-remote`: remote delivery, one SMTP transaction to another domain's mail exchanger for the recipients
//! of one message at one domain, with the same client engine as the diagnostics.
//!
//! Where the mail goes: a per-domain route (`[host]:port`, like Postfix's transport map), else
//! the relay host, else the domain's MX hosts in preference order (an implicit MX when there is
//! none; RFC 7505 null MX fails at once); an address literal (`user@[192.0.2.1]`) is that
//! host, port 25, with no lookup. Every address is tried in turn until one takes the
//! transaction. TLS follows the policy of the destination ([`tls`]: `none`, `may` by default
//! (STARTTLS when offered, certificates not verified, as RFC 7435 allows for MX delivery,
//! clear text again after a failed handshake), `encrypt`, `verify`); a next hop may take TLS
//! from the first byte and credentials (`connect.rs`). 4xx replies and network errors defer,
//! 5xx fail.
//!
//! Floor 3 of the flow of a message, beside local delivery: the queue manager (floor 4) hands
//! it a [`Job`] and gets a [`JobResult`] back; the SMTP dialogue is `relais-client`'s.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use relais_client::{ClientConfig, ClientError, SmtpClient};
use relais_dns::Resolver;
use relais_dns::mx::RouteKind;
use relais_proto::EhloResponse;
use relais_proto::{MailParams, RcptParams, Recipient, Reply, ReversePath};

use relais_config::{NextHop, TlsMode};
use relais_queue::{Content, Outcome};

mod connect;
mod secure;
pub mod sts;
pub mod tls;
pub mod tlsrpt;

pub use connect::{Credentials, Hop};
pub use tls::TlsSettings;

/// Settings of remote delivery.
pub struct RemoteSettings {
    /// Our name in EHLO.
    pub hostname: String,
    /// Per-domain next hops (lower-case domain).
    pub routes: HashMap<String, NextHop>,
    /// Where everything else goes, if set (Postfix's `relayhost`).
    pub relayhost: Option<NextHop>,
    /// DNS for MX and address lookups.
    pub resolver: Resolver,
    /// Client timeouts and TLS policy.
    pub client: ClientConfig,
    /// Local addresses to connect from, one per family at most (`[delivery] source_address`).
    pub source: Vec<IpAddr>,
    /// The TLS policy.
    pub tls: TlsSettings,
    /// More trusted CA certificates for `verify`.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Settings per next hop (`[host]:port`, host lower case).
    pub hops: HashMap<String, Hop>,
    /// Connections kept open between transactions to the same host.
    pub cache: ConnectionCache,
    /// Under `verify`, per domain or next hop: names the certificate may have instead of the
    /// host's.
    pub tls_match: HashMap<String, Vec<String>>,
    /// MTA-STS policies, when MTA-STS is on.
    pub sts: Option<sts::StsCache>,
    /// The TLS-RPT collector, when reports are written.
    pub reports: Option<tlsrpt::TlsReports>,
    /// A DNSSEC-validating resolver for the TLSA records of `dane` (the same nameserver).
    pub dane_resolver: Option<Resolver>,
    /// Send with `BDAT` (RFC 3030) to servers that offer `CHUNKING` (`[delivery] chunking`);
    /// otherwise `DATA`, dot-stuffed.
    pub chunking: bool,
}

/// With [`RemoteSettings::chunking`], the content goes in `BDAT` chunks of this many octets.
pub const BDAT_CHUNK: usize = 1 << 20;

/// Idle connections kept for the next transaction to the same address (Postfix's connection
/// cache): a burst of mail to one destination pays for TCP, EHLO and STARTTLS once, not once per
/// message. A connection is reused at most `max_uses` times and only while it has been idle for
/// less than `max_idle`; a server that closed it meanwhile costs one retry on a new connection.
pub struct ConnectionCache {
    /// Idle connections by address, with their EHLO answer and when they became idle.
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    /// How long a connection may wait idle and still be reused.
    pub max_idle: Duration,
    /// Transactions per connection, at most.
    pub max_uses: u32,
    /// Idle connections kept per address, at most.
    pub max_per_host: usize,
}

/// One idle connection.
struct Idle {
    client: SmtpClient,
    ehlo: EhloResponse,
    since: Instant,
    uses: u32,
}

impl Default for ConnectionCache {
    /// Postfix-like limits: a few seconds idle, 100 transactions per connection.
    fn default() -> Self {
        ConnectionCache {
            idle: Mutex::new(HashMap::new()),
            max_idle: Duration::from_secs(5),
            max_uses: 100,
            max_per_host: 20,
        }
    }
}

impl ConnectionCache {
    fn take(&self, addr: SocketAddr) -> Option<Box<Idle>> {
        let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.get_mut(&addr)?;
        while let Some(idle) = list.pop() {
            if idle.since.elapsed() < self.max_idle && idle.client.is_connected() {
                return Some(Box::new(idle));
            }
            // Too old: dropped (closing it politely would need an await under the lock).
        }
        None
    }

    /// Says goodbye (QUIT) to connections idle for longer than `max_idle`, so that the other
    /// side does not hold them until its own timeout. Run about once a second.
    pub async fn reap(&self) {
        let expired: Vec<Idle> = {
            let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            for list in map.values_mut() {
                let (old, keep): (Vec<Idle>, Vec<Idle>) = std::mem::take(list)
                    .into_iter()
                    .partition(|i| i.since.elapsed() >= self.max_idle);
                *list = keep;
                out.extend(old);
            }
            map.retain(|_, l| !l.is_empty());
            out
        };
        for mut idle in expired {
            let _ = idle.client.quit().await;
        }
    }

    /// Says goodbye to every idle connection (at shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Idle> = {
            let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            map.drain().flat_map(|(_, l)| l).collect()
        };
        for mut idle in all {
            let _ = idle.client.quit().await;
        }
    }

    fn put(&self, addr: SocketAddr, idle: Box<Idle>) -> Option<Box<Idle>> {
        if idle.uses >= self.max_uses {
            return Some(idle);
        }
        let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(addr).or_default();
        if list.len() >= self.max_per_host {
            return Some(idle);
        }
        list.push(*idle);
        None
    }
}

/// One transaction to do: a message's recipients at one domain.
pub struct Job {
    /// The destination domain (lower case).
    pub domain: String,
    /// MAIL FROM.
    pub from: ReversePath,
    /// MAIL FROM parameters of the original transaction.
    pub params: MailParams,
    /// The recipients: (index in the envelope, recipient).
    pub recipients: Vec<(usize, Recipient)>,
    /// The message as it goes out, read from the spool as it is sent.
    pub content: Content,
}

/// What came of a job.
pub struct JobResult {
    /// Per recipient: (index in the envelope, outcome).
    pub outcomes: Vec<(usize, Outcome)>,
    /// The host that took (or refused) the transaction, for logs and DSNs.
    pub remote: Option<String>,
    /// True if that host advertised DSN (it then sends the reports itself).
    pub remote_dsn: bool,
}

/// Delivers a job, trying every next hop in turn.
pub async fn deliver(settings: &RemoteSettings, job: &Job) -> JobResult {
    let all = |o: Outcome| JobResult {
        outcomes: job
            .recipients
            .iter()
            .map(|(i, _)| (*i, o.clone()))
            .collect(),
        remote: None,
        remote_dsn: false,
    };
    let addresses = match targets(settings, &job.domain).await {
        Ok(a) => a,
        Err(o) => return all(o),
    };
    let by_mx = addresses.iter().all(|a| a.by_mx);
    let guard = secure::Guard::new(settings, job, by_mx).await;
    let mut last = Outcome::deferred("4.4.1", format!("no address to try for {}", job.domain));
    for next in addresses {
        match attempt(settings, job, &next, &guard).await {
            Attempt::Done(r) => return r,
            Attempt::TryNext(o) => last = o,
        }
    }
    all(last)
}

/// One address to try.
struct NextAddress {
    /// The host name it belongs to (MX host, next hop, or the literal's address).
    name: String,
    /// The address and port.
    addr: SocketAddr,
    /// The next hop it was reached through (`[host]:port`, host lower case), if not by MX.
    hop: Option<String>,
    /// It is an MX host (or the implicit MX) of the domain.
    by_mx: bool,
}

/// The addresses to try, in order.
async fn targets(settings: &RemoteSettings, domain: &str) -> Result<Vec<NextAddress>, Outcome> {
    let hop = settings.routes.get(domain).or(settings.relayhost.as_ref());
    if let Some(hop) = hop {
        let key = relais_config::hop_key(&hop.to_string());
        let addrs = host_addresses(settings, &hop.host).await?;
        return Ok(addrs
            .into_iter()
            .map(|ip| NextAddress {
                name: hop.host.clone(),
                addr: SocketAddr::new(ip, hop.port),
                hop: key.clone(),
                by_mx: false,
            })
            .collect());
    }
    // `user@[192.0.2.1]`: that host, no MX lookup (RFC 5321 §4.1.3, §5.1).
    if let Some(ip) = relais_proto::address::address_literal(domain) {
        return Ok(vec![NextAddress {
            name: ip.to_string(),
            addr: SocketAddr::new(ip, 25),
            hop: None,
            by_mx: false,
        }]);
    }
    let route = settings.resolver.mail_route(domain).await;
    match &route.kind {
        RouteKind::NullMx => Err(Outcome::failed(
            "5.1.10",
            format!("{domain} accepts no mail (null MX, RFC 7505)"),
        )),
        RouteKind::NoSuchDomain => Err(Outcome::failed(
            "5.1.2",
            format!("Host or domain name not found: {domain} (NXDOMAIN)"),
        )),
        RouteKind::NoMailHost => Err(Outcome::failed(
            "5.4.4",
            format!("{domain} has no MX and no address record"),
        )),
        RouteKind::Failed(f) => Err(Outcome::deferred(
            "4.4.3",
            format!("MX lookup for {domain} failed: {f}"),
        )),
        RouteKind::Mx | RouteKind::Implicit => {
            let mut out = Vec::new();
            for h in &route.hosts {
                let ips: Vec<IpAddr> = h
                    .addresses
                    .a
                    .records()
                    .iter()
                    .map(|a| IpAddr::V4(*a))
                    .chain(h.addresses.aaaa.records().iter().map(|a| IpAddr::V6(*a)))
                    .collect();
                out.extend(ips.into_iter().map(|ip| NextAddress {
                    name: h.name.clone(),
                    addr: SocketAddr::new(ip, 25),
                    hop: None,
                    by_mx: true,
                }));
            }
            if out.is_empty() {
                return Err(Outcome::deferred(
                    "4.4.3",
                    format!("no address found for the mail hosts of {domain}"),
                ));
            }
            Ok(out)
        }
    }
}

/// The addresses of a next hop given by name or IP.
async fn host_addresses(settings: &RemoteSettings, host: &str) -> Result<Vec<IpAddr>, Outcome> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let ips = settings.resolver.addresses(host).await.ips();
    if ips.is_empty() {
        return Err(Outcome::deferred(
            "4.4.3",
            format!("cannot resolve next hop {host}"),
        ));
    }
    Ok(ips)
}

enum Attempt {
    /// The transaction happened (whatever its outcome): stop here.
    Done(JobResult),
    /// This host could not take it: try the next one.
    TryNext(Outcome),
}

/// The outcome a reply stands for.
fn from_reply(reply: &Reply, host: &str) -> Outcome {
    Outcome::from_reply(reply, host, None)
}

async fn attempt(
    settings: &RemoteSettings,
    job: &Job,
    next: &NextAddress,
    guard: &secure::Guard,
) -> Attempt {
    let (name, addr) = (next.name.as_str(), next.addr);
    let host = format!("{name}[{}]:{}", addr.ip(), addr.port());
    let judgement = guard.judge(name);
    if judgement == sts::Judgement::Skip {
        let why = format!(
            "{host}: the MTA-STS policy of {} (mode enforce) does not list this MX host",
            job.domain
        );
        tracing::info!("{why}: not tried");
        guard.report(
            settings,
            tlsrpt::Session::Failure {
                result_type: "validation-failure",
                mx: name.to_string(),
                ip: Some(addr.ip()),
            },
        );
        return Attempt::TryNext(Outcome::deferred("4.7.5", why));
    }
    let hop = next.hop.as_deref().and_then(|k| settings.hops.get(k));
    let mut mode = settings.tls.mode(
        &job.domain,
        next.hop.as_deref(),
        hop.is_some_and(|h| h.auth.is_some()),
    );
    let mut matches: &[String] = next
        .hop
        .as_deref()
        .and_then(|h| settings.tls_match.get(h))
        .or_else(|| settings.tls_match.get(&job.domain))
        .map_or(&[], Vec::as_slice);
    if judgement == sts::Judgement::Verify {
        // MTA-STS: the certificate must be valid for the MX host's own name.
        (mode, matches) = (TlsMode::Verify, &[]);
    }
    // A cached connection first, if it is as secure as this delivery needs; if the server
    // dropped it meanwhile, once more on a new one.
    if let Some(idle) = settings.cache.take(addr) {
        if !secure::secure_enough(&idle.client, mode, name, matches) {
            let mut idle = idle;
            let _ = idle.client.quit().await;
        } else {
            guard.report_open(settings, &idle.client, name, &judgement);
            match transaction(settings, job, &host, idle.client, idle.ehlo, idle.uses).await {
                Transaction::Stale => {}
                Transaction::Done(a, keep) => {
                    if let Some(idle) = keep {
                        settings.cache_or_close(addr, idle).await;
                    }
                    return a;
                }
            }
        }
    }
    let dest = connect::Dest {
        name,
        addr,
        host: &host,
        mode,
        hop,
        matches,
        mx_of: next.by_mx.then_some(job.domain.as_str()),
    };
    let (c, ehlo) = match connect::open(settings, &dest).await {
        Ok(x) => x,
        Err(a) => {
            if let Attempt::TryNext(o) = &a {
                guard.report_failure(settings, name, addr.ip(), o);
            }
            return a;
        }
    };
    guard.report_open(settings, &c, name, &judgement);
    let uses = 0;
    match transaction(settings, job, &host, c, ehlo, uses).await {
        Transaction::Stale => Attempt::TryNext(Outcome::deferred(
            "4.4.2",
            format!("{host}: connection lost before MAIL"),
        )),
        Transaction::Done(a, keep) => {
            if let Some(idle) = keep {
                settings.cache_or_close(addr, idle).await;
            }
            a
        }
    }
}

impl RemoteSettings {
    /// Keeps a connection for the next transaction, or says goodbye to it.
    async fn cache_or_close(&self, addr: SocketAddr, idle: Box<Idle>) {
        if let Some(mut rejected) = self.cache.put(addr, idle) {
            let _ = rejected.client.quit().await;
        }
    }
}

/// How a transaction on a connection ended.
enum Transaction {
    /// The connection was dead before MAIL was answered (a cached one the server closed).
    Stale,
    /// Done, with the connection if it can be reused.
    Done(Attempt, Option<Box<Idle>>),
}

/// MAIL, RCPT…, DATA on an open connection; RSET afterwards so that it can be reused.
async fn transaction(
    settings: &RemoteSettings,
    job: &Job,
    host: &str,
    mut c: SmtpClient,
    ehlo: EhloResponse,
    uses: u32,
) -> Transaction {
    c.transcript_mut().entries.clear();
    let host = host.to_string();
    let dsn = ehlo.has("DSN");
    if job.params.smtputf8 && !ehlo.has("SMTPUTF8") {
        let _ = c.quit().await;
        let o = Outcome::failed(
            "5.6.7",
            format!("{host} does not support SMTPUTF8, which this message needs"),
        );
        let r = JobResult {
            outcomes: job
                .recipients
                .iter()
                .map(|(i, _)| (*i, o.clone()))
                .collect(),
            remote: Some(host),
            remote_dsn: dsn,
        };
        return Transaction::Done(Attempt::Done(r), None);
    }
    let mut params = MailParams {
        size: ehlo.has("SIZE").then_some(job.content.len()),
        body: job.params.body.filter(|_| ehlo.has("8BITMIME")),
        smtputf8: job.params.smtputf8,
        ..MailParams::default()
    };
    if dsn {
        params.ret = job.params.ret;
        params.envid = job.params.envid.clone();
    }
    let mut result = JobResult {
        outcomes: Vec::new(),
        remote: Some(host.clone()),
        remote_dsn: dsn,
    };
    let all = |o: Outcome| {
        job.recipients
            .iter()
            .map(|(i, _)| (*i, o.clone()))
            .collect::<Vec<_>>()
    };
    match c.mail(&job.from, &params).await {
        Ok(_) => {}
        Err(e) => {
            result.outcomes = match e.reply() {
                Some(r) => all(from_reply(r, &host)),
                None => {
                    c.close().await;
                    return Transaction::Stale;
                }
            };
            let _ = c.quit().await;
            return Transaction::Done(Attempt::Done(result), None);
        }
    }
    let mut accepted = Vec::new();
    for (i, r) in &job.recipients {
        let rp = if dsn {
            r.params.clone()
        } else {
            RcptParams::default()
        };
        match c.rcpt(&r.to, &rp).await {
            Ok(_) => accepted.push(*i),
            Err(e) => match e.reply() {
                Some(reply) => result.outcomes.push((*i, from_reply(reply, &host))),
                None => {
                    // The connection broke: nothing was sent, try the next host.
                    c.close().await;
                    let o = Outcome::deferred("4.4.2", format!("{host}: {e}"));
                    return Transaction::Done(Attempt::TryNext(o), None);
                }
            },
        }
    }
    if accepted.is_empty() {
        return finish(c, ehlo, uses, Attempt::Done(result)).await;
    }
    let chunking = settings.chunking && ehlo.has("CHUNKING");
    let final_outcome = match send(&mut c, &job.content, chunking).await {
        Ok(reply) => from_reply(&reply, &host),
        // The spool could not give the message: the connection was closed before its end.
        Err(e @ ClientError::Content { .. }) => Outcome::deferred("4.3.0", e.to_string()),
        Err(e) => match e.reply() {
            Some(reply) => from_reply(reply, &host),
            // Lost after the content was (perhaps) sent: defer; a duplicate is better than a loss.
            None => Outcome::deferred("4.4.2", format!("{host}: {e}")),
        },
    };
    for i in accepted {
        result.outcomes.push((i, final_outcome.clone()));
    }
    finish(c, ehlo, uses + 1, Attempt::Done(result)).await
}

/// The message after the recipients: `DATA`, or `BDAT` chunks with `chunking`, the content read
/// from the spool as it goes.
async fn send(c: &mut SmtpClient, content: &Content, chunking: bool) -> Result<Reply, ClientError> {
    let mut reader = match content.reader() {
        Ok(r) => r,
        Err(source) => {
            c.close().await;
            return Err(ClientError::Content { source });
        }
    };
    match chunking {
        true => c.bdat_from(&mut reader, BDAT_CHUNK).await,
        false => c.data_from(&mut reader).await,
    }
}

/// After a transaction: RSET, and the connection goes back for reuse if the server agrees.
async fn finish(mut c: SmtpClient, ehlo: EhloResponse, uses: u32, a: Attempt) -> Transaction {
    if !c.is_connected() {
        return Transaction::Done(a, None);
    }
    match c.command("RSET").await {
        Ok(r) if r.is_positive() => Transaction::Done(
            a,
            Some(Box::new(Idle {
                client: c,
                ehlo,
                since: Instant::now(),
                uses,
            })),
        ),
        _ => {
            let _ = c.quit().await;
            Transaction::Done(a, None)
        }
    }
}
