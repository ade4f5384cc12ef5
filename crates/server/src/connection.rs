//! One client connection: reads bytes, drives the protocol [`Session`], answers its questions
//! (policy, spool), writes its replies. All protocol decisions are in the session; this file
//! only carries them out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use relais_proto::session::{Event, Stored, Verdict};
use relais_proto::{Envelope, Session, replies};
use relais_spool::{Incoming, QueueId, SpoolError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::Context;
use crate::envelope::SpooledEnvelope;
use crate::headers::{self, ReceivedInfo};

/// Size of the read buffer of a connection.
const READ_BUFFER: usize = 8 * 1024;

/// The message being received in a connection.
struct Transaction {
    /// Allocated when the sender is accepted, so every log line of the message carries it.
    id: QueueId,
    /// The spool's receiver for the content; created at the start of the content.
    incoming: Option<Incoming>,
    /// Set when writing the content failed: the message will be refused at its end.
    failed: Option<SpoolError>,
}

/// Serves one connection until it closes.
pub async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = format!("unknown[{}]:{}", peer.ip(), peer.port());
    let mut session = Session::with_extensions(ctx.session.clone(), ctx.extensions.clone());
    let mut buf = vec![0u8; READ_BUFFER];

    // A client that talks before the greeting is not waiting for us: refuse it (Postfix does the
    // same). Bytes already there when the connection is accepted can only have been sent early.
    match stream.try_read(&mut buf) {
        Ok(n) if n > 0 => {
            warn!("pregreet from {client}: {n} bytes before the greeting");
            session.handle_early_talk();
        }
        _ => {
            info!("connect from {client}");
            session.handle_connect();
        }
    }

    let mut tx: Option<Transaction> = None;
    loop {
        while let Some(event) = session.poll_event() {
            handle_event(event, &mut session, &mut tx, &ctx, &client, peer).await;
        }
        if !session.output().is_empty() {
            if let Err(e) = stream.write_all(session.output()).await {
                info!("lost connection after write error from {client}: {e}");
                session.handle_eof();
                drain(&mut session, &mut tx);
                break;
            }
            session.clear_output();
        }
        if session.is_closed() {
            break;
        }
        let timeout = if session.in_content() {
            ctx.config.limits.data_timeout
        } else {
            ctx.config.limits.command_timeout
        };
        tokio::select! {
            read = tokio::time::timeout(timeout, stream.read(&mut buf)) => match read {
                Ok(Ok(0)) => session.handle_eof(),
                Ok(Ok(n)) => session.handle_bytes(&buf[..n]),
                Ok(Err(e)) => {
                    info!("lost connection from {client}: {e}");
                    session.handle_eof();
                }
                Err(_) => {
                    info!("timeout after {:?} from {client}", timeout);
                    session.handle_timeout();
                }
            },
            _ = shutdown.changed() => session.handle_shutdown(),
        }
    }
    let _ = stream.shutdown().await;
    info!("disconnect from {client} {}", session.stats());
}

/// Handles what is left after a failed write: no more replies can be sent.
fn drain(session: &mut Session, tx: &mut Option<Transaction>) {
    while session.poll_event().is_some() {}
    *tx = None;
}

/// Carries out one event of the session.
async fn handle_event(
    event: Event,
    session: &mut Session,
    tx: &mut Option<Transaction>,
    ctx: &Context,
    client: &str,
    peer: SocketAddr,
) {
    let id_or_noqueue = |tx: &Option<Transaction>| {
        tx.as_ref()
            .map(|t| t.id.to_string())
            .unwrap_or_else(|| "NOQUEUE".into())
    };
    match event {
        Event::Helo { name, esmtp } => {
            info!(
                "{} from {client}: {name}",
                if esmtp { "ehlo" } else { "helo" }
            );
        }
        Event::CheckSender { from, .. } => {
            let id = ctx.spool.new_id();
            info!(
                "{id}: client={client}, helo={}, from=<{from}>",
                session.helo_name().unwrap_or("")
            );
            *tx = Some(Transaction {
                id,
                incoming: None,
                failed: None,
            });
            session.handle_verdict(Verdict::Accept);
        }
        Event::CheckRecipient { to, .. } => {
            let verdict = match ctx.policy.check_recipient(&to) {
                Ok(_) => {
                    info!("{}: to=<{to}> accepted", id_or_noqueue(tx));
                    Verdict::Accept
                }
                Err(v) => v,
            };
            session.handle_verdict(verdict);
        }
        Event::ContentStart(envelope) => {
            if let Some(t) = tx {
                let mut incoming = ctx.spool.begin(t.id);
                let received = received_header(ctx, &envelope, peer, &t.id.to_string());
                if let Err(e) = incoming.write(received.as_bytes()) {
                    t.failed = Some(e);
                }
                t.incoming = Some(incoming);
            }
        }
        Event::Body(chunk) => {
            if let Some(Transaction {
                incoming: Some(incoming),
                failed,
                ..
            }) = tx
                && failed.is_none()
                && let Err(e) = incoming.write(&chunk)
            {
                *failed = Some(e);
            }
        }
        Event::MessageComplete(envelope) => {
            let stored = match tx.take() {
                Some(t) => store(ctx, t, envelope, client).await,
                None => Stored::Failed(replies::queue_write_error()),
            };
            session.handle_stored(stored);
        }
        Event::TransactionAborted => {
            if let Some(t) = tx.take() {
                info!("{}: aborted, nothing queued", t.id);
            }
        }
        Event::Rejected { command, reply } => {
            info!(
                "{}: reject: {command} from {client}: {reply}",
                id_or_noqueue(tx)
            );
        }
        Event::Close => {}
    }
}

/// Commits a complete message to the spool and hands it to delivery.
async fn store(ctx: &Context, t: Transaction, envelope: Envelope, client: &str) -> Stored {
    let id = t.id;
    let nrcpt = envelope.recipients.len();
    let size = envelope.size;
    let from = envelope.from.to_string();
    let failed = match (t.failed, t.incoming) {
        (Some(e), _) => Some(e),
        (None, None) => Some(SpoolError::Corrupt("no content started".into())),
        (None, Some(incoming)) => {
            let record = SpooledEnvelope {
                client: client.to_string(),
                envelope,
            }
            .encode();
            incoming.commit(record).await.err()
        }
    };
    match failed {
        None => {
            info!("{id}: queued: from=<{from}>, size={size}, nrcpt={nrcpt}");
            ctx.delivery.push(id);
            Stored::Queued(id.to_string())
        }
        Some(e) => {
            warn!("{id}: not queued: {e}");
            Stored::Failed(match e {
                SpoolError::Full(_) => replies::insufficient_storage(),
                _ => replies::queue_write_error(),
            })
        }
    }
}

fn received_header(ctx: &Context, envelope: &Envelope, peer: SocketAddr, id: &str) -> String {
    headers::received(&ReceivedInfo {
        envelope,
        client_ip: peer.ip(),
        client_name: None,
        hostname: &ctx.config.hostname,
        id,
        when: SystemTime::now(),
    })
}
