//! The measurements behind the compression policy (docs/COMPRESSION.md):
//! compresses every text file of a tree with each brotli quality, zstd and
//! gzip level, and prints total output bytes and CPU seconds per setting,
//! overall and by file-size class. One thread, timed by its own CPU clock, so
//! the figures hold even when other work shares the machine.
//!
//!     cargo run --release --example compression_sweep -- DIR [EXT,EXT,...]
//!
//! EXT defaults to html,js,css,svg,json (what the shell peer compresses).
//!
//! With `PER_FILE=9,10,11` it prints instead one line per file: its size,
//! then bytes and CPU seconds at each of those brotli qualities, tab
//! separated (the input of the size-threshold choice in COMPRESSION.md).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn files(root: &Path, exts: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.iter().any(|x| x == e))
        })
        .collect();
    out.sort();
    out
}

fn brotli(data: &[u8], quality: i32) -> usize {
    sitepack::build::encode::brotli(data, quality)
        .expect("brotli")
        .len()
}

/// Brotli without literal context modelling (what policy 7 uses up to
/// 8 KiB at qualities 10 and 11).
fn brotli_noctx(data: &[u8], quality: i32) -> usize {
    sitepack::build::encode::brotli_with(data, quality, false)
        .expect("brotli")
        .len()
}

/// CPU time of this thread: unlike wall time it does not grow when other
/// work shares the core.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn gzip(data: &[u8], level: u32) -> usize {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip").len()
}

/// Size classes: ≤ 4 KiB, ≤ 64 KiB, ≤ 1 MiB, larger.
fn class(len: usize) -> usize {
    match len {
        0..=4096 => 0,
        4097..=65536 => 1,
        65537..=1048576 => 2,
        _ => 3,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().expect("usage: compression_sweep DIR [EXTS]"));
    let exts: Vec<String> = args
        .next()
        .unwrap_or_else(|| "html,js,css,svg,json".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let datas: Vec<Vec<u8>> = files(&root, &exts)
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    if let Ok(qualities) = std::env::var("PER_FILE") {
        per_file(&datas, &qualities);
        return;
    }
    let mut input = [0usize; 4];
    for d in &datas {
        input[class(d.len())] += d.len();
    }
    let total: usize = input.iter().sum();
    println!(
        "{} files, {total} bytes; by class (≤4K, ≤64K, ≤1M, >1M): {input:?}",
        datas.len()
    );
    type Enc = (&'static str, fn(&[u8]) -> usize);
    let settings: &[Enc] = &[
        ("br q5", |d| brotli(d, 5)),
        ("br q6", |d| brotli(d, 6)),
        ("br q7", |d| brotli(d, 7)),
        ("br q8", |d| brotli(d, 8)),
        ("br q9", |d| brotli(d, 9)),
        ("br q10", |d| brotli(d, 10)),
        ("br q11", |d| brotli(d, 11)),
        ("br q10 noctx", |d| brotli_noctx(d, 10)),
        ("br q11 noctx", |d| brotli_noctx(d, 11)),
        ("zstd 3", |d| {
            zstd::bulk::compress(d, 3).expect("zstd").len()
        }),
        ("zstd 9", |d| {
            zstd::bulk::compress(d, 9).expect("zstd").len()
        }),
        ("zstd 12", |d| {
            zstd::bulk::compress(d, 12).expect("zstd").len()
        }),
        ("zstd 15", |d| {
            zstd::bulk::compress(d, 15).expect("zstd").len()
        }),
        ("zstd 19", |d| {
            zstd::bulk::compress(d, 19).expect("zstd").len()
        }),
        ("gzip 6", |d| gzip(d, 6)),
        ("gzip 9", |d| gzip(d, 9)),
    ];
    let only: Option<Vec<String>> = std::env::var("SETTINGS")
        .ok()
        .map(|s| s.split(',').map(str::to_string).collect());
    println!("| setting | out/in | CPU s | MB/s | out/in by class | CPU s by class |");
    println!("|---|---:|---:|---:|---|---|");
    for (name, f) in settings {
        if only.as_ref().is_some_and(|o| !o.iter().any(|x| x == name)) {
            continue;
        }
        let mut out = [0usize; 4];
        let mut cpu = [Duration::ZERO; 4];
        for d in &datas {
            let t = thread_cpu();
            let n = f(d);
            cpu[class(d.len())] += thread_cpu() - t;
            out[class(d.len())] += n;
        }
        let secs: f64 = cpu.iter().map(Duration::as_secs_f64).sum();
        let ratio = |o: usize, i: usize| if i == 0 { 0.0 } else { o as f64 / i as f64 };
        println!(
            "| {name} | {:.4} | {secs:.1} | {:.1} | {} | {} |",
            ratio(out.iter().sum(), total),
            total as f64 / 1e6 / secs,
            (0..4)
                .map(|c| format!("{:.4}", ratio(out[c], input[c])))
                .collect::<Vec<_>>()
                .join(" / "),
            cpu.iter()
                .map(|d| format!("{:.1}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" / "),
        );
    }
}

/// `size (bytes cpu_s)*` per file, one brotli quality after another.
fn per_file(datas: &[Vec<u8>], qualities: &str) {
    let qualities: Vec<i32> = qualities
        .split(',')
        .map(|q| q.trim().parse().expect("PER_FILE: qualities like 9,10,11"))
        .collect();
    for d in datas {
        let mut line = d.len().to_string();
        for &q in &qualities {
            let t = thread_cpu();
            let n = brotli(d, q);
            line += &format!("\t{n}\t{:.6}", (thread_cpu() - t).as_secs_f64());
        }
        println!("{line}");
    }
}
