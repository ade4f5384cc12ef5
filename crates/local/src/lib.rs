//! `relais-local`: local delivery agents, where a message for a local recipient is written.
//!
//! Floor 3 of the flow of a message, beside remote delivery: the queue manager (floor 4) hands
//! each local copy to one of these and gets an [`Outcome`](relais_queue::Outcome) back.
//! - [`maildir`]: the mailbox of a local user, written in batches made durable together;
//! - [`pipe`]: `|command`, the message on standard input, the exit status read as sendmail's
//!   `sysexits.h`;
//! - [`mbox`]: `/path/file`, appended in mbox format under a lock;
//! - [`quota`]: Maildir++ quotas (`maildirsize`), the verdict pure;
//! - [`lmtp`]: LMTP (RFC 2033) to a host:port or a unix socket, one result per recipient.
//!
//! - [`rules`]: the `[local]` settings, loop signs, the identity commands and files run as.
//!
//! Each reads the message from a [`Read`](std::io::Read) in pieces of [`PIECE`] octets, so a
//! message of any size takes bounded memory, returns an [`Outcome`](relais_queue::Outcome) per
//! recipient and never panics on what the other side does; retrying, bouncing and logging are
//! the queue manager's.

pub mod lmtp;
pub mod maildir;
pub mod mbox;
pub mod pipe;
pub mod quota;
pub mod rules;

/// Agents read a message and write it in pieces of this many octets: a message of any size
/// takes bounded memory.
pub const PIECE: usize = 64 * 1024;

/// At most this many bytes of what a program or server said go into an outcome's text.
pub const MAX_DIAGNOSTIC: usize = 500;

/// Makes program output fit on one log line: the first [`MAX_DIAGNOSTIC`] bytes, invalid UTF-8
/// and control characters replaced, runs of white space folded into one space.
pub(crate) fn one_line(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_DIAGNOSTIC)];
    let text = String::from_utf8_lossy(cut);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            c
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    if bytes.len() > MAX_DIAGNOSTIC {
        out.push_str(" ...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_on_one_line() {
        assert_eq!(one_line(b"  no such\r\n user\t\x07 \n"), "no such user");
        assert_eq!(one_line(b""), "");
        assert_eq!(one_line(b"\xff ok"), "\u{fffd} ok");
        let long = vec![b'x'; 2000];
        let s = one_line(&long);
        assert_eq!(s.len(), MAX_DIAGNOSTIC + 4);
        assert!(s.ends_with(" ..."));
    }
}
