//! The raw SMTP client of the delivery tests ([`Smtp`]): one command, one reply, as a
//! person at a telnet prompt would; and a test message to send.

use super::*;

/// One SMTP reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// All lines, joined with newlines.
    pub text: String,
}

/// A raw SMTP client.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    /// Connects, reads the greeting and says EHLO.
    pub fn connect(addr: SocketAddr) -> Smtp {
        let stream = TcpStream::connect(addr).expect("connect to relais");
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let mut c = Smtp {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        };
        let greeting = c.reply().expect("greeting");
        assert_eq!(greeting.code, 220, "{}", greeting.text);
        c.expect("EHLO client.test", 250);
        c
    }

    /// Reads one reply.
    pub fn reply(&mut self) -> io::Result<Reply> {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {text:?}"),
                ));
            }
            let line = line.trim_end().to_string();
            let more = line.as_bytes().get(3) == Some(&b'-');
            text.push(line);
            if !more {
                break;
            }
        }
        let code = text
            .last()
            .and_then(|l| l.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok(Reply {
            code,
            text: text.join("\n"),
        })
    }

    /// Sends a command line and reads the reply.
    pub fn cmd(&mut self, line: &str) -> io::Result<Reply> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// Sends a command line and asserts the reply code.
    #[track_caller]
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self
            .cmd(line)
            .unwrap_or_else(|e| panic!("{line}: no reply: {e}"));
        assert_eq!(r.code, code, "{line} → {}", r.text);
        r
    }

    /// One transaction: `from` and each of `rcpts` are the arguments of MAIL FROM: and RCPT
    /// TO: (with their parameters, `<a@b> RET=HDRS`); the message gets CRLF line ends and
    /// dot-stuffing. Returns the queue id.
    pub fn try_send(&mut self, from: &str, rcpts: &[&str], message: &str) -> io::Result<String> {
        let bad = |r: Reply| io::Error::other(r.text);
        let r = self.cmd(&format!("MAIL FROM:{from}"))?;
        if r.code != 250 {
            return Err(bad(r));
        }
        for to in rcpts {
            let r = self.cmd(&format!("RCPT TO:{to}"))?;
            if r.code != 250 {
                return Err(bad(r));
            }
        }
        let r = self.cmd("DATA")?;
        if r.code != 354 {
            return Err(bad(r));
        }
        let mut data = String::with_capacity(message.len() + 64);
        for line in message.lines() {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.writer.write_all(data.as_bytes())?;
        let r = self.reply()?;
        if r.code != 250 {
            return Err(bad(r));
        }
        let at = r.text.find("queued as ").map(|i| i + "queued as ".len());
        let id: String = at
            .map(|i| {
                r.text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect()
            })
            .unwrap_or_default();
        if id.is_empty() {
            return Err(io::Error::other(format!("no queue id in {:?}", r.text)));
        }
        Ok(id)
    }

    /// [`Smtp::try_send`] that must succeed.
    #[track_caller]
    pub fn send(&mut self, from: &str, rcpts: &[&str], message: &str) -> String {
        self.try_send(from, rcpts, message)
            .unwrap_or_else(|e| panic!("sending from {from} to {rcpts:?}: {e}"))
    }

    /// QUIT.
    pub fn quit(mut self) {
        let _ = self.cmd("QUIT");
    }
}

/// A small message with a unique Message-ID `<tag@client.test>` and a body line naming `tag`.
pub fn message(subject: &str, tag: &str) -> String {
    format!(
        "From: Sender <sender@relais.test>\nTo: someone@elsewhere.test\nSubject: {subject}\n\
         Message-ID: <{tag}@client.test>\nDate: Mon, 1 Jun 2026 10:00:00 +0000\n\n\
         Body of {tag}.\n.leading dot line\nLast line.\n"
    )
}

/// The value (first line, trimmed) of the first header `name` of a message.
pub fn header_value(message: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}
