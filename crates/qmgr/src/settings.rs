//! What the queue manager needs from the configuration, resolved once at start: retry rules,
//! the remote delivery settings (resolver, routes, relay host, client), local delivery settings.

use std::collections::HashMap;

use relais_config::{Config, TlsMode};
use relais_local::rules::LocalSettings;
use relais_remote::{self as remote, RemoteSettings};

use crate::retry::Retry;

/// Everything the manager needs.
pub struct QueueSettings {
    /// Our host name (Received, DSN).
    pub hostname: String,
    /// Retry rules.
    pub retry: Retry,
    /// Most simultaneous transactions per destination domain.
    pub remote_concurrency: usize,
    /// Remote delivery settings.
    pub remote: RemoteSettings,
    /// Local delivery settings (LMTP, alias commands and files).
    pub local: LocalSettings,
    /// The sender rewriting of copies aliases forward off the machine (`[srs]`).
    pub srs: Option<relais_route::Srs>,
    /// Room the Maildirs' file system keeps (`[limits] min_free_space`): below it, Maildir
    /// copies wait for the next attempt instead of being written.
    pub min_free_space: relais_config::FreeSpace,
}

impl QueueSettings {
    /// The settings of `[delivery]` and `[local]`; an error names what cannot work.
    pub fn from_config(config: &Config) -> Result<QueueSettings, String> {
        let d = &config.delivery;
        // `[delivery] resolver` where set, else the one of every lookup.
        let nameserver = d.resolver.unwrap_or(config.nameserver());
        let resolver = relais_dns::Resolver::new(&relais_dns::ResolverOptions {
            nameserver,
            ..Default::default()
        })
        .map_err(|e| format!("DNS resolver: {e}"))?;
        let client = relais_client::ClientConfig {
            connect_timeout: d.connect_timeout,
            // Delivery keeps no transcript of message content (the client records dialogue lines
            // for the diagnostics; here they would only cost time).
            transcript_data_lines: 0,
            ..Default::default()
        };
        let routes = d
            .routes
            .iter()
            .map(|(dom, hop)| (dom.to_ascii_lowercase(), hop.clone()))
            .collect();
        // `dane` anywhere: a second resolver, validating, for TLSA records only (the MX and
        // address lookups of other domains must not depend on DNSSEC).
        let dane = d.tls == TlsMode::Dane || d.tls_policy.values().any(|m| *m == TlsMode::Dane);
        let dane_resolver = match dane {
            true => Some(
                relais_dns::Resolver::new(&relais_dns::ResolverOptions {
                    nameserver,
                    dnssec: Some(d.dnssec_trust_anchor.clone()),
                    ..Default::default()
                })
                .map_err(|e| format!("DNSSEC resolver for DANE: {e}"))?,
            ),
            false => None,
        };
        Ok(QueueSettings {
            hostname: config.hostname.clone(),
            retry: Retry {
                first: d.first_retry,
                max: d.max_retry,
                lifetime: d.lifetime,
                delay_warning: (!d.delay_warning.is_zero()).then_some(d.delay_warning),
            },
            remote_concurrency: d.remote_concurrency,
            remote: remote::RemoteSettings {
                hostname: config.hostname.clone(),
                routes,
                relayhost: d.relayhost.clone(),
                resolver,
                client,
                source: d.source_address.clone(),
                tls: remote::TlsSettings {
                    default: d.tls,
                    policy: d.tls_policy.clone().into_iter().collect(),
                },
                tls_ca_file: d.tls_ca_file.clone(),
                hops: hops(d)?,
                cache: remote::ConnectionCache::default(),
                tls_match: d.tls_match.clone().into_iter().collect(),
                sts: d.mta_sts.enabled.then(|| {
                    remote::sts::StsCache::new(
                        d.mta_sts.https_port,
                        d.tls_ca_file.clone(),
                        Some(config.data_dir.join("mta-sts")),
                    )
                }),
                dane_resolver,
                chunking: d.chunking,
                reports: d
                    .tls_rpt_dir
                    .clone()
                    .map(|dir| remote::tlsrpt::TlsReports::new(dir, &config.hostname)),
            },
            local: LocalSettings {
                quotas: relais_local::quota::Quotas::from_config(config),
                ..LocalSettings::from_config(&config.local)?
            },
            srs: relais_route::Srs::from_config(config).map_err(|e| format!("[srs]: {e}"))?,
            min_free_space: config.limits.min_free_space,
        })
    }
}

/// The next hops' settings, passwords read from their files (the first line).
fn hops(d: &relais_config::DeliveryConfig) -> Result<HashMap<String, remote::Hop>, String> {
    let mut out = HashMap::new();
    for (key, h) in &d.hop {
        let auth = match &h.password_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "[delivery.hop.{key:?}] password_file {}: {e}",
                        path.display()
                    )
                })?;
                Some(remote::Credentials {
                    user: h.user.clone(),
                    password: text.lines().next().unwrap_or("").to_string(),
                })
            }
        };
        let hop = remote::Hop {
            auth,
            tls_on_connect: h.tls_on_connect,
        };
        out.insert(key.clone(), hop);
    }
    Ok(out)
}
