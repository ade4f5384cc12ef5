//! The checks a connection makes on the way (who the client is, greylisting, rate limits, the
//! content checks, the signing of submissions) and the state they keep while the content
//! streams in. Decisions are `relais-policy`'s; this carries them out and logs them.

use std::time::SystemTime;

use relais_local::quota;
use relais_metrics::METRICS;
use relais_policy::{self as policy, Action, HeaderFilter, Outgoing, Received, Screening};
use relais_proto::{Mailbox, Reply, ReversePath, replies};
use relais_queue::{Arrival, Target};
use relais_route::Route;
use relais_spool::QueueId;
use tracing::{info, warn};

use super::{Client, Transaction, checked, id_or_noqueue};
use crate::context::Context;

/// What the content checks need while the content streams in.
pub(super) struct ContentChecks {
    /// Drops forged `Authentication-Results` headers.
    filter: HeaderFilter,
    /// The filtered chunk being passed on.
    pub(super) scratch: Vec<u8>,
    /// The message as received, for DKIM, ARC and DMARC; cut to its header section once it
    /// grows over `verify_max_size`.
    copy: Vec<u8>,
    /// The copy was cut.
    cut: bool,
    /// `verify_max_size`.
    limit: usize,
}

impl ContentChecks {
    pub(super) fn new(ctx: &Context) -> ContentChecks {
        let settings = ctx.auth.settings();
        ContentChecks {
            filter: HeaderFilter::new(&settings.authserv_id),
            scratch: Vec::new(),
            copy: Vec::new(),
            cut: false,
            limit: usize::try_from(settings.verify_max_size).unwrap_or(usize::MAX),
        }
    }

    /// Filters a chunk into `scratch` and keeps a copy.
    pub(super) fn feed(&mut self, chunk: &[u8]) {
        self.scratch.clear();
        self.filter.feed(chunk, &mut self.scratch);
        self.keep();
    }

    /// The end of the content: what the filter still held goes into `scratch`.
    pub(super) fn finish(&mut self) {
        self.scratch.clear();
        self.filter.finish(&mut self.scratch);
        self.keep();
    }

    fn keep(&mut self) {
        if self.cut {
            return;
        }
        self.copy.extend_from_slice(&self.scratch);
        if self.copy.len() > self.limit {
            // Keep the header section (with its blank line), or nothing when it has no end.
            let end = relais_queue::headers::headers_of(&self.copy).len();
            if end < self.copy.len() {
                self.copy.truncate(end);
                self.copy.extend_from_slice(b"\r\n");
            } else {
                self.copy.clear();
            }
            self.copy.shrink_to_fit();
            self.cut = true;
        }
    }

    fn received(&self) -> Received<'_> {
        if self.cut {
            Received::HeaderOnly(&self.copy)
        } else {
            Received::Whole(&self.copy)
        }
    }
}

/// The connect-time lookups of a client (reverse DNS, DNS lists), asked for at MAIL FROM.
pub(super) enum Screen {
    /// None configured.
    Off,
    /// Running since the connect.
    Pending(tokio::task::JoinHandle<Screening>),
    /// Done.
    Done(Screening),
}

/// Waits for the connect-time lookups (bounded by `lookup_timeout`) and names the client by
/// its confirmed PTR from now on.
pub(super) async fn identify(client: &mut Client) {
    if let Screen::Pending(task) = &mut client.screen {
        let screening = task.await.unwrap_or_default();
        if let Some(name) = &screening.name {
            client.label = format!("{name}[{}]:{}", client.peer.ip(), client.peer.port());
            client.name = Some(name.clone());
        }
        let summary = screening.summary();
        if !summary.is_empty() {
            info!(event = "screen", client = %client.label, reason = %summary, "{}: {summary}", client.label);
        }
        client.screen = Screen::Done(screening);
    }
}

/// The checks of a stranger at MAIL FROM before SPF: its HELO name, its DNS lists and reverse
/// DNS, its sender domain on domain lists. The check, why, and the refusal.
pub(super) async fn screen_sender(
    ctx: &Context,
    client: &Client,
    helo: &str,
    from: &ReversePath,
) -> Option<(&'static str, String, Reply)> {
    let settings = ctx.auth.settings();
    if let Some(r) = policy::decide_helo(settings, helo, &ctx.config.hostname) {
        return Some(("helo", format!("helo={helo}"), r));
    }
    if let Screen::Done(s) = &client.screen
        && let Some(r) = policy::decide_client(settings, s, client.peer.ip())
    {
        return Some(("client", s.summary(), r));
    }
    let sender = from.mailbox()?.to_string();
    let (why, reply) = ctx.auth.check_rhsbl(&sender).await?;
    Some(("rhsbl", why, reply))
}

/// Logs a refusal at MAIL FROM by a sender check.
pub(super) fn refused(client: &Client, check: &str, why: &str, from: &ReversePath) {
    METRICS.screen_refused(check);
    info!(
        event = "policy",
        queue_id = "NOQUEUE",
        client = %client.label,
        check,
        from = %from,
        status = "refused",
        reason = %why,
        "NOQUEUE: {why}: from=<{from}> refused for {}",
        client.label
    );
}

/// Now, in Unix seconds (the clock of the shared state's windows and expiries).
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The recipients an hour of an authenticated user: the refusal beyond the limit, logged with
/// the user's name (a stolen password sending spam shows there).
pub(super) async fn user_rate(
    ctx: &Context,
    client: &Client,
    tx: &Option<Box<Transaction>>,
    to: &relais_proto::Mailbox,
) -> Option<Reply> {
    let user = client.user.as_deref()?;
    let limit = ctx.config.limits.recipient_rate_per_user;
    let (count, reply) = policy::limits::recipient(&ctx.state, user, to, limit, unix_now()).await?;
    let why =
        format!("rate limit: user {user} reached {count} recipients this hour (limit {limit})");
    deferred(client, tx, "rate", &why, to);
    METRICS.screen_refused("rate");
    Some(reply)
}

