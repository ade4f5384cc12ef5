//! One client connection: reads bytes, drives the protocol [`Session`], answers its questions
//! (policy, AUTH, spool), runs the TLS handshake when asked, writes its replies. All protocol
//! decisions are in the session; this file only carries them out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use relais_config::Role;
use relais_metrics::METRICS;
use relais_policy::{self as policy, Outgoing, Sealing, SpfVerdict};
use relais_proto::session::{AuthOutcome, Event, Stored, Verdict};
use relais_proto::{Envelope, ReversePath, Session, replies};
use relais_queue::Enqueue;
use relais_queue::headers::{self, ReceivedInfo};
use relais_route::Route;
use relais_spool::{QueueId, SpoolError};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::context::Context;

mod checks;
mod deadline;
mod milters;
mod storage;
mod stream;

use checks::{
    ContentChecks, Screen, check_content, forwards_off, greylist, identify, mailbox_full,
    prepare_outgoing, refused, screen_sender, unix_now, user_rate,
};
use stream::{Conn, READ_BUFFER};

/// Counts the replies in what is about to be written: a reply's last line has a space (or
/// nothing) after its code.
fn count_replies(output: &[u8]) {
    for line in output.split(|&b| b == b'\n') {
        if line.len() >= 3
            && line[..3].iter().all(u8::is_ascii_digit)
            && line.get(3).is_none_or(|&b| b == b' ' || b == b'\r')
        {
            let code = u16::from(line[0] - b'0') * 100
                + u16::from(line[1] - b'0') * 10
                + u16::from(line[2] - b'0');
            METRICS.reply(code);
        }
    }
}

/// The message being received in a connection.
struct Transaction {
    /// Allocated when the sender is accepted, so every log line of the message carries it.
    id: QueueId,
    /// The sender.
    from: ReversePath,
    /// The message on its way into the spool; created at the start of the content. A write
    /// that fails is remembered there and refuses the message at its end.
    message: Option<Enqueue>,
    /// The SPF check of the sender, when one was made.
    spf: Option<SpfVerdict>,
    /// The content checks of the message, when some are on for this client.
    checks: Option<ContentChecks>,
    /// A submission by an authenticated user: signed, completed (`Date`, `Message-ID`).
    outgoing: Option<Outgoing>,
    /// The domain of a recipient that is an alias forwarding off the machine: the message
    /// gets an ARC seal of that domain (when it has a `[[dkim]]` key).
    forwards: Option<String>,
    /// The key of that seal.
    sealing: Option<Sealing>,
    /// Our trace fields on top of the content (`Received-SPF`, `Received`).
    trace: Vec<u8>,
    /// A content filter asked to drop the message (named).
    discard: Option<String>,
    /// The size MAIL FROM declared (`SIZE=`), for the mailboxes' quotas at RCPT.
    size: Option<u64>,
}

/// Everything a connection knows about its client and itself.
struct Client {
    /// `unknown[ip]:port` (`name[ip]:port` once its reverse DNS is confirmed), as logged.
    label: String,
    /// The forward-confirmed PTR name, once known.
    name: Option<String>,
    /// The connect-time lookups.
    screen: Screen,
    /// The peer address.
    peer: SocketAddr,
    /// TLS version and cipher, once encrypted.
    tls: Option<(String, String)>,
    /// The user, once AUTH succeeded.
    user: Option<String>,
    /// True if the address is in `relay_networks`.
    trusted_network: bool,
    /// The content filters, when `[[milter]]` configures some.
    filters: Option<relais_policy::milter::Filters>,
}

