//! Runs the fixture DNS server (the `standard` zones) until standard input closes or the
//! process is killed, for trying `relais dns` by hand or producing the README examples:
//!
//! ```text
//! cargo run -p relais-dns --features fixture --example fixture_server
//! relais dns mx example.test --resolver 127.0.0.1:PORT
//! ```

use std::io::Read;

fn main() -> std::io::Result<()> {
    let server = relais_dns::fixture::Server::start(relais_dns::fixture::standard())?;
    println!("{}", server.addr());
    // Block until standard input closes (Ctrl-D, or the parent goes away).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(server);
    Ok(())
}
