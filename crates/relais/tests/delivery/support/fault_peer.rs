//! A scripted SMTP peer in the test's own process ([`FaultPeer`]): it replies what its
//! [`Script`] says, so that tests can make a peer refuse, defer, hang or cut a connection at
//! any step, and records what it took ([`Taken`]).

use super::*;

/// Chooses the reply to a RCPT: (connection number from 1, address) → reply line.
pub type RcptRule = Box<dyn Fn(usize, &str) -> String + Send + Sync>;
/// Chooses the reply after the message content: connection number → reply line.
pub type DataRule = Box<dyn Fn(usize) -> String + Send + Sync>;

/// How a [`FaultPeer`] behaves.
pub struct Script {
    /// The greeting line (a `421` one makes a mail host that is there but refuses service).
    pub greeting: String,
    /// EHLO keywords besides 8BITMIME (`DSN`).
    pub extensions: Vec<String>,
    /// The RCPT replies.
    pub rcpt: RcptRule,
    /// The reply after DATA's final dot.
    pub data: DataRule,
    /// Wait this long before that reply (a slow peer).
    pub data_delay: Duration,
}

impl Default for Script {
    /// Accepts everything at once.
    fn default() -> Self {
        Script {
            greeting: "220 fault.test ESMTP scripted peer".into(),
            extensions: Vec::new(),
            rcpt: Box::new(|_, _| "250 2.1.5 Ok".into()),
            data: Box::new(|conn| format!("250 2.0.0 Ok: queued as FAULT{conn}")),
            data_delay: Duration::ZERO,
        }
    }
}

/// A message a [`FaultPeer`] took.
#[derive(Debug, Clone)]
pub struct Taken {
    /// Transaction number (from 1, over all connections).
    pub conn: usize,
    /// The MAIL command line.
    pub mail: String,
    /// The RCPT command lines it accepted.
    pub rcpts: Vec<String>,
    /// The content, dot-stuffing undone.
    pub data: Vec<u8>,
    /// How many `BDAT` chunks it came in (0: with DATA).
    pub chunks: usize,
}

struct PeerState {
    script: Script,
    connections: AtomicUsize,
    /// MAIL commands so far: relais reuses connections, so attempts are counted by transaction.
    transactions: AtomicUsize,
    /// Every RCPT: (connection, command line, reply).
    rcpts: Mutex<Vec<(usize, String, String)>>,
    /// Every message that got a 2xx after its content.
    taken: Mutex<Vec<Taken>>,
    /// The address of every client that connected.
    clients: Mutex<Vec<SocketAddr>>,
}

