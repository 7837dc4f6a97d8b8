//! `sitepack publish`: atomic, verified replacement that keeps the previous
//! bundle, and never touches DEST when the new bundle is bad.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

fn sitepack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sitepack"))
        .args(args)
        .output()
        .unwrap()
}

fn build(tree: &Path, out: &Path, text: &str) {
    fs::create_dir_all(tree).unwrap();
    fs::write(tree.join("index.html"), text).unwrap();
    let o = sitepack(&[
        "build",
        tree.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--compression",
        "fast",
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn no_temps(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        assert!(!n.contains(".tmp-"), "temp file left behind: {n}");
    }
}

#[test]
fn publish_replaces_atomically_and_keeps_previous() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.pack"), d.path().join("b.pack"));
    build(&d.path().join("ta"), &a, "<p>A</p>");
    build(&d.path().join("tb"), &b, "<p>B</p>");
    let live_dir = d.path().join("live");
    fs::create_dir(&live_dir).unwrap();
    let live = live_dir.join("site.pack");
    let live_s = live.to_str().unwrap();

    let o = sitepack(&["publish", a.to_str().unwrap(), live_s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read(&live).unwrap(), fs::read(&a).unwrap());
    let first_inode = fs::metadata(&live).unwrap().ino();

    let o = sitepack(&["publish", b.to_str().unwrap(), live_s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read(&live).unwrap(), fs::read(&b).unwrap());
    let prev = live_dir.join("site.pack.previous");
    assert_eq!(fs::read(&prev).unwrap(), fs::read(&a).unwrap());
    // The old inode lives on as .previous: a server mapping it is unharmed.
    assert_eq!(fs::metadata(&prev).unwrap().ino(), first_inode);
    assert_ne!(fs::metadata(&live).unwrap().ino(), first_inode);
    no_temps(&live_dir);
}

#[test]
fn publish_refuses_a_corrupt_bundle_and_leaves_dest_alone() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.pack");
    build(&d.path().join("ta"), &a, "<p>A</p>");
    let live = d.path().join("live.pack");
    fs::copy(&a, &live).unwrap();
    let before = (fs::read(&live).unwrap(), fs::metadata(&live).unwrap().ino());

    let mut bad = fs::read(&a).unwrap();
    let n = bad.len();
    bad[n - 5] ^= 0x55; // inside the index: the checksum no longer holds
    let bad_path = d.path().join("bad.pack");
    fs::write(&bad_path, bad).unwrap();
    let o = sitepack(&[
        "publish",
        bad_path.to_str().unwrap(),
        live.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.pack"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        (fs::read(&live).unwrap(), fs::metadata(&live).unwrap().ino()),
        before
    );
    assert!(!d.path().join("live.pack.previous").exists());
    no_temps(d.path());
}
