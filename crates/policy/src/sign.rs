//! Mail we send for our users, made fit to leave: DKIM signatures (RFC 6376) with the key of
//! the `From:` domain (`[[dkim]]`), and the `Date` and `Message-ID` a submitted message lacks
//! (as Postfix's cleanup adds them).
//!
//! Submissions over SMTP stream: [`Outgoing`] keeps the header section, picks the key from
//! its `From:`, then hashes the body as it arrives on a task of its own (mail-auth's streaming
//! signer), so a large message is never held whole. Local submissions, whole already, go
//! through the same [`Outgoing`].
//!
//! The headers it makes are put in front of the content at delivery (the content is already
//! in the spool by then), so the signer sees them first, as the receiver will.

use std::fs;
use std::sync::Arc;
use std::time::SystemTime;

use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use mail_auth::{AuthenticatedMessage, dkim::Signature};
use relais_config::{Config, DkimKeyConfig};

use crate::{fields, one_field};
use rustls_pki_types::{PrivateKeyDer, pem::PemObject};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The header fields signed, when present (RFC 6376 §5.4.1's recommendation, with the MIME
/// fields); `From` twice, so that no second `From` can be added without breaking it.
const SIGNED: &[&str] = &[
    "From",
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// The longest header section kept to find `From:`; a longer one is not signed.
const MAX_HEAD: usize = 256 * 1024;

/// A loaded signing key.
enum Key {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// The same key, as an ARC sealer.
enum Sealer {
    Rsa(ArcSealer<RsaKey<Sha256>, Done>),
    Ed25519(ArcSealer<Ed25519Key, Done>),
}

/// One `[[dkim]]` entry, ready to sign and seal.
struct Entry {
    domain: String,
    selector: String,
    key: Key,
    sealer: Sealer,
}

/// The key an ARC set is sealed with: the `[[dkim]]` key of the forwarding domain.
#[derive(Clone)]
pub struct Sealing(Arc<Entry>);

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealing({}:{})", self.0.domain, self.0.selector)
    }
}

impl Sealing {
    /// `d=` and `s=` of the seal.
    pub fn name(&self) -> (&str, &str) {
        (&self.0.domain, &self.0.selector)
    }

    /// Seals `message` (as received) with the results of its checks and its chain: the
    /// `ARC-Seal`, `ARC-Message-Signature` and `ARC-Authentication-Results` header fields,
    /// one line each, in that order.
    pub fn seal(
        &self,
        message: &AuthenticatedMessage<'_>,
        results: &mail_auth::AuthenticationResults<'_>,
        chain: &mail_auth::ArcOutput<'_>,
    ) -> Result<Vec<String>, String> {
        let set = match &self.0.sealer {
            Sealer::Rsa(s) => s.seal(message, results, chain),
            Sealer::Ed25519(s) => s.seal(message, results, chain),
        }
        .map_err(|e| format!("cannot seal: {e}"))?;
        Ok(fields(&set.to_header()))
    }
}

/// The signing keys of every domain we sign for.
#[derive(Clone, Default)]
pub struct Signers {
    entries: Vec<Arc<Entry>>,
}

impl std::fmt::Debug for Signers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.entries
                    .iter()
                    .map(|e| format!("{}:{}", e.domain, e.selector)),
            )
            .finish()
    }
}

/// A private key file read into a key mail-auth signs with.
pub enum PrivateKey {
    /// RSA (PKCS#1 or PKCS#8).
    Rsa(RsaKey<Sha256>),
    /// Ed25519 (PKCS#8).
    Ed25519(Ed25519Key),
}

