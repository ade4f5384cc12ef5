//! A bare stub query, straight to the configured nameservers.
//!
//! hickory answers some names itself without asking anyone (RFC 6761 / RFC 6303 locally
//! served zones): every PTR under `127.in-addr.arpa` and for `::1` comes back as `localhost`.
//! A diagnostics tool wants the nameserver's own answer — a site may name its loopback
//! aliases, and the test fixtures give 127.0.0.x addresses PTR records — so those queries are
//! sent here instead: UDP, then TCP when the answer is truncated, each server in turn.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::{Failure, Outcome};

/// Largest UDP answer read.
const MAX_UDP: usize = 4096;

/// How long an answer without a TTL of its own (a negative answer without SOA) is kept.
const NEGATIVE_TTL: Duration = Duration::from_secs(60);

/// Asks `servers` for `name`/`record_type`, `attempts` times each, `wait` per attempt: the
/// answer, and how long it may be kept (the smallest TTL of the records; for "no such name"
/// and "no such record", the SOA's negative TTL; zero for a failure).
pub(crate) async fn query(
    servers: &[SocketAddr],
    name: Name,
    record_type: RecordType,
    wait: Duration,
    attempts: usize,
) -> (Outcome<RData>, Duration) {
    let mut last = Failure::Network("no nameserver".to_string());
    for server in servers {
        for _ in 0..attempts.max(1) {
            let mut message = Message::query();
            message.metadata.recursion_desired = true;
            message.add_query(Query::query(name.clone(), record_type));
            match exchange(*server, &message, wait).await {
                Ok(response) => match response.metadata.response_code {
                    ResponseCode::NoError => {
                        let negative = negative_ttl(&response);
                        let (found, ttl): (Vec<RData>, Option<u32>) = response
                            .answers
                            .into_iter()
                            .filter(|r| r.record_type() == record_type)
                            .fold((Vec::new(), None), |(mut found, ttl), r| {
                                let ttl = Some(ttl.map_or(r.ttl, |t: u32| t.min(r.ttl)));
                                found.push(r.data);
                                (found, ttl)
                            });
                        return if found.is_empty() {
                            (Outcome::NoData, negative)
                        } else {
                            let ttl = Duration::from_secs(u64::from(ttl.unwrap_or(0)));
                            (Outcome::Found(found), ttl)
                        };
                    }
                    ResponseCode::NXDomain => return (Outcome::NxDomain, negative_ttl(&response)),
                    ResponseCode::ServFail => {
                        last = Failure::ServFail;
                        break;
                    }
                    ResponseCode::Refused => {
                        last = Failure::Refused;
                        break;
                    }
                    other => {
                        last = Failure::Rcode(other.to_string());
                        break;
                    }
                },
                Err(failure) => last = failure,
            }
        }
    }
    (Outcome::Failed(last), Duration::ZERO)
}

/// The negative TTL of an answer (RFC 2308: the smaller of the SOA's TTL and its minimum).
fn negative_ttl(response: &Message) -> Duration {
    response
        .authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(u64::from(r.ttl.min(soa.minimum))),
            _ => None,
        })
        .map_or(NEGATIVE_TTL, Duration::from_secs)
}

/// One query and its answer: UDP, and TCP if the UDP answer is truncated.
async fn exchange(
    server: SocketAddr,
    message: &Message,
    wait: Duration,
) -> Result<Message, Failure> {
    let bytes = message
        .to_vec()
        .map_err(|e| Failure::Network(e.to_string()))?;
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("address")
    } else {
        "[::]:0".parse().expect("address")
    };
    let socket = UdpSocket::bind(bind).await.map_err(network)?;
    socket.connect(server).await.map_err(network)?;
    socket.send(&bytes).await.map_err(network)?;
    let mut buf = vec![0u8; MAX_UDP];
    let response = timeout(wait, async {
        loop {
            let len = socket.recv(&mut buf).await.map_err(network)?;
            if let Ok(response) = Message::from_vec(&buf[..len])
                && response.metadata.id == message.metadata.id
            {
                return Ok(response);
            }
        }
    })
    .await
    .map_err(|_| Failure::Timeout)??;
    if !response.metadata.truncation {
        return Ok(response);
    }
    timeout(wait, tcp_exchange(server, &bytes, message.metadata.id))
        .await
        .map_err(|_| Failure::Timeout)?
}

async fn tcp_exchange(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, Failure> {
    let mut stream = TcpStream::connect(server).await.map_err(network)?;
    let len = u16::try_from(bytes.len()).map_err(|_| Failure::Network("query too long".into()))?;
    stream
        .write_all(&len.to_be_bytes())
        .await
        .map_err(network)?;
    stream.write_all(bytes).await.map_err(network)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(network)?;
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut answer).await.map_err(network)?;
    let response = Message::from_vec(&answer).map_err(|e| Failure::Network(e.to_string()))?;
    if response.metadata.id != id {
        return Err(Failure::Network("answer to another query".to_string()));
    }
    Ok(response)
}

fn network(e: std::io::Error) -> Failure {
    Failure::Network(e.to_string())
}
