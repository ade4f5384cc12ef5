//! `relais-metrics`: what the server counts, for Prometheus.
//!
//! Floor 0 of the flow of a message, beside the protocol: it depends on nothing, and every
//! room updates it as mail passes (the SMTP door counts connections, replies and accepted
//! messages; the queue counts commits; the queue manager counts deliveries and the queue's
//! size). Each metric is a fixed set of atomics in one static [`METRICS`], so an update costs
//! an atomic add and no lock; [`Metrics::render`] writes the Prometheus text format
//! (`relais_…_total` counters, base units, labels from small fixed sets only: never an address
//! or a queue id).

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Zero.
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }
    /// One more.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// `n` more.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Zero.
    pub const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }
    /// One more.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// One less.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// Now `v`.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// The value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the latency histograms: 100 µs to 100 s.
pub const BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 100.0,
];

/// How long things took, in [`BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative; summed when rendered).
    counts: [AtomicU64; BUCKETS.len()],
    /// Observations above the last bound.
    over: AtomicU64,
    /// Sum of the observations, in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Empty.
    pub const fn new() -> Histogram {
        Histogram {
            counts: [const { AtomicU64::new(0) }; BUCKETS.len()],
            over: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// One observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        match BUCKETS.iter().position(|&b| secs <= b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.over.load(Ordering::Relaxed)
    }
}

/// Why a connection was refused before its greeting.
#[derive(Debug, Clone, Copy)]
pub enum Refused {
    /// `limits.max_connections`.
    TooMany,
    /// `limits.max_connections_per_ip`.
    PerAddress,
    /// `limits.connection_rate_per_ip`.
    Rate,
}

/// Where a copy was delivered.
#[derive(Debug, Clone, Copy)]
pub enum Agent {
    /// A Maildir.
    Maildir,
    /// An LMTP server.
    Lmtp,
    /// An alias command.
    Pipe,
    /// An alias file.
    File,
    /// Another SMTP server.
    Smtp,
    /// Nowhere: decided without delivering (unknown user, loop, `:fail:`).
    None,
}

const AGENTS: [&str; 6] = ["maildir", "lmtp", "pipe", "file", "smtp", "none"];
const OUTCOMES: [&str; 3] = ["sent", "deferred", "bounced"];
const CLASSES: [&str; 3] = ["2", "4", "5"];
const VERSIONS: [&str; 2] = ["1.2", "1.3"];
const REFUSALS: [&str; 3] = ["too_many", "per_address", "rate"];
const STATES: [&str; 3] = ["active", "deferred", "held"];
const SPF_RESULTS: [&str; 7] = [
    "pass",
    "fail",
    "softfail",
    "neutral",
    "none",
    "permerror",
    "temperror",
];
const VERDICTS: [&str; 3] = ["accept", "quarantine", "reject"];
const SCREENS: [&str; 4] = ["helo", "client", "rhsbl", "rate"];

/// Everything relais counts.
#[derive(Debug)]
pub struct Metrics {
    /// Connections accepted (greeted or refused).
    pub connections: Counter,
    /// Connections open now.
    pub connections_open: Gauge,
    /// Connections refused before the greeting, by [`Refused`].
    refused: [Counter; 3],
    /// Commands read (counted when their session ends), accepted and refused.
    commands: [Counter; 2],
    /// Replies sent, by class (2, 4, 5).
    replies: [Counter; 3],
    /// Messages accepted (250 after the end of data).
    pub messages_accepted: Counter,
    /// Commands refused (a 4xx or 5xx reply to MAIL, RCPT, DATA…).
    pub rejects: Counter,
    /// Octets of message content received.
    pub bytes_received: Counter,
    /// From the end of data to the message durable in the spool.
    pub commit_seconds: Histogram,
    /// Recipient checks at RCPT, accepted and refused.
    recipient_checks: [Counter; 2],
    /// SPF checks at MAIL FROM, by result.
    spf_checks: [Counter; 7],
    /// Content checks (DKIM, ARC, DMARC) at the end of data, by verdict.
    content_checks: [Counter; 3],
    /// Senders refused at MAIL FROM by the HELO, client (DNS lists, reverse DNS) and RHSBL
    /// checks, and senders or recipients refused by a rate limit.
    screen_refusals: [Counter; 4],
    /// TLS handshakes completed, by version.
    tls_handshakes: [Counter; 2],
    /// Delivery attempts, by agent and outcome.
    deliveries: [[Counter; 3]; 6],
    /// From arrival to a final outcome (delivered or bounced).
    pub delivery_seconds: Histogram,
    /// Messages in the queue, by state (active: an attempt under way; deferred: waiting for
    /// their next attempt; held).
    queue: [Gauge; 3],
    /// Age of the oldest message in the queue, in seconds (0 when it is empty).
    pub queue_oldest_seconds: Gauge,
    /// The certificates served (their files) and when each expires, Unix seconds.
    certificates: Mutex<Vec<(String, i64)>>,
}