/// Serves one connection until it closes.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    role: Role,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let trusted_network = ctx.relay_networks.iter().any(|n| n.contains(peer.ip()));
    let screen = if ctx.auth.screens_clients() {
        let ctx = ctx.clone();
        Screen::Pending(tokio::spawn(async move {
            ctx.auth.screen(peer.ip(), trusted_network).await
        }))
    } else {
        Screen::Off
    };
    let mut client = Client {
        label: format!("unknown[{}]:{}", peer.ip(), peer.port()),
        name: None,
        screen,
        peer,
        tls: None,
        user: None,
        trusted_network,
        filters: milters::filters_for(&ctx, peer),
    };
    let config = ctx.session_config(role);
    let mut buf = Vec::new();
    let (mut conn, mut session) = if role == Role::Submissions {
        let Some(acceptor) = ctx.tls.clone() else {
            warn!("submissions listener without TLS: closing {}", client.label);
            return;
        };
        match tokio::time::timeout(
            ctx.config.limits.command_timeout,
            Box::pin(acceptor.accept(stream)),
        )
        .await
        {
            Ok(Ok(tls)) => {
                let (version, cipher) = relais_client::negotiated(tls.get_ref().1);
                METRICS.tls_handshake(&version);
                client.tls = Some((version, cipher));
                info!(event = "connect", client = %client.label, tls = true, "connect from {} (TLS)", client.label);
                let mut s = Session::new_tls(config);
                s.handle_connect();
                (Conn::Tls(Box::new(tls)), s)
            }
            Ok(Err(e)) => {
                info!("TLS handshake failed with {}: {e}", client.label);
                return;
            }
            Err(_) => {
                info!("TLS handshake timed out with {}", client.label);
                return;
            }
        }
    } else {
        let mut session = Session::new(config);
        // A client that talks before the greeting is not waiting for us: refuse it (Postfix
        // does the same). Bytes already there on accept can only have been sent early.
        let mut early = Vec::with_capacity(READ_BUFFER);
        match stream.try_read_buf(&mut early) {
            Ok(n) if n > 0 => {
                warn!(
                    "pregreet from {}: {n} bytes before the greeting",
                    client.label
                );
                session.handle_early_talk();
            }
            _ => {
                info!(event = "connect", client = %client.label, "connect from {}", client.label);
                session.handle_connect();
            }
        }
        (Conn::Plain(stream), session)
    };

    let mut tx: Option<Box<Transaction>> = None;
    let mut errors_seen = 0;
    let mut deadline = deadline::Deadline::new(Instant::now(), &ctx.config.limits);
    loop {
        while let Some(event) = session.poll_event() {
            if let Event::StartTls { discarded } = event {
                Box::pin(start_tls(
                    &mut conn,
                    &mut session,
                    &mut client,
                    &ctx,
                    discarded,
                ))
                .await;
                continue;
            }
            handle_event(event, &mut session, &mut tx, &ctx, &mut client).await;
        }
        if !session.output().is_empty() {
            // The tarpit: errors beyond the soft limit are answered later and later.
            if session.errors() > errors_seen {
                errors_seen = session.errors();
                let l = &ctx.config.limits;
                let delay = policy::limits::tarpit(errors_seen, l.soft_error_limit, l.error_sleep);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            count_replies(session.output());
            if let Err(e) = conn.write_all(session.output()).await {
                info!(
                    "lost connection after write error from {}: {e}",
                    client.label
                );
                session.handle_eof();
                while session.poll_event().is_some() {}
                break;
            }
            session.clear_output();
            deadline.restart(Instant::now(), session.in_content());
        }
        if session.is_closed() {
            break;
        }
        let idle = if session.in_content() {
            ctx.config.limits.data_timeout
        } else {
            ctx.config.limits.command_timeout
        };
        let (timeout, by_deadline) = deadline.wait(Instant::now(), idle);
        tokio::select! {
            read = tokio::time::timeout(timeout, conn.read_into(&mut buf)) => match read {
                Ok(Ok(0)) => session.handle_eof(),
                Ok(Ok(n)) => {
                    deadline.received(n);
                    session.handle_bytes(&buf[..n]);
                    // Between commands the session waits, maybe for minutes: without memory.
                    if !session.in_content() {
                        buf = Vec::new();
                    }
                }
                Ok(Err(e)) => {
                    info!("lost connection from {}: {e}", client.label);
                    session.handle_eof();
                }
                Err(_) if by_deadline => {
                    info!("deadline exceeded from {}", client.label);
                    session.handle_timeout();
                }
                Err(_) => {
                    info!("timeout after {timeout:?} from {}", client.label);
                    session.handle_timeout();
                }
            },
            _ = shutdown.changed() => session.handle_shutdown(),
        }
    }
    conn.shutdown().await;
    if let Some(f) = client.filters.as_mut() {
        Box::pin(f.quit()).await;
    }
    let (accepted, total) = session.command_count();
    METRICS.commands(accepted, total);
    info!(
        event = "disconnect",
        client = %client.label,
        stats = %session.stats(),
        "disconnect from {} {}",
        client.label,
        session.stats()
    );
}

