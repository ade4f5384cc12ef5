//! Text the administrator or the DNS hands relais: the TOML configuration, an aliases file, SPF
//! DMARC and DKIM key records. Never a panic; a configuration that loads prints to TOML that
//! loads to the same; an SPF record that validates splits into terms; a DKIM key record relais
//! calls usable (`relais dns dkim`, `relais check`) is one the verifier (mail-auth) reads, and
//! its tags read back the same when written out again.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use relais_config::Config;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use relais_dns::{dkim, dmarc, spf};
use relais_route::aliases::Aliases;

fuzz_target!(|text: &str| {
    if let Ok(c) = Config::parse(text) {
        let printed = c.to_toml();
        let again = Config::parse(&printed)
            .unwrap_or_else(|e| panic!("{printed}\ndoes not load again: {e}"));
        assert_eq!(again.to_toml(), printed);
    }
    let _ = Aliases::parse(text, Path::new("/nonexistent/aliases"));
    if spf::is_spf(text) && spf::validate(text).is_ok() {
        let _ = spf::terms(text);
    }
    if dmarc::is_dmarc(text) {
        let _ = dmarc::tags(text);
    }
    let tags = dkim::tags(text);
    let written: Vec<String> = tags.iter().map(|(t, v)| format!("{t}={v}")).collect();
    assert_eq!(dkim::tags(&written.join("; ")), tags, "{text:?}");
    if dkim::problem(text).is_none() {
        if let Err(e) = DomainKey::parse(text.as_bytes()) {
            panic!("{text:?} is called usable, the verifier says {e}");
        }
    }
});