impl PrivateKey {
    /// Reads a PEM file.
    pub fn load(path: &std::path::Path) -> Result<PrivateKey, String> {
        let pem = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let der = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| format!("{}: not a PEM private key ({e})", path.display()))?;
        let bad = |e: mail_auth::Error| format!("{}: {e}", path.display());
        match der {
            PrivateKeyDer::Pkcs8(ref p) => match Ed25519Key::from_pkcs8_der(p.secret_pkcs8_der()) {
                Ok(k) => Ok(PrivateKey::Ed25519(k)),
                Err(_) => RsaKey::from_key_der(der).map(PrivateKey::Rsa).map_err(bad),
            },
            der => RsaKey::from_key_der(der).map(PrivateKey::Rsa).map_err(bad),
        }
    }

    /// `rsa` or `ed25519`: the `k=` of its DNS record.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PrivateKey::Rsa(_) => "rsa",
            PrivateKey::Ed25519(_) => "ed25519",
        }
    }

    /// The public key as published in `p=`: RSA in PKCS#1 (`RSAPublicKey`) DER, Ed25519 raw.
    pub fn public_key(&self) -> Vec<u8> {
        match self {
            PrivateKey::Rsa(k) => k.public_key(),
            PrivateKey::Ed25519(k) => k.public_key(),
        }
    }
}

fn sealer<T: SigningKey<Hasher = Sha256>>(
    key: T,
    domain: &str,
    selector: &str,
) -> ArcSealer<T, Done> {
    ArcSealer::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED.iter().copied().chain(["DKIM-Signature"]))
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

fn signer<T: SigningKey>(key: T, domain: &str, selector: &str) -> DkimSigner<T, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

impl Entry {
    fn load(c: &DkimKeyConfig) -> Result<Entry, String> {
        let (d, s) = (&c.domain, &c.selector);
        // Read twice: the signer and the sealer each own their key.
        let key = match PrivateKey::load(&c.key)? {
            PrivateKey::Rsa(k) => Key::Rsa(signer(k, d, s)),
            PrivateKey::Ed25519(k) => Key::Ed25519(signer(k, d, s)),
        };
        let sealer = match PrivateKey::load(&c.key)? {
            PrivateKey::Rsa(k) => Sealer::Rsa(sealer(k, d, s)),
            PrivateKey::Ed25519(k) => Sealer::Ed25519(sealer(k, d, s)),
        };
        Ok(Entry {
            domain: c.domain.clone(),
            selector: c.selector.clone(),
            key,
            sealer,
        })
    }

    fn sign(&self, message: &[u8]) -> mail_auth::Result<Signature> {
        match &self.key {
            Key::Rsa(s) => s.sign(message),
            Key::Ed25519(s) => s.sign(message),
        }
    }
}

impl Signers {
    /// The keys of `[[dkim]]`, read now; an error names the file.
    pub fn load(config: &Config) -> Result<Signers, String> {
        let entries = config
            .dkim
            .iter()
            .map(|c| Entry::load(c).map(Arc::new))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("[[dkim]] key {e}"))?;
        Ok(Signers { entries })
    }

    /// True when no domain has a key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key to seal mail forwarded by `domain` with (its own, or a parent's).
    pub fn sealing(&self, domain: &str) -> Option<Sealing> {
        self.for_domain(domain).cloned().map(Sealing)
    }

    /// The key for mail from `domain`: its own, or the closest parent domain's.
    fn for_domain(&self, domain: &str) -> Option<&Arc<Entry>> {
        let domain = domain.to_ascii_lowercase();
        self.entries
            .iter()
            .filter(|e| {
                domain == e.domain
                    || domain
                        .strip_suffix(&e.domain)
                        .is_some_and(|rest| rest.ends_with('.'))
            })
            .max_by_key(|e| e.domain.len())
    }
}

/// What [`Outgoing`] made of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Header fields to put in front of the content, one line each: the `DKIM-Signature`,
    /// then a missing `Date` and `Message-ID`.
    pub headers: Vec<String>,
    /// `d=` and `s=` of the signature made.
    pub signed: Option<(String, String)>,
    /// Why a message that should have been signed was not (for the log).
    pub unsigned: Option<String>,
}

impl Prepared {
    /// Logs the signature made, or why none was.
    pub fn log(&self, id: &str) {
        if let Some((d, s)) = &self.signed {
            tracing::info!(event = "dkim_signed", queue_id = %id, "{id}: DKIM-signed d={d} s={s}");
        }
        if let Some(why) = &self.unsigned {
            tracing::warn!(
                event = "dkim_unsigned",
                queue_id = %id,
                reason = %why,
                "{id}: not DKIM-signed: {why}"
            );
        }
    }
}