/// Writes the `220 Ready to start TLS`, runs the handshake and tells the session.
async fn start_tls(
    conn: &mut Conn,
    session: &mut Session,
    client: &mut Client,
    ctx: &Context,
    discarded: usize,
) {
    if discarded > 0 {
        warn!(
            "{}: discarded {discarded} bytes sent in clear text after STARTTLS (CVE-2011-0411)",
            client.label
        );
    }
    count_replies(session.output());
    let ok = conn.write_all(session.output()).await.is_ok();
    session.clear_output();
    let (Some(acceptor), true, Conn::Plain(_)) = (ctx.tls.clone(), ok, &*conn) else {
        session.handle_eof();
        return;
    };
    let Conn::Plain(tcp) = std::mem::replace(conn, Conn::Gone) else {
        return;
    };
    match tokio::time::timeout(ctx.config.limits.command_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let (version, cipher) = relais_client::negotiated(tls.get_ref().1);
            METRICS.tls_handshake(&version);
            info!(
                "STARTTLS from {}: {version} with cipher {cipher}",
                client.label
            );
            client.tls = Some((version, cipher));
            // A login from before TLS does not carry over (RFC 3207 §4.2).
            client.user = None;
            *conn = Conn::Tls(Box::new(tls));
            session.handle_tls_established();
        }
        Ok(Err(e)) => {
            info!("TLS handshake failed with {}: {e}", client.label);
            session.handle_eof();
        }
        Err(_) => {
            info!("TLS handshake timed out with {}", client.label);
            session.handle_eof();
        }
    }
}

