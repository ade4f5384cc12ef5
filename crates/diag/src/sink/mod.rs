//! `relais sink`: an SMTP server for testing the other end (an application, a mail client,
//! another MTA), as Mailpit, MailHog or inbucket are, with faults on demand. It accepts mail
//! into a capture store ([`store`]) and never delivers it; captured messages are served as
//! JSON ([`http`]) when an HTTP address is given. Fault rules ([`rules`]) say what to do at a
//! stage for matching clients, names, senders or recipients: refuse or drop connections, a
//! slow or missing banner, `421` at any stage, a given reply, greylisting, a failed TLS
//! handshake, a disconnect in the middle of DATA, a rate limit. The dialogue itself is
//! relais-proto's `Session` ([`session`]), as in the real door, so the sink answers as
//! relais does where no rule says otherwise. AUTH PLAIN and LOGIN are offered without TLS and
//! any credentials pass (an `auth` rule refuses them); STARTTLS is offered only when a
//! `starttls` rule is given: the sink has no certificate.

pub mod http;
mod page;
pub mod rules;
mod session;
pub mod store;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relais_proto::session::SessionConfig;
use tokio::net::TcpListener;

pub use rules::{Action, Rule, Stage};
use store::Store;

/// What to run.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// The SMTP addresses to listen on (port 0: any free port).
    pub listen: Vec<SocketAddr>,
    /// The JSON API's address, if any.
    pub http: Option<SocketAddr>,
    /// The fault rules, first match wins.
    pub rules: Vec<Rule>,
    /// The name in the greeting and the EHLO answer.
    pub hostname: String,
    /// How many captured messages are kept (the oldest are dropped).
    pub keep: usize,
    /// The largest message accepted, in octets.
    pub max_size: u64,
}

/// What every connection shares.
struct Shared {
    config: Arc<SessionConfig>,
    rules: Vec<Rule>,
    store: Arc<Store>,
    /// When the sink started: greylisting times are counted from it.
    started: Instant,
    /// Greylisting: (client, sender, recipient) → when first seen.
    greylist: Mutex<HashMap<String, Duration>>,
    /// Recent connections per client address (the `rate` rules).
    recent: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    /// Where a captured message is told.
    log: Box<dyn Fn(&str) + Send + Sync>,
}

impl Shared {
    /// Counts a connection from `ip`; returns how many came before it within `window`.
    fn connected(&self, ip: IpAddr, window: Duration) -> usize {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let times = recent.entry(ip).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            times.pop_front();
        }
        let before = times.len();
        times.push_back(now);
        before
    }
}

/// The sink, bound and ready to run.
pub struct Sink {
    runtime: tokio::runtime::Runtime,
    smtp: Vec<TcpListener>,
    http: Option<TcpListener>,
    shared: Arc<Shared>,
}

impl Sink {
    /// Binds the listeners; `log` is told of each captured message.
    pub fn bind(
        options: SinkOptions,
        log: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<Sink, String> {
        let runtime = relais_client::current_thread_runtime()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let (smtp, http) = runtime.block_on(async {
            let mut smtp = Vec::new();
            for addr in &options.listen {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
                smtp.push(l);
            }
            let http = match options.http {
                Some(addr) => Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|e| format!("cannot listen on {addr}: {e}"))?,
                ),
                None => None,
            };
            Ok::<_, String>((smtp, http))
        })?;
        let mut config = SessionConfig::new(options.hostname);
        config.banner = "relais sink".into();
        config.max_message_size = options.max_size;
        config.auth_mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
        config.auth_without_tls = true;
        config.forbid_unauth_pipelining = false;
        config.starttls = options.rules.iter().any(|r| r.stage == Stage::StartTls);
        let shared = Arc::new(Shared {
            config: Arc::new(config),
            rules: options.rules,
            store: Arc::new(Store::new(options.keep)),
            started: Instant::now(),
            greylist: Mutex::default(),
            recent: Mutex::default(),
            log: Box::new(log),
        });
        Ok(Sink {
            runtime,
            smtp,
            http,
            shared,
        })
    }

    /// The SMTP addresses listened on.
    pub fn smtp_addresses(&self) -> Vec<SocketAddr> {
        self.smtp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The HTTP address, if any.
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `stop` completes (a signal, in the binary).
    pub fn run(self, stop: impl Future<Output = ()>) {
        let Sink {
            runtime,
            smtp,
            http,
            shared,
        } = self;
        runtime.block_on(async move {
            for listener in smtp {
                tokio::spawn(accept(listener, shared.clone()));
            }
            if let Some(listener) = http {
                tokio::spawn(http::serve(listener, shared.store.clone()));
            }
            stop.await;
        });
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((stream, peer)) = listener.accept().await {
        tokio::spawn(session::serve(shared.clone(), stream, peer));
    }
}
