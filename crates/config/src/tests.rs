//! Tests of the configuration: parsing, defaults, errors naming key and line.

use super::*;

#[test]
fn empty_file_is_the_embedded_default() {
    let c = Config::parse("").unwrap();
    assert_eq!(c.listener[0].address.to_string(), "127.0.0.1:2525");
    assert!(c.local_domains.contains(&"localhost".to_string()));
    assert!(!c.hostname.is_empty());
    assert_eq!(c.limits.command_timeout, Duration::from_secs(300));
    // the effective settings read back to the same thing
    let again = Config::parse(&c.to_toml()).unwrap();
    assert_eq!(again.to_toml(), c.to_toml());
}

#[test]
fn milters() {
    let c = Config::parse(
        "[[milter]]\naddress = \"inet:127.0.0.1:11332\"\n\
         [[milter]]\naddress = \"unix:/run/clamav/milter.sock\"\n\
         default_action = \"accept\"\ncommand_timeout = \"5s\"\n",
    )
    .unwrap();
    assert_eq!(c.milter.len(), 2);
    assert_eq!(c.milter[0].address.to_string(), "127.0.0.1:11332");
    assert_eq!(c.milter[0].default_action, MilterAction::Tempfail);
    assert_eq!(c.milter[0].content_timeout, Duration::from_secs(300));
    assert_eq!(c.milter[1].default_action, MilterAction::Accept);
    assert_eq!(c.milter[1].command_timeout, Duration::from_secs(5));
    let again = Config::parse(&c.to_toml()).unwrap();
    assert_eq!(again.to_toml(), c.to_toml());
    let e = Config::parse("[[milter]]\naddress = \"rspamd\"\n").unwrap_err();
    assert!(e.message.contains("address"), "{}", e.message);
    let e = Config::parse("[[milter]]\naddress = \"127.0.0.1:1\"\ndefault_action = \"drop\"\n")
        .unwrap_err();
    assert!(e.message.contains("default_action"), "{}", e.message);
}

#[test]
fn sender_authentication() {
    let c = Config::parse("").unwrap();
    assert_eq!(c.policy.spf, SpfAction::Off);
    assert!(
        !c.policy.checks_content(),
        "the embedded default asks no DNS"
    );
    let c = Config::parse(
        "hostname = \"mx.example.com\"\nresolver = \"127.0.0.1:5353\"\n\
         [delivery]\nresolver = \"127.0.0.2\"\n\
         [policy]\nspf = \"reject\"\nsoftfail_reject = true\ndkim = \"tag\"\n\
         dmarc = \"enforce\"\narc = \"tag\"\n\
         [[dkim]]\ndomain = \"Example.COM\"\nselector = \"s1\"\nkey = \"/k.pem\"\n",
    )
    .unwrap();
    assert_eq!(c.nameserver().to_string(), "127.0.0.1:5353");
    assert_eq!(c.policy.spf, SpfAction::Reject);
    assert!(c.policy.softfail_reject);
    assert_eq!(c.policy.dmarc, DmarcAction::Enforce);
    assert_eq!(c.policy.authserv_id, "mx.example.com");
    assert!(c.policy.checks_content());
    assert_eq!(c.dkim[0].domain, "example.com");
    // the [delivery] key alone serves every lookup
    let c = Config::parse("[delivery]\nresolver = \"127.0.0.2\"\n").unwrap();
    assert_eq!(c.nameserver().to_string(), "127.0.0.2:53");
    let again = Config::parse(&c.to_toml()).unwrap();
    assert_eq!(again.to_toml(), c.to_toml());
}

#[test]
fn full_file() {
    let c = Config::parse(
        r#"
hostname = "mx.example.com"
local_domains = ["Example.com"]
[[listener]]
address = "127.0.0.1:0"
[[listener]]
address = "[::1]:2526"
[limits]
max_message_size = 1000
command_timeout = "5m"
data_timeout = 30
[local]
users = ["Alice", "bob"]
aliases = "/etc/relais/aliases"
lmtp = "unix:/run/dovecot/lmtp"
run_as = "mail"
command_timeout = "2m"
"#,
    )
    .unwrap();
    assert_eq!(
        c.local.aliases.as_deref(),
        Some(Path::new("/etc/relais/aliases"))
    );
    assert_eq!(
        c.local.lmtp.as_ref().map(ToString::to_string).as_deref(),
        Some("unix:/run/dovecot/lmtp")
    );
    assert_eq!(c.local.run_as, "mail");
    assert_eq!(c.local.command_timeout, Duration::from_secs(120));
    let again = Config::parse(&c.to_toml()).unwrap();
    assert_eq!(again.local.aliases, c.local.aliases);
    assert_eq!(again.local.command_timeout, c.local.command_timeout);
    let d = Config::parse("").unwrap();
    assert_eq!(d.local.run_as, "nobody");
    assert_eq!(d.local.aliases, None);
    assert_eq!(c.listener.len(), 2);
    assert_eq!(c.local_domains, vec!["example.com"]);
    assert_eq!(c.local.users, vec!["alice", "bob"]);
    assert_eq!(c.limits.command_timeout, Duration::from_secs(300));
    assert_eq!(c.limits.data_timeout, Duration::from_secs(30));
    // Deadlines (issue 15): Postfix's defaults, configurable, never zero.
    assert_eq!(c.limits.command_deadline, Duration::from_secs(300));
    assert_eq!(c.limits.data_deadline, Duration::from_secs(600));
    assert_eq!(c.limits.min_data_rate, 500);
    let c = Config::parse(
        "[limits]\ncommand_deadline = \"2s\"\ndata_deadline = \"3s\"\nmin_data_rate = 0\n",
    )
    .unwrap();
    assert_eq!(c.limits.command_deadline, Duration::from_secs(2));
    assert_eq!(c.limits.data_deadline, Duration::from_secs(3));
    assert_eq!(c.limits.min_data_rate, 0);
    let e = Config::parse("[limits]\ncommand_deadline = 0\n").unwrap_err();
    assert!(e.to_string().contains("command_deadline"), "{e}");
    let c = Config::parse("[delivery]\nsource_address = [\"127.0.0.2\", \"::1\"]\n").unwrap();
    assert_eq!(c.delivery.source_address.len(), 2);
    assert!(
        Config::parse("")
            .unwrap()
            .delivery
            .source_address
            .is_empty()
    );
}

