//! The Sender Rewriting Scheme: mail an alias forwards off the machine leaves with an envelope
//! sender at our own domain, so that it passes SPF where it lands, and a bounce to that
//! address comes back here and is sent on to the original sender.
//!
//! The address forms are Shevek's, which postsrsd, Exim and others use:
//!
//! ```text
//! alice@example.org              → SRS0=HHHH=TT=example.org=alice@srs.domain
//! SRS0=HHHH=TT=example.org=alice@forwarder.test
//!                                → SRS1=HHHH=forwarder.test==HHHH=TT=example.org=alice@srs.domain
//! ```
//!
//! `TT` is the day (two base32 characters, days since 1970 modulo 1024), `HHHH` the first four
//! base64 characters of an HMAC-SHA1 of the rest under our secret. A bounce address is good for
//! `max_age_days` and only with the right hash: nobody can use us to send mail to any address
//! they like. The functions take the day as an argument (tested as tables).

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use relais_config::Config;
use relais_proto::{Mailbox, ReversePath};
use ring::hmac;

/// The base32 alphabet of the timestamp (RFC 4648).
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The secret's file in `data_dir`, made at first start when none is configured.
const SECRET_FILE: &str = "srs.secret";

/// Why an SRS address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrsError {
    /// Not in the SRS0 or SRS1 form.
    Malformed,
    /// The hash does not match: not made by us (or with another secret).
    BadHash,
    /// Older than `max_age_days`.
    Expired,
}

impl fmt::Display for SrsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SrsError::Malformed => "not a valid SRS address",
            SrsError::BadHash => "the SRS address was not made here",
            SrsError::Expired => "the SRS address has expired",
        })
    }
}

/// The rewriting: our domain, the secret, and the domains whose senders need none.
#[derive(Clone)]
pub struct Srs {
    key: hmac::Key,
    /// The domain of rewritten addresses, lower case.
    domain: String,
    /// Senders in these domains (ours) are not rewritten: we may send for them anyway.
    exempt: Vec<String>,
    /// How many days a bounce address is good for.
    max_age_days: u32,
}

impl fmt::Debug for Srs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Srs").field("domain", &self.domain).finish()
    }
}

/// Today, in days since 1970 (the clock of [`Srs::forward`] and [`Srs::reverse`]).
pub fn today() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs / 86_400).unwrap_or(0)
}

