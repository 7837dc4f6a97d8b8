//! Arbitrary bytes as a bundle: open, every accessor, lookups, verify and a
//! few requests through the router must return errors, never panic or read
//! out of bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sitepack::format::Bundle;
use sitepack::route::{RequestHead, Router, Scratch};

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::open(data) else { return };
    let _ = bundle.config();
    for a in bundle.assets() {
        let _ = bundle.blob(a.blob);
        for v in bundle.variants(a.blob) {
            let _ = v.bytes.len();
        }
        let _ = bundle.find_asset(a.path);
    }
    let paths: Vec<String> = bundle.routes().map(|r| r.path.to_string()).collect();
    for p in &paths {
        let _ = bundle.route(p);
    }
    let _ = bundle.verify();
    let Ok(router) = Router::new(bundle) else { return };
    let mut scratch = Scratch::new();
    for target in ["/", "/index.html", "/a/b/", "/missing", "/%5Bx%5D?q=1"] {
        for has_worker in [false, true] {
            let req = RequestHead { method: "GET", target: target.as_bytes(), ..RequestHead::default() };
            let _ = router.resolve(&req, has_worker, &mut scratch);
        }
    }
});