/// A whole message submitted locally (`relais sendmail`, the control socket): the headers to
/// add, logged.
pub async fn prepare_local(
    signers: &Signers,
    hostname: &str,
    id: &str,
    now: SystemTime,
    message: &[u8],
) -> Vec<String> {
    let mut out = Outgoing::new(signers, hostname, id, now);
    out.feed(message);
    let prepared = out.finish().await;
    prepared.log(id);
    prepared.headers
}

/// A submitted message on its way in: signed and completed as it streams.
pub struct Outgoing {
    signers: Signers,
    /// Our host name, in a `Message-ID` we make.
    hostname: String,
    /// The queue id, in a `Message-ID` we make.
    id: String,
    /// When it arrived, for a `Date` we make.
    now: SystemTime,
    state: State,
}

enum State {
    /// Reading the header section.
    Head(Vec<u8>),
    /// The header is known: the signer (if any) runs on its own task.
    Body {
        /// `Date` and `Message-ID` to add.
        added: Vec<String>,
        /// The signer's input and its result.
        signing: Option<(mpsc::UnboundedSender<Vec<u8>>, JoinHandle<Signed>)>,
        /// Why it is not signed.
        unsigned: Option<String>,
    },
}

/// A signer task's answer: the header, `d=` and `s=`, or why it failed.
type Signed = Result<(String, String, String), String>;

impl Outgoing {
    /// A message with queue id `id`, arriving `now`.
    pub fn new(signers: &Signers, hostname: &str, id: &str, now: SystemTime) -> Outgoing {
        Outgoing {
            signers: signers.clone(),
            hostname: hostname.to_string(),
            id: id.to_string(),
            now,
            state: State::Head(Vec::new()),
        }
    }

    /// More content, as received (CRLF line ends).
    pub fn feed(&mut self, chunk: &[u8]) {
        match &mut self.state {
            State::Head(head) => {
                let from = head.len().saturating_sub(3);
                head.extend_from_slice(chunk);
                let ended =
                    head[from..].windows(4).any(|w| w == b"\r\n\r\n") || head.starts_with(b"\r\n");
                if ended || head.len() > MAX_HEAD {
                    let head = std::mem::take(head);
                    self.start(head);
                }
            }
            State::Body {
                signing: Some((tx, _)),
                ..
            } => {
                let _ = tx.send(chunk.to_vec());
            }
            State::Body { .. } => {}
        }
    }

    /// The header section is known (or too long to look for one): decide what to add, and
    /// start the signer with everything received so far.
    fn start(&mut self, head: Vec<u8>) {
        let end = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
            .unwrap_or(head.len());
        let parsed = AuthenticatedMessage::parse(&head[..end]);
        let mut added = Vec::new();
        let (has_date, has_id, from) = match &parsed {
            Some(m) => (
                m.has_date_header(),
                m.has_message_id_header(),
                m.from().to_string(),
            ),
            None => (false, false, String::new()),
        };
        if !has_date {
            added.push(format!(
                "Date: {}",
                relais_proto::date::DateTime::from_system(self.now).rfc5322()
            ));
        }
        if !has_id {
            added.push(format!("Message-ID: <{}@{}>", self.id, self.hostname));
        }
        let domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let entry = if head.len() > MAX_HEAD {
            Err("the header section is too long".to_string())
        } else if self.signers.is_empty() {
            Err(String::new())
        } else {
            self.signers
                .for_domain(domain)
                .cloned()
                .ok_or_else(|| format!("no DKIM key for the From: domain {domain:?}"))
        };
        let (signing, unsigned) = match entry {
            Ok(entry) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let mut first = Vec::new();
                for h in &added {
                    first.extend_from_slice(h.as_bytes());
                    first.extend_from_slice(b"\r\n");
                }
                first.extend_from_slice(&head);
                let _ = tx.send(first);
                (Some((tx, tokio::spawn(sign_stream(entry, rx)))), None)
            }
            Err(why) => (None, Some(why).filter(|w| !w.is_empty())),
        };
        self.state = State::Body {
            added,
            signing,
            unsigned,
        };
    }

    /// The end of the content: the headers to add.
    pub async fn finish(mut self) -> Prepared {
        if let State::Head(head) = &mut self.state {
            let head = std::mem::take(head);
            self.start(head);
        }
        let State::Body {
            added,
            signing,
            unsigned,
        } = self.state
        else {
            return Prepared::default();
        };
        let mut prepared = Prepared {
            headers: Vec::new(),
            signed: None,
            unsigned,
        };
        if let Some((tx, task)) = signing {
            drop(tx);
            match task.await {
                Ok(Ok((header, d, s))) => {
                    prepared.headers.push(header);
                    prepared.signed = Some((d, s));
                }
                Ok(Err(e)) => prepared.unsigned = Some(e),
                Err(e) => prepared.unsigned = Some(format!("the signer stopped: {e}")),
            }
        }
        prepared.headers.extend(added);
        prepared
    }
}

