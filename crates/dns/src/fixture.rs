//! A small authoritative DNS server for tests (feature `fixture`).
//!
//! It answers from a [`Zone`] held in memory, over UDP and TCP on the same free port of
//! 127.0.0.1, on a thread of its own (so synchronous tests that run the `relais` binary can use
//! it as well as async ones). Answers are authoritative: NXDOMAIN for names that do not exist,
//! NODATA (with an SOA) for names that exist without records of the type asked, CNAMEs
//! followed inside the zone, UDP answers over 512 bytes truncated so the client retries over
//! TCP. [`Fault`]s make names answer SERVFAIL, REFUSED or nothing at all. It never recurses and
//! never forwards: a query for a name it does not hold gets NXDOMAIN, so a test that uses it can
//! never reach the internet.
//!
//! [`standard`] is the fixture data the tests share, all under the reserved `.test` TLD and
//! 127.0.0.0/8 (see its documentation for the table).
//!
//! ```no_run
//! let server = relais_dns::fixture::Server::start(relais_dns::fixture::standard()).unwrap();
//! println!("relais dns mx example.test --resolver {}", server.addr());
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::resolver::{fqdn, reverse_name};

/// TTL of every record served.
const TTL: u32 = 60;
/// Largest UDP answer: we send no EDNS option, so RFC 1035's 512 bytes.
const MAX_UDP: usize = 512;
/// CNAME chains longer than this are cut (a loop in the fixture data).
const MAX_CNAME_CHAIN: usize = 8;

/// How a name misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer SERVFAIL.
    ServFail,
    /// Answer REFUSED.
    Refused,
    /// Never answer (the client times out).
    Silent,
}

/// Records and faults, by owner name.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    /// (owner name in lower case without trailing dot, record data).
    records: Vec<(String, RData)>,
    /// Names (and everything under them) that misbehave.
    faults: Vec<(String, Fault)>,
}

