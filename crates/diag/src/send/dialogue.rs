//! The dialogue: connect (the server, or the MX hosts in order), TLS, EHLO, AUTH, MAIL, RCPT,
//! DATA or BDAT, QUIT. Every way out is an [`Outcome`] with the exit code of the stage that
//! ended it; a stage returns `Err(outcome)` to end the session early (a failure, or a stop
//! where `quit_after` says).

use std::net::SocketAddr;

use relais_client::{ClientError, SmtpClient, Stage};
use relais_dns::mx::RouteKind;
use relais_proto::{EhloResponse, Reply};

use super::plan::{Plan, Target};
use super::{QuitAfter, TlsMode, exit};
use crate::Mechanism;
use crate::mechanism::NotOffered;

/// How a session ended.
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) code: u8,
    /// The stage that failed, if one did.
    pub(super) stage: Option<Stage>,
    /// What went wrong, in one line.
    pub(super) error: Option<String>,
    /// The server's reply that ended it, if a reply did.
    pub(super) reply: Option<Reply>,
}

impl Outcome {
    fn ok() -> Outcome {
        Outcome {
            code: exit::OK,
            stage: None,
            error: None,
            reply: None,
        }
    }

    fn fail(code: u8, stage: Stage, error: impl Into<String>) -> Outcome {
        Outcome {
            code,
            stage: Some(stage),
            error: Some(error.into()),
            reply: None,
        }
    }
}

/// What a stage returns: `Err` ends the session with that outcome.
type Step<T = ()> = Result<T, Outcome>;

/// The whole dialogue. Never panics on the network; every way out is an [`Outcome`].
pub(super) async fn session(plan: &Plan, client: &mut SmtpClient) -> Outcome {
    let outcome = match stages(plan, client).await {
        Ok(outcome) | Err(outcome) => outcome,
    };
    // Client errors are already in the transcript; refusals and missing extensions are not.
    let recorded = client
        .transcript()
        .entries
        .last()
        .is_some_and(|e| e.dir == relais_client::Direction::Error);
    if let Some(e) = &outcome.error
        && !recorded
    {
        client.transcript_mut().error(e.clone());
    }
    if outcome.code != exit::OK && client.is_connected() {
        // Be polite after a refusal, as swaks is; whatever happens now changes nothing.
        let _ = client.quit().await;
    }
    outcome
}

/// The stages in order.
async fn stages(plan: &Plan, client: &mut SmtpClient) -> Step<Outcome> {
    let host = connect(plan, client).await?;
    if plan.stops_after(QuitAfter::Connect) {
        client.close().await;
        return Ok(Outcome::ok());
    }
    let ehlo = greet(plan, client, &host).await?;
    stop_after(plan, client, QuitAfter::Ehlo).await?;
    let ehlo = starttls(plan, client, &host, ehlo).await?;
    stop_after(plan, client, QuitAfter::Tls).await?;
    if let Some(auth) = &plan.auth {
        authenticate(client, &ehlo, auth).await?;
    }
    stop_after(plan, client, QuitAfter::Auth).await?;
    let (mail, rcpts) = envelope(plan, &ehlo)?;
    let mut pipeline =
        plan.pipeline && !matches!(plan.quit_after, Some(QuitAfter::Mail | QuitAfter::Rcpt));
    if pipeline && !ehlo.has("PIPELINING") {
        client
            .transcript_mut()
            .info("PIPELINING not offered; sending one command at a time");
        pipeline = false;
    }
    if pipeline && !plan.lmtp {
        return Ok(pipelined(plan, client, mail, rcpts).await);
    }
    let accepted = one_at_a_time(plan, client, &mail, &rcpts).await?;
    if plan.lmtp {
        return Ok(lmtp_content(plan, client, accepted).await);
    }
    Ok(send_content(plan, client, false).await)
}

/// QUIT where `quit_after` says: success whatever the reply.
async fn stop_after(plan: &Plan, client: &mut SmtpClient, stage: QuitAfter) -> Step {
    if plan.stops_after(stage) {
        return Err(quit(client).await);
    }
    Ok(())
}