impl Srs {
    /// A rewriting with this secret for `domain`.
    pub fn new(secret: &[u8], domain: &str, exempt: &[String], max_age_days: u32) -> Srs {
        Srs {
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret),
            domain: domain.to_ascii_lowercase(),
            exempt: exempt.iter().map(|d| d.to_ascii_lowercase()).collect(),
            max_age_days,
        }
    }

    /// The rewriting `config` asks for (`[srs]`), `None` when it is off. Without a configured
    /// secret, the one in `data_dir/srs.secret` is used, made (random, mode 0600) if missing.
    pub fn from_config(config: &Config) -> Result<Option<Srs>, String> {
        let c = &config.srs;
        if !c.enabled {
            return Ok(None);
        }
        let secret = if c.secret.is_empty() {
            secret_file(&config.data_dir.join(SECRET_FILE))?
        } else {
            c.secret.as_bytes().to_vec()
        };
        let domain = if c.domain.is_empty() {
            &config.hostname
        } else {
            &c.domain
        };
        let days = u32::try_from(c.max_age.as_secs() / 86_400)
            .unwrap_or(u32::MAX)
            .max(1);
        Ok(Some(Srs::new(&secret, domain, &config.local_domains, days)))
    }

    /// The domain of rewritten addresses.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    fn hash(&self, parts: &[&str]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p.to_ascii_lowercase().as_bytes());
        }
        let tag = ctx.sign();
        STANDARD.encode(tag.as_ref())[..4].to_string()
    }

    /// The envelope sender of a copy forwarded off the machine: the null sender stays, a
    /// sender in one of our domains stays, any other is rewritten.
    pub fn forward(&self, sender: &ReversePath, today: u32) -> ReversePath {
        let Some(m) = sender.mailbox() else {
            return sender.clone();
        };
        let domain = m.domain_lower();
        if domain == self.domain || self.exempt.contains(&domain) {
            return sender.clone();
        }
        let local = &m.local;
        let upper = local.to_ascii_uppercase();
        let rewritten = if upper.starts_with("SRS0=") {
            // Someone else's SRS0: SRS1 keeps their domain and their address.
            let rest = &local[4..];
            format!("SRS1={}={domain}={rest}", self.hash(&[&domain, rest]))
        } else if upper.starts_with("SRS1=") {
            // Someone else's SRS1: the first forwarder's domain and address stay.
            let Some((first, rest)) = local[5..]
                .split_once('=')
                .and_then(|(_hash, tail)| tail.split_once("=="))
            else {
                return sender.clone();
            };
            let rest = format!("={rest}");
            format!("SRS1={}={first}={rest}", self.hash(&[first, &rest]))
        } else {
            let tt = timestamp(today);
            let hash = self.hash(&[&tt, &domain, local]);
            format!("SRS0={hash}={tt}={domain}={local}")
        };
        match Mailbox::parse(&format!("{rewritten}@{}", self.domain)) {
            Ok(m) => ReversePath::Mailbox(m),
            // An address that cannot be rewritten (too long) goes as it is.
            Err(_) => sender.clone(),
        }
    }

    /// True for an address in our SRS domain with an SRS local part.
    pub fn is_srs(&self, to: &Mailbox) -> bool {
        let upper = to.local.to_ascii_uppercase();
        to.domain_lower() == self.domain
            && (upper.starts_with("SRS0=") || upper.starts_with("SRS1="))
    }

    /// The address an SRS address stands for, if we made it and it has not expired.
    pub fn reverse(&self, to: &Mailbox, today: u32) -> Result<Mailbox, SrsError> {
        if !self.is_srs(to) {
            return Err(SrsError::Malformed);
        }
        let local = &to.local;
        let upper = local.to_ascii_uppercase();
        let original = if upper.starts_with("SRS0=") {
            let mut parts = local[5..].splitn(4, '=');
            let (Some(hash), Some(tt), Some(domain), Some(user)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(SrsError::Malformed);
            };
            if !hash.eq_ignore_ascii_case(&self.hash(&[tt, domain, user])) {
                return Err(SrsError::BadHash);
            }
            let day = day_of(tt).ok_or(SrsError::Malformed)?;
            if (today.wrapping_sub(day) % 1024) > self.max_age_days {
                return Err(SrsError::Expired);
            }
            format!("{user}@{domain}")
        } else {
            // SRS1=HHHH=domain==rest → SRS0rest@domain (the first forwarder checks it).
            let Some((hash, tail)) = local[5..].split_once('=') else {
                return Err(SrsError::Malformed);
            };
            let Some((domain, rest)) = tail.split_once("==") else {
                return Err(SrsError::Malformed);
            };
            let rest = format!("={rest}");
            if !hash.eq_ignore_ascii_case(&self.hash(&[domain, &rest])) {
                return Err(SrsError::BadHash);
            }
            format!("SRS0{rest}@{domain}")
        };
        Mailbox::parse(&original).map_err(|_| SrsError::Malformed)
    }
}

/// The two base32 characters of a day.
fn timestamp(day: u32) -> String {
    let t = day % 1024;
    let chars = [BASE32[(t >> 5) as usize], BASE32[(t & 31) as usize]];
    String::from_utf8_lossy(&chars).into_owned()
}

/// The day (modulo 1024) of a timestamp.
fn day_of(tt: &str) -> Option<u32> {
    let b = tt.as_bytes();
    if b.len() != 2 {
        return None;
    }
    let value = |c: u8| {
        BASE32
            .iter()
            .position(|&x| x == c.to_ascii_uppercase())
            .map(|p| p as u32)
    };
    Some((value(b[0])? << 5) | value(b[1])?)
}

