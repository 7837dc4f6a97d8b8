//! `sitepack verify`: exit 1 and the first fault, or 0.

use std::path::PathBuf;

use crate::format::Bundle;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub bundle: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let bytes = crate::bundle_file::load(&args.bundle, false)?;
    let result = Bundle::open(bytes).and_then(|b| b.verify().map(|_| b));
    match result {
        Ok(b) => {
            eprintln!(
                "{}: ok ({} assets, {} blobs, {} routes)",
                args.bundle.display(),
                b.asset_count(),
                b.blob_count(),
                b.route_count()
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("{}: {e}", args.bundle.display());
            Ok(1)
        }
    }
}
