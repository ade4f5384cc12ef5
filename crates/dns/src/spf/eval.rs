//! Evaluating SPF for an address: RFC 7208's `check_host()`.
//!
//! Two evaluations run over the same resolver configuration:
//! - mail-auth's verifier, which gives the result (`pass`, `fail`, ...) and the `exp=`
//!   explanation. The server's SPF check will use the same code.
//! - a traced evaluation of our own, which records every term it looked at and which one
//!   matched, through `include:` and `redirect=`, so a person can see *why*. It follows the
//!   same RFC rules (10 DNS terms, 2 void lookups, 10 MX names, 10 PTR names).
//!
//! When both agree, the matched term is reported. When they disagree, mail-auth's result
//! stands and no term is named — except for two RFC 7208 rules mail-auth does not apply, where
//! the traced result is taken and a note says so: several SPF records are a `permerror`
//! (section 4.5), and so are more than two void lookups (section 4.6.4).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::time::{Duration, Instant};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::spf::{Mechanism, Qualifier, Spf, Variables};
use relais_proto::date::millis;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::{MAX_DNS_MECHANISMS, MAX_VOID_LOOKUPS, RecordStatus};
use crate::lookup::normalize;
use crate::reverse::MAX_PTR_NAMES;
use crate::{Outcome, Resolver};

