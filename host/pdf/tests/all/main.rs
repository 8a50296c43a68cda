//! The one integration-test binary of divoc-pdf (one module per feature;
//! test data lives in `tests/cases/<case>/`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod document;
mod render;
mod robustness;
mod second_qr;
mod templates;