/// Connects: every address of every host in turn, until one answers. Returns the host's name.
async fn connect(plan: &Plan, client: &mut SmtpClient) -> Step<String> {
    if let Target::Unix { path } = &plan.target {
        return match client.open_unix(path).await {
            Ok(()) => Ok("localhost".to_string()),
            Err(e) => Err(failed(e, exit::CONNECT)),
        };
    }
    let hosts = candidates(plan, client).await?;
    let mut last_error = None;
    for (name, addrs) in &hosts {
        for addr in addrs {
            match client.open(*addr).await {
                Ok(()) => return Ok(name.clone()),
                Err(e) => last_error = Some(e),
            }
        }
    }
    let why = last_error.map_or_else(|| "no address to connect to".to_string(), |e| e.to_string());
    Err(Outcome::fail(exit::CONNECT, Stage::Connect, why))
}

/// The hosts to try, in order, each with its addresses.
async fn candidates(plan: &Plan, client: &mut SmtpClient) -> Step<Vec<(String, Vec<SocketAddr>)>> {
    let (domain, nameserver) = match &plan.target {
        Target::Server { host } => {
            return match relais_client::resolve(host, plan.port).await {
                Ok(a) => Ok(vec![(host.clone(), a)]),
                Err(e) => {
                    client.transcript_mut().error(e.to_string());
                    Err(Outcome::fail(exit::CONNECT, Stage::Resolve, e.to_string()))
                }
            };
        }
        Target::Mx { domain, resolver } => (domain, *resolver),
        Target::Unix { .. } => return Ok(Vec::new()),
    };
    let fail = |client: &mut SmtpClient, why: String| {
        client.transcript_mut().error(why.clone());
        Err(Outcome::fail(exit::CONNECT, Stage::Resolve, why))
    };
    client.transcript_mut().info(format!(
        "Looking up the MX of {domain} (nameserver: {nameserver})"
    ));
    let options = relais_dns::ResolverOptions {
        nameserver,
        ..relais_dns::ResolverOptions::default()
    };
    let resolver = match relais_dns::Resolver::new(&options) {
        Ok(r) => r,
        Err(e) => return fail(client, e.to_string()),
    };
    let route = resolver.mail_route(domain).await;
    let hosts: Vec<(String, Vec<SocketAddr>)> = route
        .hosts
        .iter()
        .map(|h| {
            let addrs: Vec<SocketAddr> = h
                .addresses
                .ips()
                .into_iter()
                .map(|ip| SocketAddr::new(ip, plan.port))
                .collect();
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            client.transcript_mut().info(format!(
                "{} {} {} [{}]",
                if route.kind == RouteKind::Implicit {
                    "no MX, the domain itself:"
                } else {
                    "MX"
                },
                h.preference,
                h.name,
                shown.join(", ")
            ));
            (h.name.clone(), addrs)
        })
        .collect();
    let why = match &route.kind {
        RouteKind::Mx | RouteKind::Implicit => None,
        RouteKind::NullMx => Some(format!("{domain} accepts no mail (null MX, RFC 7505)")),
        RouteKind::NoSuchDomain => Some(format!("{domain} does not exist (NXDOMAIN)")),
        RouteKind::NoMailHost => Some(format!("{domain} has neither MX nor address records")),
        RouteKind::Failed(f) => Some(format!("the MX lookup of {domain} failed: {f}")),
    };
    if let Some(why) = why {
        return fail(client, why);
    }
    if hosts.iter().all(|(_, a)| a.is_empty()) {
        return fail(client, format!("no MX host of {domain} has an address"));
    }
    Ok(hosts)
}

/// TLS on connect, the banner, EHLO (HELO if refused).
async fn greet(plan: &Plan, client: &mut SmtpClient, host: &str) -> Step<EhloResponse> {
    if plan.tls == TlsMode::OnConnect
        && let Err(e) = client.tls_handshake(host).await
    {
        return Err(failed(e, exit::TLS));
    }
    match client.banner().await {
        Ok(b) if b.code == 220 => {}
        Ok(b) => return Err(refused(Stage::Banner, exit::BANNER, b)),
        Err(e) => return Err(failed(e, exit::BANNER)),
    }
    stop_after(plan, client, QuitAfter::Banner).await?;
    if plan.lmtp {
        return client
            .lhlo(&plan.ehlo)
            .await
            .map_err(|e| failed(e, exit::HELO));
    }
    client
        .ehlo_or_helo(&plan.ehlo)
        .await
        .map_err(|e| failed(e, exit::HELO))
}