/// At most this many MX hosts are looked at for one `mx` mechanism (RFC 7208 4.6.4).
const MAX_MX_NAMES: usize = 10;

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
    /// an empty `helo` is replaced by the sender's domain.
    pub fn mail_from(ip: IpAddr, sender: &str, helo: &str) -> SpfQuery {
        let sender = sender.trim().trim_start_matches('<').trim_end_matches('>');
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

impl From<mail_auth::SpfResult> for SpfResult {
    fn from(result: mail_auth::SpfResult) -> Self {
        match result {
            mail_auth::SpfResult::Pass => SpfResult::Pass,
            mail_auth::SpfResult::Fail => SpfResult::Fail,
            mail_auth::SpfResult::SoftFail => SpfResult::SoftFail,
            mail_auth::SpfResult::Neutral => SpfResult::Neutral,
            mail_auth::SpfResult::TempError => SpfResult::TempError,
            mail_auth::SpfResult::PermError => SpfResult::PermError,
            mail_auth::SpfResult::None => SpfResult::None,
        }
    }
}

impl From<&Qualifier> for SpfResult {
    fn from(qualifier: &Qualifier) -> Self {
        match qualifier {
            Qualifier::Pass => SpfResult::Pass,
            Qualifier::Fail => SpfResult::Fail,
            Qualifier::SoftFail => SpfResult::SoftFail,
            Qualifier::Neutral => SpfResult::Neutral,
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
    /// The term that decided, when the traced evaluation agrees with the result.
    pub matched: Option<SpfMatch>,
    /// Every term looked at, in order.
    pub trace: Vec<SpfStep>,
    /// The traced evaluation's own result.
    pub trace_result: SpfResult,
    /// Terms that queried the DNS (limit [`MAX_DNS_MECHANISMS`]).
    pub dns_lookups: u32,
    /// Of those, how many found nothing (limit [`MAX_VOID_LOOKUPS`]).
    pub void_lookups: u32,
    /// Remarks on the evaluation (RFC rules applied over mail-auth's result, disagreements).
    pub notes: Vec<String>,
    /// Both evaluations together.
    pub elapsed: Duration,
}

impl Resolver {
    /// Evaluates SPF for `query`.
    pub async fn spf_check(&self, query: &SpfQuery) -> SpfCheck {
        let started = Instant::now();
        let domain = query.domain().to_string();
        let params = match query.identity {
            Identity::MailFrom => SpfParameters::verify_mail_from(
                query.ip,
                &query.helo,
                &query.receiver,
                &query.sender,
            ),
            Identity::Helo => SpfParameters::verify_ehlo(query.ip, &query.helo, &query.receiver),
        };
        let output = self.authenticator().verify_spf(params).await;
        let library_result = SpfResult::from(output.result());

        let mut tracer = Tracer {
            resolver: self,
            query,
            dns_lookups: 0,
            void_lookups: 0,
            steps: Vec::new(),
            rfc_rule: None,
        };
        let (trace_result, matched) = tracer.check_host(domain, 0, Vec::new()).await;

        let mut notes = Vec::new();
        let (result, matched) = if trace_result == library_result {
            (library_result, matched)
        } else if let Some(rule) = tracer.rfc_rule {
            notes.push(format!(
                "{rule}: {} (mail-auth alone says {})",
                trace_result.as_str(),
                library_result.as_str()
            ));
            (trace_result, matched)
        } else {
            notes.push(format!(
                "the traced evaluation found {} where mail-auth found {}; the latter stands",
                trace_result.as_str(),
                library_result.as_str()
            ));
            (library_result, None)
        };
        SpfCheck {
            query: query.clone(),
            result,
            explanation: output.explanation().map(str::to_string),
            matched,
            trace: tracer.steps,
            trace_result,
            dns_lookups: tracer.dns_lookups,
            void_lookups: tracer.void_lookups,
            notes,
            elapsed: started.elapsed(),
        }
    }
}

type Evaluation = (SpfResult, Option<SpfMatch>);

/// The traced `check_host()`.
struct Tracer<'a> {
    resolver: &'a Resolver,
    query: &'a SpfQuery,
    /// DNS-querying terms evaluated so far, over the whole evaluation.
    dns_lookups: u32,
    /// Those that found nothing.
    void_lookups: u32,
    /// What was recorded.
    steps: Vec<SpfStep>,
    /// Set when an RFC 7208 rule mail-auth does not apply decided the result.
    rfc_rule: Option<&'static str>,
}

/// Where in the evaluation a term stands: for its trace steps.
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

/// How a mechanism's lookup went.
enum Test {
    Match,
    NoMatch(String),
    /// Ends the evaluation with this result.
    Stop(SpfResult, String),
}

impl<'a> Tracer<'a> {
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

    /// Counts a lookup that found nothing; `false` once over the limit.
    fn count_void(&mut self) -> bool {
        self.void_lookups += 1;
        self.void_lookups <= MAX_VOID_LOOKUPS
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
            let (spf, words) = match self.record(&domain, depth).await {
                Ok(found) => found,
                Err(end) => return end,
            };
            let mut vars = Variables::new();
            vars.set_ip(&self.query.ip);
            vars.set_sender(self.query.sender.as_bytes().to_vec());
            vars.set_domain(domain.as_bytes().to_vec());
            vars.set_helo_domain(self.query.helo.as_bytes().to_vec());
            vars.set_host_domain(self.query.receiver.as_bytes().to_vec());

            for (index, directive) in spf.directives.iter().enumerate() {
                let term = match words.get(index) {
                    Some(word) if words.len() == spf.directives.len() => word.clone(),
                    _ => format!("{:?}", directive.mechanism),
                };
                let qualifier = SpfResult::from(&directive.qualifier);
                let test = match &directive.mechanism {
                    Mechanism::Include { macro_string } => {
                        let target = macro_string.eval(&vars, &domain, true).into_owned();
                        let at = Term {
                            domain: &domain,
                            term: &term,
                            depth,
                            via: &via,
                        };
                        match self.include(target, &at, qualifier).await {
                            Ok(test) => test,
                            Err(end) => return end,
                        }
                    }
                    mechanism => self.mechanism(mechanism, &vars, &domain).await,
                };
                match test {
                    Test::Match => {
                        let outcome = format!("match: {}", qualifier.as_str());
                        self.step(depth, &domain, &term, outcome);
                        let matched = SpfMatch {
                            domain: domain.clone(),
                            term,
                            via: via.clone(),
                        };
                        return (qualifier, Some(matched));
                    }
                    Test::NoMatch(detail) => {
                        let outcome = if detail.is_empty() {
                            "no match".to_string()
                        } else {
                            format!("no match ({detail})")
                        };
                        self.step(depth, &domain, &term, outcome);
                    }
                    Test::Stop(result, detail) => {
                        let outcome = format!("{}: {detail}", result.as_str());
                        self.step(depth, &domain, &term, outcome);
                        return (result, None);
                    }
                }
            }

            if let Some(macro_string) = &spf.redirect {
                let target = macro_string.eval(&vars, &domain, true).into_owned();
                return self.redirect(target, &domain, depth, via).await;
            }
            self.step(depth, &domain, "(default)", "nothing matched: neutral");
            (SpfResult::Neutral, None)
        })
    }

    /// The SPF record of `domain`, parsed, with the text of its mechanisms; or the end of the
    /// evaluation when there is none or it is broken.
    async fn record(
        &mut self,
        domain: &str,
        depth: usize,
    ) -> Result<(Spf, Vec<String>), Evaluation> {
        if !valid_domain(domain) {
            self.step(depth, domain, "(domain)", "none: not a valid domain name");
            return Err((SpfResult::None, None));
        }
        let record = self.resolver.spf_record(domain).await;
        let text = match (&record.status, record.text()) {
            (RecordStatus::Found, Some(text)) => text.to_string(),
            (RecordStatus::NotFound, _) | (RecordStatus::NoSuchDomain, _) => {
                let why = if record.status == RecordStatus::NoSuchDomain {
                    "none: the domain does not exist"
                } else {
                    "none: no SPF record"
                };
                self.step(depth, domain, "(record)", why);
                return Err((SpfResult::None, None));
            }
            (RecordStatus::Multiple, _) => {
                self.rfc_rule = Some("RFC 7208 4.5, several SPF records");
                let outcome = format!(
                    "permerror: {} SPF records (RFC 7208 4.5 allows one)",
                    record.candidates.len()
                );
                self.step(depth, domain, "(record)", outcome);
                return Err((SpfResult::PermError, None));
            }
            (RecordStatus::Invalid(why), _) => {
                // mail-auth's parser is lenient where RFC 7208 is not (addresses).
                self.rfc_rule = Some("RFC 7208 4.6, invalid record");
                let outcome = format!("permerror: {why}");
                let term = record.text().unwrap_or("(record)").to_string();
                self.step(depth, domain, &term, outcome);
                return Err((SpfResult::PermError, None));
            }
            (RecordStatus::Failed(failure), _) => {
                let outcome = format!("temperror: TXT lookup: {failure}");
                self.step(depth, domain, "(record)", outcome);
                return Err((SpfResult::TempError, None));
            }
            (RecordStatus::Found, None) => {
                self.step(depth, domain, "(record)", "permerror: no record");
                return Err((SpfResult::PermError, None));
            }
        };
        let spf = match Spf::parse(text.as_bytes()) {
            Ok(spf) => spf,
            Err(e) => {
                self.step(depth, domain, &text, format!("permerror: {e}"));
                return Err((SpfResult::PermError, None));
            }
        };
        self.step(depth, domain, &text, "record");
        let words = record
            .terms
            .iter()
            .filter(|t| t.kind == "mechanism")
            .map(|t| t.text.clone())
            .collect();
        Ok((spf, words))
    }

    /// A mechanism other than `include`: `all`, `ip4`, `ip6`, `a`, `mx`, `ptr`, `exists`.
    async fn mechanism(
        &mut self,
        mechanism: &Mechanism,
        vars: &Variables<'_>,
        domain: &str,
    ) -> Test {
        let target = |m: &mail_auth::spf::Macro| m.eval(vars, domain, true).into_owned();
        match mechanism {
            Mechanism::All => Test::Match,
            Mechanism::Ip4 { addr, mask } => bool_test(in_v4(self.query.ip, *addr, *mask)),
            Mechanism::Ip6 { addr, mask } => bool_test(in_v6(self.query.ip, *addr, *mask)),
            // Evaluated by `include`, which has the whole evaluation in hand.
            Mechanism::Include { .. } => Test::NoMatch("include evaluated elsewhere".into()),
            _ if !self.count_lookup() => too_many_lookups(),
            Mechanism::A {
                macro_string,
                ip4_mask,
                ip6_mask,
            } => {
                let t = target(macro_string);
                self.test_host(&t, *ip4_mask, *ip6_mask, true).await
            }
            Mechanism::Mx {
                macro_string,
                ip4_mask,
                ip6_mask,
            } => {
                let t = target(macro_string);
                self.test_mx(&t, *ip4_mask, *ip6_mask).await
            }
            Mechanism::Ptr { macro_string } => {
                let t = target(macro_string);
                self.test_ptr(&t).await
            }
            Mechanism::Exists { macro_string } => {
                let t = target(macro_string);
                self.test_exists(&t).await
            }
        }
    }

    /// `include:target`: a pass inside is a match with the include's own qualifier; `Err`
    /// ends the whole evaluation.
    async fn include(
        &mut self,
        target: String,
        at: &Term<'_>,
        qualifier: SpfResult,
    ) -> Result<Test, Evaluation> {
        if !self.count_lookup() {
            return Ok(too_many_lookups());
        }
        let (domain, term, depth) = (at.domain, at.term, at.depth);
        self.step(depth, domain, term, format!("evaluating {target}"));
        let mut inner_via = at.via.to_vec();
        inner_via.push(format!("{domain}: {term}"));
        let (inner, inner_match) = self.check_host(target.clone(), depth + 1, inner_via).await;
        Ok(match inner {
            SpfResult::Pass => {
                let outcome = format!("match: {}", qualifier.as_str());
                self.step(depth, domain, term, outcome);
                // The include decides with its own qualifier; the term that passed inside is
                // the one worth showing.
                let matched = inner_match.unwrap_or(SpfMatch {
                    domain: domain.to_string(),
                    term: term.to_string(),
                    via: at.via.to_vec(),
                });
                return Err((qualifier, Some(matched)));
            }
            SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => {
                Test::NoMatch(format!("{target} gave {}", inner.as_str()))
            }
            SpfResult::TempError => {
                Test::Stop(SpfResult::TempError, format!("{target} gave temperror"))
            }
            SpfResult::PermError | SpfResult::None => Test::Stop(
                SpfResult::PermError,
                format!("{target} gave {}", inner.as_str()),
            ),
        })
    }

    /// `redirect=target`: the evaluation goes on with the target's record.
    async fn redirect(
        &mut self,
        target: String,
        domain: &str,
        depth: usize,
        via: Vec<String>,
    ) -> Evaluation {
        let term = format!("redirect={target}");
        if !self.count_lookup() {
            self.step(depth, domain, &term, "permerror: more than 10 DNS lookups");
            return (SpfResult::PermError, None);
        }
        self.step(depth, domain, &term, format!("evaluating {target}"));
        let mut inner_via = via;
        inner_via.push(format!("{domain}: {term}"));
        let (result, matched) = self.check_host(target, depth + 1, inner_via).await;
        if result == SpfResult::None {
            let outcome = "permerror: the target has no SPF record";
            self.step(depth, domain, &term, outcome);
            return (SpfResult::PermError, None);
        }
        (result, matched)
    }

    /// `a`: the address among the A (IPv4) or AAAA (IPv6) records of `target`.
    async fn test_host(&mut self, target: &str, ip4_mask: u32, ip6_mask: u128, void: bool) -> Test {
        let ip = self.query.ip;
        let (outcome, addresses): (Outcome<()>, Vec<IpAddr>) = if is_v4(ip) {
            let lookup = self.resolver.a(target).await;
            let found = lookup.records().iter().map(|a| IpAddr::V4(*a)).collect();
            (strip(lookup.outcome), found)
        } else {
            let lookup = self.resolver.aaaa(target).await;
            let found = lookup.records().iter().map(|a| IpAddr::V6(*a)).collect();
            (strip(lookup.outcome), found)
        };
        match outcome {
            Outcome::Failed(failure) => {
                Test::Stop(SpfResult::TempError, format!("{target}: {failure}"))
            }
            Outcome::NxDomain | Outcome::NoData => {
                if void && !self.count_void() {
                    self.rfc_rule = Some("RFC 7208 4.6.4, more than 2 void lookups");
                    return Test::Stop(
                        SpfResult::PermError,
                        format!("{target} has no address: more than 2 void lookups"),
                    );
                }
                Test::NoMatch(format!("{target} has no address"))
            }
            Outcome::Found(_) => {
                let hit = addresses.iter().any(|found| match found {
                    IpAddr::V4(a) => in_v4(ip, *a, ip4_mask),
                    IpAddr::V6(a) => in_v6(ip, *a, ip6_mask),
                });
                if hit {
                    Test::Match
                } else {
                    let list: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
                    Test::NoMatch(format!("{target}: {}", list.join(", ")))
                }
            }
        }
    }

    /// `mx`: the address among those of the MX hosts of `target`.
    async fn test_mx(&mut self, target: &str, ip4_mask: u32, ip6_mask: u128) -> Test {
        let lookup = self.resolver.mx(target).await;
        match &lookup.outcome {
            Outcome::Failed(failure) => {
                Test::Stop(SpfResult::TempError, format!("MX of {target}: {failure}"))
            }
            Outcome::NxDomain | Outcome::NoData => {
                if !self.count_void() {
                    self.rfc_rule = Some("RFC 7208 4.6.4, more than 2 void lookups");
                    return Test::Stop(
                        SpfResult::PermError,
                        format!("{target} has no MX: more than 2 void lookups"),
                    );
                }
                Test::NoMatch(format!("{target} has no MX"))
            }
            Outcome::Found(records) => {
                let hosts: Vec<&str> = records
                    .iter()
                    .map(|r| r.exchange.as_str())
                    .filter(|e| !e.is_empty())
                    .collect();
                for (index, host) in hosts.iter().enumerate() {
                    if index >= MAX_MX_NAMES {
                        return Test::Stop(
                            SpfResult::PermError,
                            format!("{target} has more than {MAX_MX_NAMES} MX hosts"),
                        );
                    }
                    match self.test_host(host, ip4_mask, ip6_mask, false).await {
                        Test::Match => return Test::Match,
                        Test::NoMatch(_) => {}
                        stop @ Test::Stop(..) => return stop,
                    }
                }
                Test::NoMatch(format!("MX hosts of {target}: {}", hosts.join(", ")))
            }
        }
    }

    /// `ptr`: a forward-confirmed PTR name of the address equal to or under `target`.
    async fn test_ptr(&mut self, target: &str) -> Test {
        let ip = self.query.ip;
        let target = normalize(target).to_ascii_lowercase();
        let ptr = self.resolver.ptr(ip).await;
        for name in ptr.records().iter().take(MAX_PTR_NAMES) {
            let name = name.to_ascii_lowercase();
            let under = name == target || name.ends_with(&format!(".{target}"));
            if under && self.resolver.addresses(&name).await.ips().contains(&ip) {
                return Test::Match;
            }
        }
        Test::NoMatch(String::new())
    }

    /// `exists`: `target` has an A record.
    async fn test_exists(&mut self, target: &str) -> Test {
        let lookup = self.resolver.a(target).await;
        match lookup.outcome {
            Outcome::Found(_) => Test::Match,
            Outcome::Failed(failure) => {
                Test::Stop(SpfResult::TempError, format!("{target}: {failure}"))
            }
            Outcome::NxDomain | Outcome::NoData => {
                if !self.count_void() {
                    self.rfc_rule = Some("RFC 7208 4.6.4, more than 2 void lookups");
                    return Test::Stop(
                        SpfResult::PermError,
                        format!("{target} does not exist: more than 2 void lookups"),
                    );
                }
                Test::NoMatch(format!("{target} has no A record"))
            }
        }
    }
}