/// Carries out one event of the session.
async fn handle_event(
    event: Event,
    session: &mut Session,
    tx: &mut Option<Box<Transaction>>,
    ctx: &Context,
    client: &mut Client,
) {
    // The awaits that can hold a large state (DNS lookups and policy, AUTH, the spool, a
    // milter dialogue) are boxed: the connection's task then keeps only what a waiting
    // session needs (see ARCHITECTURE.md, "Idle sessions").
    match event {
        Event::Helo { name, esmtp } => {
            // The HELO name is also on the `client=` line of every message; one line per
            // command would be noise at info level.
            tracing::debug!(
                "{} from {}: {name}",
                if esmtp { "ehlo" } else { "helo" },
                client.label
            );
        }
        Event::CheckSender { from, params } => {
            let verdict = Box::pin(sender(ctx, client, session, tx, &from, &params)).await;
            session.handle_verdict(verdict);
        }
        Event::CheckRecipient { to, params } => {
            let verdict = Box::pin(recipient(ctx, client, tx, &to, &params)).await;
            session.handle_verdict(verdict);
        }
        Event::Authenticate {
            mechanism,
            username,
            password,
            ..
        } => {
            let outcome = Box::pin(authenticate(ctx, client, &mechanism, username, password)).await;
            session.handle_auth(outcome);
        }
        Event::ContentStart(envelope) => {
            if let Some(t) = tx {
                let mut message = Enqueue::begin(&ctx.spool, t.id);
                // RFC 7208 §9.1: Received-SPF goes above our Received.
                if let Some(spf) = t.spf.as_ref().filter(|v| v.recorded) {
                    t.trace
                        .extend_from_slice(spf.received_spf(&ctx.config.hostname).as_bytes());
                }
                let received = received_header(ctx, &envelope, client, &t.id.to_string());
                t.trace.extend_from_slice(received.as_bytes());
                message.write(&t.trace);
                t.message = Some(message);
                if client.filters.is_some() {
                    Box::pin(milters::at_data(client)).await;
                }
                if checked(client) {
                    t.sealing = t.forwards.as_deref().and_then(|d| {
                        ctx.signers
                            .sealing(d)
                            .or_else(|| ctx.signers.sealing(&ctx.config.hostname))
                    });
                }
                if checked(client)
                    && (ctx.auth.settings().checks_content()
                        || t.spf.as_ref().is_some_and(|v| v.recorded)
                        || t.sealing.is_some())
                {
                    t.checks = Some(ContentChecks::new(ctx));
                }
                if client.user.is_some() {
                    let id = t.id.to_string();
                    let now = SystemTime::now();
                    t.outgoing = Some(Outgoing::new(&ctx.signers, &ctx.config.hostname, &id, now));
                }
            }
        }
        Event::Body(chunk) => {
            if let Some(Transaction {
                message: Some(message),
                checks,
                outgoing,
                ..
            }) = tx.as_deref_mut()
            {
                let stored = match checks {
                    Some(c) => {
                        c.feed(&chunk);
                        &c.scratch
                    }
                    None => &chunk,
                };
                message.write(stored);
                if client.filters.is_some() {
                    Box::pin(milters::feed(client, stored)).await;
                }
                if let Some(o) = outgoing {
                    o.feed(&chunk);
                }
            }
        }
        Event::MessageComplete(envelope) => {
            let stored = match tx.take() {
                Some(t) => Box::pin(store(ctx, *t, envelope, client)).await,
                None => Stored::Failed(replies::queue_write_error()),
            };
            session.handle_stored(stored);
        }
        Event::TransactionAborted => {
            if let Some(t) = tx.take() {
                info!("{}: aborted, nothing queued", t.id);
            }
            if client.filters.is_some() {
                Box::pin(milters::abort(client)).await;
            }
        }
        Event::Rejected { command, reply } => {
            METRICS.rejects.inc();
            let id = id_or_noqueue(tx);
            info!(
                event = "reject",
                queue_id = %id,
                client = %client.label,
                command = %command,
                reply = %reply,
                "{id}: reject: {command} from {}: {reply}",
                client.label
            );
        }
        Event::PipeliningViolation { after } => {
            warn!(
                "improper command pipelining after {after} from {}: disconnecting",
                client.label
            );
        }
        Event::StartTls { .. } | Event::Close => {}
    }
}

/// The queue id of the transaction, or `NOQUEUE` (Postfix's word) before MAIL.
fn id_or_noqueue(tx: &Option<Box<Transaction>>) -> String {
    tx.as_ref()
        .map(|t| t.id.to_string())
        .unwrap_or_else(|| "NOQUEUE".into())
}

/// True when the sender checks apply to this client: not to authenticated users, nor to
/// `relay_networks` (they are ours, and send as anyone they serve).
fn checked(client: &Client) -> bool {
    client.user.is_none() && !client.trusted_network
}

