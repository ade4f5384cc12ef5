//! `|command` delivery: the message on a program's standard input, as sendmail's `prog` mailer
//! and Postfix's local(8) do it.
//!
//! - The command line goes to `/bin/sh -c`, in `/`, in its own process group, with a clean
//!   environment: `PATH=/usr/bin:/bin`, `SHELL=/bin/sh`, and as in Postfix's local(8)
//!   `SENDER` (empty for the null sender), `RECIPIENT`, `LOCAL` and `DOMAIN` (its two halves)
//!   and `ORIGINAL_RECIPIENT` (the address before alias expansion).
//! - Standard output and standard error are read; their first
//!   [`MAX_DIAGNOSTIC`] bytes go into the outcome's text.
//! - The message is read and written in pieces of [`PIECE`](crate::PIECE) octets. A program that
//!   exits without reading all of its input (`EPIPE`) is not an error in itself: the exit status
//!   decides. A message that cannot be read to its end (the spool) kills the process group before
//!   its input is closed, so the program never takes a cut message as whole, and is deferred.
//! - The exit status is read as `sysexits.h` (see [`exit_outcome`]): 0 delivered, 75
//!   (`EX_TEMPFAIL`) and 71 (`EX_OSERR`, as Postfix does) try again later, any other failure
//!   bounces with the matching enhanced status. A program killed by a signal is retried: the
//!   signal most likely came from outside (the OOM killer, an operator), not from the message.
//! - At the time limit the whole process group is killed and delivery is deferred.
//! - Once the program has exited, output still held open by a program it left in the background
//!   is waited for at most [`OUTPUT_GRACE`], then abandoned.
//!
//! Which user the program runs as is the caller's choice ([`Invocation::user`]); sendmail and
//! Postfix never run an alias command as root.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, Command};
use tokio::time::Instant;

use relais_queue::Outcome;

use crate::{MAX_DIAGNOSTIC, PIECE, one_line};

/// How long output is still read after the program exited (a background child may hold it).
pub const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// Everything about one run of a command.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// The command line, for `/bin/sh -c`.
    pub command: &'a str,
    /// The envelope sender, empty for `<>`: `SENDER`.
    pub sender: &'a str,
    /// The recipient being delivered to (the alias that named the command): `RECIPIENT`,
    /// `LOCAL`, `DOMAIN`.
    pub recipient: &'a str,
    /// The recipient as the client gave it, before alias expansion: `ORIGINAL_RECIPIENT`.
    pub original_recipient: &'a str,
    /// Run as this user and group (`uid`, `gid`; supplementary groups are dropped); `None`:
    /// as this process.
    pub user: Option<(u32, u32)>,
    /// How long the program may run, input and output included.
    pub timeout: Duration,
}

/// Pipes `message` into `command` for `recipient`; `ORIGINAL_RECIPIENT` is the recipient too.
/// See [`run`] for the whole set of choices.
pub async fn deliver(
    command: &str,
    message: &[u8],
    sender: &str,
    recipient: &str,
    timeout: Duration,
) -> Outcome {
    run(
        &Invocation {
            command,
            sender,
            recipient,
            original_recipient: recipient,
            user: None,
            timeout,
        },
        message,
    )
    .await
}

/// Runs one command with `message` on its standard input.
pub async fn run(inv: &Invocation<'_>, message: impl Read + Send) -> Outcome {
    let (local, domain) = inv
        .recipient
        .rsplit_once('@')
        .unwrap_or((inv.recipient, ""));
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(inv.command)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SHELL", "/bin/sh")
        .env("SENDER", inv.sender)
        .env("RECIPIENT", inv.recipient)
        .env("LOCAL", local)
        .env("DOMAIN", domain)
        .env("ORIGINAL_RECIPIENT", inv.original_recipient)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some((uid, gid)) = inv.user {
        cmd.uid(uid).gid(gid);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome::deferred("4.3.0", format!("cannot run {:?}: {e}", inv.command));
        }
    };
    let pgid = child.id();
    let stdin = child.stdin.take();
    let output = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        child.stdout.take().map(|o| capture(o, output.clone())),
        child.stderr.take().map(|e| capture(e, output.clone())),
    ];

    let deadline = Instant::now() + inv.timeout;
    let waited = tokio::time::timeout_at(deadline, async {
        let mut writing = std::pin::pin!(feed(stdin, message, pgid));
        let mut written = false;
        loop {
            tokio::select! {
                fed = &mut writing, if !written => match fed {
                    Ok(()) => written = true,
                    Err(e) => break Err(e),
                },
                status = child.wait() => break status.map_err(Failed::Wait),
            }
        }
    })
    .await;

    let status = match waited {
        Ok(Ok(status)) => status,
        Ok(Err(Failed::Wait(e))) => {
            kill_group(pgid);
            return Outcome::deferred("4.3.0", format!("cannot wait for {:?}: {e}", inv.command));
        }
        Ok(Err(Failed::Read(e))) => {
            let _ = child.kill().await;
            return Outcome::deferred(
                "4.3.0",
                format!("cannot read the message for {:?}: {e}", inv.command),
            );
        }
        Err(_) => {
            kill_group(pgid);
            let _ = child.kill().await;
            let said = finish_output(readers, &output, Instant::now() + OUTPUT_GRACE).await;
            return Outcome::deferred(
                "4.3.0",
                format!(
                    "command timed out after {:?}: {:?}{said}",
                    inv.timeout, inv.command
                ),
            );
        }
    };
    let grace = deadline.min(Instant::now() + OUTPUT_GRACE);
    let said = finish_output(readers, &output, grace).await;
    exit_outcome(inv.command, status, &said)
}

