//! The latency of the final `250` (the reply to the end of the content, sent once the message
//! is durable), as a client sees it: `SESSIONS` connections each send `MESSAGES / SESSIONS`
//! messages of `SIZE` octets one after the other (MAIL, RCPT, DATA, content), timing each from
//! the last octet of the content to the reply. Prints the rate and the 50th and 99th
//! percentiles. Used by `scripts/bench.sh` for relais and Postfix in the same run.
//!
//! ```text
//! cargo run --release -p relais-client --example latency -- 127.0.0.1:2525 20 20000 1024 bench@localhost
//! ```

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Reads one reply (its last line); an error if it does not start with `want`.
async fn reply(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    want: &str,
) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    if line.starts_with(want) {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "expected {want}, got {}",
            line.trim_end()
        )))
    }
}

/// One session: its messages' latencies.
async fn session(
    addr: String,
    count: usize,
    body: Vec<u8>,
    to: String,
) -> std::io::Result<Vec<Duration>> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    reply(&mut r, "220").await?;
    w.write_all(b"EHLO latency.example.org\r\n").await?;
    reply(&mut r, "250").await?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        w.write_all(b"MAIL FROM:<bench@example.org>\r\n").await?;
        reply(&mut r, "250").await?;
        w.write_all(format!("RCPT TO:<{to}>\r\n").as_bytes())
            .await?;
        reply(&mut r, "250").await?;
        w.write_all(b"DATA\r\n").await?;
        reply(&mut r, "354").await?;
        w.write_all(&body).await?;
        let sent = Instant::now();
        w.write_all(b".\r\n").await?;
        reply(&mut r, "250").await?;
        out.push(sent.elapsed());
    }
    w.write_all(b"QUIT\r\n").await?;
    let _ = reply(&mut r, "221").await;
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: latency ADDR SESSIONS MESSAGES SIZE RCPT");
        std::process::exit(2);
    }
    let (addr, sessions, messages, size, to) = (
        args[1].clone(),
        args[2].parse::<usize>()?.max(1),
        args[3].parse::<usize>()?,
        args[4].parse::<usize>()?,
        args[5].clone(),
    );
    let mut body = b"From: <bench@example.org>\r\nSubject: latency\r\n\r\n".to_vec();
    while body.len() < size {
        body.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu\r\n",
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let mut all: Vec<Duration> = rt.block_on(async {
        let tasks: Vec<_> = (0..sessions)
            .map(|i| {
                let n = messages / sessions + usize::from(i < messages % sessions);
                tokio::spawn(session(addr.clone(), n, body.clone(), to.clone()))
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.map_err(std::io::Error::other)??);
        }
        Ok::<_, std::io::Error>(all)
    })?;
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len().max(1)) - 1;
        all.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{} messages in {:.2} s: {:.0} msg/s, final 250 p50 {:.2} ms p99 {:.2} ms",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
