//! The milter protocol's packets, without I/O: what the MTA sends ([`Command`]), what a filter
//! answers ([`Response`]), and the framing of both (a 4-octet big-endian length, one command
//! octet, the data). Version 6, the one Postfix and Sendmail 8.14+ speak.

use std::net::IpAddr;

/// The protocol version we offer.
pub const VERSION: u32 = 6;

/// Largest packet a filter may send (libmilter's own limit is far smaller); beyond, the filter
/// is broken and gets the default action.
pub const MAX_PACKET: usize = 2 * 1024 * 1024;

/// Largest body chunk in one `SMFIC_BODY` (libmilter's `MILTER_CHUNK_SIZE`).
pub const BODY_CHUNK: usize = 65535;

/// What a filter may do to a message (`SMFIF_*`): the ones we offer.
pub mod actions {
    /// Add header fields.
    pub const ADD_HEADERS: u32 = 0x01;
    /// Replace the body.
    pub const CHANGE_BODY: u32 = 0x02;
    /// Change or delete header fields (and insert them, with version 6).
    pub const CHANGE_HEADERS: u32 = 0x10;
    /// Hold the message (`SMFIR_QUARANTINE`).
    pub const QUARANTINE: u32 = 0x20;
    /// Everything we honour.
    pub const OFFERED: u32 = ADD_HEADERS | CHANGE_BODY | CHANGE_HEADERS | QUARANTINE;
}

/// Steps a filter may ask to skip or not to answer (`SMFIP_*`).
pub mod steps {
    /// No `SMFIC_CONNECT`.
    pub const NO_CONNECT: u32 = 0x01;
    /// No `SMFIC_HELO`.
    pub const NO_HELO: u32 = 0x02;
    /// No `SMFIC_MAIL`.
    pub const NO_MAIL: u32 = 0x04;
    /// No `SMFIC_RCPT`.
    pub const NO_RCPT: u32 = 0x08;
    /// No `SMFIC_BODY`.
    pub const NO_BODY: u32 = 0x10;
    /// No `SMFIC_HEADER`.
    pub const NO_HEADERS: u32 = 0x20;
    /// No `SMFIC_EOH`.
    pub const NO_EOH: u32 = 0x40;
    /// No answer to `SMFIC_HEADER`.
    pub const NR_HEADER: u32 = 0x80;
    /// No `SMFIC_UNKNOWN` (we never send it).
    pub const NO_UNKNOWN: u32 = 0x100;
    /// No `SMFIC_DATA`.
    pub const NO_DATA: u32 = 0x200;
    /// The filter may answer `SMFIR_SKIP` to a body chunk.
    pub const SKIP: u32 = 0x400;
    /// Rejected recipients are sent too (we never do).
    pub const RCPT_REJ: u32 = 0x800;
    /// No answer to `SMFIC_CONNECT`.
    pub const NR_CONNECT: u32 = 0x1000;
    /// No answer to `SMFIC_HELO`.
    pub const NR_HELO: u32 = 0x2000;
    /// No answer to `SMFIC_MAIL`.
    pub const NR_MAIL: u32 = 0x4000;
    /// No answer to `SMFIC_RCPT`.
    pub const NR_RCPT: u32 = 0x8000;
    /// No answer to `SMFIC_DATA`.
    pub const NR_DATA: u32 = 0x10000;
    /// No answer to `SMFIC_UNKNOWN`.
    pub const NR_UNKNOWN: u32 = 0x20000;
    /// No answer to `SMFIC_EOH`.
    pub const NR_EOH: u32 = 0x40000;
    /// No answer to `SMFIC_BODY`.
    pub const NR_BODY: u32 = 0x80000;
    /// Header values keep their leading space.
    pub const HEADER_LEADING_SPACE: u32 = 0x100000;
    /// Everything we honour.
    pub const OFFERED: u32 = 0x1F_FFFF & !RCPT_REJ;
}

/// The steps of a message, as the macros name them (`SMFIC_*` of the command they go with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The connection.
    Connect,
    /// HELO or EHLO.
    Helo,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA.
    Data,
    /// The end of the header.
    EndOfHeaders,
    /// The end of the message.
    EndOfMessage,
}

