//! End-to-end tests of the spool: commit, read, reopen, crash leftovers,
//! concurrency, rotation and garbage collection.

use std::fs::{self, OpenOptions};
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, SystemTime};

use relais_spool::{Body, QueueId, Spool, SpoolError, SpoolOptions};

fn opts(fsync: bool) -> SpoolOptions {
    SpoolOptions {
        fsync,
        ..SpoolOptions::default()
    }
}

fn open(dir: &Path, opts: SpoolOptions) -> Spool {
    match Spool::open(dir, opts) {
        Ok(s) => s,
        Err(e) => panic!("cannot open spool in {}: {e}", dir.display()),
    }
}

/// Stores one message whose body is written in `chunk`-sized pieces.
fn store_chunked(spool: &Spool, envelope: &[u8], body: &[u8], chunk: usize) -> QueueId {
    let mut inc = spool.begin(spool.new_id());
    for piece in body.chunks(chunk.max(1)) {
        inc.write(piece).expect("write");
    }
    inc.commit(envelope.to_vec()).wait().expect("commit")
}

fn store(spool: &Spool, envelope: &[u8], body: &[u8]) -> QueueId {
    store_chunked(spool, envelope, body, 4096)
}

fn read_body(spool: &Spool, id: QueueId) -> Vec<u8> {
    let msg = spool.read(id).expect("read");
    let mut out = Vec::new();
    msg.body_reader()
        .expect("body reader")
        .read_to_end(&mut out)
        .expect("read body");
    assert_eq!(out.len() as u64, msg.body_len());
    out
}

/// Deterministic test data: `len` bytes depending on `seed`.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("log"))
        .expect("read log dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn data_file(dir: &Path, id: QueueId) -> PathBuf {
    dir.join("data").join(id.to_string())
}

#[test]
fn commit_and_read_inline_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(tmp.path(), opts(true));
    let before = SystemTime::now() - Duration::from_secs(1);
    let id = spool.new_id();
    let mut inc = spool.begin(id);
    assert_eq!(inc.id(), id);
    inc.write(b"Subject: test\r\n\r\n").expect("write");
    inc.write(b"hello world\r\n").expect("write");
    assert_eq!(inc.len(), 30);
    let got = inc
        .commit(b"envelope-bytes".to_vec())
        .wait()
        .expect("commit");
    assert_eq!(got, id);

    assert_eq!(spool.pending(), vec![id]);
    let msg = spool.read(id).expect("read");
    assert_eq!(msg.id, id);
    assert_eq!(msg.envelope, b"envelope-bytes");
    assert_eq!(
        msg.body,
        Body::Inline(b"Subject: test\r\n\r\nhello world\r\n".to_vec())
    );
    assert_eq!(msg.body_len(), 30);
    assert!(msg.arrival >= before && msg.arrival <= SystemTime::now() + Duration::from_secs(1));
    assert_eq!(
        read_body(&spool, id),
        b"Subject: test\r\n\r\nhello world\r\n"
    );
    assert!(
        !data_file(tmp.path(), id).exists(),
        "small body must stay inline"
    );
}

#[test]
fn open_creates_nested_directories_and_checks_options() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a").join("b").join("spool");
    let spool = open(&dir, opts(true));
    assert_eq!(spool.dir(), dir);
    for sub in ["log", "data"] {
        assert!(dir.join(sub).is_dir(), "{sub} missing");
    }
    assert!(dir.join("LOCK").is_file());
    spool.shutdown();
    let bad = SpoolOptions {
        segment_size: 0,
        ..SpoolOptions::default()
    };
    assert!(matches!(
        Spool::open(&dir, bad),
        Err(SpoolError::InvalidOptions(_))
    ));
}

#[test]
fn empty_body_and_envelope() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(tmp.path(), opts(false));
    let id = spool
        .begin(spool.new_id())
        .commit(Vec::new())
        .wait()
        .expect("commit");
    let msg = spool.read(id).expect("read");
    assert!(msg.envelope.is_empty());
    assert_eq!(msg.body_len(), 0);
    assert!(read_body(&spool, id).is_empty());
}

