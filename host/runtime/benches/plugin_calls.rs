//! Plugin call benchmarks (placeholder until written).
#![allow(clippy::unwrap_used)]
fn main() {}
