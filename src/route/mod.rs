//! Request-time resolution: the canonicaliser (the one place that decodes a
//! request target), validators, and the router over a bundle.

pub mod canonical;
pub mod conditional;
pub mod negotiate;
pub mod router;

pub use router::{Outcome, RequestHead, Router, Scratch};
