//! `relais-proto`: the SMTP protocol with no I/O.
//!
//! Both halves live here so the server and the diagnostics client agree on the grammar:
//! - server half: [`Command::parse`], the byte receivers in [`receiver`], and the [`Session`]
//!   state machine (inputs `handle_*`, outputs [`Session::poll_event`] and [`Session::output`]);
//! - client half: [`ReplyParser`], [`EhloResponse`], command encoding (`Display` of
//!   [`Command`]) and [`dot_stuff`].
//!
//! Nothing here opens a socket, reads a clock or touches a file. Reply texts are all in
//! [`replies`].

pub mod address;
pub mod client;
pub mod command;
pub mod date;
pub mod params;
pub mod receiver;
pub mod replies;
pub mod reply;
pub mod session;

pub use address::{Mailbox, ReversePath};
pub use client::EhloResponse;
pub use command::{Command, CommandError};
pub use params::{BodyType, MailParams, Notify, RcptParams, Ret};
pub use receiver::{DataReceiver, DotStuffer, LineReceiver, dot_stuff};
pub use reply::{EnhancedStatus, Reply, ReplyError, ReplyParser};
pub use session::{
    AuthOutcome, Envelope, Event, Recipient, Session, SessionConfig, Stored, Verdict,
};