/// Why waiting for a program ended without its exit status.
enum Failed {
    /// Waiting for it failed.
    Wait(std::io::Error),
    /// The message could not be read: the program's process group was killed.
    Read(std::io::Error),
}

/// Writes the message and closes standard input; a program that stops reading is no error here.
/// A message that cannot be read kills the process group `pgid` before standard input closes.
async fn feed(
    stdin: Option<ChildStdin>,
    mut message: impl Read + Send,
    pgid: Option<u32>,
) -> Result<(), Failed> {
    let Some(mut stdin) = stdin else {
        return Ok(());
    };
    let mut piece = vec![0u8; PIECE];
    loop {
        let n = match message.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                kill_group(pgid);
                return Err(Failed::Read(e));
            }
        };
        if stdin.write_all(&piece[..n]).await.is_err() {
            // The program stopped reading: its exit status decides.
            return Ok(());
        }
    }
    let _ = stdin.shutdown().await;
    Ok(())
}

/// Reads a pipe to its end, keeping the first bytes in `into`.
fn capture(
    mut pipe: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut out = into.lock().unwrap_or_else(|e| e.into_inner());
                    let room = (MAX_DIAGNOSTIC + 1).saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    })
}

/// Waits for the readers until `until`, abandons them after that, and returns what was read as
/// `: text`, or nothing when the program said nothing.
async fn finish_output(
    readers: [Option<tokio::task::JoinHandle<()>>; 2],
    output: &Mutex<Vec<u8>>,
    until: Instant,
) -> String {
    for r in readers.into_iter().flatten() {
        let abort = r.abort_handle();
        if tokio::time::timeout_at(until, r).await.is_err() {
            abort.abort();
        }
    }
    let out = output.lock().unwrap_or_else(|e| e.into_inner());
    let text = one_line(&out);
    if text.is_empty() {
        text
    } else {
        format!(": {text}")
    }
}

