//! The memory of the embedded store under load, for the figure issue 12 asks for: 10,000
//! greylisting entries and 100,000 rate counters, then the resident memory of this process.
//!
//! ```text
//! cargo run --release -p relais-state --example fill
//! ```

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("relais-fill-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let before = rss_kb();
    let started = std::time::Instant::now();
    let store = relais_state::Store::open(&dir.join("state.redb"))?;
    let now = 1_800_000_000;
    runtime.block_on(async {
        for i in 0..10_000u32 {
            let key = format!(
                "gt:192.0.{}.0/24/sender{i}@example.org/rcpt{i}@example.com",
                i % 256
            );
            store.get_or_set(&key, now, now, now + 14_400).await?;
        }
        for i in 0..100_000u32 {
            let key = format!(
                "rm:198.51.{}.{}:{}",
                i / 256 % 256,
                i % 256,
                now / 60 + u64::from(i / 65_536)
            );
            store.add(&key, 1, now, now + 120).await?;
        }
        Ok::<_, relais_state::StateError>(())
    })?;
    let elapsed = started.elapsed();
    let file = std::fs::metadata(dir.join("state.redb"))?.len();
    println!(
        "{} entries in {:.1} s; VmRSS {} kB before, {} kB after; file {} kB",
        runtime.block_on(store.len())?,
        elapsed.as_secs_f64(),
        before,
        rss_kb(),
        file / 1024
    );
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