#[test]
fn large_body_is_spilled_and_read_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(tmp.path(), opts(true));
    let body = pattern(7, 5 << 20);
    let id = store_chunked(&spool, b"env", &body, 64 * 1024);
    let path = data_file(tmp.path(), id);
    assert_eq!(fs::metadata(&path).expect("data file").len(), 5 << 20);
    let msg = spool.read(id).expect("read");
    assert_eq!(msg.body, Body::File(path.clone()));
    assert_eq!(msg.body_len(), 5 << 20);
    assert!(read_body(&spool, id) == body, "spilled body differs");

    spool.shutdown();
    let spool = open(tmp.path(), opts(true));
    assert_eq!(spool.pending(), vec![id]);
    assert!(
        read_body(&spool, id) == body,
        "spilled body differs after reopen"
    );
}

#[test]
fn body_exactly_at_inline_limit_stays_inline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let limit = 1000;
    let spool = open(
        tmp.path(),
        SpoolOptions {
            inline_limit: limit,
            fsync: false,
            ..SpoolOptions::default()
        },
    );
    let at = store_chunked(&spool, b"", &pattern(1, limit), 333);
    let over = store_chunked(&spool, b"", &pattern(2, limit + 1), 333);
    assert!(matches!(
        spool.read(at).expect("read").body,
        Body::Inline(_)
    ));
    assert!(matches!(
        spool.read(over).expect("read").body,
        Body::File(_)
    ));
    assert_eq!(read_body(&spool, over), pattern(2, limit + 1));
}

#[test]
fn corrupted_data_file_is_detected_when_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(
        tmp.path(),
        SpoolOptions {
            inline_limit: 10,
            fsync: false,
            ..SpoolOptions::default()
        },
    );
    let id = store(&spool, b"", &pattern(3, 5000));
    let path = data_file(tmp.path(), id);
    let mut bytes = fs::read(&path).expect("read data file");
    bytes[2500] ^= 0x40;
    fs::write(&path, &bytes).expect("rewrite data file");
    let mut out = Vec::new();
    let err = spool
        .read(id)
        .expect("read")
        .body_reader()
        .expect("reader")
        .read_to_end(&mut out)
        .expect_err("checksum mismatch must be reported");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);

    fs::remove_file(&path).expect("remove data file");
    let err = spool.read(id).expect("read").body_reader().err();
    assert!(matches!(err, Some(SpoolError::Corrupt(_))), "{err:?}");
}

#[test]
fn pending_survives_reopen_in_id_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut ids = Vec::new();
    {
        let spool = open(tmp.path(), opts(true));
        for i in 0..50u64 {
            ids.push(store(
                &spool,
                format!("env{i}").as_bytes(),
                &pattern(i, 100 + i as usize),
            ));
        }
        // Dropped here: the last clone going away shuts the spool down.
    }
    let spool = open(tmp.path(), opts(true));
    assert_eq!(
        spool.pending(),
        ids,
        "pending must be everything, oldest first"
    );
    for (i, id) in ids.iter().enumerate() {
        let msg = spool.read(*id).expect("read");
        assert_eq!(msg.envelope, format!("env{i}").as_bytes());
        assert_eq!(read_body(&spool, *id), pattern(i as u64, 100 + i));
    }
}

#[test]
fn mark_done_survives_reopen_and_removes_data_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = SpoolOptions {
        inline_limit: 2000,
        fsync: true,
        ..SpoolOptions::default()
    };
    let mut ids = Vec::new();
    {
        let spool = open(tmp.path(), o.clone());
        for i in 0..10u64 {
            // Every other message is large enough to get a data file.
            let len = if i % 2 == 0 { 100 } else { 5000 };
            ids.push(store(&spool, b"e", &pattern(i, len)));
        }
        for id in &ids[..6] {
            spool.mark_done(*id).expect("mark_done");
        }
        assert_eq!(spool.pending(), ids[6..].to_vec());
        assert!(matches!(spool.read(ids[0]), Err(SpoolError::NotFound(_))));
        assert!(matches!(
            spool.mark_done(ids[0]),
            Err(SpoolError::NotFound(_))
        ));
        spool.shutdown();
    }
    for (i, id) in ids.iter().enumerate() {
        let expect_file = i % 2 == 1 && i >= 6;
        assert_eq!(
            data_file(tmp.path(), *id).exists(),
            expect_file,
            "data file of message {i}"
        );
    }
    let spool = open(tmp.path(), o);
    assert_eq!(spool.pending(), ids[6..].to_vec());
    for (i, id) in ids.iter().enumerate().skip(6) {
        let len = if i % 2 == 0 { 100 } else { 5000 };
        assert_eq!(read_body(&spool, *id), pattern(i as u64, len));
    }
}

