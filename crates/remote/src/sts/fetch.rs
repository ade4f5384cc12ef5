//! Fetching and caching MTA-STS policies (RFC 8461 §3.3, §5.1): the `_mta-sts` TXT record says
//! which version of the policy is current; the file comes from
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (the certificate verified with the system's
//! roots or `tls_ca_file`, no redirects, `text/plain`, 64 KB at most) and is kept for its
//! `max_age`. A cached policy stays in force while it is fresh, even when the record is gone or
//! a new fetch fails: an attacker who hides the record or the file cannot turn it off.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use relais_client::{TlsPolicy, https_get};
use relais_dns::Resolver;

use super::{Policy, record_id};

/// How long fetching a policy may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// The largest policy file read.
const MAX_POLICY: usize = 64 * 1024;

/// Policies fetched so far, by domain.
#[derive(Debug, Default)]
pub struct StsCache {
    /// Fresh policies, by domain (lower case).
    entries: Mutex<HashMap<String, Cached>>,
    /// The HTTPS port of the policy hosts (443; another one only in tests).
    pub https_port: u16,
    /// More trusted CA certificates, beside the system's.
    pub ca_file: Option<PathBuf>,
}

/// A policy kept.
#[derive(Debug, Clone)]
struct Cached {
    /// The record's `id` it was fetched for.
    id: String,
    /// The policy.
    policy: Policy,
    /// Until when it may be used, Unix seconds.
    expires: u64,
}

/// What is known of a domain's policy now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StsLookup {
    /// The policy in force, if any.
    pub policy: Option<Policy>,
    /// Why the newest policy could not be fetched (a record was there).
    pub fetch_error: Option<String>,
}

impl StsCache {
    /// A cache whose policy hosts listen on `https_port`, trusting `ca_file` too.
    pub fn new(https_port: u16, ca_file: Option<PathBuf>) -> StsCache {
        StsCache {
            entries: Mutex::default(),
            https_port,
            ca_file,
        }
    }

    /// The policy of `domain` at `now` (Unix seconds): the cached one while its record's id is
    /// unchanged (or the record is gone) and it is fresh, else a new fetch.
    pub async fn lookup(&self, resolver: &Resolver, domain: &str, now: u64) -> StsLookup {
        let txt = resolver.txt(&format!("_mta-sts.{domain}")).await;
        let id = record_id(txt.records());
        let cached = {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.get(domain).filter(|c| c.expires > now).cloned()
        };
        let id = match (id, &cached) {
            (None, _) => {
                return StsLookup {
                    policy: cached.map(|c| c.policy),
                    fetch_error: None,
                };
            }
            (Some(id), Some(c)) if c.id == id => {
                return StsLookup {
                    policy: Some(c.policy.clone()),
                    fetch_error: None,
                };
            }
            (Some(id), _) => id,
        };
        match self.fetch(resolver, domain).await {
            Ok(policy) => {
                let entry = Cached {
                    id,
                    policy: policy.clone(),
                    expires: now.saturating_add(policy.max_age),
                };
                let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                entries.insert(domain.to_string(), entry);
                StsLookup {
                    policy: Some(policy),
                    fetch_error: None,
                }
            }
            Err(e) => {
                tracing::warn!("MTA-STS policy of {domain}: {e}");
                StsLookup {
                    policy: cached.map(|c| c.policy),
                    fetch_error: Some(e),
                }
            }
        }
    }

    /// Fetches and parses the policy file of `domain`.
    async fn fetch(&self, resolver: &Resolver, domain: &str) -> Result<Policy, String> {
        let host = format!("mta-sts.{domain}");
        let ips = resolver.addresses(&host).await.ips();
        if ips.is_empty() {
            return Err(format!("{host} has no address"));
        }
        let tls = TlsPolicy {
            ca_file: self.ca_file.clone(),
            ..TlsPolicy::default()
        };
        let mut last = String::new();
        for ip in ips {
            let addr = SocketAddr::new(ip, self.https_port);
            let path = "/.well-known/mta-sts.txt";
            match https_get(addr, &host, path, &tls, FETCH_TIMEOUT, MAX_POLICY).await {
                Ok(r) if r.status != 200 => {
                    return Err(format!("https://{host}{path} answered {}", r.status));
                }
                Ok(r) if !r.content_type.starts_with("text/plain") => {
                    return Err(format!(
                        "https://{host}{path} is {:?}, not text/plain",
                        r.content_type
                    ));
                }
                Ok(r) => {
                    let text = String::from_utf8_lossy(&r.body);
                    return Policy::parse(&text).map_err(|e| format!("https://{host}{path}: {e}"));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}
