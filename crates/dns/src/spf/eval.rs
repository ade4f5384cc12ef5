//! Evaluating SPF for an address: RFC 7208's `check_host()`, traced.
//!
//! One evaluation serves both the server (at MAIL FROM) and `relais dns spf`: it gives the
//! result, the `exp=` explanation of a `fail`, the term that decided, and a trace of every term
//! looked at through `include:` and `redirect=`, so a person can see *why*.
//!
//! The RFC rules it applies, section by section:
//! - 4.3: a malformed domain (empty or over-long label, one label only, an address literal)
//!   is `none`, with no query sent;
//! - 4.4, 4.5: the record is the one TXT record that starts with `v=spf1`; several are a
//!   `permerror`; a DNS failure is a `temperror`; the grammar (the `parse` module) is checked
//!   on the whole record first;
//! - 4.6.4: at most 10 DNS-querying terms (`include`, `a`, `mx`, `ptr`, `exists`,
//!   `redirect`) and 2 void lookups per evaluation, at most 10 MX names per `mx` (more is a
//!   `permerror`) and 10 PTR names per `ptr` or `%{p}` (the rest ignored); the evaluation
//!   stops after [`MAX_EVALUATION_TIME`] with a `temperror`;
//! - 5: IPv4-mapped IPv6 clients are IPv4; `ip4`/`a`/`mx` compare IPv4 with IPv4 and IPv6
//!   with IPv6 only; `exists` always asks for A records; `ptr` counts only names that resolve
//!   back to the address, and a failed PTR query is no match;
//! - 6.1: `redirect=` is used only when no mechanism matched (so never with `all`), and a
//!   target without a record is a `permerror`;
//! - 6.2: the explanation comes from the `exp=` of the record that gave the `fail` (never from
//!   an included record, never from a record that redirected); any problem with it (DNS, no
//!   or several TXT records, bad syntax, non-ASCII text) leaves no explanation;
//! - 7: macros, expanded by the `macros` module; a name they make that is too long loses
//!   labels on the left, one they make invalid matches nothing.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::time::{Duration, Instant};

use relais_proto::date::millis;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::macros::{Values, expand, expand_domain};
use super::parse::{self, Context, Directive, DualCidr, MacroString, Mechanism, Policy};
use super::{MAX_DNS_MECHANISMS, MAX_VOID_LOOKUPS, RecordStatus};
use crate::lookup::normalize;
use crate::reverse::MAX_PTR_NAMES;
use crate::{Outcome, Resolver};

/// At most this many MX hosts for one `mx` mechanism (RFC 7208 4.6.4): more is a `permerror`.
const MAX_MX_NAMES: usize = 10;

/// RFC 7208 4.6.4: an evaluation that takes longer ends with `temperror` (the RFC asks for at
/// least 20 seconds).
pub const MAX_EVALUATION_TIME: Duration = Duration::from_secs(20);

/// Which identity is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// The MAIL FROM domain (RFC 7208 section 2.4).
    MailFrom,
    /// The HELO/EHLO name (RFC 7208 section 2.3).
    Helo,
}

/// What to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfQuery {
    /// The connecting client's address.
    pub ip: IpAddr,
    /// Which identity's domain is checked.
    pub identity: Identity,
    /// The MAIL FROM address, used by macros (`%{s}`, `%{l}`); `postmaster@domain` when the
    /// reverse path is empty or only a domain was given.
    pub sender: String,
    /// The HELO name (`%{h}`).
    pub helo: String,
    /// The name of the host doing the check (`%{r}`, in explanations only).
    pub receiver: String,
}

