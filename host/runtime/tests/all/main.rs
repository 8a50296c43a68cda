//! Integration tests of the plugin runtime against real components: the
//! fixtures of `conformance/fixtures` and the example plugins of `plugins/`,
//! as built into `target/fixtures` and `target/plugins`. One test binary with
//! a module per feature, so the components are compiled by one process.

#![allow(clippy::unwrap_used)]

mod cases;
mod dhis2;
mod distribution_adapters;
mod faults;
mod hot_swap;
mod http;
mod identity_adapters;
mod loopback;
mod payment_adapters;
mod plugins;
mod priority_groups;
mod support;
