//! The control socket (`data_dir/control.sock`): how `relais queue` and `relais sendmail` act
//! through a running server. One request line, one JSON answer line.
//!
//! ```text
//! LIST                      → [QueueEntry, …]
//! SHOW <id>                 → QueueDetail
//! FLUSH [<id>]              → {"ok": true}
//! HOLD <id> | RELEASE <id>  → {"ok": true} or {"error": "…"}
//! DELETE <id>               → {"ok": true} or {"error": "…"}
//! SUBMIT <json>             → then <size> octets of message; → {"id": "…"}
//! ```
//! Without a running server the same functions work on the spool directly
//! ([`list`], [`show`], [`submit`]); the spool's lock keeps the two from mixing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use relais_proto::{Envelope, MailParams, Mailbox, RcptParams, Recipient, ReversePath};
use relais_spool::{QueueId, Spool};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::envelope::{QueueState, SpooledEnvelope};
use crate::headers;
use crate::outcome::Outcome;
use crate::queue::{Command, QueueHandle};

/// Largest message `SUBMIT` takes.
const MAX_SUBMIT: usize = 256 << 20;

/// One recipient in a queue listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecipientStatus {
    /// The address.
    pub address: String,
    /// `pending`, `sent`, `deferred` or `bounced`.
    pub status: String,
    /// The last reason, if any.
    pub reason: Option<String>,
}

/// One message in a queue listing (like a `mailq` line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueEntry {
    /// Queue id.
    pub id: String,
    /// Octets of content.
    pub size: u64,
    /// Arrival time, Unix seconds.
    pub arrival: u64,
    /// Sender (empty for `<>`).
    pub sender: String,
    /// Held by the administrator.
    pub held: bool,
    /// Attempts so far.
    pub attempts: u32,
    /// Next attempt, Unix seconds (0: as soon as possible).
    pub next_attempt: u64,
    /// Recipients and their status.
    pub recipients: Vec<RecipientStatus>,
}

/// A message in detail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueDetail {
    /// The listing entry.
    pub entry: QueueEntry,
    /// The client it came from.
    pub client: String,
    /// The envelope as the spool keeps it (MAIL and RCPT lines with their parameters).
    pub envelope: String,
    /// The message headers.
    pub headers: String,
}

/// What `sendmail` hands over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    /// Envelope sender (empty for `<>`).
    pub sender: String,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// The local user submitting, for the Received header.
    pub user: String,
    /// Octets of message that follow.
    pub size: usize,
}

fn entry_of(id: QueueId, size: u64, arrival: SystemTime, env: &SpooledEnvelope) -> QueueEntry {
    QueueEntry {
        id: id.to_string(),
        size,
        arrival: arrival
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        sender: env.envelope.from.to_string(),
        held: env.state.held,
        attempts: env.state.attempts,
        next_attempt: env.state.next_attempt,
        recipients: env
            .envelope
            .recipients
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (status, reason) = match env.state.outcome(i) {
                    None => ("pending", None),
                    Some(Outcome::Delivered(d)) => ("sent", Some(d.clone())),
                    Some(Outcome::Deferred { status, reason }) => {
                        ("deferred", Some(format!("{status} {reason}")))
                    }
                    Some(Outcome::Failed { status, reason }) => {
                        ("bounced", Some(format!("{status} {reason}")))
                    }
                };
                RecipientStatus {
                    address: r.to.to_string(),
                    status: status.into(),
                    reason,
                }
            })
            .collect(),
    }
}

/// Every message in the spool.
pub fn list(spool: &Spool) -> Vec<QueueEntry> {
    spool
        .pending()
        .into_iter()
        .filter_map(|id| {
            let m = spool.read(id).ok()?;
            let env = SpooledEnvelope::decode(&m.envelope).ok()?;
            Some(entry_of(id, m.body_len(), m.arrival, &env))
        })
        .collect()
}

/// One message in detail.
pub fn show(spool: &Spool, id: &str) -> Result<QueueDetail, String> {
    let id: QueueId = id
        .parse()
        .map_err(|_| format!("{id:?} is not a queue id"))?;
    let m = spool.read(id).map_err(|e| e.to_string())?;
    let env = SpooledEnvelope::decode(&m.envelope).map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    m.body_reader()
        .map_err(|e| e.to_string())?
        .take(256 * 1024)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    let headers = String::from_utf8_lossy(crate::dsn::headers_of(&body)).into_owned();
    Ok(QueueDetail {
        entry: entry_of(id, m.body_len(), m.arrival, &env),
        client: env.client.clone(),
        envelope: String::from_utf8_lossy(&env.encode()).into_owned(),
        headers,
    })
}