/// Kills the command's process group (the shell and everything it started).
fn kill_group(pgid: Option<u32>) {
    if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok())
        && pgid > 0
    {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// What an exit status means, after `sysexits.h`: (deferred?, enhanced status, meaning).
fn sysexit(code: i32) -> (bool, &'static str, &'static str) {
    match code {
        64 => (false, "5.3.0", "command line usage error"),
        65 => (false, "5.6.0", "data format error"),
        66 => (false, "5.3.0", "cannot open input"),
        67 => (false, "5.1.1", "user unknown"),
        68 => (false, "5.1.2", "host name unknown"),
        69 => (false, "5.3.0", "service unavailable"),
        70 => (false, "5.3.0", "internal software error"),
        71 => (true, "4.3.0", "system error"),
        72 => (false, "5.3.0", "critical OS file missing"),
        73 => (false, "5.2.0", "cannot create output file"),
        74 => (false, "5.3.0", "input/output error"),
        75 => (true, "4.3.0", "temporary failure"),
        76 => (false, "5.5.0", "remote error in protocol"),
        77 => (false, "5.7.1", "permission denied"),
        78 => (false, "5.3.5", "configuration error"),
        _ => (false, "5.3.0", "unknown error"),
    }
}

/// The outcome of a command that ended with `status`; `said` is `: output` or empty.
pub fn exit_outcome(command: &str, status: ExitStatus, said: &str) -> Outcome {
    match status.code() {
        Some(0) => Outcome::Delivered(format!("delivered to command: {command}")),
        Some(code) => {
            let (defer, status, meaning) = sysexit(code);
            let reason = format!("command {command:?} exited with status {code} ({meaning}){said}");
            if defer {
                Outcome::deferred(status, reason)
            } else {
                Outcome::failed(status, reason)
            }
        }
        None => Outcome::deferred(
            "4.3.0",
            format!(
                "command {command:?} killed by signal {}{said}",
                status.signal().unwrap_or(0)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sh(command: &str, message: &[u8]) -> Outcome {
        deliver(
            command,
            message,
            "a@example.org",
            "bob@example.net",
            Duration::from_secs(20),
        )
        .await
    }

    fn status_of(o: &Outcome) -> (&'static str, &str) {
        match o {
            Outcome::Delivered(_) => ("sent", "2.0.0"),
            Outcome::Deferred { status, .. } => ("deferred", status),
            Outcome::Failed { status, .. } => ("bounced", status),
        }
    }

    #[tokio::test]
    async fn exit_statuses_follow_sysexits() {
        let table: &[(i32, &str, &str)] = &[
            (0, "sent", "2.0.0"),
            (1, "bounced", "5.3.0"),
            (64, "bounced", "5.3.0"),
            (65, "bounced", "5.6.0"),
            (67, "bounced", "5.1.1"),
            (68, "bounced", "5.1.2"),
            (69, "bounced", "5.3.0"),
            (71, "deferred", "4.3.0"),
            (73, "bounced", "5.2.0"),
            (75, "deferred", "4.3.0"),
            (76, "bounced", "5.5.0"),
            (77, "bounced", "5.7.1"),
            (78, "bounced", "5.3.5"),
            (100, "bounced", "5.3.0"),
        ];
        for &(code, word, status) in table {
            let o = sh(&format!("cat >/dev/null; exit {code}"), b"x\n").await;
            assert_eq!(status_of(&o), (word, status), "exit {code}: {o}");
        }
    }

    #[tokio::test]
    async fn output_goes_into_the_reason() {
        let o = sh("echo 'no such list' >&2; echo out; exit 67", b"").await;
        match o {
            Outcome::Failed { status, reason } => {
                assert_eq!(status, "5.1.1");
                assert!(reason.contains("user unknown"), "{reason}");
                assert!(reason.contains("no such list"), "{reason}");
                assert!(reason.contains("out"), "{reason}");
            }
            o => panic!("{o}"),
        }
        let o = sh("head -c 5000 /dev/zero | tr '\\0' y; exit 1", b"").await;
        let Outcome::Failed { reason, .. } = o else {
            panic!("{o}")
        };
        assert!(reason.len() < 700 && reason.ends_with(" ..."), "{reason}");
    }

    #[tokio::test]
    async fn a_command_that_does_not_read_its_input() {
        let big = vec![b'm'; 4 << 20];
        assert!(matches!(sh("exit 0", &big).await, Outcome::Delivered(_)));
        let o = sh("head -c 10 >/dev/null; exit 75", &big).await;
        assert_eq!(status_of(&o), ("deferred", "4.3.0"), "{o}");
    }

    #[tokio::test]
    async fn signals_and_missing_programs() {
        let o = sh("kill -9 $$", b"").await;
        assert_eq!(status_of(&o), ("deferred", "4.3.0"), "{o}");
        assert!(o.to_string().contains("signal 9"), "{o}");
        // The shell says "not found" and exits 127.
        let o = sh("/nonexistent/program", b"").await;
        assert_eq!(status_of(&o), ("bounced", "5.3.0"), "{o}");
        assert!(o.to_string().contains("not found"), "{o}");
    }

    #[tokio::test]
    async fn a_background_child_does_not_hold_delivery() {
        let start = std::time::Instant::now();
        let o = sh("sleep 3 & exit 0", b"").await;
        assert!(matches!(o, Outcome::Delivered(_)), "{o}");
        assert!(
            start.elapsed() < Duration::from_millis(2500),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn the_time_limit_kills_the_group() {
        let start = std::time::Instant::now();
        let o = deliver(
            "echo started; sleep 30; echo never",
            b"",
            "",
            "bob",
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(status_of(&o), ("deferred", "4.3.0"), "{o}");
        assert!(o.to_string().contains("timed out"), "{o}");
        assert!(o.to_string().contains("started"), "{o}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }
}
