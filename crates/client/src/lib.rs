//! `relais-client`: the async SMTP client engine under `relais send`, `relais shell`,
//! `relais probe` and remote delivery.
//!
//! One [`SmtpClient`] is one session, driven step by step: [`SmtpClient::connect`] (or
//! [`SmtpClient::connect_tls`] for port 465), [`SmtpClient::ehlo`], [`SmtpClient::starttls`],
//! [`SmtpClient::auth_plain`] / [`SmtpClient::auth_login`], [`SmtpClient::mail`],
//! [`SmtpClient::rcpt`], [`SmtpClient::data`] or [`SmtpClient::bdat`], [`SmtpClient::quit`].
//! Raw lines go through [`SmtpClient::command`] and RFC 2920 groups through
//! [`SmtpClient::pipeline`].
//!
//! The grammar (replies, EHLO keywords, command encoding, dot-stuffing) is `relais-proto`'s;
//! this crate adds the socket, TLS (rustls with ring), timeouts per stage (RFC 5321 §4.5.3.2 by
//! default) and a [`Transcript`] with the time of every line. Errors say which [`Stage`] failed
//! and keep apart what a diagnosis needs: host not found, refused, timed out (filtered),
//! closed, reset, TLS, not SMTP, refused by a reply.
//!
//! ```no_run
//! # async fn demo() -> Result<(), relais_client::ClientError> {
//! use relais_client::{ClientConfig, SmtpClient, resolve};
//! let addr = resolve("mx.example.com", 25).await?[0];
//! let mut client = SmtpClient::new(ClientConfig::default());
//! let banner = client.connect(addr).await?;
//! let ehlo = client.ehlo("client.example.org").await?;
//! if ehlo.has("STARTTLS") {
//!     let tls = client.starttls("mx.example.com").await?;
//!     println!("{} {} verified: {}", tls.version, tls.cipher, tls.verification.is_verified());
//!     client.ehlo("client.example.org").await?;
//! }
//! client.quit().await?;
//! for entry in &client.transcript().entries {
//!     println!("{:>8.3} {entry}", entry.at.as_secs_f64());
//! }
//! # let _ = banner; Ok(()) }
//! ```

pub mod cert;
mod client;
mod config;
mod dane;
mod error;
mod https;
mod runtime;
mod stream;
mod tls;
mod transcript;

pub use client::{SmtpClient, Timing, cram_md5, resolve, sasl_plain};
pub use config::{ClientConfig, TlsPolicy, Tlsa};
pub use dane::matches as dane_matches;
pub use error::{ClientError, Stage};
pub use https::{HttpResponse, https_get};
pub use runtime::current_thread_runtime;
pub use tls::verify_chain as dane_verify;
pub use tls::{CertVerification, TlsInfo, negotiated};
pub use transcript::{Direction, Entry, Sink, Transcript};
