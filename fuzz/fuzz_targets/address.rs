//! Envelope paths (RFC 822 forms as Postfix takes them) and ESMTP parameters: never a panic; an
//! address kept in canonical form reads back as itself, within the path limit; parameters print
//! back to what parses to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relais_proto::address::{self, MAX_PATH, ReversePath};
use relais_proto::{MailParams, Mailbox, RcptParams};

fuzz_target!(|text: &str| {
    if let Ok((path, params)) = address::split_path(text) {
        if let Ok(from) = address::parse_reverse_path(path) {
            let printed = from.to_string();
            assert!(
                printed.len() + 2 <= MAX_PATH,
                "{printed:?} over the path limit"
            );
            let again = address::parse_reverse_path(&printed)
                .unwrap_or_else(|e| panic!("{printed:?} (from {path:?}) does not read back: {e}"));
            assert_eq!(again, from);
            if let ReversePath::Mailbox(m) = &from {
                assert_eq!(Mailbox::parse(&printed).as_ref(), Ok(m), "{printed:?}");
            }
        }
        if let Ok(to) = address::parse_forward_path(path) {
            let printed = to.to_string();
            assert_eq!(address::parse_forward_path(&printed), Ok(to), "{printed:?}");
        }
        if let Ok(p) = MailParams::parse(params) {
            let printed = p.to_string();
            assert_eq!(
                MailParams::parse(printed.trim_start()),
                Ok(p),
                "{printed:?}"
            );
        }
        if let Ok(p) = RcptParams::parse(params) {
            let printed = p.to_string();
            assert_eq!(
                RcptParams::parse(printed.trim_start()),
                Ok(p),
                "{printed:?}"
            );
        }
    }
    if let Ok(m) = Mailbox::parse(text) {
        assert_eq!(Mailbox::parse(&m.to_string()), Ok(m));
    }
});
