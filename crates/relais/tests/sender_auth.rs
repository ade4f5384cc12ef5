//! Sender authentication at the door (issue 11), end to end against a real `relais serve` on
//! 127.0.0.1, every DNS answer from the fixture DNS server of relais-dns on 127.0.0.1 (never
//! the internet):
//!
//! - [`spf`]: SPF at MAIL FROM (and HELO for the null sender) refused, tagged or let through,
//!   with the exact codes and texts, the `Received-SPF` and `Authentication-Results` headers of
//!   the delivered copy; swaks as the client for a refusal;
//! - [`content`]: DKIM signatures made by Python's dkimpy (RSA and Ed25519, both
//!   canonicalisations, two signatures, a broken body, a missing key), DMARC `reject` refused
//!   and `quarantine` filed into Junk, ARC chains sealed by dkimpy, forged
//!   `Authentication-Results` removed, a message over `verify_max_size`;
//! - [`clients`]: who the client is (issue 12): DNS lists scored at connect, reverse DNS,
//!   HELO names, sender domains on domain lists;
//! - [`bad_input`]: broken records, DNS failures and silence, huge and duplicate headers,
//!   content that is no message;
//! - [`signing`]: `relais dkim keygen`, and mail from authenticated submission and
//!   `relais sendmail` signed with the `From:` domain's key, verified by dkimpy.
//!
//! External tools: `swaks`, `python3` with `dkimpy`, `pynacl`, `dnspython` and
//! `cryptography` (scripts/deps.sh installs them).

#[path = "common/mod.rs"]
mod common;

#[path = "sender_auth/bad_input.rs"]
mod bad_input;
#[path = "sender_auth/clients.rs"]
mod clients;
#[path = "sender_auth/content.rs"]
mod content;
#[path = "sender_auth/signing.rs"]
mod signing;
#[path = "sender_auth/spf.rs"]
mod spf;
// The front door's server and client, of which these tests use a part.
#[allow(dead_code)]
#[path = "front_door/support.rs"]
mod support;
#[path = "sender_auth/zone.rs"]
mod zone;
