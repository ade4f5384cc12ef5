//! Choosing the resolver: `--resolver`, `RELAIS_RESOLVER`, and what happens when it is wrong.

use std::net::UdpSocket;

use crate::support::{run_with_env, server};

#[test]
fn the_environment_variable_is_used_without_the_flag() {
    let s = server();
    let addr = s.addr().to_string();
    let run = run_with_env(
        &["dns", "mx", "example.test"],
        &[("RELAIS_RESOLVER", &addr)],
        None,
    )
    .expect(0);
    assert!(
        run.stdout.contains(&format!("resolver: {addr}")),
        "{}",
        run.stdout
    );
    assert!(!s.queries().is_empty());
}

#[test]
fn the_flag_wins_over_the_environment() {
    let s = server();
    let addr = s.addr().to_string();
    // The variable names a port nobody answers on; the flag the fixture.
    run_with_env(
        &["dns", "a", "mx1.example.test"],
        &[("RELAIS_RESOLVER", "127.0.0.1:9")],
        Some(&addr),
    )
    .expect(0);
}

#[test]
fn a_resolver_that_is_no_address_exits_4() {
    let run = run_with_env(
        &["dns", "mx", "example.test"],
        &[],
        Some("dns.example.test"),
    );
    let run = run.expect(4);
    assert!(
        run.stderr.contains("is not a nameserver address"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_resolver_that_does_not_answer_exits_5() {
    // A bound UDP socket that never answers: the query times out.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    run_with_env(
        &["dnsbl", "127.0.0.2", "--zone", "bl.test"],
        &[],
        Some(&addr),
    )
    .expect(5);
    run_with_env(&["dns", "mx", "example.test"], &[], Some(&addr)).expect(5);
}
