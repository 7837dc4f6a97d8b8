//! User-written routing rules: `run_worker_first` patterns.

pub mod worker_first;
