//! From [`SendOptions`] to a [`Plan`]: addresses parsed, the server or MX chosen, the message
//! read or built, the MAIL and RCPT parameters set.

use std::io::Read as _;

use relais_client::ClientConfig;
use relais_dns::Nameserver;
use relais_proto::params::xtext_encode;
use relais_proto::{BodyType, MailParams, Mailbox, RcptParams, ReversePath};

use super::{Credentials, QuitAfter, SendOptions, TlsMode};

/// Where to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// `server`, or the address literal of the first recipient.
    Server { host: String },
    /// A Unix socket (an LMTP server's).
    Unix { path: std::path::PathBuf },
    /// The MX hosts of the first recipient's domain.
    Mx {
        domain: String,
        resolver: Nameserver,
    },
}

/// What the options mean, ready to send.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(super) target: Target,
    pub(super) port: u16,
    pub(super) ehlo: String,
    pub(super) from: ReversePath,
    pub(super) to: Vec<Mailbox>,
    pub(super) message: Vec<u8>,
    pub(super) tls: TlsMode,
    pub(super) auth: Option<Credentials>,
    pub(super) pipeline: bool,
    pub(super) bdat: Option<usize>,
    pub(super) mail_params: MailParams,
    pub(super) rcpt_params: RcptParams,
    pub(super) quit_after: Option<QuitAfter>,
    pub(super) config: ClientConfig,
    /// LMTP rather than SMTP.
    pub(super) lmtp: bool,
}

impl Plan {
    /// Reads the options: the error says which one is wrong (exit code 1).
    pub fn new(a: &SendOptions) -> Result<Plan, String> {
        let to: Vec<Mailbox> =
            a.to.iter()
                .map(|t| t.trim())
                .filter(|t| !t.is_empty())
                .map(|t| parse_mailbox(t).map_err(|e| format!("--to {t:?}: {e}")))
                .collect::<Result<_, _>>()?;
        if to.is_empty() {
            return Err("no recipient: give --to ADDRESS".into());
        }
        let from_text = a.from.clone().unwrap_or_else(default_sender);
        let from = if matches!(from_text.trim(), "" | "<>") {
            ReversePath::Null
        } else {
            ReversePath::Mailbox(
                parse_mailbox(from_text.trim())
                    .map_err(|e| format!("--from {from_text:?}: {e}"))?,
            )
        };
        let default_port = if a.tls == TlsMode::OnConnect { 465 } else { 25 };
        let (target, port) = match &a.server {
            Some(s) if s.starts_with('/') => (Target::Unix { path: s.into() }, 0),
            Some(s) => {
                let (host, port) = split_server(s, default_port)?;
                (Target::Server { host }, port)
            }
            None if to[0].is_address_literal() => {
                let host = to[0].domain.trim_matches(['[', ']']).to_string();
                (Target::Server { host }, default_port)
            }
            None => {
                let domain = to[0].domain.clone();
                let resolver = a.nameserver;
                (Target::Mx { domain, resolver }, default_port)
            }
        };
        let message = match &a.message.data {
            Some(d) => read_data(d)?,
            None => super::message::build(&a.message, &from_text, &to)?,
        };
        let mut mail_params = MailParams::default();
        let needs_utf8 =
            to.iter().any(|m| !m.is_ascii()) || from.mailbox().is_some_and(|m| !m.is_ascii());
        mail_params.smtputf8 = a.smtputf8 || needs_utf8;
        if a.eight_bit_mime {
            mail_params.body = Some(BodyType::EightBitMime);
        }
        mail_params.ret = a.dsn_ret;
        mail_params.envid = a.envid.as_deref().map(xtext_encode);
        let mut rcpt_params = match &a.dsn_notify {
            Some(n) => RcptParams::parse(&format!("NOTIFY={n}"))
                .map_err(|e| format!("--dsn-notify {n:?}: {e:?}"))?,
            None => RcptParams::default(),
        };
        if let Some(Some(orcpt)) = &a.orcpt {
            let m = parse_mailbox(orcpt.trim()).map_err(|e| format!("--orcpt {orcpt:?}: {e}"))?;
            rcpt_params.orcpt = Some(orcpt_of(&m));
        } else if a.orcpt.is_some() {
            // Each recipient's own address: set per RCPT (see `Plan::rcpt_params_for`).
            rcpt_params.orcpt = Some((String::new(), String::new()));
        }
        if a.lmtp {
            if a.bdat.is_some() {
                return Err(
                    "--bdat: not with LMTP here (one reply per recipient after DATA)".into(),
                );
            }
            if matches!(target, Target::Mx { .. }) {
                return Err("LMTP needs --server HOST:PORT or a socket's path".into());
            }
        } else if matches!(target, Target::Unix { .. }) {
            return Err("--server PATH: a Unix socket is for --protocol lmtp".into());
        }
        let mut config = ClientConfig::with_timeout(a.timeout);
        config.tls = a.tls_policy.clone();
        config.local_address = a.local_address;
        Ok(Plan {
            target,
            port: a.port.unwrap_or(port),
            ehlo: a.ehlo.clone().unwrap_or_else(crate::host_name),
            from,
            to,
            message,
            tls: a.tls,
            auth: None,
            pipeline: a.pipeline,
            bdat: a.bdat.map(|size| size.max(1)),
            mail_params,
            rcpt_params,
            quit_after: a.quit_after,
            config,
            lmtp: a.lmtp,
        })
    }

