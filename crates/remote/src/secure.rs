//! What TLS a delivery needs beyond the configured mode, and what is reported of it: the
//! MTA-STS policy of a domain delivered by MX (looked up once per transaction; `enforce`
//! makes its listed MX hosts `verify` and skips the others, `testing` is logged), the TLS-RPT
//! result of each new session, and whether a cached connection is secure enough for a
//! delivery that needs more than the one it was opened for.

use std::time::SystemTime;

use relais_client::SmtpClient;
use relais_config::TlsMode;
use relais_queue::Outcome;

use crate::sts::{self, Judgement, StsLookup};
use crate::tlsrpt::{Session, result_type};
use crate::{Job, RemoteSettings};

/// The security of one transaction's deliveries.
pub(crate) struct Guard {
    /// The destination domain.
    domain: String,
    /// Delivered by MX (not a route, the relay host or an address literal): MTA-STS and
    /// TLS-RPT apply.
    by_mx: bool,
    /// The domain's MTA-STS policy, when MTA-STS applies and is on.
    sts: Option<StsLookup>,
    /// When the transaction started, Unix seconds.
    now: u64,
}

impl Guard {
    /// Looks up what applies to `job`, delivered by MX when `by_mx`. A domain with a
    /// `tls_policy` entry of its own keeps it: MTA-STS is for the others.
    pub async fn new(settings: &RemoteSettings, job: &Job, by_mx: bool) -> Guard {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let sts = match &settings.sts {
            Some(cache) if by_mx && !settings.tls.policy.contains_key(&job.domain) => {
                Some(cache.lookup(&settings.resolver, &job.domain, now).await)
            }
            _ => None,
        };
        let guard = Guard {
            domain: job.domain.clone(),
            by_mx,
            sts,
            now,
        };
        if let Some(StsLookup {
            policy: None,
            fetch_error: Some(why),
        }) = &guard.sts
        {
            let failure = Session::Failure {
                result_type: "sts-policy-fetch-error",
                mx: format!("mta-sts.{}", guard.domain),
                ip: None,
            };
            tracing::info!("{}: MTA-STS policy not fetched: {why}", guard.domain);
            guard.report(settings, failure);
        }
        guard
    }

    /// How the policy judges the MX host `name`.
    pub fn judge(&self, name: &str) -> Judgement {
        sts::judge(self.sts.as_ref().and_then(|l| l.policy.as_ref()), name)
    }

    /// Counts a session's result for TLS-RPT, when reports are written and the delivery is by
    /// MX.
    pub fn report(&self, settings: &RemoteSettings, session: Session) {
        if let Some(reports) = &settings.reports
            && self.by_mx
        {
            let policy = self.sts.as_ref().and_then(|l| l.policy.as_ref());
            reports.record(self.now, &self.domain, policy, session);
        }
    }

    /// Reports a connection that could not be opened (TLS or otherwise) to `host`.
    pub fn report_failure(
        &self,
        settings: &RemoteSettings,
        name: &str,
        addr: std::net::IpAddr,
        why: &Outcome,
    ) {
        let text = why.to_string();
        if !(text.contains("TLS") || text.contains("certificate") || text.contains("STARTTLS")) {
            return;
        }
        self.report(
            settings,
            Session::Failure {
                result_type: result_type(&text),
                mx: name.to_string(),
                ip: Some(addr),
            },
        );
    }

    /// Reports a connection to the MX host `name` (new or from the cache), judged
    /// `judgement`: in `testing`, what enforcing would have refused is logged.
    pub fn report_open(
        &self,
        settings: &RemoteSettings,
        c: &SmtpClient,
        name: &str,
        judgement: &Judgement,
    ) {
        let ip = c.peer().map(|p| p.ip());
        let why = match (c.tls_info(), judgement) {
            // Matched against the host's TLSA records (DANE), not a certificate authority.
            (Some(_), Judgement::Free) if !c.config().tls.dane.is_empty() => None,
            (None, _) => Some(("starttls-not-supported", "no TLS".to_string())),
            (Some(_), Judgement::Testing { listed: false }) => Some((
                "validation-failure",
                "the policy does not list this MX host".to_string(),
            )),
            // Judged for this host's name: a cached connection may have been opened for
            // another name of the same address.
            (Some(_), Judgement::Testing { .. } | Judgement::Free) => {
                match c.verify_peer_for(name) {
                    relais_client::CertVerification::Verified => None,
                    relais_client::CertVerification::Failed(e) => Some((result_type(&e), e)),
                }
            }
            (Some(_), _) => None,
        };
        let session = match why {
            None => Session::Success,
            Some((kind, why)) => {
                if matches!(judgement, Judgement::Testing { .. }) {
                    tracing::warn!(
                        "{}: MTA-STS policy in testing mode: {name}: {why}; delivered anyway",
                        self.domain
                    );
                }
                Session::Failure {
                    result_type: kind,
                    mx: name.to_string(),
                    ip,
                }
            }
        };
        self.report(settings, session);
    }
}

/// True if a cached connection `c` meets `mode` for the host `name` (or one of `matches`):
/// a connection opened for `may` must not carry mail that needs `verify`.
pub(crate) fn secure_enough(c: &SmtpClient, mode: TlsMode, name: &str, matches: &[String]) -> bool {
    match mode {
        TlsMode::None | TlsMode::May => true,
        TlsMode::Encrypt => c.is_tls(),
        // Each connection matches its host's TLSA records afresh.
        TlsMode::Dane => false,
        TlsMode::Verify => {
            c.is_tls()
                && std::iter::once(name)
                    .chain(matches.iter().map(String::as_str))
                    .any(|n| c.verify_peer_for(n).is_verified())
        }
    }
}
