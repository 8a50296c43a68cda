//! Insight across the modules: the event log going out — to
//! `event-subscriber` plugins ([`subscribers`]) and to the live stream
//! ([`stream`]) — and the live statistics built from the counters the
//! modules keep ([`stats`]).

pub mod stats;
pub mod stream;
pub mod subscribers;

pub use subscribers::{FeedConfig, FeedStatus, Feeder, Feeds};