/// Commits `n` small messages, then shuts down. Returns their ids.
fn fill(dir: &Path, n: u64) -> Vec<QueueId> {
    let spool = open(dir, opts(true));
    let ids = (0..n)
        .map(|i| store(&spool, b"env", &pattern(i, 200)))
        .collect();
    spool.shutdown();
    ids
}

#[test]
fn torn_tail_is_ignored_and_truncated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ids = fill(tmp.path(), 10);
    let segs = segment_files(tmp.path());
    assert_eq!(segs.len(), 1);
    let len = fs::metadata(&segs[0]).expect("stat").len();
    // Cut the last record in the middle of its body.
    OpenOptions::new()
        .write(true)
        .open(&segs[0])
        .expect("open segment")
        .set_len(len - 50)
        .expect("truncate");

    let spool = open(tmp.path(), opts(true));
    assert_eq!(
        spool.pending(),
        ids[..9].to_vec(),
        "earlier messages must survive"
    );
    for (i, id) in ids[..9].iter().enumerate() {
        assert_eq!(read_body(&spool, *id), pattern(i as u64, 200));
    }
    // The torn record was cut off, and new writes go to a new segment.
    let extra = store(&spool, b"env", b"after the crash");
    spool.shutdown();
    let segs_after = segment_files(tmp.path());
    assert_eq!(
        segs_after.len(),
        2,
        "a new segment must be started: {segs_after:?}"
    );
    assert!(fs::metadata(&segs[0]).expect("stat").len() < len - 50);

    let spool = open(tmp.path(), opts(true));
    let mut expected = ids[..9].to_vec();
    expected.push(extra);
    assert_eq!(spool.pending(), expected);
}

#[test]
fn torn_tail_at_every_cut_point_never_panics() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ids = fill(tmp.path(), 3);
    let seg = segment_files(tmp.path()).remove(0);
    let full = fs::read(&seg).expect("read segment");
    // Try every cut inside the last record, and inside the segment header.
    let cuts: Vec<usize> = (0..20).chain(full.len() - 250..full.len()).collect();
    for cut in cuts {
        fs::write(&seg, &full[..cut]).expect("write cut segment");
        let spool = open(tmp.path(), opts(false));
        // Records are 250 bytes each after the 16-byte segment header.
        let complete = cut.saturating_sub(16) / 250;
        assert_eq!(spool.pending(), ids[..complete].to_vec(), "cut {cut}");
        spool.shutdown();
        // Start each round from the original single segment.
        for s in segment_files(tmp.path()) {
            fs::remove_file(s).expect("remove segment");
        }
    }
}

#[test]
fn garbage_appended_after_last_record_is_ignored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ids = fill(tmp.path(), 10);
    let seg = segment_files(tmp.path()).remove(0);
    let mut f = OpenOptions::new()
        .append(true)
        .open(&seg)
        .expect("open segment");
    f.write_all(&pattern(99, 1000)).expect("append garbage");
    drop(f);

    let spool = open(tmp.path(), opts(true));
    assert_eq!(spool.pending(), ids);
    let extra = store(&spool, b"env", b"more");
    spool.shutdown();

    // Zero-filled tail (file size extended, data never written).
    let seg2 = segment_files(tmp.path()).pop().expect("segment");
    let mut f = OpenOptions::new()
        .append(true)
        .open(&seg2)
        .expect("open segment");
    f.write_all(&[0u8; 4096]).expect("append zeros");
    drop(f);

    let spool = open(tmp.path(), opts(true));
    let mut expected = ids.clone();
    expected.push(extra);
    assert_eq!(spool.pending(), expected);
}

