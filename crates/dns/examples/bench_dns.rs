//! The DNS of `scripts/bench.sh`'s check runs: `example.org` (the sender of every smtp-source
//! message) publishes SPF through an include that allows 127.0.0.0/8 and a DMARC `p=reject`
//! record, so every message passes SPF, aligns, and passes DMARC; 127.0.0.1 has a PTR that
//! resolves back; the lists `zen.example` and `bl.example` name nobody (NXDOMAIN). Prints its
//! address, serves until standard input closes.
//!
//! ```text
//! cargo run --release -p relais-dns --features fixture --example bench_dns
//! ```

use std::io::Read;

use relais_dns::fixture::{Server, Zone};

fn main() -> std::io::Result<()> {
    let zone = Zone::new()
        .txt("example.org", "v=spf1 include:_spf.example.org -all")
        .txt("_spf.example.org", "v=spf1 ip4:127.0.0.0/8 -all")
        .txt(
            "_dmarc.example.org",
            "v=DMARC1; p=reject; rua=mailto:dmarc@example.org",
        )
        .ptr("127.0.0.1", "bench-client.example.org")
        .a("bench-client.example.org", "127.0.0.1");
    let server = Server::start(zone)?;
    println!("{}", server.addr());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(server);
    Ok(())
}