    /// Authenticate with these credentials after EHLO (and TLS).
    pub fn set_auth(&mut self, credentials: Credentials) {
        self.auth = Some(credentials);
    }

    pub(super) fn stops_after(&self, stage: QuitAfter) -> bool {
        self.quit_after == Some(stage)
    }

    /// True when anything of DSN was asked for.
    pub(super) fn wants_dsn(&self) -> bool {
        self.rcpt_params.notify.is_some()
            || self.rcpt_params.orcpt.is_some()
            || self.mail_params.ret.is_some()
            || self.mail_params.envid.is_some()
    }

    /// The server as the report shows it.
    pub(super) fn server(&self) -> String {
        match &self.target {
            Target::Server { host } => format!("{host}:{}", self.port),
            Target::Unix { path } => path.display().to_string(),
            Target::Mx { domain, .. } => format!("MX of {domain}, port {}", self.port),
        }
    }
}

impl Plan {
    /// The RCPT parameters for one recipient: ORCPT set to its own address when `--orcpt`
    /// was given without one.
    pub(super) fn rcpt_params_for(&self, to: &Mailbox) -> RcptParams {
        let mut params = self.rcpt_params.clone();
        if params.orcpt.as_ref().is_some_and(|(t, _)| t.is_empty()) {
            params.orcpt = Some(orcpt_of(to));
        }
        params
    }
}

/// `ORCPT=rfc822;address` (xtext), or `utf-8;address` for a non-ASCII one (RFC 6533).
fn orcpt_of(m: &Mailbox) -> (String, String) {
    let kind = if m.is_ascii() { "rfc822" } else { "utf-8" };
    (kind.to_string(), xtext_encode(&m.to_string()))
}

/// `host`, `host:port`, `[v6]:port`, `v6`.
fn split_server(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let s = s.trim();
    let bad = || format!("--server {s:?}: expected HOST[:PORT]");
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        return Ok((host.to_string(), port));
    }
    match s.matches(':').count() {
        0 if !s.is_empty() => Ok((s.to_string(), default_port)),
        1 => {
            let (host, port) = s.split_once(':').ok_or_else(bad)?;
            if host.is_empty() {
                return Err(bad());
            }
            Ok((host.to_string(), port.parse().map_err(|_| bad())?))
        }
        // A bare IPv6 address.
        _ if s.parse::<std::net::Ipv6Addr>().is_ok() => Ok((s.to_string(), default_port)),
        _ => Err(bad()),
    }
}

/// An address, with or without angle brackets.
fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    let bare = s
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or(s);
    Mailbox::parse(bare).map_err(|e| e.to_string())
}

/// `$USER@host`, as swaks does.
fn default_sender() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "relais".to_string());
    format!("{user}@{}", crate::host_name())
}

/// `@FILE`, `-` or the text itself.
pub(super) fn read_source(what: &str, value: &str) -> Result<Vec<u8>, String> {
    if value == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("{what}: cannot read standard input: {e}"))?;
        Ok(buf)
    } else if let Some(path) = value.strip_prefix('@') {
        std::fs::read(path).map_err(|e| format!("{what}: cannot read {path}: {e}"))
    } else {
        Ok(value.as_bytes().to_vec())
    }
}

