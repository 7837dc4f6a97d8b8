//! The encode pipeline: read → hash → compress on the rayon pool, blobs
//! handed to a [`BlobSink`] in blob order by the calling thread, with a
//! bounded number of bytes in flight. A build's memory is then about
//! `threads × largest file` plus the index, not the size of the site.
//!
//! **Schedule.** Files are taken largest first, so one big file does not
//! finish alone at the end; among files of one size, those of a compressible
//! type first, then in key order. Blob N is the Nth distinct content in that
//! order, which depends only on the tree, never on which thread finished
//! first: the bundle is byte-identical for any thread count.
//!
//! **One read, one compression per content.** Each file is read once. The
//! first worker to hash a content keeps its bytes for the writer; the first
//! one whose file has a compressible type compresses them, once. Identical
//! contents have identical sizes, so within a content the compressible files
//! are scheduled before the others: the content's first file in schedule
//! order (where its blob is written) has a compressible type exactly when any
//! of its files has, and the writer knows there whether to wait for variants.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::encode::{self, Compression};
use super::walk::FileSet;
use super::{BuildError, HashedVariants, Problem, Progress, Reuse, Reused};
use crate::format::write::{self, BlobSink};

/// Bytes in flight never limit the pipeline below this: a few large files
/// must not serialise a build whose whole input is smaller.
pub const MIN_IN_FLIGHT: u64 = 32 << 20;

/// What the pipeline produced besides the blobs.
#[derive(Debug, Default)]
pub struct Encoded {
    /// Per file of the set (key order): its blob and Cloudflare ETag hash.
    pub blob_of_file: Vec<u32>,
    pub etag_of_file: Vec<[u8; 16]>,
    /// Identity length of each blob.
    pub blob_lens: Vec<u64>,
    /// Per encoding code: (variants, bytes).
    pub variants: std::collections::BTreeMap<u8, (u64, u64)>,
    /// Identity plus variant bytes of every blob.
    pub bytes_out: u64,
    pub reused: Reused,
    /// The largest number of input bytes held at once (test and bench aid).
    pub peak_in_flight: u64,
}

enum Slot {
    /// Handed to a worker, not yet hashed.
    Pending,
    Hashed {
        hash: [u8; 32],
        etag: [u8; 16],
    },
    Failed,
}

#[derive(Default)]
struct Group {
    /// The identity bytes, from the first member hashed until written.
    data: Option<Arc<Vec<u8>>>,
    /// Set once compressed (or taken from `--reuse`), with their hashes.
    variants: Option<HashedVariants>,
    compressing: bool,
    reused: bool,
    blob: Option<u32>,
}

struct State {
    /// Next schedule position to hand out.
    next: usize,
    /// Input bytes of positions handed out and not yet passed by the writer.
    in_flight: u64,
    peak_in_flight: u64,
    slots: Vec<Slot>,
    groups: HashMap<[u8; 32], Group>,
    problems: Vec<Problem>,
    failure: Option<BuildError>,
    /// Stop handing out work (a write or compression failed, or a worker
    /// panicked).
    abort: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Workers wait here for room in the budget.
    room: Condvar,
    /// The writer waits here for its next position.
    progress: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked holding the lock left the state consistent
        // enough to abort: every update is a single assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sets `abort` if a worker unwinds, so the writer does not wait forever;
/// the scope then re-raises the panic.
struct AbortOnPanic<'a>(&'a Shared);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().abort = true;
            self.0.progress.notify_all();
            self.0.room.notify_all();
        }
    }
}