#[test]
fn commits_overwrite_a_zero_tail_that_a_crash_leaves_harmless() {
    const MARKER: &str = "CHILD-STORED";
    in_child(
        "commits_overwrite_a_zero_tail_that_a_crash_leaves_harmless",
        MARKER,
        |dir| {
            let segs = segment_files(dir);
            assert_eq!(segs.len(), 1, "{segs:?}");
            let crashed_len = fs::metadata(&segs[0]).expect("stat").len();
            assert!(
                crashed_len > 64 * 1024,
                "no zero tail: {crashed_len} octets"
            );
            let spool = open(dir, opts(true));
            let ids = spool.pending();
            assert_eq!(ids.len(), 20, "every committed message survives the crash");
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(read_body(&spool, *id), pattern(i as u64, 200));
            }
            // The zero tail is cut off: the segment ends with its last record.
            let recovered_len = fs::metadata(&segs[0]).expect("stat").len();
            assert!(recovered_len < 20 * 300, "{recovered_len} octets");
            let extra = store(&spool, b"env", b"after the crash");
            spool.shutdown();
            let spool = open(dir, opts(true));
            assert_eq!(spool.pending().len(), 21);
            assert!(spool.pending().contains(&extra));
        },
        |dir| {
            let spool = open(dir, opts(true));
            for i in 0..20 {
                store(&spool, b"env", &pattern(i, 200));
            }
            // While the spool runs, its segment is zero-filled past the records.
            let seg = segment_files(dir).remove(0);
            let bytes = fs::read(&seg).expect("read segment");
            let records = 20 * 250 + 16;
            assert!(bytes.len() > records + 64 * 1024, "{} octets", bytes.len());
            assert!(bytes[records..].iter().all(|&b| b == 0));
            // A crash: the process ends without shutting the spool down.
            println!("{MARKER}");
            std::process::exit(0);
        },
    );
}

/// 30 messages committed to 2 KB segments (at least 3), the spool shut down: its directory,
/// its options, the messages' ids.
fn thirty_in_small_segments() -> (tempfile::TempDir, SpoolOptions, Vec<QueueId>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = SpoolOptions {
        segment_size: 2048,
        fsync: false,
        ..SpoolOptions::default()
    };
    let spool = open(tmp.path(), o.clone());
    let ids: Vec<QueueId> = (0..30)
        .map(|i| store(&spool, b"env", &pattern(i, 200)))
        .collect();
    spool.shutdown();
    let segs = segment_files(tmp.path());
    assert!(segs.len() >= 3, "{segs:?}");
    (tmp, o, ids)
}

#[test]
fn zero_tail_of_an_older_segment_is_its_end_not_damage() {
    let (tmp, o, ids) = thirty_in_small_segments();
    let segs = segment_files(tmp.path());
    // A sealed segment whose zero tail was not cut off before a crash.
    let len = fs::metadata(&segs[0]).expect("stat").len();
    OpenOptions::new()
        .write(true)
        .open(&segs[0])
        .expect("open segment")
        .set_len(len + 4096)
        .expect("extend with zeros");

    let spool = open(tmp.path(), o);
    assert_eq!(spool.pending(), ids, "no message lost or doubled");
    assert_eq!(fs::metadata(&segs[0]).expect("stat").len(), len);
    // Not kept as damaged: it goes once its messages are done.
    for id in &ids {
        spool.mark_done(*id).expect("mark_done");
    }
    spool.shutdown();
    assert!(!segs[0].exists(), "a clean segment must be collected");
}

