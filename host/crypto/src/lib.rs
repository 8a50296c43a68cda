//! divoc-crypto
