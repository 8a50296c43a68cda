//! divoc-api