/// A name as the zone compares it: its presentation form in lower case, without the dot.
fn key(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A name as the resolver builds it, so odd names (`foo:bar/baz.example`, labels with spaces)
/// match the queries for them; its case is kept where it can be (`mail.Example.test` in a PTR
/// answer).
fn name(name: &str) -> Name {
    let mut parsed = Name::from_ascii(name.trim_end_matches('.'))
        .or_else(|_| fqdn(name))
        .unwrap_or_else(|e| panic!("fixture name {name:?}: {e}"));
    parsed.set_fqdn(true);
    parsed
}

/// The key of an owner name given as text.
fn owner_key(owner: &str) -> String {
    key(&name(owner).to_ascii())
}

impl Zone {
    /// An empty zone: every name is NXDOMAIN.
    pub fn new() -> Zone {
        Zone::default()
    }

    fn add(mut self, owner: &str, data: RData) -> Zone {
        self.records.push((owner_key(owner), data));
        self
    }

    /// An A record.
    pub fn a(self, owner: &str, ip: &str) -> Zone {
        let ip: Ipv4Addr = ip.parse().expect("fixture A address");
        self.add(owner, RData::A(A(ip)))
    }

    /// An AAAA record.
    pub fn aaaa(self, owner: &str, ip: &str) -> Zone {
        let ip: Ipv6Addr = ip.parse().expect("fixture AAAA address");
        self.add(owner, RData::AAAA(AAAA(ip)))
    }

    /// An MX record; `exchange` `"."` makes a null MX.
    pub fn mx(self, owner: &str, preference: u16, exchange: &str) -> Zone {
        let exchange = if exchange == "." {
            Name::root()
        } else {
            name(exchange)
        };
        self.add(owner, RData::MX(MX::new(preference, exchange)))
    }

    /// A TXT record, split in character-strings of 255 bytes as needed.
    pub fn txt(self, owner: &str, text: &str) -> Zone {
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(255).collect();
        self.add(owner, RData::TXT(TXT::from_bytes(chunks)))
    }

    /// A TXT record of exactly these character-strings, bytes as they are: several strings,
    /// empty ones, bytes that are not UTF-8. (With no string at all the record is malformed:
    /// the resolver reports a network error.)
    pub fn txt_strings(self, owner: &str, strings: &[&[u8]]) -> Zone {
        self.add(owner, RData::TXT(TXT::from_bytes(strings.to_vec())))
    }

    /// A PTR record for `ip` (the owner is its reverse name).
    pub fn ptr(self, ip: &str, target: &str) -> Zone {
        let ip: IpAddr = ip.parse().expect("fixture PTR address");
        self.add(&reverse_name(ip), RData::PTR(PTR(name(target))))
    }

    /// A CNAME record.
    pub fn cname(self, owner: &str, target: &str) -> Zone {
        self.add(owner, RData::CNAME(CNAME(name(target))))
    }

    /// Makes `owner` and every name under it misbehave.
    pub fn fault(mut self, owner: &str, fault: Fault) -> Zone {
        self.faults.push((owner_key(owner), fault));
        self
    }

    fn fault_for(&self, qname: &str) -> Option<Fault> {
        self.faults
            .iter()
            .find(|(owner, _)| qname == owner || qname.ends_with(&format!(".{owner}")))
            .map(|(_, fault)| *fault)
    }

    /// Whether `qname` exists: it owns records, or names under it do (an empty non-terminal).
    fn exists(&self, qname: &str) -> bool {
        let suffix = format!(".{qname}");
        self.records
            .iter()
            .any(|(owner, _)| owner == qname || owner.ends_with(&suffix))
    }

    fn at<'a>(&'a self, qname: &'a str) -> impl Iterator<Item = &'a RData> + 'a {
        self.records
            .iter()
            .filter(move |(owner, _)| owner == qname)
            .map(|(_, data)| data)
    }

    /// The response to `query`, or `None` to stay silent.
    fn respond(&self, query: &Message) -> Option<Message> {
        let mut response = Message::response(query.metadata.id, query.metadata.op_code);
        response.metadata.message_type = MessageType::Response;
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.metadata.authoritative = true;
        let [question] = query.queries.as_slice() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return Some(response);
        };
        response.add_query(question.clone());
        if query.metadata.op_code != OpCode::Query {
            response.metadata.response_code = ResponseCode::NotImp;
            return Some(response);
        }
        let qname = key(&question.name.to_ascii());
        match self.fault_for(&qname) {
            Some(Fault::Silent) => return None,
            Some(Fault::ServFail) => {
                response.metadata.response_code = ResponseCode::ServFail;
                return Some(response);
            }
            Some(Fault::Refused) => {
                response.metadata.response_code = ResponseCode::Refused;
                return Some(response);
            }
            None => {}
        }
        let qtype = question.query_type;
        let mut current = qname.clone();
        for _ in 0..MAX_CNAME_CHAIN {
            let owner = name(&current);
            let matching: Vec<RData> = self
                .at(&current)
                .filter(|d| d.record_type() == qtype || qtype == RecordType::ANY)
                .cloned()
                .collect();
            if !matching.is_empty() {
                for data in matching {
                    response.add_answer(Record::from_rdata(owner.clone(), TTL, data));
                }
                break;
            }
            let cname = self.at(&current).find_map(|d| match d {
                RData::CNAME(target) if qtype != RecordType::CNAME => Some(target.0.clone()),
                _ => None,
            });
            match cname {
                Some(target) => {
                    response.add_answer(Record::from_rdata(
                        owner,
                        TTL,
                        RData::CNAME(CNAME(target.clone())),
                    ));
                    current = key(&target.to_ascii());
                }
                None => break,
            }
        }
        if response.answers.is_empty() {
            if !self.exists(&qname) {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            response.add_authority(soa_for(&qname));
        }
        Some(response)
    }
}

/// An SOA for negative answers, owned by the last label of the name (`test.`, `arpa.`).
fn soa_for(qname: &str) -> Record {
    let apex = qname.rsplit('.').next().unwrap_or("test");
    let soa = SOA::new(
        name(&format!("ns.{apex}")),
        name(&format!("hostmaster.{apex}")),
        1,
        3600,
        600,
        86400,
        1,
    );
    Record::from_rdata(name(apex), TTL, RData::SOA(soa))
}

