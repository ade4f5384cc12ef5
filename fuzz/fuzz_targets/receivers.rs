//! DATA and command-line receivers: content dot-stuffed by the client half ends exactly at its
//! end, however it is cut (no smuggled end of data), reads back the same whole or in pieces, and
//! a second round trip changes nothing; command lines are found, capped and stay in step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relais_proto::receiver::Line;
use relais_proto::{DataReceiver, LineReceiver, dot_stuff};

/// Receives `wire` cut in pieces of `cut`; the content, the bytes used and whether it ended.
fn receive(wire: &[u8], cut: usize) -> (Vec<u8>, usize, bool) {
    let mut r = DataReceiver::new();
    let mut out = Vec::new();
    let mut used = 0;
    for piece in wire.chunks(cut) {
        let (n, done) = r.feed(piece, &mut out);
        used += n;
        if done {
            return (out, used, true);
        }
        assert_eq!(n, piece.len(), "input left before the end");
    }
    (out, used, false)
}

fuzz_target!(|data: &[u8]| {
    let (cut, content) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c % 64) + 1, rest),
        None => return,
    };
    let wire = dot_stuff(content);
    let (whole, used, ended) = receive(&wire, wire.len());
    assert!(
        ended && used == wire.len(),
        "the end of data is not at the end"
    );
    assert_eq!(receive(&wire, cut), (whole.clone(), used, true));
    let (again, _, _) = receive(&dot_stuff(&whole), usize::MAX);
    assert_eq!(again, whole, "a second round trip changed the content");

    // Raw bytes as command lines: every byte is accounted for, no line over the cap.
    let mut lines = LineReceiver::new(64);
    let mut rest = content;
    let mut guard = 0;
    while !rest.is_empty() {
        guard += 1;
        assert!(guard <= content.len() + 1, "no progress");
        match lines.next_line(rest) {
            Line::Complete(line, n) => {
                assert!(line.len() < 64 && n <= rest.len() && n > 0);
                rest = &rest[n..];
            }
            Line::TooLong(n) => {
                assert!(n > 0 && n <= rest.len());
                rest = &rest[n..];
            }
            Line::Incomplete(n) => {
                assert!(n <= rest.len());
                break;
            }
        }
    }
});