/// Reads, hashes and compresses every file of `set`, passing the distinct
/// contents to `sink` as blobs 0, 1, … in schedule order (module docs).
/// `sink_path` names what `sink` writes, for its errors. At most
/// `max(2 × threads × largest file, min_in_flight)` input bytes are held at
/// once (builds pass [`MIN_IN_FLIGHT`]). Must not be called from a thread
/// of the rayon pool (the calling thread is the writer and blocks while the
/// pool works).
pub fn encode_files(
    set: &FileSet,
    level: Compression,
    reuse: Option<&Reuse>,
    progress: &dyn Progress,
    sink: &mut dyn BlobSink,
    sink_path: &Path,
    min_in_flight: u64,
) -> Result<Encoded, BuildError> {
    let files = &set.files;
    progress.start(files.len() as u64, files.iter().map(|f| f.len).sum());
    let squeeze: Vec<bool> = files
        .iter()
        .map(|f| encode::precompressible(&f.key, encode::content_type(&f.key).as_deref()))
        .collect();
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(files[i].len), !squeeze[i], i));
    let threads = rayon::current_num_threads().max(1) as u64;
    let largest = files.iter().map(|f| f.len).max().unwrap_or(0);
    let budget = (2 * threads * largest).max(min_in_flight);

    let shared = Shared {
        state: Mutex::new(State {
            next: 0,
            in_flight: 0,
            peak_in_flight: 0,
            slots: (0..files.len()).map(|_| Slot::Pending).collect(),
            groups: HashMap::new(),
            problems: Vec::new(),
            failure: None,
            abort: false,
        }),
        room: Condvar::new(),
        progress: Condvar::new(),
    };

    let worker = || {
        let _guard = AbortOnPanic(&shared);
        loop {
            let pos = {
                let mut st = shared.lock();
                loop {
                    if st.abort || st.next == order.len() {
                        return;
                    }
                    let len = files[order[st.next]].len;
                    if st.in_flight == 0 || st.in_flight + len <= budget {
                        break;
                    }
                    st = shared.room.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                let pos = st.next;
                st.next += 1;
                st.in_flight += files[order[pos]].len;
                st.peak_in_flight = st.peak_in_flight.max(st.in_flight);
                pos
            };
            let file = order[pos];
            let f = &files[file];
            let data = match encode::read_checked(f) {
                Ok(d) => Arc::new(d),
                Err(rule) => {
                    let mut st = shared.lock();
                    st.slots[pos] = Slot::Failed;
                    st.problems.push(Problem {
                        path: f.key.clone(),
                        rule,
                    });
                    shared.progress.notify_all();
                    continue;
                }
            };
            let hash = *blake3::hash(&data).as_bytes();
            let etag = reuse
                .and_then(|r| r.etag(&hash, &f.key))
                .unwrap_or_else(|| encode::etag_hash(&data, &f.key));
            let compress = {
                let mut st = shared.lock();
                st.slots[pos] = Slot::Hashed { hash, etag };
                let clean = st.problems.is_empty();
                let g = st.groups.entry(hash).or_default();
                let mut compress = false;
                if g.blob.is_none() {
                    if g.data.is_none() {
                        g.data = Some(Arc::clone(&data));
                    }
                    if squeeze[file] && !g.compressing && g.variants.is_none() {
                        if clean {
                            g.compressing = true;
                            compress = true;
                        } else {
                            // The build fails anyway: do not spend time.
                            g.variants = Some((Vec::new(), Vec::new()));
                        }
                    }
                }
                shared.progress.notify_all();
                compress
            };
            if compress {
                let old = reuse.and_then(|r| r.variants(&hash));
                let was_reused = old.is_some();
                let result = match old {
                    Some(v) => Ok(v),
                    None => encode::compress(&data, level).map(|v| {
                        let hashes = write::variant_hashes(&v);
                        (v, hashes)
                    }),
                };
                let mut st = shared.lock();
                match result {
                    Ok(v) => {
                        let g = st.groups.entry(hash).or_default();
                        g.variants = Some(v);
                        g.reused = was_reused;
                        g.compressing = false;
                    }
                    Err(e) => {
                        st.failure.get_or_insert(BuildError::Input(format!(
                            "{}: compression failed: {e}",
                            f.key
                        )));
                        st.abort = true;
                        shared.room.notify_all();
                    }
                }
                shared.progress.notify_all();
            }
            drop(data);
            progress.advance(f.len);
        }
    };

    let mut out = Encoded {
        blob_of_file: vec![u32::MAX; files.len()],
        etag_of_file: vec![[0; 16]; files.len()],
        ..Encoded::default()
    };
    rayon::in_place_scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|_| worker());
        }
        write_in_order(&shared, &order, &squeeze, set, sink, sink_path, &mut out);
    });

    let mut st = shared.lock();
    out.peak_in_flight = st.peak_in_flight;
    if !st.problems.is_empty() {
        let mut problems = std::mem::take(&mut st.problems);
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        return Err(BuildError::Tree(problems));
    }
    if let Some(e) = st.failure.take() {
        return Err(e);
    }
    Ok(out)
}