impl SpfQuery {
    /// Checks the MAIL FROM identity. `sender` is an address (`user@domain`) or a bare domain;
    /// an empty `helo` is replaced by the sender's domain. An empty sender (the null reverse
    /// path `<>`) is `postmaster@` the HELO name (RFC 7208 section 2.4).
    pub fn mail_from(ip: IpAddr, sender: &str, helo: &str) -> SpfQuery {
        let sender = sender.trim().trim_start_matches('<').trim_end_matches('>');
        let sender = if sender.is_empty() {
            helo.trim()
        } else {
            sender
        };
        let sender = match sender.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() => format!("{local}@{}", normalize(domain)),
            Some((_, domain)) => format!("postmaster@{}", normalize(domain)),
            None => format!("postmaster@{}", normalize(sender)),
        };
        let domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        let helo = if helo.trim().is_empty() {
            domain.to_string()
        } else {
            normalize(helo)
        };
        SpfQuery {
            ip,
            identity: Identity::MailFrom,
            sender,
            helo,
            receiver: "localhost".to_string(),
        }
    }

    /// Checks the HELO identity.
    pub fn helo(ip: IpAddr, helo: &str) -> SpfQuery {
        let helo = normalize(helo);
        SpfQuery {
            ip,
            identity: Identity::Helo,
            sender: format!("postmaster@{helo}"),
            helo,
            receiver: "localhost".to_string(),
        }
    }

    /// The domain whose record is evaluated.
    pub fn domain(&self) -> &str {
        match self.identity {
            Identity::MailFrom => self.sender.rsplit_once('@').map_or("", |(_, d)| d),
            Identity::Helo => &self.helo,
        }
    }
}

/// An SPF result (RFC 7208 section 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfResult {
    /// The address is authorized.
    Pass,
    /// The address is explicitly not authorized (`-`).
    Fail,
    /// Probably not authorized (`~`): accept, but mark.
    SoftFail,
    /// The domain says nothing either way (`?`, or nothing matched).
    Neutral,
    /// No SPF record, or no valid domain to check.
    None,
    /// The record is broken (syntax, several records, too many lookups).
    PermError,
    /// A DNS failure: try again later.
    TempError,
}

impl SpfResult {
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `permerror`, `temperror`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::Neutral => "neutral",
            SpfResult::None => "none",
            SpfResult::PermError => "permerror",
            SpfResult::TempError => "temperror",
        }
    }
}

/// The term that decided the result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpfMatch {
    /// The domain whose record holds the term.
    pub domain: String,
    /// The term as written, e.g. `ip4:192.0.2.0/24` or `-all`.
    pub term: String,
    /// How evaluation got to that record: `example.org: include:_spf.example.org`, ...
    /// Empty when the term is in the checked domain's own record.
    pub via: Vec<String>,
}

/// One step of the traced evaluation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpfStep {
    /// 0 for the checked domain, +1 inside each `include:` or `redirect=`.
    pub depth: usize,
    /// The domain whose record is being evaluated.
    pub domain: String,
    /// The term (or `v=spf1 ...` for the record itself, `(default)` when nothing matched).
    pub term: String,
    /// What happened: `match: pass`, `no match`, `permerror: ...`, ...
    pub outcome: String,
}

/// The evaluation of SPF for one address.
#[derive(Debug, Clone, PartialEq)]
pub struct SpfCheck {
    /// What was asked.
    pub query: SpfQuery,
    /// The result.
    pub result: SpfResult,
    /// The domain's explanation for a `fail` (its `exp=` text), if any.
    pub explanation: Option<String>,
    /// The term that decided (a mechanism that matched), if any.
    pub matched: Option<SpfMatch>,
    /// Every term looked at, in order.
    pub trace: Vec<SpfStep>,
    /// Terms that queried the DNS (limit [`MAX_DNS_MECHANISMS`]).
    pub dns_lookups: u32,
    /// Of those, how many found nothing (limit [`MAX_VOID_LOOKUPS`]).
    pub void_lookups: u32,
    /// The whole evaluation, explanation included.
    pub elapsed: Duration,
}

impl Resolver {
    /// Evaluates SPF for `query`: one `check_host()`, then the explanation of a `fail`.
    pub async fn spf_check(&self, query: &SpfQuery) -> SpfCheck {
        self.spf_check_within(query, MAX_EVALUATION_TIME).await
    }

    /// [`Resolver::spf_check`] with another time limit for the whole evaluation.
    pub async fn spf_check_within(&self, query: &SpfQuery, limit: Duration) -> SpfCheck {
        let started = Instant::now();
        let domain = query.domain().to_string();
        let mut evaluator = Evaluator {
            resolver: self,
            query,
            ip: query.ip.to_canonical(),
            dns_lookups: 0,
            void_lookups: 0,
            steps: Vec::new(),
            validated: None,
        };
        let run = async {
            let evaluation = evaluator.check_host(domain.clone(), 0, Vec::new()).await;
            let explanation = match &evaluation.exp {
                Some(exp) if evaluation.result == SpfResult::Fail => evaluator.explain(exp).await,
                _ => None,
            };
            (evaluation.result, evaluation.matched, explanation)
        };
        let finished = tokio::time::timeout(limit, run).await;
        let (result, matched, explanation) = match finished {
            Ok(done) => done,
            Err(_) => {
                let outcome = format!(
                    "temperror: the evaluation took more than {} ms (RFC 7208 4.6.4)",
                    limit.as_millis()
                );
                evaluator.step(0, &domain, "(time limit)", outcome);
                (SpfResult::TempError, None, None)
            }
        };
        SpfCheck {
            query: query.clone(),
            result,
            explanation,
            matched,
            trace: evaluator.steps,
            dns_lookups: evaluator.dns_lookups,
            void_lookups: evaluator.void_lookups,
            elapsed: started.elapsed(),
        }
    }
}