impl Stage {
    fn code(self) -> u8 {
        match self {
            Stage::Connect => b'C',
            Stage::Helo => b'H',
            Stage::Mail => b'M',
            Stage::Rcpt => b'R',
            Stage::Data => b'T',
            Stage::EndOfHeaders => b'N',
            Stage::EndOfMessage => b'E',
        }
    }
}

/// What the MTA sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `SMFIC_OPTNEG`: version, actions and steps offered.
    Negotiate {
        /// Protocol version.
        version: u32,
        /// `SMFIF_*` offered.
        actions: u32,
        /// `SMFIP_*` offered.
        steps: u32,
    },
    /// `SMFIC_MACRO`: name-value pairs for the command that follows.
    Macros(Stage, &'a [(&'a str, String)]),
    /// `SMFIC_CONNECT`: the client's name (or `[ip]`), its address and port.
    Connect {
        /// PTR name, or the address in brackets.
        name: &'a str,
        /// Address and port.
        addr: Option<(IpAddr, u16)>,
    },
    /// `SMFIC_HELO`.
    Helo(&'a str),
    /// `SMFIC_MAIL`: `<sender>` and the ESMTP parameters.
    Mail(&'a [String]),
    /// `SMFIC_RCPT`: `<recipient>` and the ESMTP parameters.
    Rcpt(&'a [String]),
    /// `SMFIC_DATA`.
    Data,
    /// `SMFIC_HEADER`: name and value.
    Header(&'a str, &'a str),
    /// `SMFIC_EOH`.
    EndOfHeaders,
    /// `SMFIC_BODY`: a chunk of at most [`BODY_CHUNK`] octets.
    Body(&'a [u8]),
    /// `SMFIC_BODYEOB`.
    EndOfMessage,
    /// `SMFIC_ABORT`: the transaction is over without a message; no answer.
    Abort,
    /// `SMFIC_QUIT`: the connection is over; no answer.
    Quit,
}

impl Command<'_> {
    /// Appends the packet to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        match self {
            Command::Negotiate {
                version,
                actions,
                steps,
            } => {
                out.push(b'O');
                for n in [version, actions, steps] {
                    out.extend_from_slice(&n.to_be_bytes());
                }
            }
            Command::Macros(stage, pairs) => {
                out.push(b'D');
                out.push(stage.code());
                for (name, value) in pairs.iter() {
                    put_str(out, name);
                    put_str(out, value);
                }
            }
            Command::Connect { name, addr } => {
                out.push(b'C');
                put_str(out, name);
                match addr {
                    Some((ip, port)) => {
                        out.push(if ip.is_ipv4() { b'4' } else { b'6' });
                        out.extend_from_slice(&port.to_be_bytes());
                        put_str(out, &ip.to_string());
                    }
                    None => out.push(b'U'),
                }
            }
            Command::Helo(name) => {
                out.push(b'H');
                put_str(out, name);
            }
            Command::Mail(args) | Command::Rcpt(args) => {
                out.push(if matches!(self, Command::Mail(_)) {
                    b'M'
                } else {
                    b'R'
                });
                for a in args.iter() {
                    put_str(out, a);
                }
            }
            Command::Data => out.push(b'T'),
            Command::Header(name, value) => {
                out.push(b'L');
                put_str(out, name);
                put_str(out, value);
            }
            Command::EndOfHeaders => out.push(b'N'),
            Command::Body(chunk) => {
                out.push(b'B');
                out.extend_from_slice(chunk);
            }
            Command::EndOfMessage => out.push(b'E'),
            Command::Abort => out.push(b'A'),
            Command::Quit => out.push(b'Q'),
        }
        let len = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// A string with its NUL; NULs inside (never in SMTP data we pass) are dropped.
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(|&b| b != 0));
    out.push(0);
}

