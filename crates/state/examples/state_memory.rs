//! What the embedded store costs in memory and on disk with many entries: 10,000 greylisting
//! triplets (and their passed networks) and 100,000 rate counters, written the way the door
//! writes them, then read back once each. Prints the resident memory (VmRSS) before and after,
//! and the file's size. Used by `scripts/bench.sh` (`state` target).
//!
//! ```text
//! cargo run --release -p relais-state --example state_memory
//! ```

use std::time::Instant;

use relais_state::Store;

/// This process's resident memory, in kB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state.redb");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let before = rss_kb();
    let started = Instant::now();
    let store = Store::open(&path)?;
    let now = 1_800_000_000;
    rt.block_on(async {
        for i in 0..10_000u64 {
            let net = format!("10.{}.{}.0/24", i / 256, i % 256);
            let triplet = format!("gt:{net}/sender{i}@example.org/user{i}@example.com");
            store.get_or_set(&triplet, now, now, now + 4 * 3600).await?;
            store
                .set(&format!("gw:{net}"), now, now + 36 * 86400)
                .await?;
        }
        for i in 0..100_000u64 {
            let key = format!("rm:198.51.{}.{}:{}", i / 256 % 256, i % 256, i / 65536);
            store.add(&key, 1, now, now + 120).await?;
        }
        for i in 0..100_000u64 {
            let key = format!("rm:198.51.{}.{}:{}", i / 256 % 256, i % 256, i / 65536);
            store.get(&key, now).await?;
        }
        Ok::<_, relais_state::StateError>(())
    })?;
    let elapsed = started.elapsed();
    let after = rss_kb();
    let file = std::fs::metadata(&path)?.len();
    println!(
        "state store: 10000 greylist triplets + 10000 networks + 100000 counters in {:.1} s; \
         VmRSS {before} kB -> {after} kB (+{} kB); file {} kB",
        elapsed.as_secs_f64(),
        after.saturating_sub(before),
        file / 1024
    );
    drop(store);
    Ok(())
}
