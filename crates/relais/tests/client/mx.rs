//! `relais send` without `--server`: the MX hosts of the recipient's domain, from the fixture
//! DNS server of `relais-dns`, tried in order of preference.

use relais_dns::fixture::{Server as Dns, Zone};

use crate::support::{Relais, relais};

fn zone() -> Zone {
    Zone::new()
        // mx1 (preferred) has an address where nothing listens; mx2 is the relais under test.
        .mx("test.example", 20, "mx2.test.example")
        .mx("test.example", 10, "mx1.test.example")
        .a("mx1.test.example", "127.0.0.2")
        .a("mx2.test.example", "127.0.0.1")
        .mx("nullmx.test", 0, ".")
        .a("nullmx.test", "127.0.0.1")
}

#[test]
fn mx_hosts_are_tried_in_order_of_preference() {
    let server = Relais::start(&[]);
    let dns = Dns::start(zone()).expect("start the fixture DNS server");
    let resolver = dns.addr().to_string();
    let port = server.daemon.port.to_string();
    let run = relais(&[
        "send",
        "--resolver",
        &resolver,
        "--port",
        &port,
        "--timeout",
        "10",
        "--from",
        "a@client.example",
        "--to",
        "bob@test.example",
    ]);
    run.expect_code(0)
        .expect_out("=== Looking up the MX of test.example")
        .expect_out("=== MX 10 mx1.test.example [127.0.0.2]")
        .expect_out("=== MX 20 mx2.test.example [127.0.0.1]");
    let first = run.stdout.find("Trying 127.0.0.2:").expect("mx1 tried");
    let second = run.stdout.find("Trying 127.0.0.1:").expect("mx2 tried");
    assert!(first < second, "{}", run.stdout);
    server.mailbox("bob", 1);
}

#[test]
fn domains_that_take_no_mail() {
    let dns = Dns::start(zone()).expect("start the fixture DNS server");
    let resolver = dns.addr().to_string();
    for (to, why) in [
        ("a@nullmx.test", "accepts no mail (null MX"),
        ("a@missing.test", "does not exist (NXDOMAIN)"),
    ] {
        relais(&[
            "send",
            "--resolver",
            &resolver,
            "--to",
            to,
            "--timeout",
            "5",
        ])
        .expect_code(2)
        .expect_out(why);
    }
}