#[test]
fn corruption_in_an_older_segment_keeps_the_rest_of_the_log() {
    let (tmp, o, ids) = thirty_in_small_segments();
    let segs = segment_files(tmp.path());
    // Flip a byte in the last record of the first segment.
    let mut bytes = fs::read(&segs[0]).expect("read");
    let n = bytes.len();
    bytes[n - 10] ^= 0xFF;
    fs::write(&segs[0], &bytes).expect("write");

    let spool = open(tmp.path(), o);
    let pending = spool.pending();
    // Exactly one message (the corrupt record) is missing; everything in
    // later segments is there.
    assert_eq!(pending.len(), ids.len() - 1, "{pending:?}");
    assert!(ids.iter().filter(|id| !pending.contains(id)).count() == 1);
    assert!(pending.contains(ids.last().expect("ids")));
    // The damaged segment is kept even when nothing in it is live any more.
    for id in &pending {
        spool.mark_done(*id).expect("mark_done");
    }
    spool.shutdown();
    assert!(
        segs[0].exists(),
        "damaged segment must be kept for inspection"
    );
}

#[test]
fn not_a_segment_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(tmp.path().join("log")).expect("mkdir");
    fs::write(
        tmp.path().join("log").join("0000000000000001.seg"),
        b"this is not a spool segment",
    )
    .expect("write");
    let err = Spool::open(tmp.path(), opts(false)).err();
    assert!(matches!(err, Some(SpoolError::Corrupt(_))), "{err:?}");
}

