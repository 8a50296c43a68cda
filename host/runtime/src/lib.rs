//! divoc-runtime
