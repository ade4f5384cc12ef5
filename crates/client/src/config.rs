//! How long to wait, and how to treat certificates.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Stage;

/// Settings for one client session.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long the TCP connection may take to open. RFC 5321 names no value; past this the port
    /// is reported as filtered.
    pub connect_timeout: Duration,
    /// How long to wait for the `220` greeting (RFC 5321 §4.5.3.2.1: 5 minutes). The seeds call a
    /// banner slower than 10 s slow; that is a verdict for the caller, not a reason to give up.
    pub banner_timeout: Duration,
    /// How long to wait for the reply to any other command, MAIL and RCPT included
    /// (RFC 5321 §4.5.3.2.2 and .3: 5 minutes).
    pub command_timeout: Duration,
    /// How long to wait for the `354` after DATA (RFC 5321 §4.5.3.2.4: 2 minutes).
    pub data_init_timeout: Duration,
    /// How long one write of message content may take (RFC 5321 §4.5.3.2.5: 3 minutes).
    pub data_block_timeout: Duration,
    /// How long to wait for the reply after the final `.` or `BDAT … LAST`
    /// (RFC 5321 §4.5.3.2.6: 10 minutes; the server may be delivering).
    pub data_end_timeout: Duration,
    /// Certificate handling for STARTTLS and implicit TLS.
    pub tls: TlsPolicy,
    /// At most this many lines of message content go into the transcript; the rest is counted.
    pub transcript_data_lines: usize,
    /// Connect from this local address (swaks' `--local-interface`); `None`: the system picks.
    pub local_address: Option<std::net::IpAddr>,
}

impl Default for ClientConfig {
    /// The client timeouts of RFC 5321 §4.5.3.2, a 30 s connect timeout, and a TLS policy that
    /// records certificate problems without refusing the connection.
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(30),
            banner_timeout: Duration::from_secs(300),
            command_timeout: Duration::from_secs(300),
            data_init_timeout: Duration::from_secs(120),
            data_block_timeout: Duration::from_secs(180),
            data_end_timeout: Duration::from_secs(600),
            tls: TlsPolicy::default(),
            transcript_data_lines: 1000,
            local_address: None,
        }
    }
}

impl ClientConfig {
    /// Every timeout set to `t`, as swaks' `--timeout` does.
    pub fn with_timeout(t: Duration) -> Self {
        ClientConfig {
            connect_timeout: t,
            banner_timeout: t,
            command_timeout: t,
            data_init_timeout: t,
            data_block_timeout: t,
            data_end_timeout: t,
            ..Self::default()
        }
    }

    /// The timeout that applies to waiting for a reply at `stage`.
    pub fn timeout_for(&self, stage: Stage) -> Duration {
        match stage {
            Stage::Resolve | Stage::Connect | Stage::TlsHandshake => self.connect_timeout,
            Stage::Banner => self.banner_timeout,
            Stage::Data => self.data_init_timeout,
            Stage::Bdat => self.data_block_timeout,
            Stage::Message => self.data_end_timeout,
            _ => self.command_timeout,
        }
    }
}

/// What to do about the server's certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsPolicy {
    /// Refuse the connection when the certificate does not verify. When false (the default, as
    /// in swaks) the result of verification is still computed and reported in
    /// [`crate::TlsInfo::verification`]: a probe must be able to look at bad certificates.
    pub verify: bool,
    /// The name to send as SNI and to check the certificate against, when it is not the name
    /// given to [`crate::SmtpClient::starttls`] / [`crate::SmtpClient::connect_tls`].
    pub server_name: Option<String>,
    /// Extra trust anchors: a PEM file of CA certificates, added to the system's store.
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the system's store.
    pub ca_file_only: bool,
    /// DANE: the server's DNSSEC-validated TLSA records. When there are some, the
    /// certificate must match one of them (and `verify` and the trust store are not used).
    pub dane: Vec<Tlsa>,
}

/// A TLSA record (RFC 6698), as DANE for SMTP (RFC 7672) uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// 3: DANE-EE, 2: DANE-TA (0 and 1 are never matched).
    pub usage: u8,
    /// 0: the whole certificate, 1: its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0: exact, 1: SHA-256, 2: SHA-512.
    pub matching: u8,
    /// What is matched.
    pub data: Vec<u8>,
}
