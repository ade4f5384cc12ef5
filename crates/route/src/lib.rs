//! `relais-route`: where each recipient goes.
//!
//! Floor 3 of the flow of a message, above the configuration and the queued message: the SMTP
//! door asks [`Policy::check_recipient`] at `RCPT TO` (ours? a known user? may this client
//! relay?), and the queue manager asks [`Policy::destination`] at delivery (a mailbox, an
//! alias's targets, a remote domain, or nowhere). Local domains, virtual domains with users
//! of their own, and the aliases files ([`aliases`]) decide (`lookup.rs` says in which
//! order; `expand.rs` follows forwards at delivery; `home.rs` the system users' home
//! mailboxes and `.forward` files of `mailbox = "home"`); nothing here delivers. [`srs`] rewrites the sender of what aliases
//! forward off the machine, and routes the bounces to those addresses back.

pub mod aliases;
mod expand;
mod home;
mod lookup;
mod policy;
pub mod srs;

pub use aliases::{AliasError, Aliases};
pub use policy::{AliasFile, Destination, Policy, Route};
pub use srs::Srs;
