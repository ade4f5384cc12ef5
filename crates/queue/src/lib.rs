//! `relais-queue`: the queued message, as every room of the server sees it.
//!
//! Floor 2 of the flow of a message, above the spool (which stores opaque envelopes and
//! bodies) and below everything that receives, routes or delivers mail:
//! - [`SpooledEnvelope`]: the SMTP envelope with its delivery progress as kept in the spool,
//!   per recipient an [`Outcome`] and, for an alias, its [`Target`]s;
//! - [`Enqueue`]: the one way into the spool, used by the SMTP door, local submission and
//!   delivery reports; it logs `queued:` once;
//! - [`Content`]: a queued message's content as it goes out, streamed from the spool;
//! - [`headers`]: the trace headers relais writes (`Received`, `Return-Path`, `Delivered-To`);
//! - [`admin`]: list, show, hold, release, delete, shared by the queue manager and the offline
//!   `relais queue`, and [`select`]: which messages `--from`, `--to`, `--older-than` and
//!   `--state` pick; [`submission`]: what `relais sendmail` hands over;
//! - [`QueueHandle`]: how the SMTP door and the control socket tell the queue manager about
//!   new mail and requests, without depending on it.

pub mod admin;
mod content;
mod enqueue;
mod envelope;
pub mod headers;
mod outcome;
pub mod select;
pub mod submission;
mod target;
mod trigger;

pub use content::{Content, MAX_HEADER};
pub use enqueue::Enqueue;
pub use envelope::{Arrival, EnvelopeError, Expansion, QueueState, SpooledEnvelope};
pub use outcome::Outcome;
pub use target::Target;
pub use trigger::{Answer, Command, QueueHandle};
