//! The server's log writer: log lines are appended to a shared buffer and a thread of its own
//! writes the buffer out: woken by the first line after a write, it waits a moment for more,
//! then writes them all at once (and at exit).
//!
//! A busy server logs about seven lines per message. Writing each with its own `write(2)`, or
//! handing each to a writer thread through a channel (a wake-up per line), cost more CPU than
//! the rest of the message's handling on a small machine; appending to a buffer under a mutex
//! costs a copy. What a crash can lose is the last few milliseconds of log.
//!
//! The lines go to standard error or to a file ([`open`]); a file is reopened after
//! [`LogBuffer::reopen`] (SIGUSR1, a reload), so that logrotate can move it away.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer waits for more lines once the first one has come.
const GATHER: Duration = Duration::from_millis(2);
/// A buffer this large is written at once.
const FLUSH_AT: usize = 256 * 1024;

struct Shared {
    /// Lines not yet written, and whether the writer should stop.
    state: Mutex<(Vec<u8>, bool)>,
    /// Set to have the writer open its file again before the next write.
    reopen: std::sync::atomic::AtomicBool,
    /// Wakes the writer: a first line in an empty buffer, or stop.
    wake: Condvar,
}

/// A cheap, cloneable handle that tracing's formatter writes lines into.
#[derive(Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
}

/// Stops the writer thread after a last flush when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Opens `log_file` for appending (created mode 0640), or standard error.
fn open_target(file: Option<&Path>) -> io::Result<Box<dyn Write + Send>> {
    match file {
        None => Ok(Box::new(io::stderr())),
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            Ok(Box::new(f))
        }
    }
}

/// A buffer written to `file` (standard error when `None`) by a thread of its own.
pub fn open(file: Option<&Path>) -> io::Result<(LogBuffer, FlushGuard)> {
    let out = open_target(file)?;
    Ok(start(out, file.map(Path::to_path_buf)))
}

/// A buffer written to `out` by a thread of its own; `reopen` is the file to open again when
/// asked (none: `out` stays).
fn start(mut out: Box<dyn Write + Send>, reopen: Option<PathBuf>) -> (LogBuffer, FlushGuard) {
    let shared = Arc::new(Shared {
        state: Mutex::new((Vec::with_capacity(64 * 1024), false)),
        reopen: std::sync::atomic::AtomicBool::new(false),
        wake: Condvar::new(),
    });
    let s = shared.clone();
    let thread = std::thread::Builder::new()
        .name("relais-log".into())
        .spawn(move || {
            let mut spare = Vec::with_capacity(64 * 1024);
            loop {
                {
                    let guard = s.state.lock().unwrap_or_else(|e| e.into_inner());
                    let _guard = s
                        .wake
                        .wait_while(guard, |(buf, stop)| buf.is_empty() && !*stop)
                        .unwrap_or_else(|e| e.into_inner());
                }
                // More lines usually follow the first: let them gather, then write once.
                std::thread::sleep(GATHER);
                let stop = {
                    let mut guard = s.state.lock().unwrap_or_else(|e| e.into_inner());
                    std::mem::swap(&mut guard.0, &mut spare);
                    guard.1
                };
                if s.reopen.swap(false, std::sync::atomic::Ordering::Relaxed)
                    && let Some(path) = &reopen
                {
                    let _ = out.flush();
                    match open_target(Some(path)) {
                        Ok(new) => out = new,
                        // Keep writing where we were: better than losing lines.
                        Err(e) => {
                            let line = format!("cannot reopen the log file: {e}\n");
                            let _ = out.write_all(line.as_bytes());
                        }
                    }
                }
                if !spare.is_empty() {
                    // Nowhere to report a failure to write the log: it is dropped.
                    let _ = out.write_all(&spare).and_then(|()| out.flush());
                    spare.clear();
                }
                if stop {
                    let rest =
                        std::mem::take(&mut s.state.lock().unwrap_or_else(|e| e.into_inner()).0);
                    let _ = out.write_all(&rest).and_then(|()| out.flush());
                    return;
                }
            }
        })
        .ok();
    (
        LogBuffer {
            shared: shared.clone(),
        },
        FlushGuard { shared, thread },
    )
}

impl LogBuffer {
    /// Has the log file opened again before the next line (after logrotate moved it).
    pub fn reopen(&self) {
        self.shared
            .reopen
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let guard = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        drop(guard);
        self.shared.wake.notify_one();
    }
}

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut guard = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = guard.0.is_empty();
        guard.0.extend_from_slice(bytes);
        // Only the first line after a write wakes the writer (it then gathers the rest); a
        // very large backlog wakes it again in case it is still asleep.
        if was_empty || guard.0.len() >= FLUSH_AT {
            self.shared.wake.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1 = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<StdMutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_and_all_at_exit() {
        let sink = Sink::default();
        let (buf, guard) = start(Box::new(sink.clone()), None);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut b = buf.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        b.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 8000);
        for t in 0..4 {
            let mine: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let want: Vec<String> = (0..2000).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, want);
        }
    }

    #[test]
    fn a_moved_file_is_reopened_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relais.log");
        let (mut buf, guard) = open(Some(&path)).unwrap();
        buf.write_all(b"first\n").unwrap();
        std::thread::sleep(GATHER * 50);
        // logrotate: the file is moved away, then the writer is told.
        std::fs::rename(&path, dir.path().join("relais.log.1")).unwrap();
        buf.write_all(b"second\n").unwrap();
        std::thread::sleep(GATHER * 50);
        buf.reopen();
        buf.write_all(b"third\n").unwrap();
        drop(guard);
        let old = std::fs::read_to_string(dir.path().join("relais.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!((old.as_str(), new.as_str()), ("first\nsecond\n", "third\n"));
    }

    #[test]
    fn a_line_is_written_within_the_flush_interval() {
        let sink = Sink::default();
        let (mut buf, _guard) = start(Box::new(sink.clone()), None);
        buf.write_all(b"hello\n").unwrap();
        std::thread::sleep(GATHER * 50);
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"hello\n");
    }
}