/// What a filter answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `SMFIC_OPTNEG` back: the filter's version, the actions it wants, the steps it skips.
    Negotiate {
        /// Its version.
        version: u32,
        /// `SMFIF_*` it may use.
        actions: u32,
        /// `SMFIP_*` it asks for.
        steps: u32,
    },
    /// `SMFIR_CONTINUE`: go on.
    Continue,
    /// `SMFIR_ACCEPT`: accept; no more questions about this message (or connection).
    Accept,
    /// `SMFIR_REJECT`: refuse with the MTA's text.
    Reject,
    /// `SMFIR_TEMPFAIL`: refuse for now with the MTA's text.
    Tempfail,
    /// `SMFIR_DISCARD`: accept and drop the message silently.
    Discard,
    /// `SMFIR_REPLYCODE`: refuse with the filter's own reply (`550 5.7.1 text`).
    ReplyCode(String),
    /// `SMFIR_SKIP`: no more body chunks needed.
    Skip,
    /// `SMFIR_PROGRESS`: still working; wait longer.
    Progress,
    /// `SMFIR_ADDHEADER`: add a field at the end of the header.
    AddHeader(String, String),
    /// `SMFIR_INSHEADER`: insert a field at this position (0: first).
    InsertHeader(u32, String, String),
    /// `SMFIR_CHGHEADER`: change the nth (from 1) field of this name; an empty value deletes.
    ChangeHeader(u32, String, String),
    /// `SMFIR_REPLBODY`: a chunk of the new body.
    ReplaceBody(Vec<u8>),
    /// `SMFIR_QUARANTINE`: hold the message, for this reason.
    Quarantine(String),
    /// Anything else (recipient or sender changes we did not offer, unknown codes).
    Other(u8),
}

/// A packet that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads one packet from the front of `buf`: the response and the octets it took, `Ok(None)`
/// when more are needed.
pub fn decode(buf: &[u8]) -> Result<Option<(Response, usize)>, Malformed> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len > MAX_PACKET {
        return Err(Malformed(format!("packet length {len}")));
    }
    let Some(packet) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let (code, data) = (packet[0], &packet[1..]);
    let response = match code {
        b'O' => {
            let n = |i: usize| {
                data.get(i * 4..i * 4 + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            };
            let (Some(version), Some(actions), Some(steps)) = (n(0), n(1), n(2)) else {
                return Err(Malformed("short option negotiation".into()));
            };
            Response::Negotiate {
                version,
                actions,
                steps,
            }
        }
        b'c' => Response::Continue,
        b'a' => Response::Accept,
        b'r' => Response::Reject,
        b't' => Response::Tempfail,
        b'd' => Response::Discard,
        b's' => Response::Skip,
        b'p' => Response::Progress,
        b'y' => Response::ReplyCode(strings(data, 1)?.remove(0)),
        b'h' => {
            let mut s = strings(data, 2)?;
            let value = s.remove(1);
            Response::AddHeader(s.remove(0), value)
        }
        b'i' | b'm' => {
            let Some(index) = data.get(..4) else {
                return Err(Malformed("short header change".into()));
            };
            let index = u32::from_be_bytes([index[0], index[1], index[2], index[3]]);
            let mut s = strings(&data[4..], 2)?;
            let (name, value) = (s.remove(0), s.remove(0));
            if code == b'i' {
                Response::InsertHeader(index, name, value)
            } else {
                Response::ChangeHeader(index, name, value)
            }
        }
        b'b' => Response::ReplaceBody(data.to_vec()),
        b'q' => Response::Quarantine(strings(data, 1)?.remove(0)),
        other => Response::Other(other),
    };
    Ok(Some((response, 4 + len)))
}

