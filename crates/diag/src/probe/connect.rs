//! The first stages: the TCP connection, the TLS handshake on connect (port 465), and the
//! banner with its delay.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use relais_client::{ClientError, TlsInfo};
use relais_proto::Reply;

use super::exit;
use super::report::Verdict;
use super::session::{Session, Step, Stop, stage_error};

impl Session<'_> {
    /// Connects to the address.
    pub(super) async fn connect(&mut self) -> Step {
        let started = Instant::now();
        let address = self.job.address;
        if let Err(e) = self.client.open(address).await {
            self.failed("connect", started, &e, connect_failed(&e, address));
            return Err(Stop);
        }
        self.report
            .stage("connect", Some(started.elapsed()), "connected");
        self.add(Verdict::ok("connect", format!("connected to {address}")));
        Ok(())
    }

    /// TLS from the first byte (port 465): the handshake before the banner.
    pub(super) async fn tls_on_connect(&mut self) -> Step<Option<TlsInfo>> {
        if !self.context.tls_on_connect {
            return Ok(None);
        }
        let started = Instant::now();
        match self.client.tls_handshake(&self.job.host).await {
            Ok(info) => {
                self.report.stage(
                    "tls",
                    Some(started.elapsed()),
                    format!("{} {}", info.version, info.cipher),
                );
                self.add(Verdict::ok(
                    "tls",
                    format!("TLS on connect: {} with {}", info.version, info.cipher),
                ));
                Ok(Some(info))
            }
            Err(e) => {
                self.failed("tls", started, &e, Verdict::fail(
                    exit::TLS,
                    "tls",
                    format!("the TLS handshake on connect failed: {e}"),
                    "check that this port speaks TLS from the first byte (465, not 25 or 587, which use STARTTLS: drop --tls-on-connect there) and the server's TLS configuration",
                ));
                Err(Stop)
            }
        }
    }

    /// The greeting: its code and how long it took. Returns the name the banner gives.
    pub(super) async fn banner(&mut self) -> Step<String> {
        let started = Instant::now();
        let banner = match self.client.banner().await {
            Ok(reply) => reply,
            Err(e) => {
                self.failed(
                    "banner",
                    started,
                    &e,
                    stage_error(&e, exit::BANNER, "banner"),
                );
                return Err(Stop);
            }
        };
        let took = started.elapsed();
        self.report.banner = Some(banner.to_string());
        self.report.stage("banner", Some(took), banner.to_string());
        if let Some(refused) = banner_refused(&banner) {
            self.add(refused);
            return self.quit_and_stop().await;
        }
        self.add(banner_delay(took, self.context.slow_banner));
        Ok(banner_name(&banner))
    }
}

/// The verdict on a connection that could not be made.
pub(super) fn connect_failed(e: &ClientError, address: SocketAddr) -> Verdict {
    let (reason, advice) = match e {
        ClientError::Refused { .. } => (
            format!(
                "connection to {address} refused: nothing listens on the port, or a firewall rejects (Outlook 0x800CCC0E)"
            ),
            "check that the server runs and listens on this address and port; check firewalls",
        ),
        ClientError::TimedOut { after, .. } => (
            format!(
                "no answer to the connection within {}s: the port is filtered by a firewall, or the host is down (Outlook 0x800CCC0E)",
                after.as_secs_f64()
            ),
            "check firewalls between here and the server (many ISPs block outgoing port 25)",
        ),
        _ => (
            format!("cannot connect to {address}: {e} (Outlook 0x800CCC0E)"),
            "check the network route to the server",
        ),
    };
    Verdict::fail(exit::CONNECT, "connect", reason, advice)
}

/// A greeting other than 220 refuses the session.
pub(super) fn banner_refused(banner: &Reply) -> Option<Verdict> {
    if banner.code == 220 {
        return None;
    }
    let outlook = if banner.code == 421 {
        " (Outlook 0x800CCC67)"
    } else {
        ""
    };
    Some(Verdict::fail(
        exit::BANNER,
        "banner",
        format!("the server refuses the session: {banner}{outlook}"),
        "a 421 is temporary (overload, connection limits, maintenance); a 554 banner refuses this client (blocklist, policy); read the server's log",
    ))
}