/// `data`: the message as is (`\n` in literal text is a line break).
fn read_data(value: &str) -> Result<Vec<u8>, String> {
    let literal = value != "-" && !value.starts_with('@');
    let bytes = read_source("--data", value)?;
    if literal {
        Ok(String::from_utf8_lossy(&bytes)
            .replace("\\n", "\r\n")
            .into_bytes())
    } else {
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use relais_client::TlsPolicy;

    use super::super::MessageSpec;

    use super::*;

    #[test]
    fn server_forms() {
        let ok = [
            ("mx.example.com", ("mx.example.com", 25)),
            ("mx.example.com:587", ("mx.example.com", 587)),
            ("127.0.0.1:2525", ("127.0.0.1", 2525)),
            ("[::1]:26", ("::1", 26)),
            ("[::1]", ("::1", 25)),
            ("::1", ("::1", 25)),
        ];
        for (input, (host, port)) in ok {
            assert_eq!(
                split_server(input, 25).unwrap(),
                (host.to_string(), port),
                "{input}"
            );
        }
        for bad in ["", ":25", "host:port", "[::1", "a:b:c"] {
            assert!(split_server(bad, 25).is_err(), "{bad}");
        }
    }

    fn options(to: &[&str]) -> SendOptions {
        SendOptions {
            server: None,
            port: None,
            nameserver: Nameserver::System,
            from: Some("alice@example.test".into()),
            to: to.iter().map(|t| t.to_string()).collect(),
            message: MessageSpec {
                data: Some("Subject: x\\n\\nhi\\n".into()),
                ..MessageSpec::default()
            },
            ehlo: Some("client.test".into()),
            tls: TlsMode::Off,
            tls_policy: TlsPolicy::default(),
            pipeline: false,
            bdat: None,
            smtputf8: false,
            eight_bit_mime: false,
            dsn_notify: None,
            dsn_ret: None,
            envid: None,
            quit_after: None,
            timeout: Duration::from_secs(5),
            local_address: None,
            lmtp: false,
            orcpt: None,
        }
    }

    #[test]
    fn targets_and_ports() {
        let mx = |d: &str| Target::Mx {
            domain: d.into(),
            resolver: Nameserver::System,
        };
        let server = |h: &str| Target::Server { host: h.into() };
        // (server, port, TLS mode, first recipient, target, port)
        type Row<'a> = (Option<&'a str>, Option<u16>, TlsMode, &'a str, Target, u16);
        let table: &[Row] = &[
            (
                None,
                None,
                TlsMode::Off,
                "bob@example.test",
                mx("example.test"),
                25,
            ),
            (
                None,
                None,
                TlsMode::OnConnect,
                "bob@example.test",
                mx("example.test"),
                465,
            ),
            (
                None,
                Some(2525),
                TlsMode::Off,
                "bob@example.test",
                mx("example.test"),
                2525,
            ),
            (
                None,
                None,
                TlsMode::Off,
                "bob@[192.0.2.1]",
                server("192.0.2.1"),
                25,
            ),
            (
                Some("mx.test:587"),
                None,
                TlsMode::Off,
                "bob@x.test",
                server("mx.test"),
                587,
            ),
            (
                Some("mx.test:587"),
                Some(26),
                TlsMode::Off,
                "bob@x.test",
                server("mx.test"),
                26,
            ),
            (
                Some("mx.test"),
                None,
                TlsMode::OnConnect,
                "bob@x.test",
                server("mx.test"),
                465,
            ),
        ];
        for (srv, port, tls, rcpt, target, want_port) in table {
            let mut o = options(&[rcpt]);
            o.server = srv.map(str::to_string);
            o.port = *port;
            o.tls = *tls;
            let plan = Plan::new(&o).unwrap();
            assert_eq!(
                (&plan.target, plan.port),
                (target, *want_port),
                "{srv:?} {rcpt}"
            );
        }
    }

    #[test]
    fn options_that_make_no_sense() {
        // (recipients, sender, words in the error)
        let table: &[(&[&str], &str, &str)] = &[
            (&[], "a@b.test", "no recipient"),
            (&[" ", ""], "a@b.test", "no recipient"),
            (&["not an address"], "a@b.test", "--to \"not an address\""),
            (&["bob@x.test"], "bad sender", "--from \"bad sender\""),
        ];
        for (to, from, words) in table {
            let mut o = options(to);
            o.from = Some(from.to_string());
            let e = Plan::new(&o).unwrap_err();
            assert!(e.contains(words), "{to:?} {from}: {e}");
        }
        let mut o = options(&["bob@x.test"]);
        o.dsn_notify = Some("SOMETIMES".into());
        assert!(Plan::new(&o).unwrap_err().starts_with("--dsn-notify"));
    }

    #[test]
    fn envelope_parameters() {
        let mut o = options(&["<bob@x.test>"]);
        o.from = Some("<>".into());
        o.envid = Some("id 1".into());
        o.dsn_notify = Some("SUCCESS,FAILURE".into());
        o.bdat = Some(0);
        let plan = Plan::new(&o).unwrap();
        assert_eq!(plan.from, ReversePath::Null);
        assert_eq!(plan.mail_params.envid.as_deref(), Some("id+201"));
        assert!(plan.wants_dsn());
        assert_eq!(plan.bdat, Some(1));
        assert_eq!(plan.message, b"Subject: x\r\n\r\nhi\r\n");
        assert!(!plan.mail_params.smtputf8);
        let plan = Plan::new(&options(&["jörg@x.test"])).unwrap();
        assert!(
            plan.mail_params.smtputf8,
            "a non-ASCII address needs SMTPUTF8"
        );
        assert_eq!(plan.server(), "MX of x.test, port 25");
    }
}
