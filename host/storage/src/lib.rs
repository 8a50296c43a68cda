//! divoc-storage