fn bool_test(hit: bool) -> Test {
    if hit {
        Test::Match
    } else {
        Test::NoMatch(String::new())
    }
}

fn too_many_lookups() -> Test {
    Test::Stop(
        SpfResult::PermError,
        format!("more than {MAX_DNS_MECHANISMS} DNS lookups"),
    )
}

/// The outcome without its records (kept aside by the caller).
fn strip<T>(outcome: Outcome<T>) -> Outcome<()> {
    match outcome {
        Outcome::Found(_) => Outcome::Found(vec![()]),
        Outcome::NoData => Outcome::NoData,
        Outcome::NxDomain => Outcome::NxDomain,
        Outcome::Failed(failure) => Outcome::Failed(failure),
    }
}

fn is_v4(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    }
}

/// The address in `addr` under `mask` (a bit mask, as mail-auth stores CIDR lengths).
fn in_v4(ip: IpAddr, addr: Ipv4Addr, mask: u32) -> bool {
    let ip = match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => return false,
        },
    };
    u32::from(ip) & mask == u32::from(addr) & mask
}

fn in_v6(ip: IpAddr, addr: Ipv6Addr, mask: u128) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6,
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
    };
    u128::from(ip) & mask == u128::from(addr) & mask
}

/// RFC 7208 4.3: a name made of labels of 1 to 63 octets, at most 253 in all.
fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|l| !l.is_empty() && l.len() <= 63)
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
        let mut s = serializer.serialize_struct("SpfCheck", 9)?;
        s.serialize_field("query", &self.query)?;
        s.serialize_field("result", &self.result)?;
        s.serialize_field("matched", &self.matched)?;
        s.serialize_field("explanation", &self.explanation)?;
        s.serialize_field("dns_lookups", &self.dns_lookups)?;
        s.serialize_field("void_lookups", &self.void_lookups)?;
        s.serialize_field("notes", &self.notes)?;
        s.serialize_field("trace", &self.trace)?;
        s.serialize_field("elapsed_ms", &millis(self.elapsed))?;
        s.end()
    }
}

#[cfg(test)]
mod tests;