/// The writer: walks the schedule in order, giving each content's first
/// position its blob (identity bytes, then variants) and every later one the
/// blob number; releases each position's bytes from the budget as it passes.
fn write_in_order(
    shared: &Shared,
    order: &[usize],
    squeeze: &[bool],
    set: &FileSet,
    sink: &mut dyn BlobSink,
    sink_path: &Path,
    out: &mut Encoded,
) {
    let mut st = shared.lock();
    let mut pos = 0;
    while pos < order.len() && !st.abort {
        let file = order[pos];
        let hashed = match st.slots[pos] {
            Slot::Pending => {
                st = shared.progress.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            Slot::Failed => None,
            Slot::Hashed { hash, etag } => Some((hash, etag)),
        };
        // Once a file failed the build fails: positions are only passed.
        if let Some((hash, etag)) = hashed.filter(|_| st.problems.is_empty()) {
            let g = st.groups.entry(hash).or_default();
            let blob = match g.blob {
                Some(b) => b,
                None => {
                    if g.variants.is_none() && (g.compressing || squeeze[file]) {
                        // Its compression is running (module docs: it has
                        // been claimed by the time this position is hashed).
                        st = shared.progress.wait(st).unwrap_or_else(|e| e.into_inner());
                        continue;
                    }
                    let b = out.blob_lens.len() as u32;
                    g.blob = Some(b);
                    let data = g.data.take().unwrap_or_default();
                    let (variants, variant_hashes) = g.variants.take().unwrap_or_default();
                    let reused = g.reused;
                    drop(st);
                    let written = sink.blob_hashed(&data, &hash, &variants, &variant_hashes);
                    st = shared.lock();
                    if let Err(e) = written {
                        st.failure.get_or_insert(BuildError::io(sink_path, e));
                        st.abort = true;
                        break;
                    }
                    out.blob_lens.push(data.len() as u64);
                    out.bytes_out += data.len() as u64;
                    for (code, v) in &variants {
                        let e = out.variants.entry(*code).or_default();
                        e.0 += 1;
                        e.1 += v.len() as u64;
                        out.bytes_out += v.len() as u64;
                    }
                    if reused {
                        out.reused.blobs += 1;
                        out.reused.bytes_in += data.len() as u64;
                    }
                    b
                }
            };
            out.blob_of_file[file] = blob;
            out.etag_of_file[file] = etag;
        }
        st.in_flight -= set.files[file].len;
        shared.room.notify_all();
        pos += 1;
    }
    if st.abort {
        shared.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::walk::{walk, WalkOptions};
    use crate::format::write::BlobSpec;

    fn encode(set: &FileSet, min_in_flight: u64) -> (Vec<BlobSpec>, Encoded) {
        let mut blobs = Vec::new();
        let enc = encode_files(
            set,
            Compression::Fast,
            None,
            &(),
            &mut blobs,
            Path::new("memory"),
            min_in_flight,
        )
        .unwrap();
        (blobs, enc)
    }

    /// The budget bounds the input bytes held at once, and the blobs do not
    /// depend on it (nor on timing): a tight budget gives the same blobs.
    #[test]
    fn in_flight_bytes_are_bounded_and_do_not_change_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut total = 0u64;
        for i in 0..300u32 {
            // Sizes 1..=8 KiB, some contents repeated under other names and
            // types, text (compressed) and binary (stored) mixed.
            let content = i % 20;
            let len = 1024 * (1 + (content % 8) as usize);
            let body: Vec<u8> = format!("<p>file {content} line</p>\n")
                .into_bytes()
                .into_iter()
                .cycle()
                .take(len)
                .collect();
            let name = match i % 3 {
                0 => format!("f{i}.html"),
                1 => format!("f{i}.bin"),
                _ => format!("d{}/f{i}.css", i % 5),
            };
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &body).unwrap();
            total += len as u64;
        }
        let set = walk(dir.path(), &WalkOptions::default()).unwrap();
        let largest = 8 * 1024;
        let threads = rayon::current_num_threads() as u64;
        let (tight, enc) = encode(&set, 0);
        assert!(
            enc.peak_in_flight <= 2 * threads * largest + largest,
            "held {} bytes at once, budget {}",
            enc.peak_in_flight,
            2 * threads * largest
        );
        assert!(enc.peak_in_flight < total);
        let (loose, enc2) = encode(&set, u64::MAX / 4);
        assert_eq!(enc.blob_of_file, enc2.blob_of_file);
        assert_eq!(enc.etag_of_file, enc2.etag_of_file);
        assert_eq!(tight.len(), loose.len());
        for (a, b) in tight.iter().zip(&loose) {
            assert_eq!(
                (&a.data, &a.hash, &a.variants),
                (&b.data, &b.hash, &b.variants)
            );
        }
        // Every content once, whichever names and types share it.
        assert_eq!(tight.len(), 20);
        assert!(tight.iter().any(|b| !b.variants.is_empty()));
    }
}