/// Puts a locally submitted message in the spool; returns its id. The caller then has it
/// delivered (a running server pushes it to its queue; otherwise the next start does).
pub async fn submit(
    spool: &Spool,
    hostname: &str,
    sub: &Submission,
    message: &[u8],
) -> Result<QueueId, String> {
    let from = if sub.sender.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Mailbox(
            Mailbox::parse(&sub.sender).map_err(|e| format!("sender {:?}: {e}", sub.sender))?,
        )
    };
    let mut recipients = Vec::new();
    for r in &sub.recipients {
        let to = relais_proto::address::parse_forward_path(r)
            .map_err(|e| format!("recipient {r:?}: {e}"))?;
        recipients.push(Recipient {
            to,
            params: RcptParams::default(),
        });
    }
    if recipients.is_empty() {
        return Err("no recipients".into());
    }
    let utf8 = !from.mailbox().is_none_or(Mailbox::is_ascii)
        || recipients.iter().any(|r| !r.to.is_ascii());
    let envelope = Envelope {
        helo: hostname.to_string(),
        esmtp: true,
        from,
        mail_params: MailParams {
            smtputf8: utf8,
            ..Default::default()
        },
        recipients,
        size: message.len() as u64,
        chunked: false,
        bare_lf: false,
    };
    let id = spool.new_id();
    let now = SystemTime::now();
    let single = match envelope.recipients.as_slice() {
        [only] => format!("\r\n\tfor <{}>", only.to),
        _ => String::new(),
    };
    let received = format!(
        "Received: by {hostname} (relais, from userid {})\r\n\tid {id}{single}; {}\r\n",
        sub.user.replace(['\r', '\n'], " "),
        headers::rfc5322_date(now)
    );
    let mut incoming = spool.begin(id);
    incoming
        .write(received.as_bytes())
        .map_err(|e| e.to_string())?;
    incoming
        .write(&normalize_newlines(message))
        .map_err(|e| e.to_string())?;
    let record = SpooledEnvelope {
        client: format!("local user {}", sub.user),
        state: QueueState {
            recipients: vec![None; envelope.recipients.len()],
            ..Default::default()
        },
        envelope,
    };
    incoming
        .commit(record.encode())
        .await
        .map_err(|e| e.to_string())
}

/// LF line ends (as local programs write them) become CRLF, as stored messages have them.
fn normalize_newlines(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 40);
    let mut prev = 0u8;
    for &b in message {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// The socket path of a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Opens the control socket, replacing a stale one (left by a server that was killed). The
/// server binds it right after locking the spool: `relais queue` and `relais sendmail` fall
/// back to the spool when no server answers, and would find it locked if the socket came later.
///
/// Every local user may connect (mode 0666), as every local user may run sendmail; what a
/// client may ask depends on who it is, which the kernel tells ([`serve`] reads the peer's
/// credentials): the server's own user and root may do everything, other users only `SUBMIT`,
/// and their submissions carry their real user name, whatever `$USER` says.
pub fn bind(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the control socket (from [`bind`]) until the task is dropped.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    spool: Spool,
    queue: QueueHandle,
    hostname: String,
) {
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("cannot use the control socket: {e}");
            return;
        }
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Who is on the other end, from the kernel (SO_PEERCRED).
        let Ok(cred) = stream.peer_cred() else {
            continue;
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let own = unsafe { libc::geteuid() };
        let peer = Peer {
            privileged: cred.uid() == own || cred.uid() == 0,
            user: user_name(cred.uid()),
        };
        let (spool, queue, hostname) = (spool.clone(), queue.clone(), hostname.clone());
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            let mut line = String::new();
            if r.read_line(&mut line).await.is_err() {
                return;
            }
            let line = line.trim_end();
            let answer = if !peer.privileged && !line.starts_with("SUBMIT ") {
                serde_json::json!({ "error": format!("permission denied: user {} may only submit mail", peer.user) }).to_string()
            } else {
                handle(line, &mut r, &spool, &queue, &hostname, &peer).await
            };
            let _ = w.write_all(answer.as_bytes()).await;
            let _ = w.write_all(b"\n").await;
        });
    }
}