/// Hashes what arrives on `rx` with `entry`'s key, until the sender is dropped.
async fn sign_stream(entry: Arc<Entry>, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) -> Signed {
    let signature = match &entry.key {
        Key::Rsa(s) => {
            let mut stream = s.sign_streaming();
            while let Some(chunk) = rx.recv().await {
                stream.write(&chunk);
            }
            stream.finish()
        }
        Key::Ed25519(s) => {
            let mut stream = s.sign_streaming();
            while let Some(chunk) = rx.recv().await {
                stream.write(&chunk);
            }
            stream.finish()
        }
    };
    let signature = signature.map_err(|e| format!("cannot sign: {e}"))?;
    Ok((
        one_field(&signature.to_header()),
        entry.domain.clone(),
        entry.selector.clone(),
    ))
}

impl Signers {
    /// Signs a whole message now (for tests and tools): the `DKIM-Signature` header, one line.
    pub fn sign(&self, message: &[u8]) -> Option<Result<String, String>> {
        let end = message
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(message.len(), |p| p + 4);
        let parsed = AuthenticatedMessage::parse(&message[..end])?;
        let from = parsed.from().to_string();
        let entry = self.for_domain(from.rsplit_once('@')?.1)?;
        Some(
            entry
                .sign(message)
                .map(|s| one_field(&s.to_header()))
                .map_err(|e| e.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_chosen_by_the_closest_domain() {
        let dir = std::env::temp_dir().join(format!("relais-sign-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let key = dir.join("ed.pem");
        fs::write(
            &key,
            crate::keygen::generate(crate::keygen::Algorithm::Ed25519)
                .unwrap()
                .private_pem,
        )
        .unwrap();
        let mut config = Config::default();
        for (domain, selector) in [("example.org", "top"), ("mail.example.org", "sub")] {
            config.dkim.push(DkimKeyConfig {
                domain: domain.into(),
                selector: selector.into(),
                key: key.clone(),
            });
        }
        let signers = Signers::load(&config).unwrap();
        let pick = |d: &str| signers.for_domain(d).map(|e| e.selector.as_str());
        assert_eq!(pick("example.org"), Some("top"));
        assert_eq!(pick("EXAMPLE.org"), Some("top"));
        assert_eq!(pick("news.example.org"), Some("top"));
        assert_eq!(pick("mail.example.org"), Some("sub"));
        assert_eq!(pick("x.mail.example.org"), Some("sub"));
        assert_eq!(pick("badexample.org"), None);
        assert_eq!(pick("example.com"), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn missing_date_and_message_id_are_added_and_signed() {
        let signers = Signers::default();
        let mut out = Outgoing::new(&signers, "mx.example.org", "ABC123", SystemTime::UNIX_EPOCH);
        out.feed(b"From: a@example.org\r\nSubj");
        out.feed(b"ect: x\r\n\r\nbody\r\n");
        let p = out.finish().await;
        assert_eq!(
            p.headers,
            [
                "Date: Thu, 1 Jan 1970 00:00:00 +0000",
                "Message-ID: <ABC123@mx.example.org>"
            ]
        );
        assert_eq!(p.signed, None);
        assert_eq!(p.unsigned, None, "no keys at all: nothing to say");

        let mut out = Outgoing::new(&signers, "h", "I", SystemTime::UNIX_EPOCH);
        out.feed(b"Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\n");
        assert_eq!(out.finish().await, Prepared::default());
    }
}
