//! Trace headers relais adds: `Received` at reception, `Return-Path` and `Delivered-To` at
//! local delivery (RFC 5321 §4.4).

use std::time::SystemTime;

use relais_proto::Envelope;
use relais_proto::date::DateTime;

/// Everything the `Received` header says about a reception.
pub struct ReceivedInfo<'a> {
    /// The envelope (HELO name, ESMTP or not, SMTPUTF8, recipients).
    pub envelope: &'a Envelope,
    /// The client's IP address.
    pub client_ip: std::net::IpAddr,
    /// The client's verified host name, if known (`unknown` otherwise, as Postfix writes).
    pub client_name: Option<&'a str>,
    /// Our host name.
    pub hostname: &'a str,
    /// The queue id.
    pub id: &'a str,
    /// When the message arrived.
    pub when: SystemTime,
    /// TLS version and cipher, when the session was encrypted.
    pub tls: Option<&'a (String, String)>,
    /// True when the client authenticated.
    pub authenticated: bool,
}

/// The `Received:` header, folded, with CRLF line ends.
pub fn received(info: &ReceivedInfo<'_>) -> String {
    let e = info.envelope;
    // RFC 3848 / RFC 6531 protocol names: ESMTP, ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA, …
    let mut protocol = String::from(if e.mail_params.smtputf8 {
        "UTF8SMTP"
    } else if e.esmtp {
        "ESMTP"
    } else {
        "SMTP"
    });
    if info.tls.is_some() {
        protocol.push('S');
    }
    if info.authenticated {
        protocol.push('A');
    }
    let ip = match info.client_ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("IPv6:{v6}"),
    };
    let helo = sanitize(&e.helo);
    let mut h = format!(
        "Received: from {helo} ({} [{ip}])\r\n",
        info.client_name.unwrap_or("unknown")
    );
    if let Some((version, cipher)) = info.tls {
        h.push_str(&format!("\t(using {version} with cipher {cipher})\r\n"));
    }
    h.push_str(&format!(
        "\tby {} (relais) with {protocol} id {}",
        info.hostname, info.id
    ));
    if let [only] = e.recipients.as_slice() {
        h.push_str(&format!("\r\n\tfor <{}>", sanitize(&only.to.to_string())));
    }
    h.push_str(&format!("; {}\r\n", rfc5322_date(info.when)));
    h
}

/// `Return-Path: <sender>` and `Delivered-To: rcpt`, CRLF-terminated.
pub fn delivery_headers(return_path: &str, delivered_to: &str) -> String {
    format!(
        "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
        sanitize(return_path),
        sanitize(delivered_to)
    )
}

/// `Delivered-To: rcpt`, CRLF-terminated: put on a copy forwarded by an alias, so that the copy
/// is known for a loop if it ever comes back to that alias.
pub fn delivered_to(rcpt: &str) -> String {
    format!("Delivered-To: {}\r\n", sanitize(rcpt))
}

/// Keeps header text on one line: control characters become `?`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The `Received:` header of a message a local user submitted (sendmail, the control socket):
/// `Received: by HOST (relais, from userid USER) id ID for <RCPT>; DATE`.
pub fn received_local(
    hostname: &str,
    user: &str,
    id: &str,
    envelope: &Envelope,
    when: SystemTime,
) -> String {
    let single = match envelope.recipients.as_slice() {
        [only] => format!("\r\n\tfor <{}>", sanitize(&only.to.to_string())),
        _ => String::new(),
    };
    format!(
        "Received: by {hostname} (relais, from userid {})\r\n\tid {id}{single}; {}\r\n",
        sanitize(user),
        rfc5322_date(when)
    )
}

/// The header block of a message (up to and including the blank line, or all of it).
pub fn headers_of(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => &message[..p + 2],
        None => message,
    }
}

/// An RFC 5322 date in UTC: `Sun, 22 Nov 2026 13:45:52 +0000`.
pub fn rfc5322_date(t: SystemTime) -> String {
    DateTime::from_system(t).rfc5322()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use std::time::UNIX_EPOCH;

    #[test]
    fn dates() {
        let at = |s| rfc5322_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(at(1_795_355_152), "Sun, 22 Nov 2026 13:45:52 +0000");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn received_header() {
        let env = Envelope {
            helo: "client\r\nX-Injected: yes".into(),
            esmtp: true,
            from: relais_proto::ReversePath::Null,
            mail_params: Default::default(),
            recipients: vec![relais_proto::Recipient {
                to: relais_proto::Mailbox::parse("u@example.com").unwrap(),
                params: Default::default(),
            }],
            size: 0,
            chunked: false,
            bare_lf: false,
        };
        let h = received(&ReceivedInfo {
            envelope: &env,
            client_ip: "127.0.0.1".parse().unwrap(),
            client_name: None,
            hostname: "mx.example.com",
            id: "ABC123",
            when: UNIX_EPOCH,
            tls: None,
            authenticated: false,
        });
        assert_eq!(
            h,
            "Received: from client??X-Injected: yes (unknown [127.0.0.1])\r\n\tby mx.example.com (relais) with ESMTP id ABC123\r\n\tfor <u@example.com>; Thu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
        let tls = (
            "TLSv1.3".to_string(),
            "TLS13_AES_256_GCM_SHA384".to_string(),
        );
        let h = received(&ReceivedInfo {
            envelope: &env,
            client_ip: "::1".parse().unwrap(),
            client_name: None,
            hostname: "mx.example.com",
            id: "ABC123",
            when: UNIX_EPOCH,
            tls: Some(&tls),
            authenticated: true,
        });
        assert!(h.contains("(unknown [IPv6:::1])\r\n\t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\r\n\tby mx.example.com (relais) with ESMTPSA id ABC123"), "{h}");
    }
}