/// An SMTP server in this process that answers as its [`Script`] says: the peer that defers,
/// refuses one recipient, or is slow.
pub struct FaultPeer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<PeerState>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultPeer {
    /// Listens on `addr` (port 0: a free one).
    pub fn start(addr: SocketAddr, script: Script) -> FaultPeer {
        let listener =
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("fault peer on {addr}: {e}"));
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(PeerState {
            script,
            connections: AtomicUsize::new(0),
            transactions: AtomicUsize::new(0),
            rcpts: Mutex::new(Vec::new()),
            taken: Mutex::new(Vec::new()),
            clients: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stop2) = (state.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, client)) => {
                        st.clients.lock().unwrap().push(client);
                        let conn = st.connections.fetch_add(1, Ordering::SeqCst) + 1;
                        let st = st.clone();
                        thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = serve_fault(s, conn, &st);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultPeer {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// On a free port of 127.0.0.1.
    pub fn local(script: Script) -> FaultPeer {
        FaultPeer::start(SocketAddr::from(([127, 0, 0, 1], 0)), script)
    }

    /// `[host]:port` for a route to it, naming it `host` (which DNS must resolve to
    /// 127.0.0.1).
    pub fn hop(&self, host: &str) -> String {
        format!("[{host}]:{}", self.addr.port())
    }

    /// The addresses clients connected from.
    pub fn clients(&self) -> Vec<SocketAddr> {
        self.state.clients.lock().unwrap().clone()
    }

    /// Connections so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Transactions (MAIL commands) so far: the delivery attempts that reached this peer.
    pub fn transactions(&self) -> usize {
        self.state.transactions.load(Ordering::SeqCst)
    }

    /// Every RCPT so far: (connection, command line, reply).
    pub fn rcpts(&self) -> Vec<(usize, String, String)> {
        self.state.rcpts.lock().unwrap().clone()
    }

    /// The messages taken so far.
    pub fn taken(&self) -> Vec<Taken> {
        self.state.taken.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages were taken.
    #[track_caller]
    pub fn wait_taken(&self, n: usize) -> Vec<Taken> {
        wait_until(&format!("{n} message(s) at the fault peer"), WAIT, || {
            let t = self.taken();
            (t.len() >= n).then_some(t)
        })
    }
}

impl Drop for FaultPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if thread::panicking() {
            eprintln!(
                "--- fault peer {}: {} connection(s), RCPTs {:?}, {} message(s) ---",
                self.addr,
                self.connections(),
                self.rcpts(),
                self.taken().len()
            );
        }
    }
}

/// Serves one connection. The script's rules are given the transaction number (from 1, over
/// all connections), which is also what [`Taken::conn`] records.
fn serve_fault(stream: TcpStream, _conn: usize, st: &PeerState) -> io::Result<()> {
    let mut conn = 0;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    w.write_all(format!("{}\r\n", st.script.greeting).as_bytes())?;
    if !st.script.greeting.starts_with('2') {
        return Ok(());
    }
    let mut mail = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    // The BDAT chunks of the message so far, and how many.
    let (mut chunked, mut chunks) = (Vec::new(), 0);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            let mut kw = vec!["fault.test".to_string(), "8BITMIME".to_string()];
            kw.extend(st.script.extensions.iter().cloned());
            let n = kw.len();
            kw.iter()
                .enumerate()
                .map(|(i, k)| format!("250{}{k}", if i + 1 == n { ' ' } else { '-' }))
                .collect::<Vec<_>>()
                .join("\r\n")
        } else if upper.starts_with("HELO") || upper == "NOOP" {
            "250 fault.test".into()
        } else if upper.starts_with("MAIL FROM:") {
            conn = st.transactions.fetch_add(1, Ordering::SeqCst) + 1;
            mail = cmd.clone();
            rcpts.clear();
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO:") {
            let addr = cmd["RCPT TO:".len()..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(['<', '>'])
                .to_string();
            let reply = (st.script.rcpt)(conn, &addr);
            st.rcpts
                .lock()
                .unwrap()
                .push((conn, cmd.clone(), reply.clone()));
            if reply.starts_with('2') {
                rcpts.push(cmd.clone());
            }
            reply
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                "503 5.5.1 No valid recipients".into()
            } else {
                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if r.read_until(b'\n', &mut l)? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" || l == b".\n" {
                        break;
                    }
                    let body = if l.starts_with(b".") { &l[1..] } else { &l[..] };
                    data.extend_from_slice(body);
                }
                message_end(st, conn, &mail, &mut rcpts, data, 0)
            }
        } else if let Some(args) = upper.strip_prefix("BDAT ") {
            // RFC 3030: the chunk is read whole; `LAST` ends the message.
            let mut words = args.split_whitespace();
            let size: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let last = words.next() == Some("LAST");
            let at = chunked.len();
            chunked.resize(at + size, 0);
            r.read_exact(&mut chunked[at..])?;
            chunks += 1;
            if !last {
                "250 2.0.0 chunk taken".into()
            } else {
                let data = std::mem::take(&mut chunked);
                message_end(
                    st,
                    conn,
                    &mail,
                    &mut rcpts,
                    data,
                    std::mem::take(&mut chunks),
                )
            }
        } else if upper == "STARTTLS" {
            // A peer whose TLS is broken: it agrees, then answers the handshake with text.
            w.write_all(b"220 2.0.0 Ready to start TLS\r\n")?;
            w.write_all(b"this is not TLS\r\n")?;
            return Ok(());
        } else if upper == "RSET" {
            rcpts.clear();
            "250 2.0.0 Ok".into()
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            "502 5.5.2 Command not recognized".into()
        };
        w.write_all(format!("{reply}\r\n").as_bytes())?;
    }
}

/// The end of a message's content (DATA's dot, or `BDAT … LAST` after `chunks` chunks): the
/// script's reply, the message kept when it is positive.
fn message_end(
    st: &PeerState,
    conn: usize,
    mail: &str,
    rcpts: &mut Vec<String>,
    data: Vec<u8>,
    chunks: usize,
) -> String {
    thread::sleep(st.script.data_delay);
    let reply = (st.script.data)(conn);
    if reply.starts_with('2') {
        st.taken.lock().unwrap().push(Taken {
            conn,
            mail: mail.to_string(),
            rcpts: std::mem::take(rcpts),
            data,
            chunks,
        });
    }
    rcpts.clear();
    reply
}