/// What one `check_host()` gave.
struct Evaluation {
    result: SpfResult,
    matched: Option<SpfMatch>,
    /// The `exp=` of the record that decided: used if the final result is `fail`.
    exp: Option<Exp>,
}

impl Evaluation {
    /// A result no term decided (an error, `none`, the default `neutral`).
    fn ended(result: SpfResult) -> Evaluation {
        Evaluation {
            result,
            matched: None,
            exp: None,
        }
    }
}

/// An `exp=` modifier with the record it is in.
struct Exp {
    /// The domain of that record (`%{d}`).
    domain: String,
    /// The modifier as written.
    term: String,
    /// Its domain-spec.
    spec: MacroString,
    /// Where the record is in the trace.
    depth: usize,
}

/// The state of one evaluation.
struct Evaluator<'a> {
    resolver: &'a Resolver,
    query: &'a SpfQuery,
    /// The client address, an IPv4-mapped IPv6 address made IPv4 (RFC 7208 5, 9th paragraph).
    ip: IpAddr,
    /// DNS-querying terms evaluated so far, over the whole evaluation.
    dns_lookups: u32,
    /// Those whose query found nothing.
    void_lookups: u32,
    /// What was recorded.
    steps: Vec<SpfStep>,
    /// The PTR names of the address that resolve back to it, once looked up for `%{p}`.
    validated: Option<Vec<String>>,
}

/// Where in the evaluation a term stands: for its trace steps and the matched term.
struct Term<'t> {
    /// The domain whose record has the term.
    domain: &'t str,
    /// The term as written.
    term: &'t str,
    /// How deep in includes and redirects.
    depth: usize,
    /// The terms that led here.
    via: &'t [String],
}

/// How a mechanism's test went.
enum Test {
    /// It matched; for an `include`, the term that passed inside.
    Match(Option<SpfMatch>),
    NoMatch(String),
    /// Ends the evaluation with this result.
    Stop(SpfResult, String),
}

impl<'a> Evaluator<'a> {
    fn step(&mut self, depth: usize, domain: &str, term: &str, outcome: impl Into<String>) {
        self.steps.push(SpfStep {
            depth,
            domain: domain.to_string(),
            term: term.to_string(),
            outcome: outcome.into(),
        });
    }

    /// Counts one DNS-querying term; `false` once over the limit.
    fn count_lookup(&mut self) -> bool {
        self.dns_lookups += 1;
        self.dns_lookups <= MAX_DNS_MECHANISMS
    }

    /// A lookup that found nothing: no match, or a `permerror` once over the limit.
    fn void(&mut self, detail: String) -> Test {
        self.void_lookups += 1;
        if self.void_lookups > MAX_VOID_LOOKUPS {
            return Test::Stop(
                SpfResult::PermError,
                format!("{detail}: more than {MAX_VOID_LOOKUPS} void lookups"),
            );
        }
        Test::NoMatch(detail)
    }

