//! Fetching and caching MTA-STS policies (RFC 8461 §3.3, §5.1): the `_mta-sts` TXT record says
//! which version of the policy is current; the file comes from
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (the certificate verified with the system's
//! roots or `tls_ca_file`, no redirects, `text/plain`, 64 KB at most) and is kept for its
//! `max_age`. A cached policy stays in force while it is fresh, even when the record is gone or
//! a new fetch fails: an attacker who hides the record or the file cannot turn it off. Each
//! policy fetched is also kept in a file of its own (`data_dir/mta-sts/DOMAIN`: its record's
//! id, when it expires, the policy text), so that a restart does not forget it either.

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
    /// Where policies are kept across restarts, one file per domain.
    pub dir: Option<PathBuf>,
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
    /// A cache whose policy hosts listen on `https_port`, trusting `ca_file` too, keeping
    /// policies in `dir` across restarts.
    pub fn new(https_port: u16, ca_file: Option<PathBuf>, dir: Option<PathBuf>) -> StsCache {
        StsCache {
            entries: Mutex::default(),
            https_port,
            ca_file,
            dir,
        }
    }

    /// The file of `domain`'s policy, when policies are kept and the name can be a file's.
    fn file_of(&self, domain: &str) -> Option<PathBuf> {
        let safe = !domain.is_empty()
            && !domain.starts_with('.')
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        Some(self.dir.as_ref()?.join(domain)).filter(|_| safe)
    }

    /// The policy of `domain` kept in its file, if there is one.
    fn load(&self, domain: &str) -> Option<Cached> {
        let text = std::fs::read_to_string(self.file_of(domain)?).ok()?;
        let mut lines = text.splitn(3, '\n');
        let id = lines.next()?.strip_prefix("id ")?.to_string();
        let expires = lines.next()?.strip_prefix("expires ")?.parse().ok()?;
        let policy = Policy::parse(lines.next()?).ok()?;
        Some(Cached {
            id,
            policy,
            expires,
        })
    }

    /// Keeps `c` in the file of `domain` (a new file renamed over the old).
    fn save(&self, domain: &str, c: &Cached) {
        let Some(path) = self.file_of(domain) else {
            return;
        };
        let text = format!(
            "id {}\nexpires {}\n{}\n",
            c.id,
            c.expires,
            c.policy.lines().join("\n")
        );
        let tmp = path.with_extension("tmp");
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!("cannot keep the MTA-STS policy of {domain}: {e}");
        }
    }

    /// The policy of `domain` at `now` (Unix seconds): the cached one while its record's id is
    /// unchanged (or the record is gone) and it is fresh, else a new fetch.
    pub async fn lookup(&self, resolver: &Resolver, domain: &str, now: u64) -> StsLookup {
        let txt = resolver.txt(&format!("_mta-sts.{domain}")).await;
        let id = record_id(txt.records());
        let cached = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if !entries.contains_key(domain)
                && let Some(c) = self.load(domain)
            {
                entries.insert(domain.to_string(), c);
            }
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
                self.save(domain, &entry);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sts::Mode;

    #[test]
    fn policies_are_kept_in_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StsCache::new(443, None, Some(dir.path().join("mta-sts")));
        let c = Cached {
            id: "20261205".into(),
            policy: Policy {
                mode: Mode::Enforce,
                mx: vec!["*.example.net".into(), "mx.example.org".into()],
                max_age: 600,
            },
            expires: 1_800_000_000,
        };
        cache.save("example.net", &c);
        let back = cache.load("example.net").unwrap();
        assert_eq!(
            (back.id, back.policy, back.expires),
            (c.id, c.policy, c.expires)
        );
        assert!(cache.load("other.example").is_none());
        // Names that cannot be files are neither kept nor read.
        for bad in ["../x", ".hidden", "a/b", ""] {
            assert!(cache.file_of(bad).is_none(), "{bad}");
        }
        assert!(
            StsCache::new(443, None, None)
                .file_of("example.net")
                .is_none()
        );
    }
}