/// STARTTLS and EHLO again, when asked; returns the EHLO that counts.
async fn starttls(
    plan: &Plan,
    client: &mut SmtpClient,
    host: &str,
    ehlo: EhloResponse,
) -> Step<EhloResponse> {
    if !matches!(plan.tls, TlsMode::Required | TlsMode::Optional) {
        return Ok(ehlo);
    }
    let required = plan.tls == TlsMode::Required;
    if !ehlo.has("STARTTLS") {
        if required {
            return Err(Outcome::fail(
                exit::TLS,
                Stage::StartTls,
                "the server does not offer STARTTLS",
            ));
        }
        client
            .transcript_mut()
            .info("STARTTLS not offered; going on in clear text");
        return Ok(ehlo);
    }
    match client.starttls(host).await {
        Ok(_) => client
            .ehlo(&plan.ehlo)
            .await
            .map_err(|e| failed(e, exit::EHLO_AFTER_TLS)),
        Err(e) if !required && e.connection_usable() => {
            client
                .transcript_mut()
                .info("STARTTLS refused; going on in clear text");
            Ok(ehlo)
        }
        Err(e) => Err(failed(e, exit::TLS)),
    }
}

/// AUTH with the credentials, on a mechanism the server offers.
async fn authenticate(
    client: &mut SmtpClient,
    ehlo: &EhloResponse,
    auth: &super::Credentials,
) -> Step {
    let offered = ehlo.auth_mechanisms();
    if offered.is_empty() {
        return Err(Outcome::fail(
            exit::AUTH,
            Stage::Auth,
            "the server does not offer AUTH",
        ));
    }
    let mechanism = match Mechanism::choose(auth.mechanism, &offered) {
        Ok(m) => m,
        Err(why) => {
            let offers = offered.join(" ");
            let error = match why {
                NotOffered::Neither => {
                    format!("the server offers neither PLAIN nor LOGIN (offers {offers})")
                }
                NotOffered::Wanted(m) => format!(
                    "the server does not offer AUTH {} (offers {offers})",
                    m.name()
                ),
            };
            return Err(Outcome::fail(exit::AUTH, Stage::Auth, error));
        }
    };
    match mechanism
        .authenticate(client, &auth.user, &auth.password)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err(failed(e, exit::AUTH)),
    }
}

/// MAIL and RCPT commands, once the extensions the options need are known to be offered.
fn envelope(plan: &Plan, ehlo: &EhloResponse) -> Step<(String, Vec<String>)> {
    let mut mail_params = plan.mail_params.clone();
    let needed = [
        (plan.bdat.is_some(), "CHUNKING", "--bdat"),
        (mail_params.smtputf8, "SMTPUTF8", "SMTPUTF8"),
        (mail_params.body.is_some(), "8BITMIME", "--8bitmime"),
        (plan.wants_dsn(), "DSN", "the --dsn-* / --envid options"),
    ];
    for (wanted, keyword, why) in needed {
        if wanted && !ehlo.has(keyword) {
            return Err(Outcome::fail(
                exit::EXTENSION,
                Stage::Mail,
                format!("{why} needs {keyword}, which the server does not offer"),
            ));
        }
    }
    if ehlo.has("SIZE") {
        mail_params.size = Some(plan.message.len() as u64);
    }
    let mail = relais_proto::Command::Mail {
        from: plan.from.clone(),
        params: mail_params,
    }
    .to_string();
    let rcpts = plan
        .to
        .iter()
        .map(|to| {
            relais_proto::Command::Rcpt {
                to: to.clone(),
                params: plan.rcpt_params_for(to),
            }
            .to_string()
        })
        .collect();
    Ok((mail, rcpts))
}