#[test]
fn concurrent_commits_from_20_threads_are_all_durable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(tmp.path(), opts(true));
    let threads: Vec<_> = (0..20u64)
        .map(|t| {
            let spool = spool.clone();
            thread::spawn(move || {
                (0..500u64)
                    .map(|i| {
                        let seed = t * 1000 + i;
                        (
                            store(
                                &spool,
                                &seed.to_le_bytes(),
                                &pattern(seed, 100 + (i as usize % 300)),
                            ),
                            seed,
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().expect("session thread panicked"));
    }
    assert_eq!(spool.pending().len(), 10_000);
    drop(spool);

    let spool = open(tmp.path(), opts(true));
    let mut expected: Vec<QueueId> = all.iter().map(|(id, _)| *id).collect();
    expected.sort();
    assert_eq!(spool.pending(), expected);
    for (id, seed) in &all {
        let msg = spool.read(*id).expect("read");
        assert_eq!(msg.envelope, seed.to_le_bytes());
        assert_eq!(
            read_body(&spool, *id),
            pattern(*seed, 100 + (*seed % 1000) as usize % 300)
        );
    }
}

#[test]
fn segments_rotate_and_spent_ones_are_deleted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = SpoolOptions {
        segment_size: 4096,
        fsync: true,
        ..SpoolOptions::default()
    };
    let spool = open(tmp.path(), o.clone());
    let ids: Vec<QueueId> = (0..200)
        .map(|i| store(&spool, b"env", &pattern(i, 300)))
        .collect();
    let created = segment_files(tmp.path()).len();
    assert!(created >= 10, "expected rotation, got {created} segments");
    for (i, seg) in segment_files(tmp.path()).iter().enumerate() {
        // Never much larger than segment_size (one record of slack).
        assert!(
            fs::metadata(seg).expect("stat").len() <= 4096,
            "segment {i} too large"
        );
    }
    // Finish everything but the first message.
    for id in &ids[1..] {
        spool.mark_done(*id).expect("mark_done");
    }
    spool.shutdown();
    let remaining = segment_files(tmp.path()).len();
    assert!(
        remaining < created / 2,
        "spent segments not deleted: {remaining} of {created} left"
    );

    let spool = open(tmp.path(), o.clone());
    assert_eq!(spool.pending(), vec![ids[0]]);
    spool.mark_done(ids[0]).expect("mark_done");
    spool.shutdown();
    let spool = open(tmp.path(), o);
    assert!(spool.pending().is_empty());
    spool.shutdown();
    assert!(
        segment_files(tmp.path()).is_empty(),
        "{:?}",
        segment_files(tmp.path())
    );
}

#[test]
fn gc_never_resurrects_a_done_message() {
    // `keep` and `done` share segment 1. `done`'s Done record lands in a
    // later segment that then has no live messages; deleting that segment
    // while segment 1 still exists would bring `done` back on reopen.
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = SpoolOptions {
        segment_size: 1024,
        fsync: false,
        ..SpoolOptions::default()
    };
    let spool = open(tmp.path(), o.clone());
    let keep = store(&spool, b"keep", b"k");
    let done = store(&spool, b"done", b"d");
    let fillers: Vec<QueueId> = (0..20)
        .map(|i| store(&spool, b"filler", &pattern(i, 200)))
        .collect();
    spool.mark_done(done).expect("mark_done");
    for id in &fillers {
        spool.mark_done(*id).expect("mark_done");
    }
    // Push the log forward so the Done records' segments are sealed.
    for i in 0..20 {
        let id = store(&spool, b"filler", &pattern(i, 200));
        spool.mark_done(id).expect("mark_done");
    }
    spool.shutdown();

    let spool = open(tmp.path(), o);
    assert_eq!(spool.pending(), vec![keep], "a done message came back");
}

#[test]
fn dropping_incoming_removes_its_spill_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(
        tmp.path(),
        SpoolOptions {
            inline_limit: 1024,
            fsync: false,
            ..SpoolOptions::default()
        },
    );
    let id = spool.new_id();
    let mut inc = spool.begin(id);
    inc.write(&pattern(1, 600)).expect("write");
    assert!(
        !data_file(tmp.path(), id).exists(),
        "must not spill below the limit"
    );
    inc.write(&pattern(2, 10_000)).expect("write");
    assert!(
        data_file(tmp.path(), id).exists(),
        "must spill above the limit"
    );
    assert_eq!(inc.len(), 10_600);
    drop(inc);
    assert!(
        !data_file(tmp.path(), id).exists(),
        "spill file left behind"
    );
    assert!(spool.pending().is_empty());
}

#[test]
fn orphaned_data_files_are_removed_on_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(tmp.path(), opts(false));
    spool.shutdown();
    let orphan = data_file(tmp.path(), QueueId::generate());
    fs::write(&orphan, b"left over by a crash before commit").expect("write");
    let stranger = tmp.path().join("data").join("README");
    fs::write(&stranger, b"not ours").expect("write");
    let _spool = open(tmp.path(), opts(false));
    assert!(!orphan.exists(), "orphaned data file kept");
    assert!(
        stranger.exists(),
        "files that are not spool data must be left alone"
    );
}

#[test]
fn a_message_being_received_holds_other_commits_a_moment_not_more() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(tmp.path(), opts(false));
    assert_eq!(spool.receiving(), 0);
    // A session past DATA whose client stalls: the committer waits for its commit a moment
    // (200 µs) each batch, then goes on without it.
    let mut stalled = spool.begin(spool.new_id());
    stalled.write(b"half a message").expect("buffered");
    assert_eq!(spool.receiving(), 1);
    let started = std::time::Instant::now();
    let ids: Vec<QueueId> = (0..20)
        .map(|i| store(&spool, b"env", &pattern(i, 100)))
        .collect();
    let waited = started.elapsed();
    assert_eq!(spool.pending(), ids, "every commit completes");
    assert!(
        waited >= Duration::from_millis(4),
        "20 batches each waited for the stalled message: {waited:?}"
    );
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    // Committed or dropped, a message is no longer being received.
    let id = stalled.id();
    assert_eq!(stalled.commit(b"env".to_vec()).wait().expect("commit"), id);
    let abandoned = spool.begin(spool.new_id());
    assert_eq!(spool.receiving(), 1);
    drop(abandoned);
    assert_eq!(spool.receiving(), 0);
    spool.shutdown();
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(tmp.path(), opts(false));
    let err = Spool::open(tmp.path(), opts(false)).err();
    assert!(matches!(err, Some(SpoolError::Locked(_))), "{err:?}");
    spool.shutdown();
    let again = Spool::open(tmp.path(), opts(false));
    assert!(
        again.is_ok(),
        "lock not released by shutdown: {:?}",
        again.err()
    );
}