#[test]
fn state_is_embedded_by_default_or_in_redis() {
    let c = Config::parse("").unwrap();
    assert_eq!(c.state.redis, "");
    for url in [
        "redis://127.0.0.1:6379",
        "redis://redis.example.com",
        "redis://:secret@[::1]:6380/2",
        "redis://localhost/0",
    ] {
        let c = Config::parse(&format!("[state]\nredis = \"{url}\"\n")).expect(url);
        assert_eq!(c.state.redis, url);
    }
    for url in [
        "rediss://h:1",
        "redis://",
        "redis://h:0",
        "redis://h/x",
        "redis://a b",
    ] {
        assert!(
            Config::parse(&format!("[state]\nredis = \"{url}\"\n")).is_err(),
            "{url}"
        );
    }
}

#[test]
fn errors_name_the_key_and_the_line() {
    let cases: &[(&str, &[&str])] = &[
        ("hostname = \"a\"\nbogus = 1\n", &["line 2", "bogus"]),
        (
            "[limits]\nmax_message_size = \"big\"\n",
            &["line 2", "max_message_size"],
        ),
        (
            "[limits]\ncommand_timeout = \"soon\"\n",
            &["line 2", "command_timeout"],
        ),
        (
            "[[listener]]\naddress = \"nowhere\"\n",
            &["line 2", "address"],
        ),
        ("hostname = \"not a host\"\n", &["line 1", "hostname"]),
        (
            "local_domains = [\"ok.com\", \"bad domain\"]\n",
            &["line 1", "local_domains"],
        ),
        ("listener = []\n", &["line 1", "listener"]),
        ("[local]\nusers = [\"../etc\"]\n", &["line 2", "users"]),
        ("[local]\nlmtp = \"dovecot:24\"\n", &["line 2", "lmtp"]),
        ("[local]\nrun_as = \"\"\n", &["line 2", "run_as"]),
        (
            "[local]\ncommand_timeout = \"0s\"\n",
            &["line 2", "command_timeout"],
        ),
        ("hostname = \n", &["line 1"]),
        (
            "[http]\naddress = \"0.0.0.0:9025\"\n",
            &["line 2", "address", "needs a token"],
        ),
        (
            "[policy]\nspf = \"yes\"\n",
            &["line 2", "off", "tag", "reject"],
        ),
        ("[policy]\ndmarc = \"reject\"\n", &["line 2", "enforce"]),
        ("[policy]\ndkm = \"tag\"\n", &["line 2", "dkm"]),
        ("resolver = \"dns.example\"\n", &["line 1", "IP:PORT"]),
        (
            "[[dkim]]\ndomain = \"a b\"\nselector = \"s\"\nkey = \"k\"\n",
            &["line 2", "domain", "not a domain"],
        ),
        (
            "[[dkim]]\ndomain = \"a.example\"\nkey = \"k\"\n",
            &["selector"],
        ),
        (
            "[state]\nredis = \"127.0.0.1:6379\"\n",
            &["line 2", "redis", "not a Redis URL"],
        ),
        (
            "[state]\nredis = \"redis://127.0.0.1:port\"\n",
            &["line 2", "redis"],
        ),
        ("[state]\nredus = \"\"\n", &["line 2", "redus"]),
        (
            "[delivery]\nsource_address = [\"127.0.0.2\", \"127.0.0.3\"]\n",
            &["line 2", "source_address", "at most one IPv4"],
        ),
        (
            "[delivery]\nsource_address = [\"nowhere\"]\n",
            &["line 2", "source_address"],
        ),
    ];
    for (text, needles) in cases {
        let e = Config::parse(text).expect_err(text).to_string();
        for n in *needles {
            assert!(e.contains(n), "{text:?}: {e}");
        }
    }
}
