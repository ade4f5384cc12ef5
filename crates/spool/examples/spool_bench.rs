//! Group-commit throughput benchmark.
//!
//! `T` threads (default 20, like 20 concurrent SMTP sessions) each commit
//! their share of `N` messages (default 20,000) of `SIZE` bytes (default
//! 1 KiB), waiting for every commit before starting the next one, as a
//! session waits before answering `250`. Prints messages per second and
//! commit latency percentiles, then reopens the spool to check that every
//! message is there.
//!
//! ```text
//! cargo run --release -p relais-spool --example spool_bench -- [N] [T] [SIZE] [DIR] [--no-fsync]
//! ```
//!
//! DIR defaults to a fresh temporary directory (removed afterwards).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use relais_spool::{Spool, SpoolOptions};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spool_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut fsync = true;
    let mut positional = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg == "--no-fsync" {
            fsync = false;
        } else {
            positional.push(arg);
        }
    }
    let total: usize = positional.first().map_or(Ok(20_000), |s| s.parse())?;
    let threads: usize = positional.get(1).map_or(Ok(20), |s| s.parse())?;
    let size: usize = positional.get(2).map_or(Ok(1024), |s| s.parse())?;
    let tmp = tempfile::tempdir()?;
    let dir: PathBuf = positional
        .get(3)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    if threads == 0 {
        return Err("thread count must be positive".into());
    }

    let opts = SpoolOptions {
        fsync,
        ..SpoolOptions::default()
    };
    let spool = Spool::open(&dir, opts.clone())?;
    let before = spool.pending().len();
    let body: Vec<u8> = (0..size)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789\r\n"[i % 38])
        .collect();
    let envelope = b"MAIL FROM:<sender@example.org>\0RCPT TO:<rcpt@example.net>".to_vec();

    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let spool = spool.clone();
            let body = body.clone();
            let envelope = envelope.clone();
            let count = total / threads + usize::from(t < total % threads);
            std::thread::spawn(move || -> Result<Vec<Duration>, relais_spool::SpoolError> {
                let mut latencies = Vec::with_capacity(count);
                for _ in 0..count {
                    let t0 = Instant::now();
                    let mut inc = spool.begin(spool.new_id());
                    inc.write(&body)?;
                    inc.commit(envelope.clone()).wait()?;
                    latencies.push(t0.elapsed());
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for w in workers {
        latencies.extend(w.join().map_err(|_| "worker panicked")??);
    }
    let elapsed = start.elapsed();
    spool.shutdown();

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{total} messages of {size} B from {threads} threads, fsync {}: {:.3} s, {:.0} msg/s",
        if fsync { "on" } else { "off" },
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "commit latency: p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );

    let reopened = Spool::open(&dir, opts)?;
    let found = reopened.pending().len() - before;
    if found != total {
        return Err(format!("after reopen {found} of {total} messages pending").into());
    }
    println!("reopen: all {total} messages pending");
    Ok(())
}