#[test]
fn shutdown_is_idempotent_and_later_calls_fail_closed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(tmp.path(), opts(false));
    let id = store(&spool, b"e", b"b");
    let clone = spool.clone();
    spool.shutdown();
    clone.shutdown();
    let mut inc = spool.begin(spool.new_id());
    inc.write(b"x").expect("buffered write still works");
    assert!(matches!(
        inc.commit(Vec::new()).wait(),
        Err(SpoolError::Closed)
    ));
    assert!(matches!(spool.mark_done(id), Err(SpoolError::Closed)));
    assert!(matches!(spool.read(id), Err(SpoolError::Closed)));
}

#[test]
fn commit_in_flight_at_shutdown_completes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(
        tmp.path(),
        SpoolOptions {
            inline_limit: 100,
            ..SpoolOptions::default()
        },
    );
    let mut commits = Vec::new();
    for i in 0..20 {
        let mut inc = spool.begin(spool.new_id());
        inc.write(&pattern(i, 50 + 40 * i as usize)).expect("write");
        commits.push(inc.commit(b"e".to_vec()));
    }
    spool.shutdown();
    let ids: Vec<QueueId> = commits
        .into_iter()
        .map(|c| c.wait().expect("in-flight commit"))
        .collect();
    let spool = open(tmp.path(), opts(true));
    let mut expected = ids;
    expected.sort();
    assert_eq!(spool.pending(), expected);
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Minimal executor: the spool's `Commit` must work without any runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

#[test]
fn commit_can_be_awaited_without_a_runtime() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spool = open(tmp.path(), opts(true));
    let ids: Vec<QueueId> = (0..10)
        .map(|i| {
            let mut inc = spool.begin(spool.new_id());
            inc.write(&pattern(i, 100)).expect("write");
            block_on(inc.commit(b"async".to_vec())).expect("commit")
        })
        .collect();
    assert_eq!(spool.pending(), ids);
}

/// Runs the body of a test in a child process (used to set process-wide
/// resource limits without affecting other tests).
fn in_child(test_name: &str, marker: &str, parent: impl FnOnce(&Path), child: impl FnOnce(&Path)) {
    const ENV: &str = "RELAIS_SPOOL_TEST_CHILD_DIR";
    if let Some(dir) = std::env::var_os(ENV) {
        child(Path::new(&dir));
        println!("{marker}");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(std::env::current_exe().expect("current exe"))
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV, tmp.path())
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(marker),
        "child failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    parent(tmp.path());
}

#[test]
fn write_errors_fail_the_commit_and_the_spool_recovers() {
    in_child(
        "write_errors_fail_the_commit_and_the_spool_recovers",
        "CHILD-DONE",
        |dir| {
            // The child's successful commits are durable and readable.
            let spool = open(dir, opts(true));
            assert_eq!(spool.pending().len(), 3);
        },
        |dir| {
            // Files may not grow past 64 KiB in this process; writes beyond
            // fail with EFBIG (SIGXFSZ ignored) like a full disk would.
            // SAFETY: plain libc calls on valid arguments, in a process that
            // runs only this test.
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit {
                    rlim_cur: 64 * 1024,
                    rlim_max: libc::RLIM_INFINITY,
                };
                assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
            }
            let o = SpoolOptions {
                inline_limit: 100 * 1024,
                fsync: true,
                ..SpoolOptions::default()
            };
            let spool = open(dir, o.clone());
            let a = store(&spool, b"a", &pattern(1, 1000));

            let log_bytes = |dir: &Path| -> u64 {
                segment_files(dir)
                    .iter()
                    .map(|p| fs::metadata(p).expect("stat").len())
                    .sum()
            };
            let before = log_bytes(dir);

            // An inline record that does not fit: the commit fails...
            let mut inc = spool.begin(spool.new_id());
            inc.write(&pattern(2, 80 * 1024)).expect("buffered");
            let err = inc
                .commit(b"big".to_vec())
                .wait()
                .expect_err("write past the limit must fail");
            assert!(
                matches!(err, SpoolError::Io(_) | SpoolError::Full(_)),
                "{err:?}"
            );

            // ...the partial write is cut off again...
            assert_eq!(log_bytes(dir), before, "partial record left in the log");
            // ...and the spool keeps working.
            let b = store(&spool, b"b", &pattern(3, 1000));

            // A spilled body that cannot be written fails at write time.
            let mut inc = spool.begin(spool.new_id());
            let id = inc.id();
            let mut failed = false;
            for chunk in pattern(4, 200 * 1024).chunks(16 * 1024) {
                if inc.write(chunk).is_err() {
                    failed = true;
                    break;
                }
            }
            assert!(failed, "spill write past the limit must fail");
            assert!(inc.commit(b"x".to_vec()).wait().is_err());
            assert!(
                !data_file(dir, id).exists(),
                "failed spill file left behind"
            );

            let c = store(&spool, b"c", &pattern(5, 1000));
            spool.shutdown();
            let spool = open(dir, o);
            assert_eq!(spool.pending(), vec![a, b, c]);
            for (id, seed) in [(a, 1), (b, 3), (c, 5)] {
                assert_eq!(read_body(&spool, id), pattern(seed, 1000));
            }
        },
    );
}