/// The bytes to send for `query_bytes`, or `None` to stay silent (also for garbage).
fn answer(zone: &Zone, query_bytes: &[u8], udp: bool) -> Option<Vec<u8>> {
    let query = Message::from_vec(query_bytes).ok()?;
    let response = zone.respond(&query)?;
    let bytes = response.to_vec().ok()?;
    if udp && bytes.len() > MAX_UDP {
        let mut truncated = response.truncate();
        truncated.metadata.truncation = true;
        return truncated.to_vec().ok();
    }
    Some(bytes)
}

/// A running fixture server. Dropping it stops it.
pub struct Server {
    /// Where it listens, UDP and TCP.
    addr: SocketAddr,
    /// Tells the server thread to stop.
    stop: Option<oneshot::Sender<()>>,
    /// The server thread.
    thread: Option<JoinHandle<()>>,
    /// Every query received: (name, type).
    log: Arc<Mutex<Vec<(String, String)>>>,
}

impl Server {
    /// Starts serving `zone` on a free port of 127.0.0.1.
    pub fn start(zone: Zone) -> io::Result<Server> {
        let (udp, tcp) = bind_pair()?;
        let addr = udp.local_addr()?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let zone = Arc::new(zone);
        let thread_log = log.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fixture-dns-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let udp = tokio::net::UdpSocket::from_std(udp).expect("udp socket");
                    let tcp = tokio::net::TcpListener::from_std(tcp).expect("tcp listener");
                    tokio::select! {
                        _ = stopped => {}
                        _ = serve_udp(udp, zone.clone(), thread_log.clone()) => {}
                        _ = serve_tcp(tcp, zone, thread_log) => {}
                    }
                });
            })?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            log,
        })
    }

    /// The address to give `--resolver`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every query received so far, as (name, type).
    pub fn queries(&self) -> Vec<(String, String)> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1.
fn bind_pair() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        match TcpListener::bind(udp.local_addr()?) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port for UDP and TCP")))
}

fn record(log: &Mutex<Vec<(String, String)>>, query_bytes: &[u8]) {
    if let Ok(query) = Message::from_vec(query_bytes)
        && let Some(q) = query.queries.first()
        && let Ok(mut log) = log.lock()
    {
        log.push((key(&q.name.to_ascii()), q.query_type.to_string()));
    }
}

async fn serve_udp(
    socket: tokio::net::UdpSocket,
    zone: Arc<Zone>,
    log: Arc<Mutex<Vec<(String, String)>>>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        record(&log, &buf[..len]);
        if let Some(reply) = answer(&zone, &buf[..len], true) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(
    listener: tokio::net::TcpListener,
    zone: Arc<Zone>,
    log: Arc<Mutex<Vec<(String, String)>>>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let zone = zone.clone();
        let log = log.clone();
        tokio::spawn(async move {
            loop {
                let mut len = [0u8; 2];
                if stream.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
                if stream.read_exact(&mut query).await.is_err() {
                    return;
                }
                record(&log, &query);
                if let Some(reply) = answer(&zone, &query, false) {
                    let Ok(len) = u16::try_from(reply.len()) else {
                        return;
                    };
                    if stream.write_all(&len.to_be_bytes()).await.is_err()
                        || stream.write_all(&reply).await.is_err()
                    {
                        return;
                    }
                }
            }
        });
    }
}