    fn check_host<'b>(
        &'b mut self,
        domain: String,
        depth: usize,
        via: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Evaluation> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            let policy = match self.record(&domain, depth).await {
                Ok(policy) => policy,
                Err(result) => return Evaluation::ended(result),
            };
            for directive in &policy.directives {
                let at = Term {
                    domain: &domain,
                    term: &directive.text,
                    depth,
                    via: &via,
                };
                let qualifier = directive.qualifier;
                match self.directive(directive, &at).await {
                    Test::Match(inner) => {
                        let outcome = format!("match: {}", qualifier.as_str());
                        self.step(depth, &domain, &directive.text, outcome);
                        // For an include, the term that passed inside is the one worth showing.
                        let matched = inner.unwrap_or_else(|| SpfMatch {
                            domain: domain.clone(),
                            term: directive.text.clone(),
                            via: via.clone(),
                        });
                        return Evaluation {
                            result: qualifier,
                            matched: Some(matched),
                            exp: exp_of(&policy, &domain, depth),
                        };
                    }
                    Test::NoMatch(detail) => {
                        let outcome = if detail.is_empty() {
                            "no match".to_string()
                        } else {
                            format!("no match ({detail})")
                        };
                        self.step(depth, &domain, &directive.text, outcome);
                    }
                    Test::Stop(result, detail) => {
                        let outcome = format!("{}: {detail}", result.as_str());
                        self.step(depth, &domain, &directive.text, outcome);
                        return Evaluation::ended(result);
                    }
                }
            }
            // An `all` always matches, so a record with one never gets here (RFC 7208 6.1:
            // redirect= is then ignored).
            if let Some((term, spec)) = &policy.redirect {
                return self.redirect(term, spec, &domain, depth, via).await;
            }
            self.step(depth, &domain, "(default)", "nothing matched: neutral");
            Evaluation::ended(SpfResult::Neutral)
        })
    }

    /// The SPF record of `domain`, parsed; or the result when there is none or it is broken.
    async fn record(&mut self, domain: &str, depth: usize) -> Result<Policy, SpfResult> {
        if !valid_domain(domain) {
            self.step(depth, domain, "(domain)", "none: not a valid domain name");
            return Err(SpfResult::None);
        }
        let mut record = self.resolver.spf_record(domain).await;
        let (result, outcome) = match (&record.status, record.policy.take()) {
            (RecordStatus::Found, Some(policy)) => {
                let text = record.text().unwrap_or_default();
                self.step(depth, domain, text, "record");
                return Ok(policy);
            }
            (RecordStatus::Found, None) => (SpfResult::PermError, "no record".to_string()),
            (RecordStatus::NotFound, _) => (SpfResult::None, "no SPF record".to_string()),
            (RecordStatus::NoSuchDomain, _) => {
                (SpfResult::None, "the domain does not exist".to_string())
            }
            (RecordStatus::Multiple, _) => (
                SpfResult::PermError,
                format!(
                    "{} SPF records (RFC 7208 4.5 allows one)",
                    record.candidates.len()
                ),
            ),
            (RecordStatus::Invalid(why), _) => {
                let term = record.text().unwrap_or("(record)").to_string();
                self.step(depth, domain, &term, format!("permerror: {why}"));
                return Err(SpfResult::PermError);
            }
            (RecordStatus::Failed(failure), _) => {
                (SpfResult::TempError, format!("TXT lookup: {failure}"))
            }
        };
        let outcome = format!("{}: {outcome}", result.as_str());
        self.step(depth, domain, "(record)", outcome);
        Err(result)
    }

    /// Tests one mechanism.
    async fn directive(&mut self, directive: &Directive, at: &Term<'_>) -> Test {
        if directive.mechanism.queries_dns() && !self.count_lookup() {
            return Test::Stop(
                SpfResult::PermError,
                format!("more than {MAX_DNS_MECHANISMS} DNS lookups"),
            );
        }
        let domain = at.domain;
        match &directive.mechanism {
            Mechanism::All => Test::Match(None),
            Mechanism::Ip4(net, len) => bool_test(in_v4(self.ip, *net, *len)),
            Mechanism::Ip6(net, len) => bool_test(in_v6(self.ip, *net, *len)),
            Mechanism::Include(spec) => {
                let target = self.expand_name(spec, domain).await;
                self.include(target, at).await
            }
            Mechanism::A(spec, cidr) => {
                let target = self.target(spec.as_ref(), domain).await;
                self.test_a(&target, *cidr).await
            }
            Mechanism::Mx(spec, cidr) => {
                let target = self.target(spec.as_ref(), domain).await;
                self.test_mx(&target, *cidr).await
            }
            Mechanism::Ptr(spec) => {
                let target = self.target(spec.as_ref(), domain).await;
                self.test_ptr(&target).await
            }
            Mechanism::Exists(spec) => {
                let target = self.expand_name(spec, domain).await;
                self.test_exists(&target).await
            }
        }
    }

    /// A mechanism's target: its domain-spec expanded, or the current domain.
    async fn target(&mut self, spec: Option<&MacroString>, domain: &str) -> String {
        match spec {
            Some(spec) => self.expand_name(spec, domain).await,
            None => domain.to_string(),
        }
    }

    /// A domain-spec expanded into the name to query.
    async fn expand_name(&mut self, spec: &MacroString, domain: &str) -> String {
        let validated = self.p(spec, domain).await;
        expand_domain(spec, &self.values(domain, &validated))
    }

    /// `%{p}` for `spec`, when it uses it (the lookups are made once per evaluation).
    async fn p(&mut self, spec: &MacroString, domain: &str) -> String {
        if !spec.uses_p() {
            return String::new();
        }
        if self.validated.is_none() {
            let ptr = self.resolver.ptr(self.ip).await;
            let mut validated = Vec::new();
            for name in ptr.records().iter().take(MAX_PTR_NAMES) {
                if let Outcome::Found(ips) = self.addresses_of(name).await
                    && ips.contains(&self.ip)
                {
                    validated.push(name.to_ascii_lowercase());
                }
            }
            self.validated = Some(validated);
        }
        let names = self.validated.as_deref().unwrap_or_default();
        // RFC 7208 7.3: the domain itself, else a name under it, else any validated name.
        let domain = domain.to_ascii_lowercase();
        let under = format!(".{domain}");
        names
            .iter()
            .find(|n| **n == domain)
            .or_else(|| names.iter().find(|n| n.ends_with(&under)))
            .or_else(|| names.first())
            .cloned()
            .unwrap_or_else(|| "unknown".to_string())
    }

    fn values<'v>(&'v self, domain: &'v str, validated: &'v str) -> Values<'v> {
        Values {
            sender: &self.query.sender,
            domain,
            ip: self.ip,
            helo: &self.query.helo,
            receiver: &self.query.receiver,
            validated,
        }
    }

    /// The A (IPv4 client) or AAAA (IPv6 client) records of `host`.
    async fn addresses_of(&self, host: &str) -> Outcome<IpAddr> {
        if self.ip.is_ipv4() {
            let lookup = self.resolver.a(host).await;
            map_outcome(lookup.outcome, IpAddr::V4)
        } else {
            let lookup = self.resolver.aaaa(host).await;
            map_outcome(lookup.outcome, IpAddr::V6)
        }
    }

    /// `include:target`: a `pass` inside is a match; `fail`, `softfail`, `neutral` are not;
    /// errors and `none` end the evaluation (RFC 7208 5.2).
    async fn include(&mut self, target: String, at: &Term<'_>) -> Test {
        let (domain, term, depth) = (at.domain, at.term, at.depth);
        self.step(depth, domain, term, format!("evaluating {target}"));
        let mut inner_via = at.via.to_vec();
        inner_via.push(format!("{domain}: {term}"));
        let inner = self.check_host(target.clone(), depth + 1, inner_via).await;
        let gave = format!("{target} gave {}", inner.result.as_str());
        match inner.result {
            SpfResult::Pass => Test::Match(inner.matched),
            SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Test::NoMatch(gave),
            SpfResult::TempError => Test::Stop(SpfResult::TempError, gave),
            SpfResult::PermError | SpfResult::None => Test::Stop(SpfResult::PermError, gave),
        }
    }

    /// `redirect=target`: the target's record decides, explanation included (RFC 7208 6.1).
    async fn redirect(
        &mut self,
        term: &str,
        spec: &MacroString,
        domain: &str,
        depth: usize,
        mut via: Vec<String>,
    ) -> Evaluation {
        if !self.count_lookup() {
            let outcome = format!("permerror: more than {MAX_DNS_MECHANISMS} DNS lookups");
            self.step(depth, domain, term, outcome);
            return Evaluation::ended(SpfResult::PermError);
        }
        let target = self.expand_name(spec, domain).await;
        self.step(depth, domain, term, format!("evaluating {target}"));
        via.push(format!("{domain}: {term}"));
        let inner = self.check_host(target, depth + 1, via).await;
        if inner.result == SpfResult::None {
            let outcome = "permerror: the target has no SPF record";
            self.step(depth, domain, term, outcome);
            return Evaluation::ended(SpfResult::PermError);
        }
        inner
    }

    /// `a`: the address among the A or AAAA records of `target`.
    async fn test_a(&mut self, target: &str, cidr: DualCidr) -> Test {
        if !queryable(target) {
            return Test::NoMatch(format!("{target:?} is not a valid domain name"));
        }
        match self.addresses_of(target).await {
            Outcome::Failed(failure) => {
                Test::Stop(SpfResult::TempError, format!("{target}: {failure}"))
            }
            Outcome::NxDomain | Outcome::NoData => self.void(format!("{target} has no address")),
            Outcome::Found(addresses) => {
                if addresses.iter().any(|a| in_network(self.ip, *a, cidr)) {
                    Test::Match(None)
                } else {
                    let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
                    Test::NoMatch(format!("{target}: {}", list.join(", ")))
                }
            }
        }
    }

    /// `mx`: the address among those of the MX hosts of `target`.
    async fn test_mx(&mut self, target: &str, cidr: DualCidr) -> Test {
        if !queryable(target) {
            return Test::NoMatch(format!("{target:?} is not a valid domain name"));
        }
        let lookup = self.resolver.mx(target).await;
        let records = match lookup.outcome {
            Outcome::Failed(failure) => {
                return Test::Stop(SpfResult::TempError, format!("MX of {target}: {failure}"));
            }
            Outcome::NxDomain | Outcome::NoData => {
                return self.void(format!("{target} has no MX"));
            }
            Outcome::Found(records) => records,
        };
        if records.len() > MAX_MX_NAMES {
            return Test::Stop(
                SpfResult::PermError,
                format!("{target} has more than {MAX_MX_NAMES} MX records"),
            );
        }
        // A null MX (RFC 7505) names no host.
        let hosts: Vec<&str> = records
            .iter()
            .map(|r| r.exchange.as_str())
            .filter(|e| queryable(e))
            .collect();
        for host in &hosts {
            match self.addresses_of(host).await {
                Outcome::Failed(failure) => {
                    return Test::Stop(SpfResult::TempError, format!("{host}: {failure}"));
                }
                Outcome::Found(addresses) => {
                    if addresses.iter().any(|a| in_network(self.ip, *a, cidr)) {
                        return Test::Match(None);
                    }
                }
                Outcome::NxDomain | Outcome::NoData => {}
            }
        }
        Test::NoMatch(format!("MX hosts of {target}: {}", hosts.join(", ")))
    }

    /// `ptr`: a PTR name of the address, equal to or under `target`, that resolves back to
    /// the address (RFC 7208 5.5). A failed PTR query is no match.
    async fn test_ptr(&mut self, target: &str) -> Test {
        let lookup = self.resolver.ptr(self.ip).await;
        let names = match lookup.outcome {
            Outcome::Failed(failure) => return Test::NoMatch(format!("PTR: {failure}")),
            Outcome::NxDomain | Outcome::NoData => {
                return self.void(format!("{} has no PTR", self.ip));
            }
            Outcome::Found(names) => names,
        };
        let target = target.to_ascii_lowercase();
        let under = format!(".{target}");
        for name in names.iter().take(MAX_PTR_NAMES) {
            let lower = name.to_ascii_lowercase();
            if lower != target && !lower.ends_with(&under) {
                continue;
            }
            // A DNS error skips the name (RFC 7208 5.5).
            if let Outcome::Found(ips) = self.addresses_of(name).await
                && ips.contains(&self.ip)
            {
                return Test::Match(None);
            }
        }
        Test::NoMatch(format!("PTR: {}", names.join(", ")))
    }

    /// `exists`: `target` has an A record, whatever the address family (RFC 7208 5.7).
    async fn test_exists(&mut self, target: &str) -> Test {
        if !queryable(target) {
            return Test::NoMatch(format!("{target:?} is not a valid domain name"));
        }
        let lookup = self.resolver.a(target).await;
        match lookup.outcome {
            Outcome::Found(_) => Test::Match(None),
            Outcome::Failed(failure) => {
                Test::Stop(SpfResult::TempError, format!("{target}: {failure}"))
            }
            Outcome::NxDomain | Outcome::NoData => self.void(format!("{target} has no A record")),
        }
    }

    /// The explanation of a `fail` (RFC 7208 6.2): the TXT record `exp=` names, its macros
    /// expanded; `None` at the least problem. Not counted against the lookup limits.
    async fn explain(&mut self, exp: &Exp) -> Option<String> {
        let target = self.expand_name(&exp.spec, &exp.domain).await;
        let found = if queryable(&target) {
            self.explanation_text(&target, &exp.domain).await
        } else {
            Err(format!("{target:?} is not a valid domain name"))
        };
        let outcome = match &found {
            Ok(text) => format!("explanation: {text}"),
            Err(why) => format!("ignored: {why}"),
        };
        self.step(exp.depth, &exp.domain, &exp.term, outcome);
        found.ok()
    }

    async fn explanation_text(&mut self, target: &str, domain: &str) -> Result<String, String> {
        let lookup = self.resolver.txt(target).await;
        let text = match &lookup.outcome {
            Outcome::Found(records) => match records.as_slice() {
                [one] => one.clone(),
                several => return Err(format!("{target} has {} TXT records", several.len())),
            },
            Outcome::Failed(failure) => return Err(format!("TXT of {target}: {failure}")),
            Outcome::NxDomain | Outcome::NoData => {
                return Err(format!("{target} has no TXT record"));
            }
        };
        let parsed = parse::macro_string(&text, Context::Explanation)
            .map_err(|why| format!("invalid explanation {text:?}: {why}"))?;
        let validated = self.p(&parsed, domain).await;
        Ok(expand(&parsed, &self.values(domain, &validated)))
    }
}

