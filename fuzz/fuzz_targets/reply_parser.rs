//! The client half: replies read from a stream in arbitrary pieces, and EHLO answers. Never a
//! panic; the same replies whatever the cut; a reply printed and read again is the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relais_proto::{EhloResponse, ReplyParser};

fn replies(chunks: &[&[u8]]) -> Vec<Result<relais_proto::Reply, String>> {
    let mut p = ReplyParser::new();
    let mut out = Vec::new();
    for c in chunks {
        p.push(c);
        loop {
            match p.next_reply() {
                Ok(Some(r)) => out.push(Ok(r)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(format!("{e:?}")));
                    p.discard_buffered();
                    break;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (cut, bytes) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c) + 1, rest),
        None => return,
    };
    let whole = replies(&[bytes]);
    let pieces: Vec<&[u8]> = bytes.chunks(cut).collect();
    let cut_up = replies(&pieces);
    // An error ends what can be compared (what follows it depends on where the cut fell).
    let upto = |v: &[Result<relais_proto::Reply, String>]| -> Vec<relais_proto::Reply> {
        v.iter().map_while(|r| r.as_ref().ok().cloned()).collect()
    };
    assert_eq!(upto(&whole), upto(&cut_up));
    for r in upto(&whole) {
        let _ = EhloResponse::parse(&r);
        let again = replies(&[&r.to_bytes()]);
        assert_eq!(upto(&again), vec![r]);
    }
});
