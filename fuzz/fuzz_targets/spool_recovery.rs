//! Spool recovery from a damaged log: a real spool (three messages, one of them done) is
//! written once; each input damages a copy of its segment (bytes flipped, a cut, or the whole
//! segment replaced by the input), and the spool is opened on it. Never a panic or a hang:
//! what recovery keeps reads back or answers an error; a second opening finds the same.
#![no_main]

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use relais_spool::{Spool, SpoolOptions};

fn opts() -> SpoolOptions {
    SpoolOptions {
        fsync: false,
        ..SpoolOptions::default()
    }
}

/// A directory of this process for the fuzzer's spools.
fn base() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let root = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let b = root.join(format!("relais-fuzz-spool-{}", std::process::id()));
        let _ = fs::remove_dir_all(&b);
        fs::create_dir_all(&b).unwrap();
        b
    })
}

/// The segment of a spool holding three messages, one marked done.
fn template() -> &'static Vec<u8> {
    static SEGMENT: OnceLock<Vec<u8>> = OnceLock::new();
    SEGMENT.get_or_init(|| {
        let dir = base().join("template");
        let spool = Spool::open(&dir, opts()).unwrap();
        let mut ids = Vec::new();
        for (env, body) in [
            (
                &b"MAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\n"[..],
                &b"Subject: 1\r\n\r\none\r\n"[..],
            ),
            (
                b"MAIL FROM:<>\nRCPT TO:<postmaster>\n",
                b"Subject: 2\r\n\r\ntwo\r\n",
            ),
            (b"MAIL FROM:<x@y.z>\nRCPT TO:<u@v.w>\n", &[b'x'; 3000]),
        ] {
            let mut inc = spool.begin(spool.new_id());
            inc.write(body).unwrap();
            ids.push(inc.commit(env.to_vec()).wait().unwrap());
        }
        spool.mark_done(ids[1]).unwrap();
        spool.shutdown();
        drop(spool);
        let seg = segment_of(&dir).expect("a segment");
        fs::read(seg).unwrap()
    })
}

fn segment_of(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir.join("log"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
}

/// One pending message read back: (envelope, body), or the error.
type Read = Result<(Vec<u8>, Vec<u8>), String>;

/// Everything a spool holds: each pending message read back, or the error of the opening.
fn contents(dir: &Path) -> Result<Vec<Read>, String> {
    let spool = Spool::open(dir, opts()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for id in spool.pending() {
        out.push(spool.read(id).map_err(|e| e.to_string()).and_then(|m| {
            let mut body = Vec::new();
            m.body_reader()
                .and_then(|mut r| r.read_to_end(&mut body).map_err(Into::into))
                .map_err(|e| e.to_string())?;
            Ok((m.envelope.clone(), body))
        }));
    }
    spool.shutdown();
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    static N: AtomicU64 = AtomicU64::new(0);
    let template = template();
    let segment = match data.split_first() {
        // The input is the segment itself (after the header, so recovery reads it).
        Some((0xFF, rest)) => {
            let mut s = template[..template.len().min(16)].to_vec();
            s.extend_from_slice(rest);
            s
        }
        // Byte flips (position, value) and a cut.
        Some((&cut, rest)) => {
            let mut s = template.clone();
            for f in rest.chunks_exact(3) {
                let at = usize::from(u16::from_le_bytes([f[0], f[1]])) % s.len();
                s[at] ^= f[2];
            }
            let keep = s.len() - (usize::from(cut) * 7).min(s.len());
            s.truncate(keep);
            s
        }
        None => return,
    };
    let dir = base().join(N.fetch_add(1, Ordering::Relaxed).to_string());
    fs::create_dir_all(dir.join("log")).unwrap();
    fs::write(dir.join("log").join(format!("{:016}.seg", 1)), &segment).unwrap();
    let first = contents(&dir);
    let second = contents(&dir);
    assert_eq!(first.is_ok(), second.is_ok(), "{first:?} then {second:?}");
    if let (Ok(a), Ok(b)) = (&first, &second) {
        let ok = |v: &Vec<Read>| {
            let mut k: Vec<_> = v.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
            k.sort();
            k
        };
        assert_eq!(ok(a), ok(b), "a second recovery found something else");
    }
    let _ = fs::remove_dir_all(&dir);
});