/// Logs a recipient deferred by a check (greylisting, a rate limit); a warning, as it may be
/// a stolen password or a misconfigured sender.
pub(super) fn deferred(
    client: &Client,
    tx: &Option<Box<Transaction>>,
    check: &str,
    why: &str,
    to: &relais_proto::Mailbox,
) {
    let id = id_or_noqueue(tx);
    warn!(
        event = "policy",
        queue_id = %id,
        client = %client.label,
        check,
        sasl_username = client.user.as_deref().unwrap_or(""),
        to = %to,
        status = "deferred",
        reason = why,
        "{id}: {why}: to=<{to}> deferred for {}",
        client.label
    );
}

/// Greylisting of a stranger's recipient (not for clients on a white list): the deferral.
pub(super) async fn greylist(
    ctx: &Context,
    client: &Client,
    tx: &Option<Box<Transaction>>,
    to: &relais_proto::Mailbox,
) -> Option<Reply> {
    let settings = ctx.auth.settings();
    if !settings.greylist || !checked(client) {
        return None;
    }
    if let Screen::Done(s) = &client.screen
        && s.white_listed()
    {
        return None;
    }
    let from = tx.as_ref().map(|t| &t.from)?;
    let (grey, reply) =
        policy::greylist::check(&ctx.state, settings, client.peer.ip(), from, to, unix_now())
            .await?;
    let why = match grey {
        policy::greylist::Grey::Defer(0) => "greylisting store unavailable".to_string(),
        policy::greylist::Grey::Defer(wait) => format!("greylisted (a retry passes in {wait} s)"),
        policy::greylist::Grey::Pass => "greylisting".to_string(),
    };
    deferred(client, tx, "greylist", &why, to);
    Some(reply)
}

/// `552 5.2.2` when `route` is a mailbox already at or over its quota, or without room for
/// the `size` MAIL FROM declared (a message that does not fit later bounces at delivery).
pub(super) fn mailbox_full(
    ctx: &Context,
    route: &Route,
    to: &Mailbox,
    size: Option<u64>,
) -> Option<Reply> {
    let (Route::Local(mailbox), Some(q)) = (route, &ctx.quotas) else {
        return None;
    };
    let (store, quotas) = &**q;
    let limit = quotas.limit_of(mailbox)?;
    match store.usage(mailbox, limit) {
        Ok(usage) if !quota::fits(usage, limit, size.unwrap_or(0)) => {
            info!(
                "{to}: mailbox {mailbox} is full: {} of {limit} bytes",
                usage.bytes
            );
            Some(replies::mailbox_full(to))
        }
        Ok(_) => None,
        Err(e) => {
            warn!("cannot read the quota of {mailbox}: {e}");
            None
        }
    }
}

/// True if the alias `name` sends copies to another domain.
pub(super) fn forwards_off(ctx: &Context, name: &str) -> bool {
    let Ok(Some(targets)) = ctx.policy.expand(name) else {
        return false;
    };
    targets.iter().any(|t| match t {
        Target::Forward(a) => a
            .rsplit_once('@')
            .is_some_and(|(_, d)| !ctx.policy.is_local_domain(d)),
        _ => false,
    })
}

/// Runs the content checks of a complete message (its content all written, the last of it
/// by [`ContentChecks::finish`]): what to keep with its envelope, or `Err`
/// with the reply that refuses it.
pub(super) async fn check_content(
    ctx: &Context,
    t: &mut Transaction,
    client: &Client,
) -> Result<Arrival, Reply> {
    let Some(checks) = t.checks.as_mut() else {
        return Ok(Arrival::default());
    };
    let cx = policy::Context {
        ip: client.peer.ip(),
        spf: t.spf.as_ref(),
        seal: t.sealing.as_ref(),
    };
    let Some(verdict) = ctx.auth.check_content(checks.received(), cx).await else {
        return Ok(Arrival::default());
    };
    let id = t.id;
    let (status, junk) = match &verdict.action {
        Action::Accept => ("accept", false),
        Action::Quarantine => ("quarantine", true),
        Action::Reject(_) => ("reject", false),
    };
    METRICS.content_check(status);
    info!(
        event = "policy",
        queue_id = %id,
        client = %client.label,
        check = "content",
        status,
        reason = verdict.summary(),
        "{id}: {}: {status}",
        verdict.summary()
    );
    if let Action::Reject(reply) = verdict.action {
        info!(
            event = "reject",
            queue_id = %id,
            client = %client.label,
            command = "END-OF-MESSAGE",
            reply = %reply,
            "{id}: reject: END-OF-MESSAGE from {}: {reply}",
            client.label
        );
        return Err(reply);
    }
    match &verdict.sealed {
        Some(Ok(d)) => info!(event = "arc_sealed", queue_id = %id, "{id}: ARC-sealed d={d}"),
        Some(Err(e)) => {
            warn!(event = "arc_unsealed", queue_id = %id, reason = %e, "{id}: not ARC-sealed: {e}")
        }
        None => {}
    }
    Ok(Arrival {
        headers: verdict.headers,
        junk,
        section: None,
    })
}

/// A submission's DKIM signature and missing `Date` and `Message-ID`, logged.
pub(super) async fn prepare_outgoing(outgoing: Outgoing, id: QueueId) -> Vec<String> {
    let prepared = outgoing.finish().await;
    prepared.log(&id.to_string());
    prepared.headers
}
