//! `relais sendmail` (also when called as `sendmail`): submit a message from a local program,
//! without SMTP, as the seeds suggest when port 25 is blocked. Through the running server when
//! there is one; straight into the spool otherwise (delivered at the next start).
//!
//! Options as sendmail has them: `-t` (recipients from To/Cc/Bcc; Bcc is removed), `-i` / `-oi`
//! (a lone `.` does not end the input), `-f sender`, `-F full-name`, `-C config` (relais; or the
//! `RELAIS_CONFIG` environment variable), and
//! other `-o…` / `-b…` options accepted and ignored (`-bs`, `-bd` are refused).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use relais_queue::submission::{self, Submission};
use relais_server::control;

use crate::exit;

/// sendmail's exit codes (sysexits).
mod sysexits {
    pub const USAGE: u8 = 64;
    pub const DATAERR: u8 = 65;
    pub const NOUSER: u8 = 67;
    pub const SOFTWARE: u8 = 70;
    pub const TEMPFAIL: u8 = 75;
}

#[derive(Debug, Default)]
struct Options {
    from_headers: bool,
    ignore_dots: bool,
    sender: Option<String>,
    full_name: Option<String>,
    config: Option<PathBuf>,
    recipients: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let mut value = |flag: &str| -> Result<String, String> {
            if a.len() > flag.len() {
                Ok(a[flag.len()..].to_string())
            } else {
                i += 1;
                args.get(i).cloned().ok_or(format!("{flag} needs a value"))
            }
        };
        match a.as_str() {
            "--" => {
                o.recipients.extend(args[i + 1..].iter().cloned());
                break;
            }
            "-t" => o.from_headers = true,
            "-i" | "-oi" => o.ignore_dots = true,
            "-bm" => {}
            "-bs" | "-bd" | "-bp" | "-bi" => {
                return Err(format!("{a} is not supported by relais sendmail"));
            }
            s if s.starts_with("-f") || s.starts_with("-r") => o.sender = Some(value(&s[..2])?),
            s if s.starts_with("-F") => o.full_name = Some(value("-F")?),
            s if s.starts_with("-C") => o.config = Some(PathBuf::from(value("-C")?)),
            s if s.starts_with("-o")
                || s.starts_with("-B")
                || s.starts_with("-N")
                || s.starts_with("-R")
                || s.starts_with("-V")
                || s.starts_with("-X") =>
            {
                // sendmail options relais has no use for (queue and DSN tuning): accepted.
                if matches!(&s[..2], "-B" | "-N" | "-R" | "-V" | "-X") && s.len() == 2 {
                    i += 1;
                }
            }
            s if s.starts_with('-') && s.len() > 1 => return Err(format!("unknown option {s}")),
            _ => o.recipients.push(a.clone()),
        }
        i += 1;
    }
    Ok(o)
}

/// Reads the message: all of standard input, or up to a lone `.` line without `-i`.
fn read_message(ignore_dots: bool) -> std::io::Result<Vec<u8>> {
    let mut all = Vec::new();
    std::io::stdin().read_to_end(&mut all)?;
    if ignore_dots {
        return Ok(all);
    }
    let mut out = Vec::with_capacity(all.len());
    for line in all.split_inclusive(|&b| b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare == b"." {
            break;
        }
        out.extend_from_slice(line);
    }
    Ok(out)
}

/// Addresses in the To, Cc and Bcc headers, and the message with Bcc removed.
fn recipients_from_headers(message: &[u8]) -> (Vec<String>, Vec<u8>) {
    let end = message
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|p| p + 1)
        .or_else(|| {
            message
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| p + 2)
        })
        .unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..end]).into_owned();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split_inclusive('\n') {
        if (line.starts_with(' ') || line.starts_with('\t')) && !fields.is_empty() {
            if let Some(last) = fields.last_mut() {
                last.1.push_str(line);
            }
        } else if let Some((k, _)) = line.split_once(':') {
            fields.push((k.to_string(), line.to_string()));
        } else {
            fields.push((String::new(), line.to_string()));
        }
    }
    let mut rcpts = Vec::new();
    let mut kept = String::new();
    for (k, raw) in &fields {
        let key = k.trim().to_ascii_lowercase();
        if matches!(key.as_str(), "to" | "cc" | "bcc") {
            let value = raw.split_once(':').map(|(_, v)| v).unwrap_or("");
            rcpts.extend(addresses(value));
        }
        if key != "bcc" {
            kept.push_str(raw);
        }
    }
    let mut out = kept.into_bytes();
    out.extend_from_slice(&message[end..]);
    (rcpts, out)
}

/// The addresses in a header value: `<a@b>` forms, else comma-separated bare addresses.
fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let part = part.trim();
        let addr = match (part.rfind('<'), part.rfind('>')) {
            (Some(a), Some(b)) if a < b => &part[a + 1..b],
            _ => part
                .split_whitespace()
                .find(|w| w.contains('@'))
                .unwrap_or(""),
        };
        let addr = addr.trim();
        if !addr.is_empty() {
            out.push(addr.to_string());
        }
    }
    out
}