/// MAIL FROM: the sender rules and SPF, then a queue id for the transaction and its
/// `client=` line.
async fn sender(
    ctx: &Context,
    client: &mut Client,
    session: &Session,
    tx: &mut Option<Box<Transaction>>,
    from: &ReversePath,
    params: &relais_proto::MailParams,
) -> Verdict {
    if let Some(r) = storage::no_room(ctx, params.size, &client.label) {
        return Verdict::Reject(r);
    }
    if let Some(r) = check_sender(ctx, client, from) {
        return Verdict::Reject(r);
    }
    if !client.trusted_network {
        let (limit, unit) = (
            ctx.config.limits.message_rate_per_ip,
            ctx.config.limits.rate_time_unit,
        );
        if let Some(r) =
            policy::limits::message(&ctx.state, client.peer.ip(), limit, unit, unix_now()).await
        {
            let per = match unit.as_secs() {
                60 => "a minute".to_string(),
                n => format!("in {n} s"),
            };
            refused(
                client,
                "rate",
                &format!("message rate over {limit} {per}"),
                from,
            );
            return Verdict::Reject(r);
        }
    }
    identify(client).await;
    let helo = session.helo_name().unwrap_or("");
    if checked(client)
        && let Some((check, why, reply)) = screen_sender(ctx, client, helo, from).await
    {
        refused(client, check, &why, from);
        return Verdict::Reject(reply);
    }
    let spf = if checked(client) {
        ctx.auth.check_spf(client.peer.ip(), helo, from).await
    } else {
        None
    };
    if let Some(v) = &spf {
        METRICS.spf_check(v.result.as_str());
    }
    if let Some(reply) = spf.as_ref().and_then(|v| v.reply.clone()) {
        let why = spf.as_ref().map(SpfVerdict::summary).unwrap_or_default();
        refused(client, "spf", &why, from);
        return Verdict::Reject(reply);
    }
    let id = ctx.spool.new_id();
    let auth = client
        .user
        .as_ref()
        .map(|u| format!(", sasl_username={u}"))
        .unwrap_or_default();
    info!(
        event = "client",
        queue_id = %id,
        client = %client.label,
        helo,
        sasl_username = client.user.as_deref().unwrap_or(""),
        from = %from,
        "{id}: client={}, helo={helo}{auth}, from=<{from}>",
        client.label,
    );
    if let Some(v) = &spf {
        info!(
            event = "policy",
            queue_id = %id,
            client = %client.label,
            check = "spf",
            status = "accepted",
            "{id}: {}",
            v.summary()
        );
    }
    let mut discard = None;
    if let Some(f) = client.filters.as_mut() {
        f.set_client_name(client.name.clone());
    }
    if let Some(reply) =
        milters::at_mail(client, &id.to_string(), helo, from, params, &mut discard).await
    {
        return Verdict::Reject(reply);
    }
    // Boxed: a session that waits between messages keeps only a pointer.
    *tx = Some(Box::new(Transaction {
        id,
        from: from.clone(),
        message: None,
        spf,
        checks: None,
        outgoing: None,
        forwards: None,
        sealing: None,
        trace: Vec::new(),
        discard,
        size: params.size,
    }));
    Verdict::Accept
}

/// RCPT TO: the routing policy decides, then greylisting for strangers.
async fn recipient(
    ctx: &Context,
    client: &mut Client,
    tx: &mut Option<Box<Transaction>>,
    to: &relais_proto::Mailbox,
    params: &relais_proto::RcptParams,
) -> Verdict {
    let may_relay = client.user.is_some() || client.trusted_network;
    let mut checked = ctx.policy.check_recipient(to, may_relay);
    if let Ok(route) = &checked
        && let Some(reply) = mailbox_full(ctx, route, to, tx.as_ref().and_then(|t| t.size))
    {
        checked = Err(Verdict::Reject(reply));
    }
    if checked.is_ok()
        && let Some(reply) = greylist(ctx, client, tx, to).await
    {
        checked = Err(Verdict::Reject(reply));
    }
    if checked.is_ok()
        && let Some(reply) = user_rate(ctx, client, tx, to).await
    {
        checked = Err(Verdict::Reject(reply));
    }
    if checked.is_ok()
        && let Some(reply) = milters::at_rcpt(client, tx, to, params).await
    {
        checked = Err(Verdict::Reject(reply));
    }
    METRICS.recipient_check(checked.is_ok());
    match checked {
        Ok(route) => {
            if let (Route::Alias(name), Some(t)) = (&route, tx.as_mut())
                && forwards_off(ctx, name)
            {
                t.forwards = Some(to.domain_lower());
            }
            let id = id_or_noqueue(tx);
            info!(
                event = "rcpt",
                queue_id = %id,
                to = %to,
                route = %route,
                "{id}: to=<{to}> accepted ({route})"
            );
            Verdict::Accept
        }
        Err(v) => v,
    }
}