/// The server's metrics.
pub static METRICS: Metrics = Metrics::new();

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All zero.
    pub const fn new() -> Metrics {
        Metrics {
            connections: Counter::new(),
            connections_open: Gauge::new(),
            refused: [const { Counter::new() }; 3],
            commands: [const { Counter::new() }; 2],
            replies: [const { Counter::new() }; 3],
            messages_accepted: Counter::new(),
            rejects: Counter::new(),
            bytes_received: Counter::new(),
            commit_seconds: Histogram::new(),
            recipient_checks: [const { Counter::new() }; 2],
            spf_checks: [const { Counter::new() }; 7],
            content_checks: [const { Counter::new() }; 3],
            screen_refusals: [const { Counter::new() }; 4],
            tls_handshakes: [const { Counter::new() }; 2],
            deliveries: [const { [const { Counter::new() }; 3] }; 6],
            delivery_seconds: Histogram::new(),
            queue: [const { Gauge::new() }; 3],
            queue_oldest_seconds: Gauge::new(),
            certificates: Mutex::new(Vec::new()),
        }
    }

    /// A connection refused before its greeting.
    pub fn refused(&self, why: Refused) {
        self.refused[why as usize].inc();
    }

    /// The certificates served now (their files) and when each expires (Unix seconds): set at
    /// start and at each reload.
    pub fn certificates(&self, list: Vec<(String, i64)>) {
        *self.certificates.lock().unwrap_or_else(|e| e.into_inner()) = list;
    }

    /// A session ended after `accepted` of its `total` commands were accepted.
    pub fn commands(&self, accepted: u64, total: u64) {
        self.commands[0].add(accepted);
        self.commands[1].add(total.saturating_sub(accepted));
    }

    /// A reply with this code was sent.
    pub fn reply(&self, code: u16) {
        match code / 100 {
            2 | 3 => self.replies[0].inc(),
            4 => self.replies[1].inc(),
            5 => self.replies[2].inc(),
            _ => {}
        }
    }

    /// A recipient check at RCPT.
    pub fn recipient_check(&self, accepted: bool) {
        self.recipient_checks[usize::from(!accepted)].inc();
    }

    /// An SPF check at MAIL FROM with this result (`pass`, `fail`, …).
    pub fn spf_check(&self, result: &str) {
        if let Some(i) = SPF_RESULTS.iter().position(|&w| w == result) {
            self.spf_checks[i].inc();
        }
    }

    /// The content checks of a message ended with this verdict: `accept`, `quarantine` or
    /// `reject`.
    pub fn content_check(&self, verdict: &str) {
        if let Some(i) = VERDICTS.iter().position(|&w| w == verdict) {
            self.content_checks[i].inc();
        }
    }

    /// A sender or recipient refused by this check: `helo`, `client`, `rhsbl` or `rate`.
    pub fn screen_refused(&self, check: &str) {
        if let Some(i) = SCREENS.iter().position(|&w| w == check) {
            self.screen_refusals[i].inc();
        }
    }

    /// A TLS handshake completed with this version (`TLSv1.3`).
    pub fn tls_handshake(&self, version: &str) {
        match version {
            "TLSv1.2" => self.tls_handshakes[0].inc(),
            "TLSv1.3" => self.tls_handshakes[1].inc(),
            _ => {}
        }
    }

    /// A delivery attempt for one recipient ended: `outcome` is `sent`, `deferred` or
    /// `bounced`.
    pub fn delivery(&self, agent: Agent, outcome: &str) {
        if let Some(o) = OUTCOMES.iter().position(|&w| w == outcome) {
            self.deliveries[agent as usize][o].inc();
        }
    }

    /// The queue now: messages with an attempt under way, waiting, held.
    pub fn queue_size(&self, active: usize, deferred: usize, held: usize) {
        for (g, n) in self.queue.iter().zip([active, deferred, held]) {
            g.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let o = &mut out;
        counter(
            o,
            "relais_connections_total",
            "SMTP connections accepted.",
            &[("", self.connections.get())],
        );
        gauge(
            o,
            "relais_connections_open",
            "SMTP connections open now.",
            &[("", self.connections_open.get())],
        );
        let refused: Vec<(String, u64)> = REFUSALS
            .iter()
            .zip(&self.refused)
            .map(|(r, c)| (format!("reason=\"{r}\""), c.get()))
            .collect();
        counter(
            o,
            "relais_connections_refused_total",
            "Connections refused before the greeting, by reason.",
            &refused,
        );
        let commands = [
            ("result=\"accepted\"".to_string(), self.commands[0].get()),
            ("result=\"refused\"".to_string(), self.commands[1].get()),
        ];
        counter(
            o,
            "relais_commands_total",
            "SMTP commands read in sessions that ended, by result.",
            &commands,
        );
        let replies: Vec<(String, u64)> = CLASSES
            .iter()
            .zip(&self.replies)
            .map(|(c, n)| (format!("class=\"{c}xx\""), n.get()))
            .collect();
        counter(
            o,
            "relais_replies_total",
            "SMTP replies sent, by class (3xx counted with 2xx).",
            &replies,
        );
        counter(
            o,
            "relais_messages_accepted_total",
            "Messages accepted and durable in the spool.",
            &[("", self.messages_accepted.get())],
        );
        counter(
            o,
            "relais_rejects_total",
            "Commands refused with a 4xx or 5xx reply.",
            &[("", self.rejects.get())],
        );
        counter(
            o,
            "relais_received_bytes_total",
            "Octets of message content received.",
            &[("", self.bytes_received.get())],
        );
        histogram(
            o,
            "relais_spool_commit_seconds",
            "From the end of data to the message durable in the spool.",
            &self.commit_seconds,
        );
        let mut checks = vec![
            (
                "check=\"recipient\",result=\"accept\"".to_string(),
                self.recipient_checks[0].get(),
            ),
            (
                "check=\"recipient\",result=\"reject\"".to_string(),
                self.recipient_checks[1].get(),
            ),
        ];
        for (r, n) in SPF_RESULTS.iter().zip(&self.spf_checks) {
            checks.push((format!("check=\"spf\",result=\"{r}\""), n.get()));
        }
        for (r, n) in VERDICTS.iter().zip(&self.content_checks) {
            checks.push((format!("check=\"content\",result=\"{r}\""), n.get()));
        }
        for (c, n) in SCREENS.iter().zip(&self.screen_refusals) {
            checks.push((format!("check=\"{c}\",result=\"reject\""), n.get()));
        }
        counter(
            o,
            "relais_policy_decisions_total",
            "Policy decisions, by check and result.",
            &checks,
        );
        let tls: Vec<(String, u64)> = VERSIONS
            .iter()
            .zip(&self.tls_handshakes)
            .map(|(v, n)| (format!("version=\"{v}\""), n.get()))
            .collect();
        counter(
            o,
            "relais_tls_handshakes_total",
            "TLS handshakes completed, by protocol version.",
            &tls,
        );
        self.render_delivery(o);
        out
    }

    /// The queue manager's part of [`Metrics::render`].
    fn render_delivery(&self, o: &mut String) {
        let mut deliveries = Vec::new();
        for (a, row) in AGENTS.iter().zip(&self.deliveries) {
            for (w, n) in OUTCOMES.iter().zip(row) {
                deliveries.push((format!("agent=\"{a}\",outcome=\"{w}\""), n.get()));
            }
        }
        counter(
            o,
            "relais_deliveries_total",
            "Delivery attempts per recipient, by agent and outcome.",
            &deliveries,
        );
        histogram(
            o,
            "relais_delivery_seconds",
            "From arrival to a final outcome, per recipient.",
            &self.delivery_seconds,
        );
        let queue: Vec<(String, i64)> = STATES
            .iter()
            .zip(&self.queue)
            .map(|(s, g)| (format!("state=\"{s}\""), g.get()))
            .collect();
        gauge(
            o,
            "relais_queue_messages",
            "Messages in the queue, by state.",
            &queue,
        );
        gauge(
            o,
            "relais_queue_oldest_age_seconds",
            "Age of the oldest message in the queue.",
            &[("", self.queue_oldest_seconds.get())],
        );
        let certificates: Vec<(String, i64)> = self
            .certificates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(file, t)| (format!("file=\"{}\"", label_value(file)), *t))
            .collect();
        gauge(
            o,
            "relais_tls_certificate_expiry_timestamp_seconds",
            "When each certificate served expires (Unix time).",
            &certificates,
        );
    }
}

