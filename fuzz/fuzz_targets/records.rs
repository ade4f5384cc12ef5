//! Text the administrator or the DNS hands relais: the TOML configuration, an aliases file, SPF
//! and DMARC records. Never a panic; a configuration that loads prints to TOML that loads to
//! the same; an SPF record that validates splits into terms.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use relais_config::Config;
use relais_dns::{dmarc, spf};
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
});