/// The fixture data shared by the tests. Everything is under `.test` (RFC 2606) and 127/8.
///
/// | name | records | for |
/// |---|---|---|
/// | `example.test` | MX 10 mx1, 20 mx2, 30 mx3; A 127.0.0.10; SPF `v=spf1 ip4:127.0.0.10 mx include:_spf.example.test -all`; another TXT | MX order, SPF pass (ip4, mx, include) and fail |
/// | `mx1/mx2/mx3.example.test` | A 127.0.0.11 / .12 / .13 | MX addresses |
/// | `dual.example.test` | A 127.0.0.14, AAAA ::1 | A and AAAA |
/// | `www.example.test` | CNAME example.test | CNAME followed |
/// | `sub.example.test` | A 127.0.0.15, no `_dmarc` | DMARC found at the parent |
/// | `_spf.example.test` | `v=spf1 ip4:127.0.1.0/24 -all` | include |
/// | `_dmarc.example.test` | `v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=100; rua=...` | DMARC |
/// | 127.0.0.11 | PTR mx1.example.test (A matches) | FCrDNS confirmed |
/// | 127.0.0.12 | PTR mail.elsewhere.test (A 127.0.0.99) | FCrDNS not confirmed |
/// | 127.0.0.13 | no PTR | no reverse DNS |
/// | `nullmx.test` | MX 0 `.`; A 127.0.0.20; `v=spf1 -all` | RFC 7505 null MX |
/// | `nomx.test` | A 127.0.0.21 | implicit MX |
/// | `nothing.test` | TXT only | no mail host |
/// | `missing.test` | (nothing) | NXDOMAIN |
/// | `softfail.test` | `v=spf1 ip4:127.0.0.30 ~all` | softfail |
/// | `neutral.test` | `v=spf1 ip4:127.0.0.31 ?all` | neutral |
/// | `redirect.test` | `v=spf1 redirect=example.test` | redirect= |
/// | `twospf.test` | two SPF records | permerror (RFC 7208 4.5) |
/// | `badspf.test` | `v=spf1 ip4:300.1.1.1 -all` | permerror (syntax) |
/// | `loop.test` | `v=spf1 include:loop.test -all` | permerror (lookup limit) |
/// | `tempspf.test` | `v=spf1 include:servfail.test -all` | temperror |
/// | `nodmarc.test` | A 127.0.0.22 | no DMARC |
/// | `big.test` | a 600-byte TXT | truncation, retry over TCP |
/// | `bl.test` | DNSBL zone: 127.0.0.2 listed (A 127.0.0.2 + TXT reason), 127.0.0.3 answers 127.255.255.254 | DNSBL listed / error code |
/// | `all.test` | DNSBL zone that names every address it is asked about (127.0.0.1, .2, 192.0.2.1) | a list that lists everything |
/// | `dead.test` | a zone without listings, not even the test point | a dead list |
/// | `servfail.test`, `refused.test`, `timeout.test` | SERVFAIL, REFUSED, no answer | DNS failures |
pub fn standard() -> Zone {
    Zone::new()
        // MX with several preferences, SPF with ip4, mx and include.
        .mx("example.test", 20, "mx2.example.test")
        .mx("example.test", 10, "mx1.example.test")
        .mx("example.test", 30, "mx3.example.test")
        .a("example.test", "127.0.0.10")
        .txt(
            "example.test",
            "v=spf1 ip4:127.0.0.10 mx include:_spf.example.test -all",
        )
        .txt("example.test", "site-verification=0123456789")
        .a("mx1.example.test", "127.0.0.11")
        .a("mx2.example.test", "127.0.0.12")
        .a("mx3.example.test", "127.0.0.13")
        .a("dual.example.test", "127.0.0.14")
        .aaaa("dual.example.test", "::1")
        .cname("www.example.test", "example.test")
        .a("sub.example.test", "127.0.0.15")
        .txt("_spf.example.test", "v=spf1 ip4:127.0.1.0/24 -all")
        .txt(
            "_dmarc.example.test",
            "v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=100; rua=mailto:dmarc-reports@example.test",
        )
        // Reverse DNS: confirmed, not confirmed, absent (127.0.0.13).
        .ptr("127.0.0.11", "mx1.example.test")
        .ptr("127.0.0.12", "mail.elsewhere.test")
        .a("mail.elsewhere.test", "127.0.0.99")
        // Null MX, implicit MX, no mail host.
        .mx("nullmx.test", 0, ".")
        .a("nullmx.test", "127.0.0.20")
        .txt("nullmx.test", "v=spf1 -all")
        .a("nomx.test", "127.0.0.21")
        .txt("nothing.test", "nothing to see here")
        // SPF results.
        .txt("softfail.test", "v=spf1 ip4:127.0.0.30 ~all")
        .txt("neutral.test", "v=spf1 ip4:127.0.0.31 ?all")
        .txt("redirect.test", "v=spf1 redirect=example.test")
        .txt("twospf.test", "v=spf1 ip4:127.0.0.40 -all")
        .txt("twospf.test", "v=spf1 ip4:127.0.0.41 -all")
        .txt("badspf.test", "v=spf1 ip4:300.1.1.1 -all")
        .txt("loop.test", "v=spf1 include:loop.test -all")
        .txt("tempspf.test", "v=spf1 include:servfail.test -all")
        .a("nodmarc.test", "127.0.0.22")
        .txt("big.test", &format!("v=spf1 {}-all", "ip4:127.0.2.1 ".repeat(40)))
        // A DNS block list: 127.0.0.2 listed, 127.0.0.3 answered with Spamhaus' error code
        // for queries through open resolvers.
        .txt("bl.test", "fixture DNSBL")
        .a("2.0.0.127.bl.test", "127.0.0.2")
        .txt(
            "2.0.0.127.bl.test",
            "127.0.0.2 is listed for testing, see https://bl.test/query/127.0.0.2",
        )
        .a("3.0.0.127.bl.test", "127.255.255.254")
        // a list that names everything (a shut-down list's wildcard), and one that is gone
        .a("1.0.0.127.all.test", "127.0.0.2")
        .a("2.0.0.127.all.test", "127.0.0.2")
        .a("1.2.0.192.all.test", "127.0.0.2")
        .txt("dead.test", "this list is no more")
        // DNS failures.
        .fault("servfail.test", Fault::ServFail)
        .fault("refused.test", Fault::Refused)
        .fault("timeout.test", Fault::Silent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::Query;

    fn ask(zone: &Zone, qname: &str, qtype: RecordType) -> Option<Message> {
        let mut query = Message::query();
        query.add_query(Query::query(name(qname), qtype));
        zone.respond(&query)
    }

    #[test]
    fn negative_answers() {
        let zone = standard();
        let nx = ask(&zone, "missing.test", RecordType::A).unwrap();
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(nx.authorities.len(), 1);
        let nodata = ask(&zone, "nomx.test", RecordType::MX).unwrap();
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty());
        // An empty non-terminal exists: NODATA, not NXDOMAIN.
        let ent = ask(&zone, "0.0.127.bl.test", RecordType::A).unwrap();
        assert_eq!(ent.metadata.response_code, ResponseCode::NoError);
    }

    #[test]
    fn faults_and_cnames() {
        let zone = standard();
        assert!(ask(&zone, "timeout.test", RecordType::A).is_none());
        assert!(ask(&zone, "a.b.timeout.test", RecordType::A).is_none());
        let servfail = ask(&zone, "x.servfail.test", RecordType::TXT).unwrap();
        assert_eq!(servfail.metadata.response_code, ResponseCode::ServFail);
        let www = ask(&zone, "WWW.Example.Test", RecordType::A).unwrap();
        assert_eq!(www.answers.len(), 2);
    }

    #[test]
    fn big_answers_are_truncated_over_udp() {
        let zone = standard();
        let mut query = Message::query();
        query.add_query(Query::query(name("big.test"), RecordType::TXT));
        let bytes = query.to_vec().unwrap();
        let udp = Message::from_vec(&answer(&zone, &bytes, true).unwrap()).unwrap();
        assert!(udp.metadata.truncation);
        assert!(udp.answers.is_empty());
        let tcp = Message::from_vec(&answer(&zone, &bytes, false).unwrap()).unwrap();
        assert!(!tcp.metadata.truncation);
        assert_eq!(tcp.answers.len(), 1);
    }
}
