//! The control socket (`data_dir/control.sock`): how `relais queue` and `relais sendmail` act
//! through a running server. One request line, one JSON answer line.
//!
//! ```text
//! LIST                      → [QueueEntry, …]
//! SHOW <id>                 → QueueDetail
//! FLUSH [<id>]              → {"ok": true}
//! HOLD <id> | RELEASE <id>  → {"ok": true} or {"error": "…"}
//! DELETE <id>               → {"ok": true} or {"error": "…"}
//! RELOAD                    → {"ok": true} or {"error": "…"} (the configuration refused)
//! SUBMIT <json>             → then <size> octets of message; → {"id": "…"}
//! ```
//! Without a running server `relais queue` and `relais sendmail` call the same functions of
//! `relais-queue` ([`admin`], [`submission`]) on the spool directly; the spool's lock keeps
//! the two from mixing. The status page's actions go through `steer` too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use relais_policy::{Signers, prepare_local};
use relais_queue::admin::{self, parse_id};
use relais_queue::submission::{self, Submission};
use relais_queue::{Command, QueueHandle};
use relais_spool::{QueueId, Spool};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// Largest message `SUBMIT` takes.
const MAX_SUBMIT: usize = 256 << 20;

/// The socket path of a data directory.
pub(crate) fn socket_path(data_dir: &Path) -> PathBuf {
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
pub(crate) fn bind(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the control socket (from [`bind`]) until the task is dropped.
/// Asks the server to read its configuration again; the answer says whether it took.
pub(crate) type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the control socket acts on.
#[derive(Clone)]
pub(crate) struct Control {
    /// The spool (listings, local submissions).
    pub spool: Spool,
    /// The queue manager (flush, hold, release, delete, new submissions).
    pub queue: QueueHandle,
    /// Our host name, for the `Received` header of local submissions.
    pub hostname: String,
    /// The DKIM keys in force (they change with a reload).
    pub signers: Arc<dyn Fn() -> Signers + Send + Sync>,
    /// Where `RELOAD` goes.
    pub reload: mpsc::UnboundedSender<ReloadRequest>,
}

pub(crate) async fn serve(listener: std::os::unix::net::UnixListener, control: Control) {
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
        let control = control.clone();
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
                handle(line, &mut r, &control, &peer).await
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

/// What an administrator does to the queue (the control socket, the status page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Steer {
    /// Try one message now, or every message that is not held.
    Flush(Option<QueueId>),
    /// Keep a message until released.
    Hold(QueueId),
    /// Release a held message.
    Release(QueueId),
    /// Remove a message without delivering or bouncing it.
    Delete(QueueId),
}

impl Steer {
    /// The action a verb names (`hold`, `RELEASE`, any case) on one message.
    pub(crate) fn of(verb: &str, id: QueueId) -> Option<Steer> {
        match verb.to_ascii_lowercase().as_str() {
            "flush" => Some(Steer::Flush(Some(id))),
            "hold" => Some(Steer::Hold(id)),
            "release" => Some(Steer::Release(id)),
            "delete" => Some(Steer::Delete(id)),
            _ => None,
        }
    }
}

/// Does it: through the queue manager, which must know; with delivery paused (no queue
/// manager), on the spool itself, which is then the server's alone.
pub(crate) async fn steer(spool: &Spool, queue: &QueueHandle, what: Steer) -> Result<(), String> {
    const PAUSED: &str = "delivery is paused: the queue manager is not running";
    if queue.is_paused() {
        return match what {
            Steer::Flush(_) => Err(PAUSED.into()),
            Steer::Hold(i) => admin::set_held(spool, i, true).await,
            Steer::Release(i) => admin::set_held(spool, i, false).await,
            Steer::Delete(i) => admin::delete(spool, i),
        };
    }
    match what {
        Steer::Flush(target) if queue.send(Command::Flush(target)) => Ok(()),
        Steer::Flush(_) => Err(PAUSED.into()),
        Steer::Hold(i) => queue.ask(|tx| Command::Hold(i, tx)).await,
        Steer::Release(i) => queue.ask(|tx| Command::Release(i, tx)).await,
        Steer::Delete(i) => queue.ask(|tx| Command::Delete(i, tx)).await,
    }
}

fn ok_or_error(r: Result<(), String>) -> String {
    match r {
        Ok(()) => "{\"ok\":true}".into(),
        Err(e) => serde_json::json!({ "error": e }).to_string(),
    }
}

async fn handle(
    line: &str,
    r: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    control: &Control,
    peer: &Peer,
) -> String {
    let (spool, queue, hostname) = (&control.spool, &control.queue, &control.hostname);
    let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
    let id = parse_id;
    match verb {
        "LIST" => serde_json::to_string(&admin::list(spool)).unwrap_or_default(),
        "SHOW" => match admin::show(spool, arg) {
            Ok(d) => serde_json::to_string(&d).unwrap_or_default(),
            Err(e) => serde_json::json!({ "error": e }).to_string(),
        },
        "FLUSH" if arg.is_empty() => ok_or_error(steer(spool, queue, Steer::Flush(None)).await),
        "FLUSH" | "HOLD" | "RELEASE" | "DELETE" => ok_or_error(match id(arg) {
            Ok(i) => match Steer::of(verb, i) {
                Some(what) => steer(spool, queue, what).await,
                None => Err(format!("unknown request {verb:?}")),
            },
            Err(e) => Err(e),
        }),
        "RELOAD" => {
            let (tx, rx) = oneshot::channel();
            ok_or_error(match control.reload.send(tx) {
                Ok(()) => rx
                    .await
                    .unwrap_or_else(|_| Err("the server is stopping".into())),
                Err(_) => Err("the server is stopping".into()),
            })
        }
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
            let signers = (control.signers)();
            let now = SystemTime::now();
            let prepare = async |m: &[u8], id: relais_spool::QueueId| {
                prepare_local(&signers, hostname, &id.to_string(), now, m).await
            };
            match submission::submit(spool, hostname, &sub, &message, now, prepare).await {
                Ok(qid) => {
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