/// MAIL, then each RCPT, waiting for every reply; returns how many recipients were accepted.
async fn one_at_a_time(
    plan: &Plan,
    client: &mut SmtpClient,
    mail: &str,
    rcpts: &[String],
) -> Step<usize> {
    match client.command(mail).await {
        Ok(r) if r.is_positive() => {}
        Ok(r) => return Err(refused(Stage::Mail, exit::MAIL, r)),
        Err(e) => return Err(failed(e, exit::MAIL)),
    }
    stop_after(plan, client, QuitAfter::Mail).await?;
    let mut accepted = 0;
    let mut last_refusal = None;
    for rcpt in rcpts {
        match client.command(rcpt).await {
            Ok(r) if r.is_positive() => accepted += 1,
            Ok(r) => last_refusal = Some(r),
            Err(e) => return Err(failed(e, exit::RCPT)),
        }
    }
    if accepted == 0 {
        return Err(match last_refusal {
            Some(r) => refused(Stage::Rcpt, exit::RCPT, r),
            None => Outcome::fail(exit::RCPT, Stage::Rcpt, "no recipient accepted"),
        });
    }
    stop_after(plan, client, QuitAfter::Rcpt).await?;
    Ok(accepted)
}

/// LMTP (RFC 2033 §4.2): DATA, the content, then one reply per accepted recipient; a
/// refusal of any of them fails the send (exit 26) with its reply.
async fn lmtp_content(plan: &Plan, client: &mut SmtpClient, accepted: usize) -> Outcome {
    match client.command("DATA").await {
        Ok(r) if r.code == 354 => {}
        Ok(r) => return refused(Stage::Data, exit::DATA, r),
        Err(e) => return failed(e, exit::DATA),
    }
    if plan.stops_after(QuitAfter::Data) {
        client.close().await;
        return Outcome::ok();
    }
    if let Err(e) = client.send_content(&plan.message).await {
        return failed(e, exit::MESSAGE);
    }
    let mut refusal = None;
    for _ in 0..accepted {
        match client.read_reply(Stage::Message).await {
            Ok(r) if r.is_positive() => {}
            Ok(r) => refusal = Some(r),
            Err(e) => return failed(e, exit::MESSAGE),
        }
    }
    if let Some(r) = refusal {
        return refused(Stage::Message, exit::MESSAGE, r);
    }
    match client.quit().await {
        Ok(Some(r)) if !r.is_positive() => refused(Stage::Quit, exit::QUIT, r),
        Ok(_) => Outcome::ok(),
        Err(e) => failed(e, exit::QUIT),
    }
}

/// MAIL, RCPT… and DATA in one group (RFC 2920); BDAT, which carries content, goes after.
async fn pipelined(
    plan: &Plan,
    client: &mut SmtpClient,
    mail: String,
    rcpts: Vec<String>,
) -> Outcome {
    let mut group = vec![mail];
    group.extend(rcpts);
    let with_data = plan.bdat.is_none();
    if with_data {
        group.push("DATA".to_string());
    }
    let replies = match client.pipeline(&group).await {
        Ok(r) => r,
        Err(e) => {
            let code = exit_for_stage(e.stage());
            return failed(e, code);
        }
    };
    let data_reply = if with_data { replies.last() } else { None };
    let rcpt_replies = &replies[1..1 + plan.to.len()];
    let mail_ok = replies[0].is_positive();
    let accepted = rcpt_replies.iter().filter(|r| r.is_positive()).count();
    let failure = if !mail_ok {
        Some(refused(Stage::Mail, exit::MAIL, replies[0].clone()))
    } else if accepted == 0 {
        let last = rcpt_replies.iter().rev().find(|r| !r.is_positive());
        Some(match last {
            Some(r) => refused(Stage::Rcpt, exit::RCPT, r.clone()),
            None => Outcome::fail(exit::RCPT, Stage::Rcpt, "no recipient accepted"),
        })
    } else {
        None
    };
    if let Some(failure) = failure {
        if data_reply.is_some_and(|r| r.code == 354) {
            // The server wants content it will throw away: end it at once.
            let _ = client.data_content(b"").await;
        }
        return failure;
    }
    match data_reply {
        Some(r) if r.code != 354 => refused(Stage::Data, exit::DATA, r.clone()),
        Some(_) => send_content(plan, client, true).await,
        None => send_content(plan, client, false).await,
    }
}