#[test]
fn update_envelope_replaces_it_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path(), opts(true));
    let small = store(&spool, b"env v1", b"small body");
    let big_body = pattern(7, 600_000);
    let big = store_chunked(&spool, b"big v1", &big_body, 65_536);
    let arrival = spool.read(small).unwrap().arrival;
    spool
        .update_envelope(small, b"env v2".to_vec())
        .wait()
        .unwrap();
    spool
        .update_envelope(big, b"big v2".to_vec())
        .wait()
        .unwrap();
    spool
        .update_envelope(small, b"env v3".to_vec())
        .wait()
        .unwrap();
    let m = spool.read(small).unwrap();
    assert_eq!(m.envelope, b"env v3");
    assert_eq!(m.arrival, arrival);
    assert_eq!(read_body(&spool, small), b"small body");
    assert_eq!(spool.read(big).unwrap().envelope, b"big v2");
    assert_eq!(read_body(&spool, big), big_body);
    assert_eq!(spool.pending().len(), 2);
    spool.shutdown();
    drop(spool);

    let spool = open(dir.path(), opts(true));
    assert_eq!(spool.pending(), vec![small, big]);
    assert_eq!(spool.read(small).unwrap().envelope, b"env v3");
    assert_eq!(spool.read(big).unwrap().envelope, b"big v2");
    assert_eq!(read_body(&spool, big), big_body);
    spool.mark_done(small).unwrap();
    spool.shutdown();
    drop(spool);

    let spool = open(dir.path(), opts(true));
    assert_eq!(spool.pending(), vec![big]);
    assert!(matches!(
        spool.update_envelope(small, b"x".to_vec()).wait(),
        Err(SpoolError::NotFound(_))
    ));
}

#[test]
fn updated_messages_never_come_back_after_segment_collection() {
    let dir = tempfile::tempdir().unwrap();
    let small_segments = || SpoolOptions {
        segment_size: 4096,
        ..opts(true)
    };
    let spool = open(dir.path(), small_segments());
    let ids: Vec<QueueId> = (0..40)
        .map(|i| store(&spool, format!("v1 {i}").as_bytes(), &pattern(i, 300)))
        .collect();
    // every message gets a newer envelope, in later segments; half are then finished
    for (i, id) in ids.iter().enumerate() {
        spool
            .update_envelope(*id, format!("v2 {i}").into_bytes())
            .wait()
            .unwrap();
    }
    for id in ids.iter().step_by(2) {
        spool.mark_done(*id).unwrap();
    }
    // more traffic so that old segments get sealed and collected
    for i in 0..40 {
        let id = store(&spool, b"filler", &pattern(100 + i, 300));
        spool.mark_done(id).unwrap();
    }
    spool.shutdown();
    drop(spool);
    let spool = open(dir.path(), small_segments());
    let expect: Vec<QueueId> = ids.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(spool.pending(), expect);
    for (i, id) in ids.iter().enumerate().skip(1).step_by(2) {
        assert_eq!(
            spool.read(*id).unwrap().envelope,
            format!("v2 {i}").into_bytes()
        );
    }
}
