//! The content filters (`[[milter]]`) on the way of a message: asked at MAIL FROM and RCPT TO,
//! fed the content as it is stored, asked at its end; their refusals logged the way Postfix
//! logs them (`milter-reject: END-OF-MESSAGE from …`), their changes carried out.

use relais_policy::milter::{self, Facts, Filters, Outcome, Part, Splitter, Verdict};
use relais_proto::{MailParams, Mailbox, RcptParams, Reply, ReversePath};
use relais_queue::{Arrival, Enqueue};
use tracing::{info, warn};

use super::{Client, Transaction};
use crate::context::Context;

/// What filters are told about the client and the transaction.
fn facts(client: &Client, id: String) -> Facts {
    Facts {
        queue_id: id,
        user: client.user.clone(),
        tls: client.tls.clone(),
    }
}

/// Logs a filter's refusal or discard of a command.
fn log(client: &Client, id: &str, command: &str, verdict: &Verdict, envelope: &str) {
    match verdict {
        Verdict::Continue => {}
        Verdict::Refuse(reply, name) => info!(
            event = "reject",
            queue_id = %id,
            client = %client.label,
            command,
            reply = %reply,
            milter = %name,
            "{id}: milter-reject: {command} from {}: {reply}; {envelope}",
            client.label
        ),
        Verdict::Discard(name) => info!(
            event = "discard",
            queue_id = %id,
            client = %client.label,
            command,
            milter = %name,
            "{id}: milter-discard: {command} from {}: milter triggers DISCARD action; {envelope}",
            client.label
        ),
    }
}

/// MAIL FROM: the filters' refusal; a discard is remembered in `discard`.
pub(super) async fn at_mail(
    client: &mut Client,
    id: &str,
    helo: &str,
    from: &ReversePath,
    params: &MailParams,
    discard: &mut Option<String>,
) -> Option<Reply> {
    let facts = facts(client, id.to_string());
    let filters = client.filters.as_mut()?;
    let mut args = vec![format!("<{from}>")];
    args.extend(params.to_string().split_whitespace().map(str::to_string));
    let verdict = filters.mail(helo, &args, &facts).await;
    log(
        client,
        id,
        "MAIL",
        &verdict,
        &format!("from=<{from}> helo=<{helo}>"),
    );
    match verdict {
        Verdict::Continue => None,
        Verdict::Discard(name) => {
            *discard = Some(name);
            None
        }
        Verdict::Refuse(reply, _) => {
            if let Some(f) = client.filters.as_mut() {
                f.abort().await;
            }
            Some(reply)
        }
    }
}

/// RCPT TO: the filters' refusal of this recipient.
pub(super) async fn at_rcpt(
    client: &mut Client,
    tx: &mut Option<Box<Transaction>>,
    to: &Mailbox,
    params: &RcptParams,
) -> Option<Reply> {
    let (Some(filters), Some(t)) = (client.filters.as_mut(), tx.as_mut()) else {
        return None;
    };
    let mut args = vec![format!("<{to}>")];
    args.extend(params.to_string().split_whitespace().map(str::to_string));
    let verdict = filters.rcpt(&args).await;
    let envelope = format!("from=<{}> to=<{to}>", t.from);
    log(client, &t.id.to_string(), "RCPT", &verdict, &envelope);
    match verdict {
        Verdict::Continue => None,
        Verdict::Discard(name) => {
            t.discard = Some(name);
            None
        }
        Verdict::Refuse(reply, _) => Some(reply),
    }
}

/// The start of the content.
pub(super) async fn at_data(client: &mut Client) {
    if let Some(f) = client.filters.as_mut() {
        f.data().await;
    }
}

/// A chunk of the content as stored.
pub(super) async fn feed(client: &mut Client, chunk: &[u8]) {
    if let Some(f) = client.filters.as_mut()
        && f.listening()
    {
        f.content(chunk).await;
    }
}

/// The transaction ended without a message.
pub(super) async fn abort(client: &mut Client) {
    if let Some(f) = client.filters.as_mut() {
        f.abort().await;
    }
}

/// What the filters decided about the complete message, carried out on `message` and
/// `arrival`: `Err` with the reply that refuses it, `Ok(false)` when it is to be dropped
/// (discarded) after a `250`.
pub(super) async fn at_end(
    ctx: &Context,
    client: &mut Client,
    t: &Transaction,
    message: &mut Enqueue,
    arrival: &mut Arrival,
) -> Result<bool, Reply> {
    let id = t.id.to_string();
    let envelope = format!("from=<{}>", t.from);
    if let Some(name) = &t.discard {
        let verdict = Verdict::Discard(name.clone());
        log(client, &id, "END-OF-MESSAGE", &verdict, &envelope);
        return Ok(false);
    }
    let facts = facts(client, id.clone());
    let Some(filters) = client.filters.as_mut() else {
        return Ok(true);
    };
    let mut trace = Vec::new();
    let mut parts = Vec::new();
    let mut splitter = Splitter::new();
    splitter.feed(&t.trace, &mut parts);
    splitter.finish(&mut parts);
    for p in parts {
        if let Part::Field(f) = p {
            trace.push(f);
        }
    }
    let outcome: Outcome = filters.end(&facts, &trace).await;
    for note in &outcome.notes {
        warn!("{id}: {note}");
    }
    match &outcome.verdict {
        Some(v @ Verdict::Refuse(reply, _)) => {
            log(client, &id, "END-OF-MESSAGE", v, &envelope);
            return Err(reply.clone());
        }
        Some(v @ Verdict::Discard(_)) => {
            log(client, &id, "END-OF-MESSAGE", v, &envelope);
            return Ok(false);
        }
        _ => {}
    }
    if let Some((why, name)) = &outcome.hold {
        info!(
            event = "hold",
            queue_id = %id,
            client = %client.label,
            milter = %name,
            "{id}: milter-hold: END-OF-MESSAGE from {}: {why}; {envelope}",
            client.label
        );
        message.hold();
    }
    match (outcome.body, outcome.header) {
        (Some(body), header) => {
            // A new body: the content is written again, under the same queue id.
            let header = header.unwrap_or_default();
            // The old content goes first: a large one has a data file named after the id,
            // which the new content may need.
            drop(std::mem::replace(message, Enqueue::begin(&ctx.spool, t.id)));
            message.write(&header);
            message.write(b"\r\n");
            message.write(&body);
            if outcome.hold.is_some() {
                message.hold();
            }
            info!("{id}: milter-body: the content filters replaced the body");
        }
        (None, Some(header)) => arrival.section = Some(header),
        (None, None) => {}
    }
    Ok(true)
}

/// The filters of a new connection, when any are configured.
pub(super) fn filters_for(ctx: &Context, peer: std::net::SocketAddr) -> Option<Filters> {
    (!ctx.milters.is_empty()).then(|| {
        let who = milter::Peer {
            ip: peer.ip(),
            port: peer.port(),
            name: None,
        };
        Filters::new(&ctx.milters, who, &ctx.config.hostname)
    })
}