/// The `exp=` of `policy`, for the record of `domain`.
fn exp_of(policy: &Policy, domain: &str, depth: usize) -> Option<Exp> {
    policy.exp.as_ref().map(|(term, spec)| Exp {
        domain: domain.to_string(),
        term: term.clone(),
        spec: spec.clone(),
        depth,
    })
}

fn bool_test(hit: bool) -> Test {
    if hit {
        Test::Match(None)
    } else {
        Test::NoMatch(String::new())
    }
}

fn map_outcome<T>(outcome: Outcome<T>, f: impl Fn(T) -> IpAddr) -> Outcome<IpAddr> {
    match outcome {
        Outcome::Found(found) => Outcome::Found(found.into_iter().map(f).collect()),
        Outcome::NoData => Outcome::NoData,
        Outcome::NxDomain => Outcome::NxDomain,
        Outcome::Failed(failure) => Outcome::Failed(failure),
    }
}

/// `ip` in `net/len`; an IPv6 address is never in an IPv4 network.
fn in_v4(ip: IpAddr, net: Ipv4Addr, len: u8) -> bool {
    let IpAddr::V4(ip) = ip else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

/// `ip` in `net/len`; an IPv4 address is never in an IPv6 network.
fn in_v6(ip: IpAddr, net: Ipv6Addr, len: u8) -> bool {
    let IpAddr::V6(ip) = ip else {
        return false;
    };
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// `ip` in the network of a found address, with the prefix length of its family.
fn in_network(ip: IpAddr, found: IpAddr, cidr: DualCidr) -> bool {
    match found {
        IpAddr::V4(net) => in_v4(ip, net, cidr.v4),
        IpAddr::V6(net) => in_v6(ip, net, cidr.v6),
    }
}

/// RFC 7208 4.3: a domain `check_host()` can work on: at least two labels of 1 to 63 visible
/// ASCII characters, at most 253 in all, the last one a real top label (so no address
/// literal).
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_graphic()))
        && labels.last().is_some_and(|top| parse::is_toplabel(top))
}

/// Whether a name made by macro expansion can be queried at all (labels of 1 to 63 octets);
/// one that cannot names nothing.
fn queryable(name: &str) -> bool {
    !name.is_empty() && name.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

impl Serialize for SpfQuery {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("SpfQuery", 5)?;
        s.serialize_field("ip", &self.ip)?;
        s.serialize_field("identity", &self.identity)?;
        s.serialize_field("domain", self.domain())?;
        s.serialize_field("sender", &self.sender)?;
        s.serialize_field("helo", &self.helo)?;
        s.end()
    }
}

impl Serialize for SpfCheck {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("SpfCheck", 8)?;
        s.serialize_field("query", &self.query)?;
        s.serialize_field("result", &self.result)?;
        s.serialize_field("matched", &self.matched)?;
        s.serialize_field("explanation", &self.explanation)?;
        s.serialize_field("dns_lookups", &self.dns_lookups)?;
        s.serialize_field("void_lookups", &self.void_lookups)?;
        s.serialize_field("trace", &self.trace)?;
        s.serialize_field("elapsed_ms", &millis(self.elapsed))?;
        s.end()
    }
}

#[cfg(test)]
mod tests;