/// Runs `relais sendmail ARGS…`.
pub fn run(args: &[String]) -> ExitCode {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return ExitCode::from(sysexits::USAGE);
        }
    };
    let config_path = o
        .config
        .clone()
        .or_else(|| std::env::var_os("RELAIS_CONFIG").map(PathBuf::from));
    let config = match crate::queue::load_config(config_path.as_deref()) {
        Ok(c) => c,
        Err(_) => return ExitCode::from(exit::CONFIG),
    };
    let message = match read_message(o.ignore_dots) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("sendmail: cannot read the message: {e}");
            return ExitCode::from(sysexits::DATAERR);
        }
    };
    let (mut recipients, message) = if o.from_headers {
        recipients_from_headers(&message)
    } else {
        (Vec::new(), message)
    };
    recipients.extend(o.recipients.iter().cloned());
    if recipients.is_empty() {
        eprintln!("sendmail: no recipients");
        return ExitCode::from(sysexits::NOUSER);
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".into());
    let sender = o
        .sender
        .clone()
        .unwrap_or_else(|| format!("{user}@{}", config.hostname));
    let mut message = message;
    if let Some(name) = &o.full_name
        && !String::from_utf8_lossy(relais_queue::headers::headers_of(&message))
            .to_ascii_lowercase()
            .contains("\nfrom:")
        && !message.starts_with(b"From:")
    {
        let mut m = format!("From: {name} <{sender}>\n").into_bytes();
        m.extend_from_slice(&message);
        message = m;
    }
    let sub = Submission {
        sender: if sender == "<>" {
            String::new()
        } else {
            sender
        },
        recipients,
        user,
        size: message.len(),
    };
    let line = format!("SUBMIT {}", serde_json::to_string(&sub).unwrap_or_default());
    let result = match control::request(&config.data_dir, &line, &message) {
        Some(r) => r.and_then(|a| {
            let v: serde_json::Value = serde_json::from_str(&a).map_err(|e| e.to_string())?;
            match (
                v.get("id").and_then(|x| x.as_str()),
                v.get("error").and_then(|x| x.as_str()),
            ) {
                (Some(id), _) => Ok(id.to_string()),
                (_, Some(e)) => Err(e.to_string()),
                _ => Err(format!("unexpected answer {a:?}")),
            }
        }),
        None => direct(&config, &sub, &message),
    };
    match result {
        Ok(id) => {
            eprintln!("sendmail: queued as {id}");
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            eprintln!("sendmail: {e}");
            if e.contains("recipient") || e.contains("sender") {
                ExitCode::from(sysexits::DATAERR)
            } else if e.contains("locked") {
                ExitCode::from(sysexits::TEMPFAIL)
            } else {
                ExitCode::from(sysexits::SOFTWARE)
            }
        }
    }
}

/// No server: straight into the spool.
fn direct(
    config: &relais_config::Config,
    sub: &Submission,
    message: &[u8],
) -> Result<String, String> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| e.to_string())?;
    let spool =
        relais_spool::Spool::open(&config.spool_dir(), relais_spool::SpoolOptions::default())
            .map_err(|e| e.to_string())?;
    let signers = relais_policy::Signers::load(config)?;
    let rt = relais_client::current_thread_runtime().map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now();
    let hostname = &config.hostname;
    let prepare = async |m: &[u8], id: relais_spool::QueueId| {
        relais_policy::prepare_local(&signers, hostname, &id.to_string(), now, m).await
    };
    let id = rt.block_on(submission::submit(
        &spool, hostname, sub, message, now, prepare,
    ))?;
    spool.shutdown();
    Ok(format!(
        "{id} (no server running: it is delivered when relais serve starts)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options() {
        let o = parse(&s(&["-t", "-oi", "-f", "a@b.c", "-Fname", "x@y.z", "-odq"])).unwrap();
        assert!(o.from_headers && o.ignore_dots);
        assert_eq!(o.sender.as_deref(), Some("a@b.c"));
        assert_eq!(o.full_name.as_deref(), Some("name"));
        assert_eq!(o.recipients, vec!["x@y.z"]);
        assert!(parse(&s(&["-bs"])).is_err());
        assert!(parse(&s(&["-f"])).is_err());
        assert_eq!(
            parse(&s(&["-fa@b.c", "--", "-weird@x"]))
                .unwrap()
                .recipients,
            vec!["-weird@x"]
        );
    }

    #[test]
    fn header_recipients_and_bcc_removal() {
        let m = b"From: me\nTo: A <a@x.test>, b@x.test\nCc: c@x.test\nBcc: hidden@x.test,\n  h2@x.test\nSubject: s\n\nBody\nBcc: not a header\n";
        let (r, out) = recipients_from_headers(m);
        assert_eq!(
            r,
            vec![
                "a@x.test",
                "b@x.test",
                "c@x.test",
                "hidden@x.test",
                "h2@x.test"
            ]
        );
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("hidden@x.test"));
        assert!(out.contains("Subject: s\n\nBody\nBcc: not a header\n"));
    }
}
