//! A fresh connection ready for MAIL: TCP (from the source address), TLS from the first byte
//! or STARTTLS as the policy says (with `may`'s fallback to clear text, and `dane` settled by
//! the host's TLSA records first), EHLO, and AUTH for a next hop that has credentials (over TLS
//! only).

use std::net::SocketAddr;

use relais_client::SmtpClient;
use relais_config::TlsMode;
use relais_proto::EhloResponse;
use relais_queue::Outcome;

use crate::tls::{self, AfterEhlo, DaneStep};
use crate::{Attempt, RemoteSettings, from_reply};

/// Settings of one next hop.
#[derive(Debug, Clone, Default)]
pub struct Hop {
    /// AUTH credentials.
    pub auth: Option<Credentials>,
    /// TLS from the first byte (port 465).
    pub tls_on_connect: bool,
}

/// A user name and its password.
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, …)", self.user)
    }
}

/// Where one connection goes, and how.
pub(crate) struct Dest<'a> {
    /// The host's name: SNI, and the name its certificate must have under `verify`.
    pub name: &'a str,
    /// Its address.
    pub addr: SocketAddr,
    /// `name[ip]:port`, for logs and outcomes.
    pub host: &'a str,
    /// The TLS mode that applies.
    pub mode: TlsMode,
    /// The next hop's settings, if it has any.
    pub hop: Option<&'a Hop>,
    /// Under `verify`, names the certificate may have instead of `name` (empty: `name`).
    pub matches: &'a [String],
    /// The domain whose MX record named this host (`None`: a next hop or a literal).
    pub mx_of: Option<&'a str>,
}

/// Why a connection could not be made ready.
enum Failure {
    /// TLS failed (handshake, or STARTTLS refused): `may` tries again in clear text.
    Tls(String),
    /// Anything else.
    Other(Attempt),
}

/// Opens a connection to `d`, ready for MAIL.
pub(crate) async fn open(
    settings: &RemoteSettings,
    d: &Dest<'_>,
) -> Result<(SmtpClient, EhloResponse), Attempt> {
    let on_connect = d.hop.is_some_and(|h| h.tls_on_connect);
    let (mode, dane) = match d.mode {
        TlsMode::Dane => match dane(settings, d).await {
            DaneStep::Require(records) => (TlsMode::Encrypt, records),
            DaneStep::Opportunistic => (TlsMode::May, Vec::new()),
            DaneStep::Defer(why) => {
                let why = format!("{}: {why}", d.host);
                return Err(Attempt::TryNext(Outcome::deferred("4.7.5", why)));
            }
        },
        other => (other, Vec::new()),
    };
    let first = open_in(settings, d, mode, &dane).await;
    let outcome = match first {
        Err(Failure::Tls(why)) if !on_connect && tls::fall_back_to_clear(mode) => {
            tracing::info!("{why}; trying again in clear text (tls = may)");
            open_in(settings, d, TlsMode::None, &[]).await
        }
        other => other,
    };
    outcome.map_err(|f| match f {
        Failure::Tls(why) => Attempt::TryNext(Outcome::deferred("4.7.5", why)),
        Failure::Other(a) => a,
    })
}

/// The TLSA records of the host of `d` (`_PORT._tcp.NAME`), validated by the DANE resolver.
/// A host named by an MX record that DNSSEC does not prove is not looked up (RFC 7672 §2.2.1:
/// whoever could change the MX record could name a host of their own).
async fn dane(settings: &RemoteSettings, d: &Dest<'_>) -> DaneStep {
    let Some(resolver) = &settings.dane_resolver else {
        return DaneStep::Defer("no DNSSEC-validating resolver for DANE".into());
    };
    if let Some(domain) = d.mx_of {
        match resolver.mx_secure(domain).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(
                    "{}: DANE: the MX records of {domain} are not signed",
                    d.host
                );
                return DaneStep::Opportunistic;
            }
            Err(f) => return DaneStep::Defer(format!("MX lookup for {domain} failed: {f}")),
        }
    }
    let name = format!("_{}._tcp.{}", d.addr.port(), d.name);
    let (lookup, secure) = resolver.tlsa(&name).await;
    let step = tls::dane_step(&lookup.outcome, secure);
    tracing::debug!("{}: DANE: {name}: {step:?}", d.host);
    step
}