/// DATA (unless already accepted in a pipelined group) or BDAT, the message, then QUIT.
async fn send_content(plan: &Plan, client: &mut SmtpClient, data_accepted: bool) -> Outcome {
    let result = if let Some(chunk) = plan.bdat {
        if plan.stops_after(QuitAfter::Data) {
            return quit(client).await;
        }
        client.bdat(&plan.message, chunk).await
    } else {
        if !data_accepted {
            match client.command("DATA").await {
                Ok(r) if r.code == 354 => {}
                Ok(r) => return refused(Stage::Data, exit::DATA, r),
                Err(e) => return failed(e, exit::DATA),
            }
        }
        if plan.stops_after(QuitAfter::Data) {
            client.close().await;
            return Outcome::ok();
        }
        client.data_content(&plan.message).await
    };
    if let Err(e) = result {
        let code = exit_for_stage(e.stage());
        return failed(e, code);
    }
    match client.quit().await {
        Ok(Some(r)) if !r.is_positive() => refused(Stage::Quit, exit::QUIT, r),
        Ok(_) => Outcome::ok(),
        Err(e) => failed(e, exit::QUIT),
    }
}

/// QUIT after `quit_after`: success whatever the reply.
async fn quit(client: &mut SmtpClient) -> Outcome {
    let _ = client.quit().await;
    Outcome::ok()
}

/// The exit code for a failure at `stage`.
fn exit_for_stage(stage: Stage) -> u8 {
    match stage {
        Stage::Resolve | Stage::Connect => exit::CONNECT,
        Stage::Banner => exit::BANNER,
        Stage::Ehlo | Stage::Helo => exit::HELO,
        Stage::StartTls | Stage::TlsHandshake => exit::TLS,
        Stage::Auth => exit::AUTH,
        Stage::Mail => exit::MAIL,
        Stage::Rcpt => exit::RCPT,
        Stage::Data | Stage::Bdat => exit::DATA,
        Stage::Message => exit::MESSAGE,
        Stage::Quit => exit::QUIT,
        _ => exit::CLOSED,
    }
}

/// A client error at a stage whose exit code is `code` (or 6 when the server hung up).
fn failed(e: ClientError, code: u8) -> Outcome {
    let stage = e.stage();
    let code = match &e {
        ClientError::Closed { .. } | ClientError::Reset { .. } => exit::CLOSED,
        _ => code,
    };
    match e {
        ClientError::UnexpectedReply { stage, reply } => refused(stage, code, reply),
        e => Outcome::fail(code, stage, e.to_string()),
    }
}

/// A reply that refuses `stage`.
fn refused(stage: Stage, code: u8, reply: Reply) -> Outcome {
    Outcome {
        code,
        stage: Some(stage),
        error: Some(format!("{stage} refused: {reply}")),
        reply: Some(reply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_has_its_exit_code() {
        assert_eq!(exit_for_stage(Stage::Rcpt), 24);
        assert_eq!(exit_for_stage(Stage::Message), 26);
        assert_eq!(exit_for_stage(Stage::TlsHandshake), 29);
        let closed = failed(ClientError::Closed { stage: Stage::Mail }, exit::MAIL);
        assert_eq!(closed.code, exit::CLOSED);
    }

    #[test]
    fn failures_and_refusals() {
        let reply = Reply::new(550, None, "no such user");
        // (error, stage's code, exit, failed stage, reply kept)
        let table: Vec<(ClientError, u8, u8, Stage, bool)> = vec![
            (
                ClientError::Closed { stage: Stage::Data },
                exit::DATA,
                exit::CLOSED,
                Stage::Data,
                false,
            ),
            (
                ClientError::Reset { stage: Stage::Rcpt },
                exit::RCPT,
                exit::CLOSED,
                Stage::Rcpt,
                false,
            ),
            (
                ClientError::UnexpectedReply {
                    stage: Stage::Rcpt,
                    reply: reply.clone(),
                },
                exit::RCPT,
                exit::RCPT,
                Stage::Rcpt,
                true,
            ),
            (
                ClientError::TimedOut {
                    stage: Stage::Banner,
                    after: std::time::Duration::from_secs(1),
                },
                exit::BANNER,
                exit::BANNER,
                Stage::Banner,
                false,
            ),
        ];
        for (e, code, want, stage, kept) in table {
            let o = failed(e, code);
            assert_eq!(
                (o.code, o.stage, o.reply.is_some()),
                (want, Some(stage), kept)
            );
        }
        let o = refused(Stage::Mail, exit::MAIL, reply);
        assert_eq!(
            o.error.as_deref(),
            Some("MAIL FROM refused: 550 no such user")
        );
    }
}