/// The secret in `path`, made first if the file does not exist.
fn secret_file(path: &Path) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(s) if !s.is_empty() => return Ok(s),
        Ok(_) => return Err(format!("{}: empty SRS secret", path.display())),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("{}: {e}", path.display()));
        }
        Err(_) => {}
    }
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| "no random numbers for the SRS secret".to_string())?;
    let text = STANDARD.encode(secret);
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srs() -> Srs {
        Srs::new(b"secret", "fwd.example", &["local.example".to_string()], 21)
    }

    fn path(s: &str) -> ReversePath {
        if s.is_empty() {
            ReversePath::Null
        } else {
            ReversePath::Mailbox(Mailbox::parse(s).unwrap())
        }
    }

    const DAY: u32 = 20_000;

    #[test]
    fn senders_are_rewritten_unless_ours_or_null() {
        let s = srs();
        let f = |sender: &str| s.forward(&path(sender), DAY).to_string();
        assert_eq!(f(""), "");
        assert_eq!(f("alice@local.example"), "alice@local.example");
        assert_eq!(f("bob@fwd.example"), "bob@fwd.example");
        let rewritten = f("alice@example.org");
        assert!(rewritten.starts_with("SRS0="), "{rewritten}");
        assert!(
            rewritten.ends_with("=example.org=alice@fwd.example"),
            "{rewritten}"
        );
        assert_eq!(&rewritten[10..12], &timestamp(DAY));
        // someone else's SRS0 becomes SRS1, keeping their domain
        let theirs = f("SRS0=abcd=TT=example.org=alice@other.test");
        assert!(theirs.starts_with("SRS1="), "{theirs}");
        assert!(
            theirs.ends_with("=other.test==abcd=TT=example.org=alice@fwd.example"),
            "{theirs}"
        );
    }

    #[test]
    fn bounce_addresses_come_back_to_the_original_sender_while_fresh_and_ours() {
        let s = srs();
        let srs0 = s.forward(&path("Alice@Example.org"), DAY).to_string();
        let m = Mailbox::parse(&srs0).unwrap();
        // (days later, expected)
        let table: &[(u32, Result<&str, SrsError>)] = &[
            (0, Ok("Alice@example.org")),
            (21, Ok("Alice@example.org")),
            (22, Err(SrsError::Expired)),
            (1000, Err(SrsError::Expired)),
        ];
        for (later, expected) in table {
            let got = s.reverse(&m, DAY + later).map(|m| m.to_string());
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                *expected,
                "{later} days later"
            );
        }
        // case does not matter to the hash (some MTAs lower-case addresses)
        let lower = Mailbox::parse(&srs0.to_ascii_lowercase()).unwrap();
        assert!(s.reverse(&lower, DAY).is_ok());
        // another secret, a changed hash, a forged address, the wrong domain
        let other = Srs::new(b"other", "fwd.example", &[], 21);
        assert_eq!(other.reverse(&m, DAY), Err(SrsError::BadHash));
        let forged = Mailbox::parse("SRS0=AAAA=AB=example.org=victim@fwd.example").unwrap();
        assert_eq!(s.reverse(&forged, DAY), Err(SrsError::BadHash));
        for bad in [
            "SRS0=x@fwd.example",
            "SRS0=a=b@fwd.example",
            "SRS1=x@fwd.example",
        ] {
            let m = Mailbox::parse(bad).unwrap();
            assert!(
                matches!(
                    s.reverse(&m, DAY),
                    Err(SrsError::Malformed | SrsError::BadHash)
                ),
                "{bad}"
            );
        }
        let elsewhere = Mailbox::parse(&srs0.replace("fwd.example", "else.example")).unwrap();
        assert!(!s.is_srs(&elsewhere));
        // SRS1 back to the first forwarder's SRS0
        let srs1 = s
            .forward(&path("SRS0=abcd=TT=example.org=alice@other.test"), DAY)
            .to_string();
        let back = s
            .reverse(&Mailbox::parse(&srs1).unwrap(), DAY + 500)
            .unwrap();
        assert_eq!(
            back.to_string(),
            "SRS0=abcd=TT=example.org=alice@other.test"
        );
    }

    #[test]
    fn timestamps() {
        for day in [0, 1, 31, 32, 1023, 1024, 20_000] {
            assert_eq!(day_of(&timestamp(day)), Some(day % 1024));
        }
        assert_eq!(day_of("A"), None);
        assert_eq!(day_of("A1"), None);
    }
}
