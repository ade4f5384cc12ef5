//! `relais probe HOST --ports …`: several ports of one host at once, each named by what it
//! does: a clean zoo server (open), one with TLS from the first byte (tls-only), a port nobody
//! listens on (refused), a listener whose queue is full (filtered: the kernel drops the SYN),
//! and a server whose greeting refuses (refusing).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use socket2::{Domain, Socket, Type};

use crate::zoo::{Behaviour, CertKind, Pki, Zoo, dns, probe, probe_text};

/// A port where nothing listens: bound, then let go.
fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A listener with a backlog of zero that never accepts, its queue filled: Linux drops the
/// next SYN, so a connection there times out as behind a dropping firewall.
struct Filtered {
    port: u16,
    _listener: Socket,
    _fillers: Vec<Socket>,
}

impl Filtered {
    fn new() -> Filtered {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        // Bounded: a few connections fill a queue of one; stop at the first that hangs.
        for _ in 0..4 {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let hung = s
                .connect_timeout(&addr.into(), Duration::from_millis(300))
                .is_err();
            fillers.push(s);
            if hung {
                break;
            }
        }
        // The check the test depends on: a new connection does not get through.
        let started = Instant::now();
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
            "the full queue still accepts connections"
        );
        assert!(started.elapsed() >= Duration::from_millis(400));
        Filtered {
            port: addr.port(),
            _listener: listener,
            _fillers: fillers,
        }
    }
}

/// The state and Outlook number of each port of the first address, by port.
fn states(json: &Value) -> Vec<(u16, String, Option<String>)> {
    json["addresses"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap() as u16,
                p["state"].as_str().unwrap().to_string(),
                p["outlook"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn each_port_is_named_by_what_it_does() {
    let pki = Pki::new();
    let dns = dns();
    let clean = Behaviour::clean(&pki, CertKind::Good);
    let open = Zoo::start(clean.clone());
    let tls = Zoo::start(Behaviour {
        implicit_tls: true,
        ..clean.clone()
    });
    let refusing = Zoo::start(Behaviour {
        banner: "554 5.7.1 No SMTP service here".into(),
        ..clean
    });
    let refused = refused_port();
    let filtered = Filtered::new();
    let ports = [
        open.addr.port(),
        tls.addr.port(),
        refusing.addr.port(),
        refused,
        filtered.port,
    ];
    let list = ports.map(|p| p.to_string()).join(",");
    let started = Instant::now();
    let p = probe(
        &dns,
        &pki,
        "127.0.0.1",
        &["--ports", &list, "--timeout", "2"],
    );
    // All at once: the filtered port and the TLS port's silent first try take 2 s each, side
    // by side; one after the other they would take 6 s or more.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(p.code, 0, "one port greets: {}\n{}", p.stdout, p.stderr);
    let mut want = vec![
        (open.addr.port(), "open".to_string(), None),
        (tls.addr.port(), "tls-only".to_string(), None),
        (
            refusing.addr.port(),
            "refusing".to_string(),
            Some("0x800CCC6F".to_string()),
        ),
        (
            refused,
            "refused".to_string(),
            Some("0x800CCC0E".to_string()),
        ),
        (
            filtered.port,
            "filtered".to_string(),
            Some("0x800CCC0E".to_string()),
        ),
    ];
    want.sort();
    assert_eq!(states(&p.json()), want, "{}", p.stdout);

    // The text names them too, with the numbers.
    let t = probe_text(
        &dns,
        &pki,
        "127.0.0.1",
        &["--ports", &list, "--timeout", "2"],
    );
    assert_eq!(t.code, 0, "{}", t.stdout);
    for words in [
        format!("{}", open.addr.port()),
        "tls-only".to_string(),
        "refused".to_string(),
        "(Outlook 0x800CCC0E)".to_string(),
        "summary: 2 of 5 port(s) greet; exit 0".to_string(),
    ] {
        assert!(t.stdout.contains(&words), "{words:?} not in\n{}", t.stdout);
    }
}

#[test]
fn a_domain_with_no_greeting_port_exits_2() {
    let pki = Pki::new();
    let dns = dns();
    let filtered = Filtered::new();
    let list = format!("{},{}", refused_port(), filtered.port);
    // zoo.test's MX is mx.zoo.test at 127.0.0.1.
    let p = probe(
        &dns,
        &pki,
        "zoo.test",
        &["--ports", &list, "--timeout", "1"],
    );
    assert_eq!(p.code, 2, "{}\n{}", p.stdout, p.stderr);
    let json = p.json();
    assert_eq!(json["addresses"][0]["host"], "mx.zoo.test", "{}", p.stdout);
    let got: Vec<String> = states(&json).into_iter().map(|(_, s, _)| s).collect();
    assert!(got.contains(&"refused".to_string()) && got.contains(&"filtered".to_string()));
    // A bad list is the options' fault.
    let bad = probe(&dns, &pki, "127.0.0.1", &["--ports", "25,0"]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
}
