//! divoc-toolchain