/// The first `n` NUL-terminated strings of `data` (a missing last NUL is tolerated).
fn strings(data: &[u8], n: usize) -> Result<Vec<String>, Malformed> {
    let mut out: Vec<String> = data
        .split(|&b| b == 0)
        .take(n)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    if out.len() < n {
        return Err(Malformed(format!("expected {n} strings")));
    }
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u8, data: &[u8]) -> Vec<u8> {
        let mut p = u32::try_from(data.len() + 1)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        p.push(code);
        p.extend_from_slice(data);
        p
    }

    #[test]
    fn commands() {
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let mail = ["<a@example.org>".to_string(), "SIZE=10".to_string()];
        let macros = [
            ("i", "QID".to_string()),
            ("{auth_authen}", "al".to_string()),
        ];
        let table: Vec<(Command, Vec<u8>)> = vec![
            (
                Command::Negotiate {
                    version: 6,
                    actions: 0x33,
                    steps: 0x1F_F7FF,
                },
                packet(b'O', &[0, 0, 0, 6, 0, 0, 0, 0x33, 0, 0x1F, 0xF7, 0xFF]),
            ),
            (
                Command::Connect {
                    name: "mx.example.org",
                    addr: Some((ip, 2525)),
                },
                packet(b'C', b"mx.example.org\x004\x09\xdd127.0.0.2\0"),
            ),
            (
                Command::Connect {
                    name: "localhost",
                    addr: None,
                },
                packet(b'C', b"localhost\0U"),
            ),
            (
                Command::Helo("client.example"),
                packet(b'H', b"client.example\0"),
            ),
            (
                Command::Mail(&mail),
                packet(b'M', b"<a@example.org>\0SIZE=10\0"),
            ),
            (
                Command::Macros(Stage::Mail, &macros),
                packet(b'D', b"Mi\0QID\0{auth_authen}\0al\0"),
            ),
            (
                Command::Header("Subject", "hi\n\tthere"),
                packet(b'L', b"Subject\0hi\n\tthere\0"),
            ),
            (Command::Body(b"x\r\n"), packet(b'B', b"x\r\n")),
            (Command::EndOfMessage, packet(b'E', b"")),
            (Command::Abort, packet(b'A', b"")),
            (Command::Quit, packet(b'Q', b"")),
        ];
        for (command, want) in table {
            let mut out = Vec::new();
            command.encode(&mut out);
            assert_eq!(out, want, "{command:?}");
        }
    }

    #[test]
    fn responses() {
        let table: Vec<(Vec<u8>, Response)> = vec![
            (packet(b'c', b""), Response::Continue),
            (packet(b'a', b""), Response::Accept),
            (packet(b'r', b""), Response::Reject),
            (packet(b't', b""), Response::Tempfail),
            (packet(b'd', b""), Response::Discard),
            (
                packet(b'y', b"554 5.7.1 Gtube pattern\0"),
                Response::ReplyCode("554 5.7.1 Gtube pattern".into()),
            ),
            (
                packet(b'h', b"X-Spam\0Yes\0"),
                Response::AddHeader("X-Spam".into(), "Yes".into()),
            ),
            (
                packet(b'i', b"\0\0\0\x01DKIM-Signature\0v=1\0"),
                Response::InsertHeader(1, "DKIM-Signature".into(), "v=1".into()),
            ),
            (
                packet(b'm', b"\0\0\0\x02Subject\0\0"),
                Response::ChangeHeader(2, "Subject".into(), String::new()),
            ),
            (
                packet(b'b', b"new\r\n"),
                Response::ReplaceBody(b"new\r\n".to_vec()),
            ),
            (
                packet(b'q', b"virus\0"),
                Response::Quarantine("virus".into()),
            ),
            (packet(b'+', b"<x@y>\0"), Response::Other(b'+')),
            (
                packet(b'O', &[0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0x10]),
                Response::Negotiate {
                    version: 6,
                    actions: 1,
                    steps: 0x10,
                },
            ),
        ];
        for (bytes, want) in table {
            let got = decode(&bytes).unwrap().unwrap();
            assert_eq!(got, (want, bytes.len()));
            // Any shorter prefix asks for more.
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), Ok(None), "{bytes:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn malformed() {
        for bad in [
            vec![0, 0, 0, 0],
            vec![0xFF, 0, 0, 0, b'c'],
            packet(b'O', &[0, 0, 0, 6]),
            packet(b'm', b"\0\0"),
            packet(b'h', b"only-a-name"),
        ] {
            assert!(decode(&bad).is_err(), "{bad:?}");
        }
    }
}