/// The client of a control connection.
struct Peer {
    /// The server's own user or root: may steer the queue.
    privileged: bool,
    /// Its user name (or numeric id), for the `Received` header of what it submits.
    user: String,
}

/// The name of a user id, or the number when it has none.
fn user_name(uid: u32) -> String {
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to memory that lives through the call, with its true size;
    // getpwuid_r writes only into `pwd` and `buf`.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return uid.to_string();
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `buf`.
    unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned()
}

fn ok_or_error(r: Result<(), String>) -> String {
    match r {
        Ok(()) => "{\"ok\":true}".into(),
        Err(e) => serde_json::json!({ "error": e }).to_string(),
    }
}

async fn ask(
    queue: &QueueHandle,
    make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Command,
) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    if !queue.send(make(tx)) {
        return Err("delivery is paused: the queue manager is not running".into());
    }
    rx.await
        .unwrap_or_else(|_| Err("the queue manager stopped".into()))
}

async fn handle(
    line: &str,
    r: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    spool: &Spool,
    queue: &QueueHandle,
    hostname: &str,
    peer: &Peer,
) -> String {
    let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
    let id = |a: &str| {
        a.parse::<QueueId>()
            .map_err(|_| format!("{a:?} is not a queue id"))
    };
    match verb {
        "LIST" => serde_json::to_string(&list(spool)).unwrap_or_default(),
        "SHOW" => match show(spool, arg) {
            Ok(d) => serde_json::to_string(&d).unwrap_or_default(),
            Err(e) => serde_json::json!({ "error": e }).to_string(),
        },
        "FLUSH" => {
            let target = if arg.is_empty() {
                Ok(None)
            } else {
                id(arg).map(Some)
            };
            ok_or_error(target.and_then(|t| {
                if queue.send(Command::Flush(t)) {
                    Ok(())
                } else {
                    Err("delivery is paused: the queue manager is not running".into())
                }
            }))
        }
        "HOLD" => ok_or_error(match id(arg) {
            Ok(i) => ask(queue, |tx| Command::Hold(i, tx)).await,
            Err(e) => Err(e),
        }),
        "RELEASE" => ok_or_error(match id(arg) {
            Ok(i) => ask(queue, |tx| Command::Release(i, tx)).await,
            Err(e) => Err(e),
        }),
        "DELETE" => ok_or_error(match id(arg) {
            Ok(i) => ask(queue, |tx| Command::Delete(i, tx)).await,
            Err(e) => Err(e),
        }),
        "SUBMIT" => {
            let mut sub: Submission = match serde_json::from_str(arg) {
                Ok(s) => s,
                Err(e) => {
                    return serde_json::json!({ "error": format!("bad submission: {e}") })
                        .to_string();
                }
            };
            // The kernel's word for who submits, not the client's (an unprivileged client
            // could claim any name).
            if !peer.privileged || sub.user.is_empty() {
                sub.user = peer.user.clone();
            }
            if sub.size > MAX_SUBMIT {
                return serde_json::json!({ "error": "message too large" }).to_string();
            }
            let mut message = vec![0u8; sub.size];
            if let Err(e) = r.read_exact(&mut message).await {
                return serde_json::json!({ "error": format!("short message: {e}") }).to_string();
            }
            match submit(spool, hostname, &sub, &message).await {
                Ok(qid) => {
                    info!(
                        "{qid}: queued: from=<{}>, size={}, nrcpt={} (local submission by {})",
                        sub.sender,
                        sub.size,
                        sub.recipients.len(),
                        sub.user
                    );
                    queue.push(qid);
                    serde_json::json!({ "id": qid.to_string() }).to_string()
                }
                Err(e) => serde_json::json!({ "error": e }).to_string(),
            }
        }
        _ => serde_json::json!({ "error": format!("unknown request {verb:?}") }).to_string(),
    }
}

/// Sends one request to a running server; `None` if no server answers on the socket.
pub fn request(data_dir: &Path, line: &str, payload: &[u8]) -> Option<Result<String, String>> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket_path(data_dir)).ok()?;
    let sent = s
        .write_all(line.as_bytes())
        .and_then(|()| s.write_all(b"\n"))
        .and_then(|()| s.write_all(payload));
    if let Err(e) = sent {
        return Some(Err(e.to_string()));
    }
    let mut answer = String::new();
    match std::io::BufReader::new(s).read_line(&mut answer) {
        Ok(_) => Some(Ok(answer)),
        Err(e) => Some(Err(e.to_string())),
    }
}
