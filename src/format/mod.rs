//! The on-disk bundle format, v1: records (`layout`), the writer (`write`)
//! and the in-place reader (`bundle`). Specified byte by byte in
//! docs/FORMAT.md.

pub mod bundle;
pub mod layout;
pub mod write;

pub use bundle::{Asset, Bundle, FormatError, Route, RouteEntry, Variant};
