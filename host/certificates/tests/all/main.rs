//! The one integration-test binary of divoc-certificates (one module per
//! feature; test data lives in `tests/cases/<case>/`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod credential;
mod jsonld;
mod qr;
mod service;