/// A label value with its backslashes, quotes and line ends escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(o: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One family: its header, then a sample per label set (`""`: no labels).
fn family<L: AsRef<str>, V: std::fmt::Display>(
    o: &mut String,
    name: &str,
    help: &str,
    kind: &str,
    samples: &[(L, V)],
) {
    header(o, name, help, kind);
    for (labels, v) in samples {
        let _ = match labels.as_ref() {
            "" => writeln!(o, "{name} {v}"),
            labels => writeln!(o, "{name}{{{labels}}} {v}"),
        };
    }
}

fn counter<L: AsRef<str>>(o: &mut String, name: &str, help: &str, samples: &[(L, u64)]) {
    family(o, name, help, "counter", samples);
}

fn gauge<L: AsRef<str>>(o: &mut String, name: &str, help: &str, samples: &[(L, i64)]) {
    family(o, name, help, "gauge", samples);
}

fn histogram(o: &mut String, name: &str, help: &str, h: &Histogram) {
    header(o, name, help, "histogram");
    let mut cumulative = 0;
    for (bound, c) in BUCKETS.iter().zip(&h.counts) {
        cumulative += c.load(Ordering::Relaxed);
        let _ = writeln!(o, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let total = cumulative + h.over.load(Ordering::Relaxed);
    let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(o, "{name}_sum {sum}\n{name}_count {total}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_as_prometheus_text() {
        let m = Metrics::new();
        m.connections.inc();
        m.reply(250);
        m.reply(354);
        m.reply(550);
        m.refused(Refused::Rate);
        m.delivery(Agent::Maildir, "sent");
        m.delivery(Agent::Smtp, "deferred");
        m.delivery(Agent::Smtp, "nonsense");
        m.commit_seconds.observe(Duration::from_micros(300));
        m.commit_seconds.observe(Duration::from_secs(1000));
        m.queue_size(1, 2, 3);
        m.certificates(vec![("/etc/relais/\"cert\".pem".into(), 1_800_000_000)]);
        let text = m.render();
        for line in [
            "relais_connections_total 1",
            "relais_replies_total{class=\"2xx\"} 2",
            "relais_replies_total{class=\"5xx\"} 1",
            "relais_connections_refused_total{reason=\"rate\"} 1",
            "relais_deliveries_total{agent=\"maildir\",outcome=\"sent\"} 1",
            "relais_deliveries_total{agent=\"smtp\",outcome=\"deferred\"} 1",
            "relais_spool_commit_seconds_bucket{le=\"0.0001\"} 0",
            "relais_spool_commit_seconds_bucket{le=\"0.0005\"} 1",
            "relais_spool_commit_seconds_bucket{le=\"100\"} 1",
            "relais_spool_commit_seconds_bucket{le=\"+Inf\"} 2",
            "relais_spool_commit_seconds_count 2",
            "relais_queue_messages{state=\"held\"} 3",
            "relais_tls_certificate_expiry_timestamp_seconds{file=\"/etc/relais/\\\"cert\\\".pem\"} 1800000000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert_eq!(m.commit_seconds.count(), 2);
        // Every sample line belongs to a declared family.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let family = l.split(['{', ' ']).next().unwrap();
            let base = family
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {base} ")), "{l}");
        }
    }
}
