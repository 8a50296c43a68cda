//! End-to-end tests of the `divoc` binary: each starts `divoc serve` (or
//! another subcommand) as a child process on a free loopback port, with
//! the example plugins from `target/plugins`, and talks to it over HTTP.
//! One test binary for the crate, a module per area.
#![allow(clippy::unwrap_used)]

mod admission;
mod author_loop;
mod certificates;
mod crash_issue;
mod credential_types;
mod distribution;
mod divoc_compat;
mod eligibility;
mod email;
mod events;
mod feedback;
mod footprint;
mod formats;
mod oidc;
mod operator_config;
mod pages;
mod pdf_second_qr;
mod pipeline;
mod rollout;
mod route_cases;
mod serve;
mod support;
mod three_hosts;