/// One try at opening a connection to `d` in `mode` (with `dane` records to match, if any).
async fn open_in(
    settings: &RemoteSettings,
    d: &Dest<'_>,
    mode: TlsMode,
    dane: &[relais_client::Tlsa],
) -> Result<(SmtpClient, EhloResponse), Failure> {
    let host = d.host;
    let deferred = |status: &str, why: String| {
        Failure::Other(Attempt::TryNext(Outcome::deferred(status, why)))
    };
    let mut cfg = settings.client.clone();
    cfg.local_address = settings
        .source
        .iter()
        .copied()
        .find(|a| a.is_ipv4() == d.addr.is_ipv4());
    // With a match list the handshake takes any certificate, and the chain is checked for
    // the listed names once it is done.
    cfg.tls.verify = mode == TlsMode::Verify && d.matches.is_empty();
    cfg.tls.ca_file = settings.tls_ca_file.clone();
    cfg.tls.dane = dane.to_vec();
    let mut c = SmtpClient::new(cfg);
    let on_connect = d.hop.is_some_and(|h| h.tls_on_connect);
    let banner = if on_connect {
        c.connect_tls(d.addr, d.name).await
    } else {
        c.connect(d.addr).await
    };
    let banner = banner.map_err(|e| deferred("4.4.1", format!("connect to {host}: {e}")))?;
    if !banner.is_positive() {
        c.close().await;
        return Err(Failure::Other(Attempt::TryNext(
            from_reply(&banner, host).into_deferred(),
        )));
    }
    let hostname = &settings.hostname;
    let mut ehlo = c
        .ehlo_or_helo(hostname)
        .await
        .map_err(|e| deferred("4.4.2", format!("{host}: {e}")))?;
    if !on_connect {
        match tls::after_ehlo(mode, ehlo.has("STARTTLS")) {
            AfterEhlo::Clear => {}
            AfterEhlo::Defer(why) => {
                let _ = c.quit().await;
                return Err(deferred("4.7.4", format!("{host}: {why} (tls = {mode})")));
            }
            AfterEhlo::StartTls => {
                if let Err(e) = c.starttls(d.name).await {
                    c.close().await;
                    return Err(Failure::Tls(format!("{host}: STARTTLS failed: {e}")));
                }
                ehlo = c
                    .ehlo_or_helo(hostname)
                    .await
                    .map_err(|e| deferred("4.4.2", format!("{host}: {e}")))?;
            }
        }
    }
    if mode == TlsMode::Verify && !d.matches.is_empty() && c.is_tls() {
        let valid = d.matches.iter().any(|m| c.verify_peer_for(m).is_verified());
        if !valid {
            c.close().await;
            return Err(Failure::Tls(format!(
                "{host}: the certificate is valid for none of {} (tls_match)",
                d.matches.join(", ")
            )));
        }
    }
    if let Some(cred) = d.hop.and_then(|h| h.auth.as_ref()) {
        authenticate(&mut c, &ehlo, cred, host)
            .await
            .map_err(|o| Failure::Other(Attempt::TryNext(o)))?;
    }
    Ok((c, ehlo))
}

/// AUTH PLAIN (or LOGIN when PLAIN is not offered), over TLS only. A refusal with 5xx fails
/// the recipients with the server's words, as Postfix says it; anything else defers.
async fn authenticate(
    c: &mut SmtpClient,
    ehlo: &EhloResponse,
    cred: &Credentials,
    host: &str,
) -> Result<(), Outcome> {
    if !c.is_tls() {
        c.close().await;
        return Err(Outcome::deferred(
            "4.7.0",
            format!("{host}: credentials go over TLS only, and this connection is not encrypted"),
        ));
    }
    let offered = ehlo.auth_mechanisms();
    let result = if offered.iter().any(|m| m == "PLAIN") {
        c.auth_plain(&cred.user, &cred.password).await
    } else if offered.iter().any(|m| m == "LOGIN") {
        c.auth_login(&cred.user, &cred.password).await
    } else {
        let _ = c.quit().await;
        return Err(Outcome::deferred(
            "4.7.0",
            format!("{host} offers no AUTH PLAIN or LOGIN (offered: {offered:?})"),
        ));
    };
    let Err(e) = result else {
        return Ok(());
    };
    let outcome = match e.reply() {
        Some(r) if r.code >= 500 => Outcome::failed(
            "5.7.8",
            format!("SASL authentication failed; server {host} said: {r}"),
        ),
        Some(r) => Outcome::deferred(
            "4.7.0",
            format!("SASL authentication failed; server {host} said: {r}"),
        ),
        None => Outcome::deferred("4.7.0", format!("{host}: AUTH: {e}")),
    };
    let _ = c.quit().await;
    Err(outcome)
}