/// A greeting slower than `threshold` is worth a warning.
pub(super) fn banner_delay(took: Duration, threshold: Duration) -> Verdict {
    if took > threshold {
        Verdict::warn(
            "banner-delay",
            format!(
                "the greeting took {:.1} s (more than {} s): a greet-pause or an overloaded server, not a dead one",
                took.as_secs_f64(),
                threshold.as_secs_f64()
            ),
            "check the server's greet-pause / tarpit settings, DNS lookups it does on connect (reverse DNS, DNSBL) and its load; impatient clients give up",
        )
    } else {
        Verdict::ok(
            "banner-delay",
            format!("greeting after {}", crate::ms(took)),
        )
    }
}

/// The first word of the greeting: the name the server gives itself.
pub(super) fn banner_name(banner: &Reply) -> String {
    banner
        .lines
        .first()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default()
        .to_string()
}

/// The name the certificate must carry: the host probed, or the banner's name when the
/// host is an address.
pub(super) fn tls_name(host: &str, banner_name: &str) -> String {
    if host.parse::<IpAddr>().is_ok() {
        banner_name.to_string()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use relais_client::Stage;

    use super::super::report::Level;
    use super::*;

    #[test]
    fn connection_failures() {
        let address: SocketAddr = "192.0.2.1:25".parse().unwrap();
        // (error, words in the reason)
        let table: &[(ClientError, &str)] = &[
            (
                ClientError::Refused { addr: address },
                "connection to 192.0.2.1:25 refused",
            ),
            (
                ClientError::TimedOut {
                    stage: Stage::Connect,
                    after: Duration::from_secs(5),
                },
                "no answer to the connection within 5s",
            ),
            (
                ClientError::Closed {
                    stage: Stage::Connect,
                },
                "cannot connect to 192.0.2.1:25",
            ),
        ];
        for (e, words) in table {
            let v = connect_failed(e, address);
            assert_eq!(
                (v.level, v.check, v.exit),
                (Level::Fail, "connect", exit::CONNECT)
            );
            assert!(v.reason.contains(words), "{}", v.reason);
        }
    }

    #[test]
    fn banners() {
        // (code, refused, Outlook hint)
        let table: &[(u16, bool, bool)] =
            &[(220, false, false), (421, true, true), (554, true, false)];
        for &(code, refused, outlook) in table {
            let reply = Reply::new(code, None, "mx.example.test ESMTP");
            let v = banner_refused(&reply);
            assert_eq!(v.is_some(), refused, "{code}");
            if let Some(v) = v {
                assert_eq!(
                    (v.level, v.check, v.exit),
                    (Level::Fail, "banner", exit::BANNER)
                );
                assert_eq!(v.reason.contains("0x800CCC67"), outlook);
            }
            assert_eq!(banner_name(&reply), "mx.example.test");
        }
        assert_eq!(banner_name(&Reply::new(220, None, "")), "");
    }

    #[test]
    fn banner_delays() {
        let ms = Duration::from_millis;
        // (took, threshold, level)
        let table: &[(Duration, Duration, Level)] = &[
            (ms(5), ms(10_000), Level::Ok),
            (ms(10_000), ms(10_000), Level::Ok),
            (ms(10_001), ms(10_000), Level::Warn),
            (ms(1_300), ms(1_000), Level::Warn),
            (ms(0), ms(0), Level::Ok),
        ];
        for &(took, threshold, level) in table {
            let v = banner_delay(took, threshold);
            assert_eq!((v.level, v.check), (level, "banner-delay"), "{took:?}");
        }
        assert_eq!(banner_delay(ms(5), ms(10)).reason, "greeting after 5.0 ms");
    }

    #[test]
    fn certificate_names() {
        // (host, banner name, name to check)
        let table: &[(&str, &str, &str)] = &[
            ("mx.example.test", "other.test", "mx.example.test"),
            ("192.0.2.1", "mx.example.test", "mx.example.test"),
            ("2001:db8::1", "mx6.example.test", "mx6.example.test"),
        ];
        for (host, banner, want) in table {
            assert_eq!(tls_name(host, banner), *want);
        }
    }
}