/// Refuses a sender an authenticated user may not use, when the configuration asks for it.
fn check_sender(ctx: &Context, client: &Client, from: &ReversePath) -> Option<relais_proto::Reply> {
    let user = client.user.as_ref()?;
    if !ctx.config.auth.sender_must_match {
        return None;
    }
    let owned = match from.mailbox() {
        None => false,
        Some(m) => {
            let addr = m.to_string().to_ascii_lowercase();
            (m.local.eq_ignore_ascii_case(user) && ctx.policy.is_local_domain(&m.domain))
                || ctx.users.addresses(user).contains(&addr)
        }
    };
    (!owned).then(|| replies::sender_not_owned(user, &from.to_string()))
}

/// Checks AUTH credentials off the event loop, with per-address failure limits.
async fn authenticate(
    ctx: &Context,
    client: &mut Client,
    mechanism: &str,
    username: String,
    password: String,
) -> AuthOutcome {
    let ip = client.peer.ip();
    if !ctx.anvil.auth_allowed(ip, Instant::now()) {
        warn!(
            "{}: AUTH refused: too many failures from this address",
            client.label
        );
        return AuthOutcome::Failure(replies::auth_rate_limited());
    }
    let users = ctx.users.clone();
    let name = username.clone();
    let ok = tokio::task::spawn_blocking(move || users.verify(&name, &password))
        .await
        .unwrap_or(false);
    if ok {
        info!(
            "{}: sasl_method={mechanism}, sasl_username={username}",
            client.label
        );
        client.user = Some(username);
        AuthOutcome::Success
    } else {
        ctx.anvil.auth_failed(ip, Instant::now());
        warn!(
            "{}: SASL {mechanism} authentication failed for {username:?}",
            client.label
        );
        tokio::time::sleep(ctx.config.auth.failure_delay).await;
        AuthOutcome::Failure(replies::auth_failed())
    }
}

/// Commits a complete message to the spool and hands it to delivery.
async fn store(
    ctx: &Context,
    mut t: Transaction,
    envelope: Envelope,
    client: &mut Client,
) -> Stored {
    let Some(mut message) = t.message.take() else {
        warn!("{}: not queued: no content started", t.id);
        return Stored::Failed(replies::queue_write_error());
    };
    if let Some(c) = t.checks.as_mut() {
        // What the forged-results filter still held is the end of the content.
        c.finish();
        message.write(&c.scratch);
        milters::feed(client, &c.scratch).await;
    }
    let mut arrival = match check_content(ctx, &mut t, client).await {
        Ok(a) => a,
        Err(reply) => return Stored::Failed(reply),
    };
    match milters::at_end(ctx, client, &t, &mut message, &mut arrival).await {
        Ok(true) => {}
        Ok(false) => return Stored::Queued(t.id.to_string()),
        Err(reply) => return Stored::Failed(reply),
    }
    if let Some(o) = t.outgoing.take() {
        arrival.headers.extend(prepare_outgoing(o, t.id).await);
    }
    message.set_arrival(arrival);
    let client = client.label.as_str();
    let size = envelope.size;
    match message.commit(client, envelope, "").await {
        Ok(id) => {
            METRICS.messages_accepted.inc();
            METRICS.bytes_received.add(size);
            ctx.delivery.push(id);
            Stored::Queued(id.to_string())
        }
        Err(e) => Stored::Failed(match e {
            SpoolError::Full(_) => replies::insufficient_storage(),
            _ => replies::queue_write_error(),
        }),
    }
}

fn received_header(ctx: &Context, envelope: &Envelope, client: &Client, id: &str) -> String {
    headers::received(&ReceivedInfo {
        envelope,
        client_ip: client.peer.ip(),
        client_name: client.name.as_deref(),
        hostname: &ctx.config.hostname,
        id,
        when: SystemTime::now(),
        tls: client.tls.as_ref(),
        authenticated: client.user.is_some(),
    })
}
